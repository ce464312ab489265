#!/usr/bin/env node
// Slow readers beside fast clients: warm .info hits measured with wrk, first alone, then while
// N slow readers (default 200, each on its own connection) read a cached 30 MiB zip at about
// 1 KiB/s; against nginx serving the same folder, then gomodproxy. See bench/README.md.
//
//   npm run build && node bench/slowreaders.mjs [--readers 200] [--rate 1024] [--zip-mib 30]
//                                              [--duration 8] [--workers 2] ...
//
// Reports, per server: req/s and latency p50/p99 of the hits with and without the slow readers
// (and their ratio), the time to first byte of single probe requests on fresh connections, the
// RSS of each process (primary/master and each worker) before, during (peak) and after, how many
// slow readers were still connected at the end (none may be cut), how much the kernel holds in
// the readers' sockets, and for gomodproxy each process's event-loop delay.
// Everything runs on 127.0.0.1, every step is bounded in time, and every process started here is
// stopped at the end, on an error and on Ctrl-C.
import { statSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fillSlow, urlPath } from './lib/fill.mjs';
import { f0, f1, f2, mdTable } from './lib/format.mjs';
import { getJson, stats, timedGet } from './lib/http.mjs';
import { foreignCpu, freePort, installCleanupHandlers, loadAvg, rssByPid, rssSampler, run, start, stopAll, stopProc, waitHttp } from './lib/procs.mjs';
import { BENCH, OUT, REPO, startGomodproxy, startNginx, stopServer, warmAll, wrk } from './lib/servers.mjs';
import { NOISY_PCT, buildDist, checkTools, gitState, log, machineInfo, newRunDir, options, waitQuiet } from './lib/session.mjs';

const READER = path.join(BENCH, 'lib', 'slowreader.mjs');
const LOOPDELAY = path.join(BENCH, 'lib', 'loopdelay.mjs');
const AIMS = { p99Ratio: 2, rssGrowthMiB: 64 };

const HELP = `usage: node bench/slowreaders.mjs [options]     (run "npm run build" first, or pass --build)

  --readers N           slow readers (default 200), each on its own connection
  --rate B              bytes per second each slow reader reads (default 1024; 1k, 2k... also work)
  --chunk B             bytes per read() of a slow reader (default 1024)
  --zip-mib M           size of the cached zip the slow readers read (default 30)
  --duration S          seconds of each measured wrk run (default 8)
  --workers N           gomodproxy --workers and nginx worker_processes (default 2)
  --connections C       wrk connections (default 8)
  --threads T           wrk threads (default 1)
  --warmup S            unmeasured wrk seconds before measuring (default 1)
  --info-versions N     .info URLs wrk rotates over (default 64)
  --servers LIST        nginx,gomodproxy (default both, in that order)
  --connect-timeout S   longest wait for every slow reader to get its headers (default 15)
  --settle S            wait after the readers are in, before measuring (default 1)
  --after S             wait after the readers are gone, before the "after" RSS (default 2)
  --probe-interval MS   a probe request (fresh connection, one .info) every MS (default 250)
  --probe-timeout S     a probe without an answer by then counts as timed out (default 10)
  --no-arrival-wrk      no wrk run while the slow readers arrive (default: one, started right
                        after them, as long as the others)
  --no-loop-delay       do not preload bench/lib/loopdelay.mjs into gomodproxy
  --server-env K=V      an environment variable for gomodproxy (repeatable), to try a setting
                        without a code change, e.g. NODE_CLUSTER_SCHED_POLICY=none, UV_THREADPOOL_SIZE=8
  --node-arg ARG        an option for gomodproxy's node (repeatable; workers inherit it), e.g.
                        --node-arg --cpu-prof --node-arg --cpu-prof-dir=/tmp/prof
  --build               run "npm run build" first
  --wait-quiet S        wait up to S seconds for other processes to use < ${NOISY_PCT}% CPU first
`;

