#!/usr/bin/env node
// The gomodproxy benchmark: warm hits against nginx serving the same folder, cold misses
// against going to the upstream directly, and peak memory. See bench/README.md.
//
//   node bench/run.mjs [--quick] [--workers N] [--duration 8] [--connections 8] ...
//   node bench/run.mjs --profile zip      (CPU profile of one gomodproxy worker under wrk)
//
// Everything runs on 127.0.0.1, every run is bounded in time, and every process started here
// is stopped at the end, on an error, and on Ctrl-C.
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, statSync, copyFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fillBig, fillMain, kindItems, urlPath } from './lib/fill.mjs';
import { f0, f1, f2, mdTable, pct } from './lib/format.mjs';
import { getJson, stats, timedGet } from './lib/http.mjs';
import { formatSummary, summarize } from './lib/cpuprofile.mjs';
import {
  setNiceness,
  foreignCpu,
  loadAvg,
  treeCpuSeconds,
  freePort,
  installCleanupHandlers,
  rssSampler,
  start,
  stopAll,
  stopProc,
  treePids,
  waitHttp,
} from './lib/procs.mjs';
import { BENCH, OUT, REPO, haveTime, serverPid, startGomodproxy, startNginx, stopServer, warmAll, withTime, wrk } from './lib/servers.mjs';
import { NOISY_PCT, buildDist, checkTools, gitState, log, machineInfo, newRunDir, options, waitQuiet } from './lib/session.mjs';

const AIMS = { info: 0.8, mod: 0.8, zip: 0.7, zip3m: 0.7, coldOverheadPct: 10 };

// ---------------------------------------------------------------------------------------------
// Options

const HELP = `usage: node bench/run.mjs [options]

  --quick                 ~1 minute: 3 s wrk runs, fewer versions, access logs on only
  --workers N             gomodproxy --workers and nginx worker_processes (default: cores = ${os.availableParallelism()})
  --duration S            seconds per measured wrk run (default 8, quick 3)
  --rounds R              measured runs per server and kind with access logs on, alternating
                          nginx/gomodproxy (A B B A); the best run counts (default 2, quick 1)
  --warmup S              unmeasured wrk seconds before each measured run (default 1; whole seconds)
  --connections C         wrk connections (default 8)
  --threads T             wrk threads (default 1: on 2 cores wrk competes with the server)
  --upstream-latency L    realistic upstream latency for the cold-miss run (default 50ms; 0 ms is always run too)
  --cold-versions N       versions fetched in each cold-miss run (default 40, quick 15)
  --logs on|off|both      access-log modes to measure (default on, the default of both servers;
                          off/both add runs without access logs, to show what logging costs)
  --only LIST             comma list of phases: warm,cold,memory (default all)
  --kinds LIST            warm kinds: info,mod,zip (default) and zip3m (3 MiB zips, which gomodproxy
                          streams from disk instead of its memory cache)
  --floor                 also measure a bare node:http server serving the same files from memory
                          (bench/lib/floor.mjs): how much of the gap to nginx is Node itself
  --no-build              skip "npm run build" (use dist/ as it is)
  --nice N                run servers, upstream and wrk at niceness N, their autogroups too (e.g.
                          -10 as root: less disturbed by other work on a shared machine, which
                          then runs slower while the benchmark runs; default 0)
  --wait-quiet S          wait up to S seconds for other processes to use < 20% CPU before starting
                          (default 0: only warn; the machine may be shared with test runs)
  --profile KIND          instead of the benchmark: CPU-profile one gomodproxy worker (workers=1)
                          during a wrk run on KIND (info|mod|zip|zip3m) and print the top functions
  --help
`;