function parseArgs(argv) {
  const o = {
    readers: 200,
    rate: 1024,
    chunk: 1024,
    zipMiB: 30,
    duration: 8,
    workers: 2,
    connections: 8,
    threads: 1,
    warmup: 1,
    infoVersions: 64,
    servers: ['nginx', 'gomodproxy'],
    connectTimeout: 15,
    settle: 1,
    after: 2,
    probeIntervalMs: 250,
    probeTimeout: 10,
    loopDelay: true,
    arrivalWrk: true,
    serverEnv: {},
    nodeArgs: [],
    build: false,
    waitQuiet: 0,
  };
  const int = (v, min = 1) => Math.max(min, Math.floor(v));
  for (const { a, val, num } of options(argv)) {
    switch (a) {
      case '--readers':
        o.readers = int(num());
        break;
      case '--rate':
        o.rate = num();
        if (!(o.rate > 0)) throw new Error('--rate must be > 0');
        break;
      case '--chunk':
        o.chunk = int(num());
        break;
      case '--zip-mib':
        o.zipMiB = int(num());
        break;
      case '--duration':
        o.duration = int(num());
        break;
      case '--workers':
        o.workers = int(num());
        break;
      case '--connections':
        o.connections = int(num());
        break;
      case '--threads':
        o.threads = int(num());
        break;
      case '--warmup':
        o.warmup = int(num(), 0);
        break;
      case '--info-versions':
        o.infoVersions = int(num());
        break;
      case '--servers': {
        o.servers = val()
          .split(',')
          .map((s) => s.trim());
        for (const s of o.servers) if (!['nginx', 'gomodproxy'].includes(s)) throw new Error(`--servers: unknown server ${s}`);
        break;
      }
      case '--connect-timeout':
        o.connectTimeout = num();
        break;
      case '--settle':
        o.settle = num();
        break;
      case '--after':
        o.after = num();
        break;
      case '--probe-interval':
        o.probeIntervalMs = int(num(), 20);
        break;
      case '--probe-timeout':
        o.probeTimeout = num();
        break;
      case '--no-loop-delay':
        o.loopDelay = false;
        break;
      case '--no-arrival-wrk':
        o.arrivalWrk = false;
        break;
      case '--server-env': {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(val());
        if (!m) throw new Error('--server-env takes NAME=VALUE');
        o.serverEnv[m[1]] = m[2];
        break;
      }
      case '--node-arg':
        o.nodeArgs.push(val());
        break;
      case '--build':
        o.build = true;
        break;
      case '--wait-quiet':
        o.waitQuiet = num();
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n\n${HELP}`);
    }
  }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Probes: one .info on a fresh connection every probeIntervalMs (what a new client meets: the
// accept, the cluster's hand-over to a worker, the request), at most 40 in flight.

function startProbes(port, items, o) {
  const done = [];
  let inflight = 0;
  let skipped = 0;
  let k = 0;
  const timer = setInterval(() => {
    if (inflight >= 40) {
      skipped++;
      return;
    }
    inflight++;
    const it = items[k++ % items.length];
    timedGet(port, it.path, undefined, { timeoutMs: o.probeTimeout * 1000 })
      .then(
        (r) => done.push({ ttfbMs: r.ttfbMs, ok: r.status === 200 && r.bytes === it.bytes }),
        (e) => done.push({ error: e.message, timeout: /timed out/.test(e.message) }),
      )
      .finally(() => inflight--);
  }, o.probeIntervalMs);
  return {
    async stop() {
      clearInterval(timer);
      const deadline = Date.now() + o.probeTimeout * 1000 + 2000;
      while (inflight > 0 && Date.now() < deadline) await sleep(50);
      const answered = done.filter((d) => d.ttfbMs !== undefined);
      const s = stats(answered.map((d) => d.ttfbMs));
      return {
        n: done.length,
        answered: answered.length,
        bad: answered.filter((d) => !d.ok).length,
        timeouts: done.filter((d) => d.timeout).length,
        errors: done.filter((d) => d.error && !d.timeout).length,
        skipped,
        ttfbMs: { p50: s.p50, p99: s.p99, max: s.max },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The kernel's share: bytes queued in the established sockets of the server's port, on the
// server's side (Send-Q: not yet sent, the window being closed) and on the clients' (Recv-Q:
// received, not yet read). On loopback a segment sent is at once in the peer's receive queue.

async function kernelQueues(port) {
  const r = await run('ss', 'ss', ['-Htnp', 'state', 'established'], { timeoutMs: 10000 });
  // byPid: the server's established connections per process (which worker holds how many).
  const q = { serverSockets: 0, serverSendQ: 0, clientSockets: 0, clientRecvQ: 0, byPid: {} };
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [recvQ, sendQ, local, peer] = [Number(f[0]), Number(f[1]), f[2], f[3]];
    if (local.endsWith(`:${port}`)) {
      q.serverSockets++;
      q.serverSendQ += sendQ;
      const pid = /pid=(\d+)/.exec(line)?.[1];
      if (pid) q.byPid[pid] = (q.byPid[pid] ?? 0) + 1;
    } else if (peer.endsWith(`:${port}`)) {
      q.clientSockets++;
      q.clientRecvQ += recvQ;
    }
  }
  return q;
}

// ---------------------------------------------------------------------------------------------
// Event-loop delay lines written by bench/lib/loopdelay.mjs, per process and phase.

function loopDelayOf(file, from, to) {
  if (!file || !existsSync(file)) return null;
  const out = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const x = JSON.parse(line);
    // A line covers the 500 ms before its time.
    if (x.t <= from || x.t > to + 500) continue;
    const p = (out[x.pid] ??= { role: x.role, maxMs: 0, p99Ms: 0, maxElu: 0, maxArrayBuffersMiB: 0, maxHeapUsedMiB: 0 });
    p.maxArrayBuffersMiB = Math.max(p.maxArrayBuffersMiB, x.arrayBuffersMiB ?? 0);
    p.maxHeapUsedMiB = Math.max(p.maxHeapUsedMiB, x.heapUsedMiB ?? 0);
    p.maxMs = Math.max(p.maxMs, x.maxMs);
    p.p99Ms = Math.max(p.p99Ms, x.p99Ms);
    p.maxElu = Math.max(p.maxElu, x.elu ?? 0);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function startServer(o, runDir, name, tree, items, eldFile) {
  if (name === 'nginx') return startNginx(o, runDir, 'nginx', tree, true, items[0].path);
  return startGomodproxy(o, runDir, 'gomodproxy', {
    data: tree,
    nodeArgs: [...(o.loopDelay ? ['--import', pathToFileURL(LOOPDELAY).href] : []), ...o.nodeArgs],
    env: { ...o.serverEnv, ...(o.loopDelay ? { BENCH_LOOP_DELAY_FILE: eldFile } : {}) },
  });
}

async function startReaders(o, runDir, name, port, zipPath) {
  const statsPort = await freePort();
  const h = start(
    `${name}-readers`,
    process.execPath,
    [
      READER,
      '--port',
      String(port),
      '--path',
      zipPath,
      '--stats-port',
      String(statsPort),
      '--count',
      String(o.readers),
      '--rate',
      String(o.rate),
      '--chunk',
      String(o.chunk),
    ],
    {
      stdout: path.join(runDir, `${name}-readers.out`),
      stderr: path.join(runDir, `${name}-readers.err`),
    },
  );
  await waitHttp(statsPort, '/stats', { proc: h, timeoutMs: 10000 });
  return { h, statsPort, stats: () => getJson(statsPort, '/stats') };
}

async function stopReaders(r) {
  let final = null;
  try {
    final = await Promise.race([getJson(r.statsPort, '/stop'), sleep(5000).then(() => null)]);
  } catch {
    // gone already
  }
  await stopProc(r.h, { graceMs: 3000 });
  return final;
}

/** A wrk run that completed no request has no latency (wrk says 0). */
function noLatencyIfNone(w) {
  if (w.requests === 0) for (const k of Object.keys(w.latencyMs)) w.latencyMs[k] = NaN;
  return w;
}

/** One wrk run with probes, RSS sampling and the machine's other load. */
async function measured(o, s, pathsFile, items, sampler, offset) {
  const t0 = Date.now();
  const probes = startProbes(s.port, items, o);
  const other = foreignCpu();
  const mid = sleep((o.duration * 1000) / 2).then(() => kernelQueues(s.port));
  const w = noLatencyIfNone(await wrk(o, s.port, pathsFile, o.duration, offset));
  const otherCpuPct = other.stop();
  const kernel = await mid;
  const probe = await probes.stop();
  return { ...w, probe, otherCpuPct, kernel, t0, t1: Date.now(), rssPeak: sampler.peak() };
}

async function measureServer(o, runDir, name, tree, items, pathsFile, zip) {
  const eldFile = path.join(runDir, `${name}-loopdelay.jsonl`);
  const s = await startServer(o, runDir, name, tree, items, eldFile);
  let readers;
  const res = { server: name };
  try {
    await warmAll(s.port, items, o.workers);
    // The zip's bytes into the page cache (and each gomodproxy worker's code path warm).
    for (let i = 0; i < o.workers; i++) {
      const z = await timedGet(s.port, zip.path, undefined, { timeoutMs: 60000 });
      if (z.status !== 200 || z.bytes !== zip.bytes) throw new Error(`${name}: GET ${zip.path} gave ${z.status}, ${z.bytes} bytes (want ${zip.bytes})`);
    }
    if (o.warmup > 0) await wrk(o, s.port, pathsFile, o.warmup, 7);
    const pids = Object.keys(rssByPid(s.pid, s.only))
      .map(Number)
      .sort((a, b) => (a === s.pid ? -1 : b === s.pid ? 1 : a - b));
    res.pids = pids.map((p) => ({ pid: p, role: p === s.pid ? (name === 'nginx' ? 'master' : 'primary') : 'worker' }));
    await sleep(500);
    const before = rssByPid(s.pid, s.only);

    // 1. Alone.
    let sampler = rssSampler(s.pid, { only: s.only });
    res.alone = await measured(o, s, pathsFile, items, sampler, 0);
    sampler.stop();
    log(
      `${name.padEnd(10)} alone          ${f0(res.alone.rps).padStart(6)} req/s  p50 ${f2(res.alone.latencyMs.p50)} ms  p99 ${f2(res.alone.latencyMs.p99)} ms  probe TTFB max ${f1(res.alone.probe.ttfbMs.max)} ms`,
    );

    // 2. The slow readers come in (all at once).
    sampler = rssSampler(s.pid, { only: s.only });
    const tc = Date.now();
    const probes = startProbes(s.port, items, o);
    readers = await startReaders(o, runDir, name, s.port, zip.path);
    // --arrival-wrk: fast clients whose connections come just after the slow readers'.
    const arrivalWrk = o.arrivalWrk ? wrk(o, s.port, pathsFile, o.duration, 17) : null;
    let rs;
    for (;;) {
      rs = await readers.stats();
      if (rs.gotHeaders + rs.cut >= o.readers || Date.now() - tc > o.connectTimeout * 1000) break;
      await sleep(250);
    }
    const inSeconds = (Date.now() - tc) / 1000;
    if (arrivalWrk) {
      res.arrival = noLatencyIfNone(await arrivalWrk);
      log(
        `${name.padEnd(10)} readers coming ${f0(res.arrival.rps).padStart(6)} req/s  p50 ${f2(res.arrival.latencyMs.p50)} ms  p99 ${f2(res.arrival.latencyMs.p99)} ms  (${res.arrival.requests} requests${res.arrival.errors ? `; wrk ERRORS ${JSON.stringify(res.arrival.errorDetail)}` : ''})`,
      );
    }
    await sleep(o.settle * 1000);
    res.connect = { seconds: inSeconds, readers: rs, probe: await probes.stop(), t0: tc, t1: Date.now() };
    log(
      `${name.padEnd(10)} readers in     ${rs.gotHeaders}/${o.readers} got headers in ${f1(inSeconds)} s (connected ${rs.connected}, cut ${rs.cut}); probe TTFB max ${f1(res.connect.probe.ttfbMs.max)} ms, ${res.connect.probe.timeouts} timed out`,
    );

    // 3. Hits beside the slow readers.
    res.loaded = await measured(o, s, pathsFile, items, sampler, 31);
    sampler.stop();
    res.readersAtEnd = await readers.stats();
    log(
      `${name.padEnd(10)} slow readers   ${f0(res.loaded.rps).padStart(6)} req/s  p50 ${f2(res.loaded.latencyMs.p50)} ms  p99 ${f2(res.loaded.latencyMs.p99)} ms  probe TTFB max ${f1(res.loaded.probe.ttfbMs.max)} ms (${res.loaded.probe.timeouts} timed out); readers open ${res.readersAtEnd.open}, cut ${res.readersAtEnd.cut}${res.loaded.errors ? `; wrk ERRORS ${JSON.stringify(res.loaded.errorDetail)}` : ''}`,
    );

    // 4. Readers gone.
    res.readersFinal = await stopReaders(readers);
    readers = undefined;
    await sleep(o.after * 1000);
    const after = rssByPid(s.pid, s.only);
    const peakDuring = res.loaded.rssPeak.byPid;
    for (const p of res.pids) {
      p.beforeMiB = before[p.pid] ?? NaN;
      p.peakAloneMiB = res.alone.rssPeak.byPid[p.pid] ?? NaN;
      p.peakLoadedMiB = peakDuring[p.pid] ?? NaN;
      p.afterMiB = after[p.pid] ?? NaN;
      p.growthMiB = p.peakLoadedMiB - p.beforeMiB;
    }
    if (name === 'gomodproxy' && o.loopDelay) {
      res.loopDelay = {
        alone: loopDelayOf(eldFile, res.alone.t0, res.alone.t1),
        connect: loopDelayOf(eldFile, res.connect.t0, res.connect.t1),
        loaded: loopDelayOf(eldFile, res.loaded.t0, res.loaded.t1),
      };
    }
  } finally {
    if (readers) await stopReaders(readers);
    const st = await stopServer(s);
    res.timeVMaxMiB = st.timeV?.maxRssMiB ?? null;
  }
  const a = res.alone;
  const l = res.loaded;
  res.rpsRatio = l.rps / a.rps;
  res.p99Ratio = l.latencyMs.p99 / a.latencyMs.p99;
  const workers = res.pids.filter((p) => p.role === 'worker');
  res.maxWorkerGrowthMiB = Math.max(...workers.map((p) => p.growthMiB));
  res.readersCut = res.readersAtEnd.cut;
  res.meets = {
    p99: Number.isFinite(res.p99Ratio) && res.p99Ratio <= AIMS.p99Ratio,
    rss: res.maxWorkerGrowthMiB < AIMS.rssGrowthMiB,
    noneCut: res.readersAtEnd.cut === 0 && res.readersAtEnd.open === o.readers,
  };
  return res;
}

// ---------------------------------------------------------------------------------------------
// Report

const ms = (n) => (n == null || !Number.isFinite(n) ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(2));
const probeText = (p, o) =>
  `${ms(p.ttfbMs.p50)} / ${ms(p.ttfbMs.max)}${p.timeouts ? ` + ${p.timeouts} timed out (> ${o.probeTimeout * 1000})` : ''} (n ${p.n})`;
const yes = (b) => (b ? 'ok' : 'MISSED');
const mib = (b) => b / 2 ** 20;

function report(o, r) {
  const parts = [];
  const m = r.machine;
  parts.push(`# gomodproxy slow readers ${r.startedAt}`, '');
  parts.push(`Machine: ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, ${m.os}; node ${m.node}, ${m.nginx}, ${m.wrk}.`);
  parts.push(
    `gomodproxy: dist/ built from ${r.gitHead}${r.gitDirty ? ' with uncommitted changes in src/' : ''}.${r.buildWarning ? ` Warning: ${r.buildWarning}.` : ''}`,
  );
  parts.push(
    `Load average at start ${r.loadStart?.join(' ') ?? '?'}, at end ${r.loadEnd?.join(' ') ?? '?'}; other processes used ${f0(r.otherCpuAtStart)}% CPU (of one core) just before.`,
  );
  parts.push(
    `Settings: ${o.readers} slow readers at ${o.rate} B/s (${o.chunk} B per read) on a ${f1(mib(r.zip.bytes))} MiB cached zip; warm hits: wrk -t${o.threads} -c${o.connections} for ${o.duration} s over ${r.infoUrls} .info URLs (rotating); workers ${o.workers} (gomodproxy --workers, nginx worker_processes)${
      Object.keys(o.serverEnv).length
        ? `; gomodproxy environment ${Object.entries(o.serverEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`
        : ''
    }${o.nodeArgs.length ? `; gomodproxy node options ${o.nodeArgs.join(' ')}` : ''}; access logs on; loopback; probes: one .info on a fresh connection every ${o.probeIntervalMs} ms.`,
  );
  parts.push('', '## Warm .info hits, alone and beside the slow readers', '');
  const rows = [];
  for (const s of r.servers) {
    for (const [label, x] of [
      ['alone', s.alone],
      [`${o.readers} slow readers`, s.loaded],
    ]) {
      rows.push([
        s.server,
        label,
        f0(x.rps),
        ms(x.latencyMs.p50),
        ms(x.latencyMs.p99),
        ms(x.latencyMs.max),
        x.errors ? JSON.stringify(x.errorDetail) : '0',
        probeText(x.probe, o),
        `${f0(x.otherCpuPct)}%${x.otherCpuPct > NOISY_PCT ? ' NOISY' : ''}`,
      ]);
    }
    rows.push([
      s.server,
      'ratio (with / alone)',
      `${f2(s.rpsRatio)}x`,
      '',
      `${f2(s.p99Ratio)}x (aim ≤ ${AIMS.p99Ratio}x: ${yes(s.meets.p99)})`,
      '',
      '',
      '',
      '',
    ]);
    if (s.arrival) {
      const x = s.arrival;
      rows.push([
        s.server,
        `readers arriving (${x.requests} requests)`,
        f0(x.rps),
        ms(x.latencyMs.p50),
        ms(x.latencyMs.p99),
        ms(x.latencyMs.max),
        x.errors ? JSON.stringify(x.errorDetail) : '0',
        probeText(s.connect.probe, o),
        '',
      ]);
      rows.push([s.server, 'ratio (arriving / alone)', `${f2(x.rps / s.alone.rps)}x`, '', `${f2(x.latencyMs.p99 / s.alone.latencyMs.p99)}x`, '', '', '', '']);
    }
  }
  parts.push(mdTable(['server', 'run', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'wrk errors', 'probe TTFB p50 / max ms', 'other CPU'], rows));
  const n = r.servers.find((s) => s.server === 'nginx');
  const g = r.servers.find((s) => s.server === 'gomodproxy');
  if (n && g)
    parts.push(
      '',
      `gomodproxy / nginx req/s: alone ${f2(g.alone.rps / n.alone.rps)}x, beside the slow readers ${f2(g.loaded.rps / n.loaded.rps)}x; p99: alone ${f2(g.alone.latencyMs.p99 / n.alone.latencyMs.p99)}x, beside ${f2(g.loaded.latencyMs.p99 / n.loaded.latencyMs.p99)}x.`,
    );
  parts.push(
    '',
    `"readers arriving": a wrk run of the same length started right after the slow readers, whose connections queue behind theirs (off with --no-arrival-wrk); its probe column is that of the whole arrival phase. wrk latency is per request, from sending to the last byte; a request over 5 s counts as a timeout (wrk errors), not in the percentiles. The probes open a new connection each, as a new client would (accept, the cluster primary handing the connection to a worker, the request); their TTFB is the time to the response headers.`,
  );

  parts.push('', '## Slow readers', '');
  const rrows = r.servers.map((s) => {
    const c = s.connect.readers;
    const e = s.readersAtEnd;
    const k = s.loaded.kernel;
    return [
      s.server,
      `${c.gotHeaders}/${o.readers} in ${f1(s.connect.seconds)} s`,
      `${ms(c.headersMs.p50)} / ${ms(c.headersMs.max)}`,
      probeText(s.connect.probe, o),
      `${e.open}/${o.readers}`,
      `${e.cut}${e.cut ? ` ${JSON.stringify(e.cutSamples)}` : ''}`,
      f0(e.bodyBytes.mean / 1024),
      `${f1(mib(k.serverSendQ))} + ${f1(mib(k.clientRecvQ))}`,
      `${yes(s.meets.noneCut)}`,
    ];
  });
  parts.push(
    mdTable(
      [
        'server',
        'got headers',
        'headers p50 / max ms',
        'probe TTFB while they come in p50 / max ms',
        'open at end',
        'cut',
        'KiB read each (mean)',
        'kernel MiB: server Send-Q + readers Recv-Q',
        'none cut',
      ],
      rrows,
    ),
  );
  parts.push(
    '',
    `The readers connect all at once, then read at ${o.rate} B/s each; "open at end" counts those still connected and reading after the loaded wrk run (none may have been cut). The kernel column is what the kernel holds for all the server's established sockets at mid-run (ss): bytes the server has written that no reader has read yet, outside the server's memory.`,
  );

  parts.push('', '## Memory (RSS MiB, /proc VmRSS of each process)', '');
  const mrows = [];
  for (const s of r.servers) {
    for (const p of s.pids)
      mrows.push([
        s.server,
        `${p.role} ${p.pid}`,
        s.loaded.kernel.byPid[p.pid] ?? 0,
        f0(p.beforeMiB),
        f0(p.peakAloneMiB),
        f0(p.peakLoadedMiB),
        f0(p.afterMiB),
        `${p.growthMiB >= 0 ? '+' : ''}${f0(p.growthMiB)}`,
      ]);
    mrows.push([s.server, 'largest worker growth', '', '', '', '', '', `+${f0(s.maxWorkerGrowthMiB)} (aim < ${AIMS.rssGrowthMiB}: ${yes(s.meets.rss)})`]);
  }
  parts.push(mdTable(['server', 'process', 'connections', 'before', 'peak alone', 'peak with slow readers', 'after', 'growth (peak with - before)'], mrows));
  parts.push(
    '',
    `"connections": the established connections each process held at mid-run (ss -p: the slow readers, wrk's and a probe or two); node:cluster's primary hands each new connection to whichever worker is free, so the split can be uneven. "peak with slow readers" is sampled every 50 ms from the readers' arrival to the end of the loaded wrk run; "after" is ${o.after} s after the readers closed. /usr/bin/time -v max RSS (largest process, whole life): ${r.servers.map((s) => `${s.server} ${f0(s.timeVMaxMiB)} MiB`).join(', ')}.`,
  );

  if (g?.loopDelay) {
    parts.push(
      '',
      '## gomodproxy processes from the inside (event-loop delay in ms beyond the 10 ms timer: max / worst 500 ms p99; busiest 500 ms utilization; peak MiB of Buffers V8 holds / of heap used)',
      '',
    );
    const lrows = [];
    for (const p of g.pids) {
      const cell = (ph) => {
        const x = g.loopDelay[ph]?.[p.pid];
        return x ? `${ms(x.maxMs)} / ${ms(x.p99Ms)}; ${f0(100 * x.maxElu)}%; ${f0(x.maxArrayBuffersMiB)} / ${f0(x.maxHeapUsedMiB)}` : '- (no line)';
      };
      lrows.push([`${p.role} ${p.pid}`, cell('alone'), cell('connect'), cell('loaded')]);
    }
    parts.push(mdTable(['process', 'alone', 'readers coming in', 'beside the slow readers'], lrows));
    parts.push(
      '',
      'From bench/lib/loopdelay.mjs (perf_hooks.monitorEventLoopDelay, eventLoopUtilization, process.memoryUsage every 500 ms), preloaded with node --import into the primary and every worker. Buffers = memoryUsage().arrayBuffers: every Buffer not yet collected, live or garbage; RSS above it and the heap is mostly memory the allocator has not given back.',
    );
  }
  parts.push('', 'Aims (after a fix): p99 beside the slow readers ≤ 2x alone; each worker grows by < 64 MiB; no slow reader cut.');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  const started = Date.now();
  const { runDir, stamp } = newRunDir('slow');
  const versions = await checkTools();
  const buildWarning = await buildDist(o.build);
  const otherCpuAtStart = await waitQuiet(o.waitQuiet);
  const tree = path.join(OUT, 'slowtree');
  log(`filling ${tree} (a ${o.zipMiB} MiB zip, ${o.infoVersions} small versions)`);
  const manifest = await fillSlow(tree, { zipMiB: o.zipMiB, smallVersions: o.infoVersions });
  const big = manifest.versions[0];
  const zip = { path: urlPath(big, 'zip'), bytes: statSync(path.join(tree, urlPath(big, 'zip'))).size };
  const items = manifest.versions.slice(1).map((v) => ({ path: urlPath(v, 'info'), bytes: statSync(path.join(tree, urlPath(v, 'info'))).size }));
  const pathsFile = path.join(runDir, 'paths-info.txt');
  writeFileSync(pathsFile, `${items.map((i) => i.path).join('\n')}\n`);

  const results = {
    startedAt: new Date(started).toISOString(),
    // Filled in at the end.
    seconds: 0,
    loadEnd: /** @type {number[] | null} */ (null),
    options: o,
    machine: machineInfo(versions),
    loadStart: loadAvg(),
    otherCpuAtStart,
    buildWarning,
    ...(await gitState()),
    zip,
    infoUrls: items.length,
    servers: [],
  };
  for (const name of o.servers) results.servers.push(await measureServer(o, runDir, name, tree, items, pathsFile, zip));
  results.seconds = (Date.now() - started) / 1000;
  results.loadEnd = loadAvg();
  const md = `${report(o, results)}\n\nWhole run: ${results.seconds.toFixed(0)} s. Logs: ${path.relative(REPO, runDir)}/\n`;
  for (const base of [`slowreaders-${stamp}`, 'slowreaders-latest']) {
    writeFileSync(path.join(OUT, `${base}.json`), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(path.join(OUT, `${base}.md`), md);
  }
  process.stdout.write(`\n${md}\nwritten: bench/.out/slowreaders-${stamp}.md and .json (also bench/.out/slowreaders-latest.md)\n`);
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