function parseArgs(argv) {
  const o = {
    quick: false,
    workers: os.availableParallelism(),
    duration: undefined,
    rounds: undefined,
    warmup: undefined,
    connections: 8,
    threads: 1,
    latencyMs: 50,
    coldVersions: undefined,
    logs: undefined,
    only: new Set(['warm', 'cold', 'memory']),
    build: true,
    profile: undefined,
    waitQuiet: 0,
    nice: 0,
    kinds: ['info', 'mod', 'zip'],
    floor: false,
  };
  for (const { a, val, num } of options(argv)) {
    switch (a) {
      case '--quick':
        o.quick = true;
        break;
      case '--workers':
        o.workers = Math.max(1, Math.floor(num()));
        break;
      case '--duration':
        o.duration = num();
        break;
      case '--warmup':
        o.warmup = num();
        break;
      case '--rounds':
        o.rounds = Math.max(1, Math.floor(num()));
        break;
      case '--connections':
        o.connections = Math.max(1, Math.floor(num()));
        break;
      case '--threads':
        o.threads = Math.max(1, Math.floor(num()));
        break;
      case '--upstream-latency':
        o.latencyMs = parseMs(val());
        break;
      case '--cold-versions':
        o.coldVersions = Math.max(1, Math.floor(num()));
        break;
      case '--logs': {
        const v = val();
        if (!['on', 'off', 'both'].includes(v)) throw new Error('--logs takes on, off or both');
        o.logs = v;
        break;
      }
      case '--only':
        o.only = new Set(
          val()
            .split(',')
            .map((s) => s.trim()),
        );
        break;
      case '--kinds': {
        o.kinds = val()
          .split(',')
          .map((k) => k.trim());
        for (const k of o.kinds) if (!['info', 'mod', 'zip', 'zip3m'].includes(k)) throw new Error(`--kinds: unknown kind ${k}`);
        break;
      }
      case '--no-build':
        o.build = false;
        break;
      case '--floor':
        o.floor = true;
        break;
      case '--nice':
        o.nice = Number(val());
        if (!Number.isInteger(o.nice) || o.nice < -20 || o.nice > 19) throw new Error('--nice takes -20..19');
        break;
      case '--wait-quiet':
        o.waitQuiet = num();
        break;
      case '--profile': {
        o.profile = val();
        if (!['info', 'mod', 'zip', 'zip3m'].includes(o.profile)) throw new Error('--profile takes info, mod, zip or zip3m');
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n\n${HELP}`);
    }
  }
  o.duration ??= o.quick ? 3 : 8;
  o.rounds ??= o.quick ? 1 : 2;
  o.warmup ??= 1;
  o.coldVersions ??= o.quick ? 15 : 40;
  o.logs ??= 'on';
  // Sizes of the generated trees.
  o.tree = o.quick ? { modules: 20, versionsPer: 8 } : { modules: 40, versionsPer: 8 }; // 160 / 320 versions
  o.big = { count: 16, minMiB: 20, maxMiB: 50 }; // quick uses 8 of them
  o.memLevels = o.quick
    ? [
        { label: '1 x 20 MiB', pick: 'smallest', n: 1 },
        { label: '8 x 20-50 MiB', pick: 'spread', n: 8 },
      ]
    : [
        { label: '1 x 20 MiB', pick: 'smallest', n: 1 },
        { label: '1 x 50 MiB', pick: 'largest', n: 1 },
        { label: '4 x 20-50 MiB', pick: 'spread', n: 4 },
        { label: '16 x 20-50 MiB', pick: 'all', n: 16 },
        { label: '64 clients on 16 zips', pick: 'all', n: 16, clientsPer: 4 },
      ];
  return o;
}

function parseMs(v) {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(String(v).trim());
  if (!m) throw new Error(`bad duration ${v}: expected e.g. 50ms, 0.05s or 50`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

// ---------------------------------------------------------------------------------------------
// Servers

async function startFloor(o, runDir, name, root, pathsFile) {
  const port = await freePort();
  const timeFile = path.join(runDir, `${name}.time`);
  const [cmd, argv] = withTime(timeFile, process.execPath, [
    path.join(BENCH, 'lib', 'floor.mjs'),
    '--root',
    root,
    '--paths',
    pathsFile,
    '--port',
    String(port),
    '--workers',
    String(o.workers),
  ]);
  const h = start(name, cmd, argv, { cwd: runDir, stdout: path.join(runDir, `${name}.out`), stderr: path.join(runDir, `${name}.err`) });
  await waitHttp(port, '/healthz', { proc: h });
  const pid = await serverPid(h);
  if (o.workers > 1) {
    for (let i = 0; i < 200 && treePids(pid).length < o.workers + 1; i++) await new Promise((r) => setTimeout(r, 25));
    await waitHttp(port, '/healthz', { proc: h });
  }
  return { name, kind: 'floor', port, h, pid, timeFile, only: /^node/ };
}

// ---------------------------------------------------------------------------------------------
// Phases

/** One measured wrk run against a running server, with its RSS and the machine's other CPU load. */
async function measure(o, s, pathsFile, seconds, offset) {
  const sampler = rssSampler(s.pid, { only: s.only });
  const beforeMiB = sampler.now();
  sampler.reset();
  const other = foreignCpu();
  const cpu0 = treeCpuSeconds(s.pid, s.only);
  const w = await wrk(o, s.port, pathsFile, seconds, offset);
  const cpu1 = treeCpuSeconds(s.pid, s.only);
  const serverCpuSec = cpu1.total - cpu0.total;
  const cpuUserUsPerReq = (1e6 * (cpu1.user - cpu0.user)) / w.requests;
  const cpuSysUsPerReq = (1e6 * (cpu1.sys - cpu0.sys)) / w.requests;
  const otherCpuPct = other.stop();
  sampler.stop();
  const pk = sampler.peak();
  // CPU time per request: much less sensitive to other load on the machine than req/s.
  return {
    ...w,
    otherCpuPct,
    serverCpuSec,
    cpuUsPerReq: (1e6 * serverCpuSec) / w.requests,
    cpuUserUsPerReq,
    cpuSysUsPerReq,
    rss: { beforeMiB, peakSumMiB: pk.sumMiB, peakOneMiB: pk.oneMiB },
  };
}

/** The best round (highest req/s: interference from other processes only ever slows a run down). */
function best(rounds) {
  return rounds.reduce((a, b) => (b.rps > a.rps ? b : a));
}

async function warmPhase(o, runDir, tree, manifest, results) {
  const modes = o.logs === 'both' ? [true, false] : [o.logs === 'on'];
  const kinds = o.kinds;
  results.warm = [];
  for (const accessLog of modes) {
    // Access logs on is the default of both servers and the headline; off is measured once, to show what logging costs.
    const rounds = accessLog ? o.rounds : 1;
    for (const kind of kinds) {
      const items = kindItems(tree, manifest, kind);
      const pathsFile = path.join(runDir, `paths-${kind}.txt`);
      writeFileSync(pathsFile, `${items.map((i) => i.path).join('\n')}\n`);
      const names = o.floor ? ['nginx', 'gomodproxy', 'floor'] : ['nginx', 'gomodproxy'];
      const row = {
        kind,
        accessLog,
        urls: items.length,
        meanBytes: Math.round(items.reduce((a, i) => a + i.bytes, 0) / items.length),
        rounds: Object.fromEntries(names.map((n) => [n, []])),
      };
      const tag = `warm-${kind}-${accessLog ? 'log' : 'nolog'}`;
      const servers = {};
      try {
        servers.nginx = await startNginx(o, runDir, `${tag}-nginx`, tree, accessLog, items[0].path);
        servers.gomodproxy = await startGomodproxy(o, runDir, `${tag}-gomodproxy`, { data: tree, accessLog });
        if (o.floor) servers.floor = await startFloor(o, runDir, `${tag}-floor`, tree, pathsFile);
        for (const name of names) {
          await warmAll(servers[name].port, items, o.workers);
          if (o.warmup > 0) await wrk(o, servers[name].port, pathsFile, o.warmup, 7);
        }
        // A B B A ...: each server is measured as often first as second.
        for (let r = 0; r < rounds; r++) {
          const order = r % 2 === 0 ? names : [...names].reverse();
          for (const name of order) {
            const m = await measure(o, servers[name], pathsFile, o.duration, r * 31);
            row.rounds[name].push(m);
            log(
              `warm ${kindLabel(kind).padEnd(9)} logs ${accessLog ? 'on ' : 'off'} ${name.padEnd(10)} ${m.rps.toFixed(0).padStart(7)} req/s  p99 ${m.latencyMs.p99.toFixed(2).padStart(6)} ms  CPU ${m.cpuUsPerReq.toFixed(1)} µs/req (user ${m.cpuUserUsPerReq.toFixed(1)})  peak RSS ${m.rss.peakSumMiB.toFixed(0)} MiB  other CPU ${m.otherCpuPct.toFixed(0)}%${m.errors ? `  ERRORS ${JSON.stringify(m.errorDetail)}` : ''}`,
            );
          }
        }
      } finally {
        for (const name of names) {
          if (!servers[name]) continue;
          const st = await stopServer(servers[name]);
          row[`${name}TimeVMaxMiB`] = st.timeV?.maxRssMiB ?? null;
        }
      }
      for (const name of names) {
        const b = best(row.rounds[name]);
        row[name] = { ...b, meanRps: row.rounds[name].reduce((a, x) => a + x.rps, 0) / row.rounds[name].length, timeVMaxMiB: row[`${name}TimeVMaxMiB`] };
      }
      for (const name of names) row[name].minCpuUsPerReq = Math.min(...row.rounds[name].map((x) => x.cpuUsPerReq));
      // nginx's CPU per request ÷ gomodproxy's: what the req/s ratio would be if both were CPU-bound on the same cores.
      row.cpuRatio = row.nginx.minCpuUsPerReq / row.gomodproxy.minCpuUsPerReq;
      row.rpsRatio = row.gomodproxy.rps / row.nginx.rps;
      row.meanRpsRatio = row.gomodproxy.meanRps / row.nginx.meanRps;
      row.p99Ratio = row.gomodproxy.latencyMs.p99 / row.nginx.latencyMs.p99;
      row.maxOtherCpuPct = Math.max(...names.flatMap((n) => row.rounds[n].map((x) => x.otherCpuPct)));
      if (o.floor) {
        row.floorRpsRatio = row.floor.rps / row.nginx.rps;
        row.floorCpuRatio = row.nginx.minCpuUsPerReq / row.floor.minCpuUsPerReq;
      }
      row.aim = AIMS[kind];
      row.meetsAim = row.rpsRatio >= row.aim;
      results.warm.push(row);
    }
  }
}

async function startUpstream(runDir, name, root, latencyMs) {
  const port = await freePort();
  const h = start(
    name,
    process.execPath,
    [path.join(BENCH, 'lib', 'upstream.mjs'), '--root', root, '--port', String(port), '--upstream-latency', `${latencyMs}ms`],
    {
      stdout: path.join(runDir, `${name}.out`),
      stderr: path.join(runDir, `${name}.err`),
    },
  );
  await waitHttp(port, '/-/stats', { proc: h });
  return { port, h };
}

function pickCold(manifest, n) {
  // Spread over the tree so that every zip size class is represented in proportion.
  const vs = manifest.versions;
  const step = vs.length / n;
  const out = [];
  for (let i = 0; i < n && i < vs.length; i++) out.push(vs[Math.floor(i * step)]);
  return out;
}

async function coldPhase(o, runDir, tree, manifest, results) {
  const latencies = [...new Set([0, o.latencyMs])];
  const versions = pickCold(manifest, o.coldVersions);
  results.cold = [];
  for (const latencyMs of latencies) {
    const up = await startUpstream(runDir, `upstream-${latencyMs}ms`, tree, latencyMs);
    const data = path.join(runDir, `cold-data-${latencyMs}ms`);
    rmSync(data, { recursive: true, force: true });
    mkdirSync(data, { recursive: true });
    const gm = await startGomodproxy(o, runDir, `cold-${latencyMs}ms-gomodproxy`, { data, upstream: `http://127.0.0.1:${up.port}` });
    const directAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const proxyAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const t = { direct: { info: [], mod: [], zip: [], version: [] }, proxy: { info: [], mod: [], zip: [], version: [] } };
    const proxied = []; // [kind, path, startNs, endNs] of each request through gomodproxy
    const bad = [];
    try {
      // Untimed first: open both client connections, and one whole miss of a version outside the
      // measured set, so gomodproxy's upstream connection (and its lazily loaded HTTP client) is
      // as warm as the direct connection.
      await timedGet(up.port, '/-/stats', directAgent);
      await timedGet(gm.port, '/healthz', proxyAgent);
      const spare = manifest.versions.find((v) => !versions.includes(v));
      if (spare) for (const kind of ['info', 'mod', 'zip']) await timedGet(gm.port, urlPath(spare, kind), proxyAgent).catch(() => undefined);
      await timedGet(up.port, '/-/reset');
      const other = foreignCpu();
      for (const v of versions) {
        const sum = { direct: 0, proxy: 0 };
        for (const kind of ['info', 'mod', 'zip']) {
          const p = urlPath(v, kind);
          const want = statSync(path.join(tree, p)).size;
          // Interleaved: the same artifact straight from the upstream, then through a cold gomodproxy.
          const failed = (e) => ({ status: `error: ${e.message}`, bytes: 0, ms: NaN, headers: {} });
          const d = await timedGet(up.port, p, directAgent).catch(failed);
          const x = await timedGet(gm.port, p, proxyAgent).catch(failed);
          if (d.status !== 200 || d.bytes !== want) bad.push(`direct ${p}: ${d.status}, ${d.bytes} bytes`);
          if (x.status !== 200 || x.bytes !== want) bad.push(`proxy ${p}: ${x.status}, ${x.bytes} bytes (want ${want})`);
          if (x.headers['x-gomodproxy-cache'] && x.headers['x-gomodproxy-cache'] !== 'miss')
            bad.push(`proxy ${p}: X-Gomodproxy-Cache ${x.headers['x-gomodproxy-cache']}, expected miss`);
          if (!Number.isFinite(d.ms) || !Number.isFinite(x.ms)) continue;
          proxied.push({ kind, path: decodeURIComponent(p), startNs: x.startNs, endNs: x.endNs, direct: { startNs: d.startNs, endNs: d.endNs } });
          t.direct[kind].push(d.ms);
          t.proxy[kind].push(x.ms);
          sum.direct += d.ms;
          sum.proxy += x.ms;
        }
        t.direct.version.push(sum.direct);
        t.proxy.version.push(sum.proxy);
      }
      const otherCpuPct = other.stop();
      const upstreamCounts = await getJson(up.port, '/-/stats');
      const n = versions.length;
      const row = { latencyMs, versions: n, otherCpuPct, kinds: {}, problems: bad.slice(0, 10), upstreamRequests: upstreamCounts };
      for (const kind of ['info', 'mod', 'zip', 'version']) {
        const d = stats(t.direct[kind]);
        const x = stats(t.proxy[kind]);
        row.kinds[kind] = {
          direct: d,
          proxy: x,
          overheadPctMean: (100 * (x.mean - d.mean)) / d.mean,
          overheadPctP50: (100 * (x.p50 - d.p50)) / d.p50,
          addedMsMean: x.mean - d.mean,
          // Upstream requests per proxied request (1 is ideal; direct requests are subtracted).
          upstreamPerRequest: kind === 'version' ? undefined : (upstreamCounts[kind] - n) / n,
        };
      }
      row.meetsAim = row.kinds.version.overheadPctMean <= AIMS.coldOverheadPct;
      row.split = splitOverhead(proxied, await getJson(up.port, '/-/trace'));
      results.cold.push(row);
      log(
        `cold upstream latency ${latencyMs} ms: per version direct ${row.kinds.version.direct.mean.toFixed(2)} ms, via gomodproxy ${row.kinds.version.proxy.mean.toFixed(2)} ms (+${row.kinds.version.overheadPctMean.toFixed(1)}%)${bad.length ? `; ${bad.length} PROBLEMS, e.g. ${bad[0]}` : ''}`,
      );
    } finally {
      directAgent.destroy();
      proxyAgent.destroy();
      await stopServer(gm);
      await stopProc(up.h);
      rmSync(data, { recursive: true, force: true });
    }
  }
}

/**
 * Where a miss spends its time, from the upstream's trace (same monotonic clock): "before" =
 * client request sent -> request arrives at the upstream; "after" = upstream handed over its last
 * byte -> client has the last byte. The same for the direct request is the bare HTTP cost, so
 * (proxied - direct) is what gomodproxy adds before asking the upstream and after it answered.
 */
function splitOverhead(proxied, trace) {
  const byPath = new Map();
  for (const [p, a, d] of trace) {
    if (!byPath.has(p)) byPath.set(p, []);
    byPath.get(p).push({ arrive: BigInt(a), done: BigInt(d) });
  }
  const out = {};
  for (const kind of ['info', 'mod', 'zip']) {
    const before = [];
    const after = [];
    const dBefore = [];
    const dAfter = [];
    for (const x of proxied.filter((y) => y.kind === kind)) {
      const hits = byPath.get(x.path) ?? [];
      const dir = hits.find((h) => h.arrive >= x.direct.startNs && h.done <= x.direct.endNs);
      const up = hits.find((h) => h.arrive >= x.startNs && h.arrive <= x.endNs);
      if (!dir || !up) continue;
      before.push(Number(up.arrive - x.startNs) / 1e6);
      after.push(Number(x.endNs - up.done) / 1e6);
      dBefore.push(Number(dir.arrive - x.direct.startNs) / 1e6);
      dAfter.push(Number(x.direct.endNs - dir.done) / 1e6);
    }
    out[kind] = { n: before.length, proxyBefore: stats(before), proxyAfter: stats(after), directBefore: stats(dBefore), directAfter: stats(dAfter) };
  }
  return out;
}

async function memoryPhase(o, runDir, bigTree, bigManifest, results) {
  results.memory = { levels: [] };
  const all = [...bigManifest.versions].sort((a, b) => a.zipBytes - b.zipBytes);
  for (const level of o.memLevels) {
    let vs;
    if (level.pick === 'smallest') vs = all.slice(0, 1);
    else if (level.pick === 'largest') vs = all.slice(-1);
    else if (level.pick === 'spread') vs = Array.from({ length: level.n }, (_, i) => all[Math.round((i * (all.length - 1)) / (level.n - 1))]);
    else vs = all.slice(0, level.n);
    const up = await startUpstream(runDir, `upstream-mem`, bigTree, 0);
    const data = path.join(runDir, 'mem-data');
    rmSync(data, { recursive: true, force: true });
    mkdirSync(data, { recursive: true });
    const name = `mem-${level.n}x-${level.pick}`;
    const gm = await startGomodproxy(o, runDir, name, { data, upstream: `http://127.0.0.1:${up.port}` });
    try {
      const sampler = rssSampler(gm.pid, { only: /^node/, intervalMs: 25 });
      await new Promise((r) => setTimeout(r, 300));
      const idle = sampler.now();
      sampler.reset();
      const other = foreignCpu();
      const t0 = performance.now();
      // clientsPer > 1: several clients on each zip at once (one upstream fetch each, many readers).
      const targets = vs.flatMap((v) => Array.from({ length: level.clientsPer ?? 1 }, () => v));
      const got = await Promise.all(targets.map((v) => timedGet(gm.port, urlPath(v, 'zip'))));
      const secs = (performance.now() - t0) / 1000;
      const otherCpuPct = other.stop();
      sampler.stop();
      const bytes = got.reduce((a, g) => a + g.bytes, 0);
      const bad = got
        .map((g, i) => (g.status !== 200 || g.bytes !== targets[i].zipBytes ? `${targets[i].module}: ${g.status}, ${g.bytes}/${targets[i].zipBytes}` : null))
        .filter(Boolean);
      const stop = await stopServer(gm);
      const pk = sampler.peak();
      const row = {
        label: level.label,
        concurrent: targets.length,
        distinctZips: vs.length,
        totalMiB: bytes / 2 ** 20,
        seconds: secs,
        mibPerSec: bytes / 2 ** 20 / secs,
        idleMiB: idle,
        peakSumMiB: pk.sumMiB,
        peakOneMiB: pk.oneMiB,
        timeVMaxMiB: stop.timeV?.maxRssMiB ?? null,
        otherCpuPct,
        problems: bad,
      };
      results.memory.levels.push(row);
      log(
        `memory ${level.label.padEnd(15)} ${row.totalMiB.toFixed(0)} MiB in ${secs.toFixed(1)} s; RSS idle ${idle.toFixed(0)} MiB -> peak ${pk.sumMiB.toFixed(0)} MiB (all processes), largest process ${pk.oneMiB.toFixed(0)} MiB${bad.length ? `; PROBLEMS ${bad.join('; ')}` : ''}`,
      );
    } finally {
      if (!gm.h.done) await stopServer(gm);
      await stopProc(up.h);
      rmSync(data, { recursive: true, force: true });
    }
  }
  const lv = results.memory.levels;
  const base = lv[0];
  const last = lv[lv.length - 1];
  const maxGrowth = Math.max(...lv.map((l) => l.peakSumMiB - base.peakSumMiB));
  results.memory.growthMiB = maxGrowth;
  // The invariant is per process (each worker streams its own downloads): judged on the largest process.
  results.memory.growthOneMiB = Math.max(...lv.map((l) => l.peakOneMiB - base.peakOneMiB));
  results.memory.growthPctOfInFlight = (100 * (last.peakSumMiB - base.peakSumMiB)) / last.totalMiB;
  // "Flat": the largest run's peak stays within 64 MiB of a single small download's.
  results.memory.flat = results.memory.growthOneMiB <= 64;
}

// ---------------------------------------------------------------------------------------------
// Report

const kindLabel = (k) => ({ info: '.info', mod: '.mod', zip: '.zip 1MiB', zip3m: '.zip 3MiB' })[k] ?? k;

function report(o, results) {
  const parts = [];
  const m = results.machine;
  parts.push(`# gomodproxy benchmark ${results.startedAt}${o.quick ? ' (quick)' : ''}`);
  parts.push('');
  parts.push(`Machine: ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, ${m.os}; node ${m.node}, ${m.nginx}, ${m.wrk}.`);
  parts.push(
    `gomodproxy: dist/ built from ${results.gitHead}${results.gitDirty ? ' with uncommitted changes in src/' : ''}.${results.buildWarning ? ` Warning: ${results.buildWarning}.` : ''}`,
  );
  parts.push(`Load average at start ${results.loadStart?.join(' ') ?? '?'}, at end ${results.loadEnd?.join(' ') ?? '?'} (${m.cpus} cores).`);
  parts.push(
    `Settings: workers ${o.workers} (gomodproxy --workers and nginx worker_processes), wrk -t${o.threads} -c${o.connections}, ${o.duration} s per measured run after ${o.warmup} s of unmeasured wrk warm-up; loopback; wrk shares the ${m.cpus} cores with the server.`,
  );
  if (results.warm) {
    parts.push('', '## Warm hits: gomodproxy vs nginx serving the same folder', '');
    const rows = results.warm.map((r) => [
      kindLabel(r.kind),
      r.accessLog ? 'on' : 'off',
      r.urls,
      f0(r.meanBytes),
      f0(r.nginx.rps),
      f0(r.gomodproxy.rps),
      `${f2(r.rpsRatio)}x`,
      `${r.aim}x ${r.meetsAim ? 'ok' : 'MISSED'}`,
      f2(r.nginx.latencyMs.p99),
      f2(r.gomodproxy.latencyMs.p99),
      `${f2(r.p99Ratio)}x`,
      `${r.nginx.errors}/${r.gomodproxy.errors}`,
      `${f0(r.nginx.rss.peakSumMiB)}/${f0(r.gomodproxy.rss.peakSumMiB)}`,
      `${f1(r.nginx.minCpuUsPerReq)}/${f1(r.gomodproxy.minCpuUsPerReq)}`,
      `${f2(r.cpuRatio)}x`,
      `${f0(r.maxOtherCpuPct)}%${r.maxOtherCpuPct > NOISY_PCT ? ' NOISY' : ''}`,
    ]);
    parts.push(
      mdTable(
        [
          'kind',
          'access log',
          'URLs',
          'bytes',
          'nginx req/s',
          'gmp req/s',
          'rps ratio',
          'aim',
          'nginx p99 ms',
          'gmp p99 ms',
          'p99 ratio',
          'errors n/g',
          'peak RSS MiB n/g',
          'CPU µs/req n/g',
          'CPU ratio',
          'other CPU',
        ],
        rows,
      ),
    );
    parts.push(
      '',
      `req/s and p99 are those of the best of ${o.rounds} alternating runs per server with access logs on (1 with them off). rps ratio = gomodproxy req/s ÷ nginx req/s (higher is better); p99 ratio = gomodproxy p99 ÷ nginx p99 (lower is better). Peak RSS = sum over the server's processes (master/primary + workers), sampled from /proc during the measured run. CPU µs/req = the server's CPU time (user + system, all its processes, from /proc) per request, lowest of the rounds; CPU ratio = nginx's ÷ gomodproxy's, the req/s ratio to expect when both are CPU-bound on the same cores: it barely moves with other load on the machine, so it is the figure to trust on a busy machine. Other CPU = CPU used meanwhile by processes this benchmark did not start, in % of one core (worst run of the row); above ${NOISY_PCT}% the row is marked NOISY: the machine was busy with something else.`,
    );
    if (o.floor) {
      parts.push('', 'The node:http floor (bench/lib/floor.mjs: the same files from a Map, no logging, no checks), for scale:', '');
      parts.push(
        mdTable(
          ['kind', 'access log', 'floor req/s', 'floor/nginx req/s', 'floor CPU µs/req', 'nginx/floor CPU ratio', 'gomodproxy/floor req/s'],
          results.warm.map((r) => [
            kindLabel(r.kind),
            r.accessLog ? 'on' : 'off',
            f0(r.floor.rps),
            `${f2(r.floorRpsRatio)}x`,
            f1(r.floor.minCpuUsPerReq),
            `${f2(r.floorCpuRatio)}x`,
            `${f2(r.gomodproxy.rps / r.floor.rps)}x`,
          ]),
        ),
      );
    }
    parts.push('', 'Every run, in order:', '');
    const all = [];
    for (const r of results.warm) {
      const n = Math.max(...Object.values(r.rounds).map((x) => x.length));
      for (let i = 0; i < n; i++) {
        for (const name of Object.keys(r.rounds)) {
          const x = r.rounds[name][i];
          if (x)
            all.push([
              kindLabel(r.kind),
              r.accessLog ? 'on' : 'off',
              i + 1,
              name,
              f0(x.rps),
              f2(x.latencyMs.p50),
              f2(x.latencyMs.p99),
              f0(x.mbps),
              x.errors,
              `${f1(x.cpuUsPerReq)} (${f1(x.cpuUserUsPerReq)}+${f1(x.cpuSysUsPerReq)})`,
              f0(x.rss.peakSumMiB),
              `${f0(x.otherCpuPct)}%`,
            ]);
        }
      }
    }
    parts.push(
      mdTable(['kind', 'log', 'round', 'server', 'req/s', 'p50 ms', 'p99 ms', 'MiB/s', 'errors', 'CPU µs/req (user+sys)', 'peak RSS MiB', 'other CPU'], all),
    );
    const z = results.warm.filter((r) => r.kind.startsWith('zip'));
    for (const r of z) {
      parts.push(
        '',
        `${r.kind === 'zip' ? '.zip (1 MiB)' : '.zip (3 MiB)'} (access log ${r.accessLog ? 'on' : 'off'}): throughput nginx ${f0(r.nginx.mbps)} MiB/s, gomodproxy ${f0(r.gomodproxy.mbps)} MiB/s; /usr/bin/time -v max RSS (largest single process, whole life of the server) nginx ${f0(r.nginx.timeVMaxMiB)} MiB, gomodproxy ${f0(r.gomodproxy.timeVMaxMiB)} MiB.`,
      );
    }
  }
  if (results.cold) {
    parts.push('', '## Cold misses: through a fresh gomodproxy vs straight from the upstream', '');
    const rows = [];
    for (const r of results.cold) {
      for (const kind of ['info', 'mod', 'zip', 'version']) {
        const k = r.kinds[kind];
        rows.push([
          `${r.latencyMs} ms`,
          kind === 'version' ? 'all 3 (per version)' : `.${kind}`,
          `${f2(k.direct.mean)} / ${f2(k.direct.p50)} / ${f2(k.direct.p99)}`,
          `${f2(k.proxy.mean)} / ${f2(k.proxy.p50)} / ${f2(k.proxy.p99)}`,
          f2(k.addedMsMean),
          pct(k.overheadPctMean),
          pct(k.overheadPctP50),
          kind === 'version' ? `≤ ${AIMS.coldOverheadPct}% ${r.meetsAim ? 'ok' : 'MISSED'}` : f2(k.upstreamPerRequest),
        ]);
      }
    }
    parts.push(
      mdTable(
        [
          'upstream latency',
          'kind',
          'direct mean/p50/p99 ms',
          'via gomodproxy mean/p50/p99 ms',
          'added ms (mean)',
          'overhead (mean)',
          'overhead (p50)',
          'upstream req per request / aim',
        ],
        rows,
      ),
    );
    parts.push(
      '',
      'Where gomodproxy adds its time on a miss (ms; mean / p50), from the upstream\'s own trace on the same clock: "before" = from the client sending its request to the request reaching the upstream; "after" = from the upstream handing over its last byte to the client having the last byte. The direct request\'s before/after is the bare HTTP cost.',
      '',
    );
    const srows = [];
    for (const r of results.cold) {
      for (const kind of ['info', 'mod', 'zip']) {
        const sp = r.split?.[kind];
        if (!sp || !sp.n) continue;
        srows.push([
          `${r.latencyMs} ms`,
          `.${kind}`,
          `${f2(sp.directBefore.mean)} / ${f2(sp.directBefore.p50)}`,
          `${f2(sp.proxyBefore.mean)} / ${f2(sp.proxyBefore.p50)}`,
          `${f2(sp.directAfter.mean)} / ${f2(sp.directAfter.p50)}`,
          `${f2(sp.proxyAfter.mean)} / ${f2(sp.proxyAfter.p50)}`,
        ]);
      }
    }
    parts.push(mdTable(['upstream latency', 'kind', 'before: direct', 'before: via gomodproxy', 'after: direct', 'after: via gomodproxy'], srows));
    const r0 = results.cold[0];
    parts.push(
      '',
      `Other CPU during the runs: ${results.cold.map((r) => `${r.latencyMs} ms: ${f0(r.otherCpuPct)}%${r.otherCpuPct > NOISY_PCT ? ' NOISY' : ''}`).join(', ')}.`,
    );
    parts.push(
      '',
      `${r0.versions} distinct versions per run, fetched one after another (.info, .mod, .zip each), each artifact first straight from the upstream and then through gomodproxy, on one keep-alive connection each. The zips are the tree's mix of sizes (2 KiB to 3 MiB).`,
    );
    for (const r of results.cold) if (r.problems.length) parts.push(`Problems at ${r.latencyMs} ms: ${r.problems.join('; ')}`);
  }
  if (results.memory) {
    const lv = results.memory.levels;
    parts.push('', '## Memory: concurrent cold 20-50 MiB zip downloads through a fresh gomodproxy', '');
    const rows = results.memory.levels.map((l) => [
      l.label,
      f0(l.totalMiB),
      f1(l.seconds),
      f0(l.mibPerSec),
      f0(l.idleMiB),
      f0(l.peakSumMiB),
      f0(l.peakOneMiB),
      f0(l.timeVMaxMiB),
      `${f0(l.otherCpuPct)}%`,
      l.problems.length ? l.problems.join('; ') : 'ok',
    ]);
    parts.push(
      mdTable(['downloads', 'MiB', 's', 'MiB/s', 'idle RSS', 'peak RSS (all procs)', 'peak RSS (largest proc)', 'time -v max RSS', 'other CPU', 'check'], rows),
    );
    const mm = results.memory;
    parts.push(
      '',
      `RSS in MiB; "all procs" sums the primary and the ${o.workers} worker(s). Growth of the peak over the first row: largest process +${f0(mm.growthOneMiB)} MiB, all processes +${f0(mm.growthMiB)} MiB, which is ${f1(mm.growthPctOfInFlight)}% of the ${f0(lv[lv.length - 1].totalMiB)} MiB sent in the last row (a server that held whole zips would add ~100%). Verdict: ${mm.flat ? 'flat' : 'NOT flat'} (flat = the largest process grows by at most 64 MiB from one download to the most concurrent ones; some growth is expected: V8's young generation and not yet collected Buffers grow with throughput).`,
    );
  }
  if (!haveTime) parts.push('', 'Note: /usr/bin/time is not installed (Debian package "time"); the time -v columns are empty, the /proc samples stand.');
  return parts.join('\n');
}

function ratioSummary(results) {
  const lines = ['', 'Ratios (gomodproxy / nginx; cold-miss overhead):'];
  for (const r of results.warm ?? []) {
    lines.push(
      `  ${kindLabel(r.kind).padEnd(9)} logs ${r.accessLog ? 'on ' : 'off'}  rps ${f2(r.rpsRatio)}x (aim ≥ ${r.aim}x: ${r.meetsAim ? 'ok' : 'MISSED'})   p99 ${f2(r.p99Ratio)}x   CPU/request ${f2(r.cpuRatio)}x${r.maxOtherCpuPct > NOISY_PCT ? `   (NOISY: other processes used ${f0(r.maxOtherCpuPct)}% CPU)` : ''}`,
    );
  }
  for (const r of results.cold ?? []) {
    const k = r.kinds;
    lines.push(
      `  cold, upstream ${String(r.latencyMs).padStart(3)} ms: .info ${pct(k.info.overheadPctMean)}  .mod ${pct(k.mod.overheadPctMean)}  .zip ${pct(k.zip.overheadPctMean)}  per version ${pct(k.version.overheadPctMean)} (aim ≤ ${AIMS.coldOverheadPct}%: ${r.meetsAim ? 'ok' : 'MISSED'})`,
    );
  }
  if (results.memory) {
    const lv = results.memory.levels;
    lines.push(
      `  memory: peak RSS (all processes / largest) ${lv.map((l) => `${l.label} ${f0(l.peakSumMiB)}/${f0(l.peakOneMiB)} MiB`).join(', ')} -> ${results.memory.flat ? 'flat' : 'NOT flat'} (largest process +${f0(results.memory.growthOneMiB)} MiB)`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Profile mode

async function profileMode(o, runDir, tree, manifest) {
  const kind = o.profile;
  const profDir = path.join(runDir, 'cpuprof');
  mkdirSync(profDir, { recursive: true });
  const items = kindItems(tree, manifest, kind);
  const pathsFile = path.join(runDir, `paths-${kind}.txt`);
  writeFileSync(pathsFile, `${items.map((i) => i.path).join('\n')}\n`);
  const accessLog = o.logs !== 'off';
  const s = await startGomodproxy(o, runDir, `profile-${kind}`, { data: tree, workers: 1, accessLog, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] });
  try {
    await warmAll(s.port, items, 1);
    const w = await wrk(o, s.port, pathsFile, o.duration);
    log(
      `profile ${kind} (access log ${accessLog ? 'on' : 'off'}): ${w.rps.toFixed(0)} req/s, p99 ${w.latencyMs.p99.toFixed(2)} ms under the profiler (workers 1)`,
    );
  } finally {
    await stopServer(s);
  }
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) throw new Error(`no .cpuprofile was written under ${profDir}`);
  const file = path.join(profDir, files[0]);
  const text = formatSummary(
    summarize(JSON.parse(readFileSync(file, 'utf8')), 30),
    `gomodproxy CPU profile, warm .${kind} under wrk, access log ${accessLog ? 'on' : 'off'}`,
  );
  const pname = `profile-${kind}${accessLog ? '' : '-nolog'}`;
  writeFileSync(path.join(OUT, `${pname}.txt`), `${text}\n`);
  copyFileSync(file, path.join(OUT, `${pname}.cpuprofile`));
  process.stdout.write(`${text}\n\nprofile: ${path.join(OUT, `${pname}.cpuprofile`)} (open in Chrome DevTools > Performance)\n`);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  // --nice: this process (the cold-miss client) and everything it starts (servers, upstream, wrk).
  if (o.nice !== 0) {
    os.setPriority(o.nice);
    try {
      writeFileSync('/proc/self/autogroup', `${o.nice}`);
    } catch {
      // no autogroups
    }
    setNiceness(o.nice);
  }
  const started = Date.now();
  const { runDir, stamp } = newRunDir('run');

  const versions = await checkTools();
  const buildWarning = await buildDist(o.build);
  await waitQuiet(o.waitQuiet);
  const tree = path.join(OUT, o.quick ? 'tree-quick' : 'tree');
  log(`filling ${tree} (${o.tree.modules * o.tree.versionsPer} versions)`);
  const manifest = await fillMain(tree, o.tree);
  const zipMiB = manifest.versions.reduce((a, v) => a + v.zipBytes, 0) / 2 ** 20;
  log(`${manifest.reused ? 'reused' : 'wrote'} ${manifest.versions.length} versions, ${zipMiB.toFixed(0)} MiB of zips`);

  const results = {
    startedAt: new Date(started).toISOString(),
    // Filled in at the end.
    seconds: 0,
    loadEnd: /** @type {number[] | null} */ (null),
    options: { ...o, only: [...o.only] },
    machine: machineInfo(versions),
    loadStart: loadAvg(),
    buildWarning,
    ...(await gitState()),
    tree: { versions: manifest.versions.length, zipMiB, classes: countBy(manifest.versions, (v) => v.zipClass) },
  };

  if (o.profile) {
    await profileMode(o, runDir, tree, manifest);
    return;
  }
  if (o.only.has('warm')) await warmPhase(o, runDir, tree, manifest, results);
  if (o.only.has('cold')) await coldPhase(o, runDir, tree, manifest, results);
  if (o.only.has('memory')) {
    const bigTree = path.join(OUT, 'bigtree');
    log(`filling ${bigTree} (${o.big.count} zips of ${o.big.minMiB}-${o.big.maxMiB} MiB)`);
    const big = await fillBig(bigTree, o.big);
    await memoryPhase(o, runDir, bigTree, big, results);
  }
  results.seconds = (Date.now() - started) / 1000;
  results.loadEnd = loadAvg();
  const md = `${report(o, results)}\n\nWhole run: ${results.seconds.toFixed(0)} s. Logs and configs: ${path.relative(REPO, runDir)}/\n`;
  const base = `results-${stamp}${o.quick ? '-quick' : ''}`;
  writeFileSync(path.join(OUT, `${base}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(OUT, `${base}.md`), md);
  writeFileSync(path.join(OUT, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(OUT, 'latest.md'), md);
  process.stdout.write(
    `\n${md}${ratioSummary(results)}\n\nwritten: ${path.relative(REPO, path.join(OUT, `${base}.md`))} and .json (also bench/.out/latest.md)\n`,
  );
}

function countBy(xs, key) {
  const m = {};
  for (const x of xs) m[key(x)] = (m[key(x)] ?? 0) + 1;
  return m;
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
