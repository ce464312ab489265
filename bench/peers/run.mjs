#!/usr/bin/env node
// gomodproxy against its peers, goproxy/goproxy and gomods/athens, in one run on one machine,
// interleaved: warm hits against nginx serving the same files, the same hits under a background
// CPU load, cold and warm `go mod download all` of a real module graph against the go command's
// own fetch, peak RSS while serving it, and 50 clients on one cold zip. See bench/peers/README.md.
//
//   npm run build && node bench/peers/run.mjs --goproxy /path/to/goproxy --athens /path/to/athens [--quick]
//
// The peers are binaries the user built; a peer not given is left out and the report says so.
// Everything runs on 127.0.0.1 (the upstreams are a local synthetic one, and, for the graph, the
// registry `go env GOPROXY` names, through a local relay); every phase is bounded in time, and
// every process started here is stopped at the end, on an error and on Ctrl-C.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fillMain, urlPath } from '../lib/fill.mjs';
import { f0, f1, f2, mdTable } from '../lib/format.mjs';
import { getJson, pool, stats, timedGet } from '../lib/http.mjs';
import {
  foreignCpu,
  freePort,
  installCleanupHandlers,
  loadAvg,
  rssSampler,
  run,
  setNiceness,
  start,
  stopAll,
  stopProc,
  treeCpuSeconds,
  treePids,
  waitHttp,
} from '../lib/procs.mjs';
import { BENCH, OUT, REPO, haveTime, startGomodproxy, startNginx, stopServer, wrk } from '../lib/servers.mjs';
import { NOISY_PCT, buildDist, checkTools, gitState, log, machineInfo, newRunDir, options, waitQuiet } from '../lib/session.mjs';
import { goEnv, startAthens, startGoproxy, startRelay } from './servers.mjs';

const PEERS = ['goproxy', 'athens'];
const GRAPH_DIR = path.join(BENCH, 'peers', 'graph');
const KINDS = ['info', 'mod', 'zip'];

const HELP = `usage: node bench/peers/run.mjs [options]      (npm run build first, or pass --build)

  --goproxy BIN           a goproxy/goproxy binary (run as "BIN server"); left out when not given
  --athens BIN            a gomods/athens proxy binary; left out when not given
  --quick                 about 4 minutes: 3 s wrk runs, 1 round, 1 graph run per server, fewer versions
  --only LIST             phases: warm,load,stampede,graph (default all)
  --duration S            seconds per measured wrk run (default 8, quick 3)
  --rounds R              measured wrk runs per server and kind, the order of the servers rotated
                          each round; the best counts (default 2, quick 1)
  --warmup S              unmeasured wrk seconds per server and kind first (default 1)
  --connections C         wrk connections (default 8)
  --threads T             wrk threads (default 1: on 2 cores wrk competes with the servers)
  --workers N             gomodproxy --workers and nginx worker_processes (default 2, gomodproxy's
                          default on this machine's ${os.availableParallelism()} cores is one per core)
  --graph LIST            upstreams of the graph download: registry (the first URL of "go env
                          GOPROXY", the real graph in bench/peers/graph/), local (the synthetic
                          upstream with a generated graph), both, or none
                          (default: registry when it answers, else local)
  --graph-runs N          cold+warm downloads per server and upstream, median counts (default 3, quick 1)
  --graph-modules N       modules of the local synthetic graph (default 40, quick 20)
  --graph-timeout S       limit of one go mod download (default 300)
  --upstream-latency L    latency of the local synthetic upstream before each answer (default 20ms)
  --clients N             concurrent clients on one cold zip (default 50)
  --load gobuild|spin     the background CPU load of the load phase: "go build -a -p 4 std" in a loop
                          in a temporary GOCACHE (default), or --load-procs busy loops
  --load-procs N          busy loops for --load spin (default ${os.availableParallelism()}); -p of go build for gobuild (default 4)
  --load-ramp S           seconds the load runs before the first measured run (default 5)
  --budget S              stop everything after S seconds whatever the phase (default 2400, quick 900)
  --build                 run "npm run build" first
  --wait-quiet S          wait up to S seconds for other processes to use < ${NOISY_PCT}% CPU first
  --nice N                niceness (and autogroup niceness) of everything started, e.g. -10 as root
  --help
`;

function parseArgs(argv) {
  const o = {
    goproxy: undefined,
    athens: undefined,
    quick: false,
    only: new Set(['warm', 'load', 'stampede', 'graph']),
    duration: undefined,
    rounds: undefined,
    warmup: 1,
    connections: 8,
    threads: 1,
    workers: 2,
    graph: 'auto',
    graphRuns: undefined,
    graphModules: undefined,
    graphTimeout: 300,
    latencyMs: 20,
    clients: 50,
    load: 'gobuild',
    loadProcs: undefined,
    loadRamp: 5,
    budget: undefined,
    build: false,
    waitQuiet: 0,
    nice: 0,
  };
  const int = (v, min = 1) => Math.max(min, Math.floor(v));
  for (const { a, val, num } of options(argv)) {
    switch (a) {
      case '--goproxy':
      case '--athens': {
        const bin = path.resolve(val());
        if (!existsSync(bin)) throw new Error(`${a} ${bin}: no such file`);
        o[a.slice(2)] = bin;
        break;
      }
      case '--quick':
        o.quick = true;
        break;
      case '--only':
        o.only = new Set(
          val()
            .split(',')
            .map((s) => s.trim()),
        );
        for (const p of o.only) if (!['warm', 'load', 'stampede', 'graph'].includes(p)) throw new Error(`--only: unknown phase ${p}`);
        break;
      case '--duration':
        o.duration = num();
        break;
      case '--rounds':
        o.rounds = int(num());
        break;
      case '--warmup':
        o.warmup = num();
        break;
      case '--connections':
        o.connections = int(num());
        break;
      case '--threads':
        o.threads = int(num());
        break;
      case '--workers':
        o.workers = int(num());
        break;
      case '--graph':
        o.graph = val();
        if (!['auto', 'registry', 'local', 'both', 'none'].includes(o.graph)) throw new Error('--graph takes registry, local, both or none');
        break;
      case '--graph-runs':
        o.graphRuns = int(num());
        break;
      case '--graph-modules':
        o.graphModules = int(num());
        break;
      case '--graph-timeout':
        o.graphTimeout = int(num());
        break;
      case '--upstream-latency': {
        const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(val());
        if (!m) throw new Error('--upstream-latency takes e.g. 20ms or 0.02s');
        o.latencyMs = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
        break;
      }
      case '--clients':
        o.clients = int(num());
        break;
      case '--load':
        o.load = val();
        if (!['gobuild', 'spin'].includes(o.load)) throw new Error('--load takes gobuild or spin');
        break;
      case '--load-procs':
        o.loadProcs = int(num());
        break;
      case '--load-ramp':
        o.loadRamp = num();
        break;
      case '--budget':
        o.budget = int(num());
        break;
      case '--build':
        o.build = true;
        break;
      case '--wait-quiet':
        o.waitQuiet = num();
        break;
      case '--nice':
        o.nice = Number(val());
        if (!Number.isInteger(o.nice) || o.nice < -20 || o.nice > 19) throw new Error('--nice takes -20..19');
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
  o.duration ??= o.quick ? 3 : 8;
  o.rounds ??= o.quick ? 1 : 2;
  o.graphRuns ??= o.quick ? 1 : 3;
  o.graphModules ??= o.quick ? 20 : 40;
  o.loadProcs ??= o.load === 'spin' ? os.availableParallelism() : 4;
  o.budget ??= o.quick ? 900 : 2400;
  // 10 modules x 8 versions: about the 73 versions the issue measured, and few enough that Athens
  // (a go subprocess per miss) warms its cache in well under a minute.
  o.tree = o.quick ? { modules: 5, versionsPer: 8 } : { modules: 10, versionsPer: 8 };
  o.servers = ['gomodproxy', ...PEERS.filter((p) => o[p]), 'nginx'];
  o.missing = PEERS.filter((p) => !o[p]);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Rejects after `seconds` with a message naming the step, so no phase can hang the run. */
function limit(promise, seconds, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no end after ${seconds} s (the phase's time limit)`)), seconds * 1000);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** The servers in the order of round `r`: each one first, second, ... in turn, so drift of the machine hits all alike. */
const rotate = (names, r) => names.map((_, i) => names[(i + r) % names.length]);
const best = (runs) => runs.reduce((a, b) => (b.rps > a.rps ? b : a));
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const kLabel = (n) => (!Number.isFinite(n) ? '-' : n >= 10000 ? `${(n / 1000).toFixed(1)}k` : n >= 1000 ? `${(n / 1000).toFixed(2)}k` : f0(n));
const x = (r) => (Number.isFinite(r) ? `${f2(r)}x` : '-');
const kindLabel = (k) => ({ info: '.info', mod: '.mod', zip: '.zip 1MiB' })[k] ?? k;

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
  return { port, h, url: `http://127.0.0.1:${port}` };
}

/** Starts one server of the comparison with an empty cache of its own in front of `upstream`. */
async function startServer(o, runDir, name, tag, { upstream, gosumdb, tree }) {
  const cache = path.join(runDir, `${tag}-${name}-cache`);
  rmSync(cache, { recursive: true, force: true });
  let s;
  if (name === 'nginx') s = await startNginx(o, runDir, `${tag}-nginx`, tree.root, true, tree.probe);
  else if (name === 'gomodproxy') {
    mkdirSync(cache, { recursive: true });
    s = await startGomodproxy(o, runDir, `${tag}-gomodproxy`, { data: cache, upstream, env: { GOSUMDB: gosumdb } });
  } else if (name === 'goproxy') s = await startGoproxy(o.goproxy, runDir, `${tag}-goproxy`, { cacheDir: cache, upstream, gosumdb });
  else if (name === 'athens') s = await startAthens(o.athens, runDir, `${tag}-athens`, { root: cache, upstream, gosumdb });
  else throw new Error(`unknown server ${name}`);
  return { ...s, label: name, cache: name === 'nginx' ? null : cache, url: `http://127.0.0.1:${s.port}` };
}

async function stopAndClean(s) {
  const st = await stopServer(s);
  if (s.cache) rmSync(s.cache, { recursive: true, force: true });
  return st;
}

/** One measured wrk run against a running server: its figures, its RSS, its CPU per request and the machine's other load. */
async function measure(o, s, pathsFile, seconds, offset) {
  const sampler = rssSampler(s.pid, { only: s.only });
  sampler.reset();
  const other = foreignCpu();
  const cpu0 = treeCpuSeconds(s.pid, s.only);
  const w = await wrk(o, s.port, pathsFile, seconds, offset);
  const cpu1 = treeCpuSeconds(s.pid, s.only);
  const otherCpuPct = other.stop();
  sampler.stop();
  return { ...w, otherCpuPct, cpuUsPerReq: (1e6 * (cpu1.total - cpu0.total)) / w.requests, rssMiB: sampler.peak().sumMiB, load1: loadAvg()?.[0] };
}

// ---------------------------------------------------------------------------------------------
// Warm hits, the same under load, 50 clients on one cold zip: one set of servers over the synthetic tree

/**
 * Fills a proxy's cache the way a client would: .info, .mod and .zip of every version through it,
 * then checks that each answer of the measured URLs is right (exact bytes for .mod and .zip; the
 * peers re-encode .info, so for it the status only), asking each URL once per gomodproxy worker on fresh
 * connections so that every gomodproxy worker has its own memory cache warm.
 */
async function fillCache(o, s, tree, versions, items) {
  const t0 = performance.now();
  const bad = [];
  if (s.label !== 'nginx') {
    const urls = versions.flatMap((v) => KINDS.map((k) => urlPath(v, k)));
    await pool(urls, 4, async (p) => {
      const r = await timedGet(s.port, p, undefined, { timeoutMs: 60_000 }).catch((e) => ({ status: e.message, bytes: 0 }));
      if (r.status !== 200) bad.push(`${p}: ${r.status}`);
    });
  }
  const fillSeconds = (performance.now() - t0) / 1000;
  const checks = [];
  for (const kind of KINDS) for (const it of items[kind]) for (let t = 0; t < o.workers; t++) checks.push({ kind, ...it });
  await pool(checks, 4, async (it) => {
    const r = await timedGet(s.port, it.path, undefined, { timeoutMs: 30_000 }).catch((e) => ({ status: e.message, bytes: 0 }));
    if (r.status !== 200) bad.push(`${it.path}: ${r.status}`);
    else if (it.kind !== 'info' && r.bytes !== it.bytes) bad.push(`${it.path}: ${r.bytes} bytes, want ${it.bytes}`);
  });
  if (bad.length)
    throw new Error(
      `${s.label}: wrong answers while warming its cache:\n  ${bad.slice(0, 5).join('\n  ')}${bad.length > 5 ? `\n  ... ${bad.length - 5} more` : ''}`,
    );
  return fillSeconds;
}

function treeItems(treeRoot, versions) {
  const items = {};
  for (const kind of KINDS) {
    const vs = kind === 'zip' ? versions.filter((v) => v.zipClass === '1m') : versions;
    items[kind] = vs.map((v) => ({ path: urlPath(v, kind), bytes: statSync(path.join(treeRoot, urlPath(v, kind))).size }));
  }
  return items;
}

async function hitsPhases(o, runDir, results) {
  const treeRoot = path.join(OUT, o.quick ? 'peers-tree-quick' : 'peers-tree');
  log(`filling ${treeRoot} (${o.tree.modules * o.tree.versionsPer} versions)`);
  const manifest = await fillMain(treeRoot, o.tree);
  // The stampede's zip must be cold in every proxy: the last 3 MiB version is never warmed.
  const stampedeV = [...manifest.versions].reverse().find((v) => v.zipClass === '3m') ?? manifest.versions[manifest.versions.length - 1];
  const versions = manifest.versions.filter((v) => v !== stampedeV);
  const items = treeItems(treeRoot, versions);
  const files = {};
  for (const kind of KINDS) {
    files[kind] = path.join(runDir, `paths-${kind}.txt`);
    writeFileSync(files[kind], `${items[kind].map((i) => i.path).join('\n')}\n`);
  }
  results.tree = { versions: versions.length, urls: Object.fromEntries(KINDS.map((k) => [k, items[k].length])) };

  const up = await startUpstream(runDir, 'hits-upstream', treeRoot, o.latencyMs);
  const relay = await startRelay(runDir, 'hits-relay', up.url);
  const servers = {};
  try {
    for (const name of o.servers) {
      servers[name] = await startServer(o, runDir, name, 'hits', { upstream: relay.url, gosumdb: 'off', tree: { root: treeRoot, probe: items.info[0].path } });
      await getJson(relay.port, '/-/reset');
      const fillSeconds = await limit(fillCache(o, servers[name], treeRoot, versions, items), 300, `warming ${name}'s cache`);
      const c = await getJson(relay.port, '/-/counts');
      results.fill[name] = { seconds: fillSeconds, upstreamRequests: c.total };
      log(
        `warm-up ${name.padEnd(10)} ${name === 'nginx' ? 'serves the tree itself' : `cache filled with ${versions.length} versions in ${fillSeconds.toFixed(1)} s, ${c.total} upstream requests`}`,
      );
    }
    for (const kind of KINDS) for (const name of o.servers) if (o.warmup > 0) await wrk(o, servers[name].port, files[kind], o.warmup, 7);

    if (o.only.has('warm')) {
      await getJson(relay.port, '/-/reset');
      for (let r = 0; r < o.rounds; r++) {
        for (const [ki, kind] of KINDS.entries()) {
          for (const name of rotate(o.servers, r + ki)) {
            const m = await measure(o, servers[name], files[kind], o.duration, r * 31);
            (results.warm[kind][name] ??= []).push(m);
            log(
              `warm ${kindLabel(kind).padEnd(9)} ${name.padEnd(10)} ${f0(m.rps).padStart(7)} req/s  p99 ${f2(m.latencyMs.p99).padStart(6)} ms  CPU ${f1(m.cpuUsPerReq)} µs/req  RSS ${f0(m.rssMiB)} MiB  other CPU ${f0(m.otherCpuPct)}%${m.errors ? `  ERRORS ${JSON.stringify(m.errorDetail)}` : ''}`,
            );
          }
        }
      }
      // A hit that reached the upstream would not be a hit.
      results.warmUpstreamRequests = (await getJson(relay.port, '/-/counts')).total;
    }

    if (o.only.has('load')) await loadPhase(o, runDir, servers, files.info, results);

    if (o.only.has('stampede')) {
      for (const name of o.servers.filter((n) => n !== 'nginx')) {
        results.stampede[name] = await limit(stampede(o, servers[name], relay, treeRoot, stampedeV), 180, `${name}: ${o.clients} clients on one cold zip`);
        const st = results.stampede[name];
        log(
          `stampede ${name.padEnd(10)} ${o.clients} clients on ${st.path}: ${st.ok}/${o.clients} right, last byte after ${f0(st.lastMs)} ms; upstream: ${st.zipRequests} zip requests, ${st.totalRequests} in all`,
        );
      }
    }
  } finally {
    for (const name of Object.keys(servers)) {
      const st = await stopAndClean(servers[name]).catch(() => null);
      results.timeV[`hits-${name}`] = st?.timeV?.maxRssMiB ?? null;
    }
    await stopProc(relay.h);
    await stopProc(up.h);
  }
}

async function stampede(o, s, relay, treeRoot, v) {
  const p = urlPath(v, 'zip');
  const want = statSync(path.join(treeRoot, p)).size;
  await getJson(relay.port, '/-/reset');
  const t0 = performance.now();
  const got = await Promise.all(
    Array.from({ length: o.clients }, () => timedGet(s.port, p, undefined, { timeoutMs: 120_000 }).catch((e) => ({ status: e.message, bytes: 0, ms: NaN }))),
  );
  const lastMs = performance.now() - t0;
  // Athens stores in the background of a sync download; give late upstream requests a moment to show.
  await new Promise((r) => setTimeout(r, 500));
  const c = await getJson(relay.port, '/-/counts');
  const ok = got.filter((g) => g.status === 200 && g.bytes === want).length;
  return {
    path: p,
    zipBytes: want,
    ok,
    statuses: [...new Set(got.map((g) => String(g.status)))],
    lastMs,
    p50Ms: stats(got.map((g) => g.ms).filter(Number.isFinite)).p50,
    zipRequests: c.byPath[p] ?? 0,
    totalRequests: c.total,
    byKind: c.byKind,
  };
}

/** The background load: in its own process group, so stopping it stops every compiler it started. */
function startLoad(o, runDir, r) {
  if (o.load === 'spin') {
    return Array.from({ length: o.loadProcs }, (_, i) => start(`spin-${i}`, 'sh', ['-c', 'while :; do :; done']));
  }
  const cache = path.join(runDir, 'load-gocache');
  mkdirSync(cache, { recursive: true });
  // -a rebuilds the whole standard library every time: a steady stream of short-lived compiler
  // processes, like a CI box running builds beside the proxy. The cache is temporary, so nothing of
  // the user's is touched. One line per finished build, to show the load really ran.
  const env = goEnv({ goproxy: 'off', gosumdb: 'off', extra: { GOCACHE: cache, GOFLAGS: '' } });
  return [
    start('load-gobuild', 'sh', ['-c', `while :; do go build -a -p ${o.loadProcs} std >/dev/null 2>&1; echo "round ${r + 1}: go build exit $?"; done`], {
      cwd: runDir,
      env,
      stdout: path.join(runDir, 'load.log'),
      stderr: path.join(runDir, 'load.log'),
    }),
  ];
}

/**
 * CPU seconds of the load so far. Its compilers live a second or two each: their time is found in
 * the cutime/cstime of the go command and the shell that waited for them, so those count too (a
 * live process's own time is never also in a parent's cutime: that happens when it is reaped).
 */
function loadCpuSeconds(hs) {
  let j = 0;
  for (const h of hs)
    for (const p of treePids(h.pid)) {
      try {
        const st = readFileSync(`/proc/${p}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        j += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      } catch {
        // exited meanwhile
      }
    }
  return j / 100;
}

/**
 * Quiet and loaded .info runs alternate round by round (quiet runs of every server, then the load
 * starts, ramps up and the same runs again, then it stops), so the ratio to the quiet run compares
 * runs minutes apart at most, whatever else the machine does meanwhile.
 */
async function loadPhase(o, runDir, servers, infoFile, results) {
  const L = results.load;
  L.what = o.load === 'spin' ? `${o.loadProcs} busy loops` : `go build -a -p ${o.loadProcs} std in a loop`;
  for (let r = 0; r < o.rounds; r++) {
    for (const name of rotate(o.servers, r)) {
      const m = await measure(o, servers[name], infoFile, o.duration, r * 13);
      (L.quiet[name] ??= []).push(m);
      log(
        `quiet .info   ${name.padEnd(10)} ${f0(m.rps).padStart(7)} req/s  p99 ${f2(m.latencyMs.p99).padStart(6)} ms  CPU ${f1(m.cpuUsPerReq)} µs/req  other CPU ${f0(m.otherCpuPct)}%`,
      );
    }
    log(`load: starting ${L.what}; ${o.loadRamp} s before the first loaded run`);
    const hs = startLoad(o, runDir, r);
    try {
      await new Promise((res) => setTimeout(res, o.loadRamp * 1000));
      L.loadAvg.push(loadAvg());
      const t0 = performance.now();
      const c0 = loadCpuSeconds(hs);
      for (const name of rotate(o.servers, r + 1)) {
        const m = await measure(o, servers[name], infoFile, o.duration, r * 17);
        (L.runs[name] ??= []).push(m);
        log(
          `loaded .info  ${name.padEnd(10)} ${f0(m.rps).padStart(7)} req/s  p99 ${f2(m.latencyMs.p99).padStart(6)} ms  CPU ${f1(m.cpuUsPerReq)} µs/req  other CPU ${f0(m.otherCpuPct)}%${m.errors ? `  ERRORS ${JSON.stringify(m.errorDetail)}` : ''}`,
        );
      }
      // What the load itself got of the CPU (it is in this benchmark's tree, so "other CPU" leaves it out).
      L.loadCpuPct.push((100 * (loadCpuSeconds(hs) - c0)) / ((performance.now() - t0) / 1000));
    } finally {
      await Promise.all(hs.map((h) => stopProc(h, { graceMs: 1000 })));
    }
  }
  if (o.load === 'gobuild') {
    try {
      L.builds = readFileSync(path.join(runDir, 'load.log'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('go build exit')).length;
    } catch {
      L.builds = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The module graph: go mod download all, cold and warm, through each proxy and directly

/** The first http(s) entry of GOPROXY as the environment has it, and GOSUMDB; read at run time, never written down. */
async function registry() {
  const r = await run('go-env', 'go', ['env', 'GOPROXY', 'GOSUMDB'], { timeoutMs: 30_000 });
  if (r.code !== 0) return null;
  const [goproxy = '', gosumdb = ''] = r.stdout.split('\n').map((s) => s.trim());
  const url = goproxy.split(/[,|]/).find((e) => /^https?:\/\//.test(e));
  if (!url) return null;
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/github.com/google/uuid/@v/v1.6.0.info`, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) return null;
  } catch {
    return null;
  }
  return { url: url.replace(/\/+$/, ''), gosumdb: gosumdb || 'sum.golang.org' };
}

/** The local graph: a go.mod that requires one version of every module of a synthetic tree (their go.mod files require nothing). */
async function localGraph(o, runDir) {
  const root = path.join(OUT, `peers-graphtree-${o.graphModules}`);
  const m = await fillMain(root, { modules: o.graphModules, versionsPer: 1, prefix: 'graph.example' });
  const dir = path.join(runDir, 'local-graph');
  mkdirSync(dir, { recursive: true });
  const req = m.versions.map((v) => `\t${v.module} ${v.version}\n`).join('');
  writeFileSync(path.join(dir, 'go.mod'), `module bench.example/localgraph\n\ngo 1.21\n\nrequire (\n${req})\n`);
  return { root, dir, modules: m.versions.length, zipMiB: m.versions.reduce((a, v) => a + v.zipBytes, 0) / 2 ** 20 };
}

function countZips(dir) {
  let n = 0;
  let bytes = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.zip')) {
        n++;
        bytes += statSync(p).size;
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return { n, bytes };
}

/** One `go mod download all` in a fresh copy of the graph's folder with a fresh GOMODCACHE. */
async function goDownload(o, runDir, graph, goproxy, gosumdb, tag) {
  const work = path.join(runDir, `${tag}-work`);
  const cache = path.join(runDir, `${tag}-gomodcache`);
  rmSync(work, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  cpSync(graph.dir, work, { recursive: true });
  const env = goEnv({ goproxy, gosumdb, extra: { GOMODCACHE: cache, GOFLAGS: '-modcacherw', GOCACHE: path.join(runDir, 'graph-gocache') } });
  const t0 = performance.now();
  const r = await run('go-mod-download', 'go', ['mod', 'download', 'all'], { cwd: work, env, timeoutMs: o.graphTimeout * 1000 });
  const seconds = (performance.now() - t0) / 1000;
  const zips = countZips(path.join(cache, 'cache', 'download'));
  rmSync(work, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  const error = r.code !== 0 ? `exit ${r.code ?? r.signal}: ${`${r.stderr}`.trim().split('\n').slice(-2).join(' / ')}` : null;
  return { seconds: error ? NaN : seconds, error, zips: zips.n, zipMiB: zips.bytes / 2 ** 20 };
}

async function graphPhase(o, runDir, mode, results) {
  const names = ['direct', ...o.servers.filter((n) => n !== 'nginx')];
  const res = { upstream: mode.name, modules: null, zipMiB: null, runs: Object.fromEntries(names.map((n) => [n, []])) };
  results.graph.push(res);
  let up;
  if (mode.name === 'local') up = await startUpstream(runDir, 'graph-upstream', mode.graph.root, o.latencyMs);
  const relay = await startRelay(runDir, `graph-relay-${mode.name}`, up ? up.url : mode.registry.url);
  const gosumdb = mode.name === 'local' ? 'off' : mode.registry.gosumdb;
  try {
    for (let r = 0; r < o.graphRuns; r++) {
      for (const name of rotate(names, r)) {
        const tag = `graph-${mode.name}-${name}-${r}`;
        const one = { round: r + 1 };
        if (name === 'direct') {
          // The go command's own fetch, through the same relay as the proxies, so the hop is not what differs.
          await getJson(relay.port, '/-/reset');
          one.cold = await goDownload(o, runDir, mode.graph, relay.url, gosumdb, tag);
          const c = await getJson(relay.port, '/-/counts');
          one.coldUpstream = c.total;
          one.coldByKind = c.byKind;
        } else {
          const s = await startServer(o, runDir, name, tag, { upstream: relay.url, gosumdb, tree: null });
          const sampler = rssSampler(s.pid, { only: s.only, intervalMs: 100 });
          try {
            await getJson(relay.port, '/-/reset');
            one.cold = await goDownload(o, runDir, mode.graph, s.url, gosumdb, `${tag}-cold`);
            const c = await getJson(relay.port, '/-/counts');
            one.coldUpstream = c.total;
            one.coldByKind = c.byKind;
            await getJson(relay.port, '/-/reset');
            one.warm = await goDownload(o, runDir, mode.graph, s.url, gosumdb, `${tag}-warm`);
            one.warmUpstream = (await getJson(relay.port, '/-/counts')).total;
          } finally {
            sampler.stop();
            const pk = sampler.peak();
            one.rssMiB = pk.sumMiB;
            one.rssOneMiB = pk.oneMiB;
            // Each process's own peak, largest first: gomodproxy's primary and workers, Athens and its go children.
            one.procPeaksMiB = Object.values(pk.byPid)
              .sort((a, b) => b - a)
              .slice(0, 6);
            const st = await stopAndClean(s).catch(() => null);
            one.timeVMaxMiB = st?.timeV?.maxRssMiB ?? null;
          }
        }
        res.runs[name].push(one);
        if (name === 'direct' && !one.cold.error) {
          res.modules = one.cold.zips;
          res.zipMiB = one.cold.zipMiB;
        }
        const show = (d) => (d.error ? `FAILED (${d.error})` : `${f2(d.seconds)} s (${d.zips} zips)`);
        log(
          `graph ${mode.name} run ${r + 1} ${name.padEnd(10)} cold ${show(one.cold)}, ${one.coldUpstream} upstream requests${one.warm ? `; warm ${show(one.warm)}, ${one.warmUpstream} upstream requests; peak RSS ${f0(one.rssMiB)} MiB` : ''}`,
        );
      }
    }
  } finally {
    await stopProc(relay.h);
    if (up) await stopProc(up.h);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function summarize(o, results) {
  const s = { hits: {}, load: {}, graph: [] };
  for (const kind of KINDS) {
    const per = results.warm[kind];
    if (!per.nginx) continue;
    const n = best(per.nginx);
    s.hits[kind] = {};
    for (const name of o.servers) {
      const b = best(per[name]);
      s.hits[kind][name] = {
        rps: b.rps,
        p99: b.latencyMs.p99,
        rpsRatio: b.rps / n.rps,
        p99Ratio: b.latencyMs.p99 / n.latencyMs.p99,
        cpuUsPerReq: Math.min(...per[name].map((m) => m.cpuUsPerReq)),
        rssMiB: Math.max(...per[name].map((m) => m.rssMiB)),
        errors: per[name].reduce((a, m) => a + m.errors, 0),
      };
    }
  }
  if (results.load.runs.nginx) {
    const n = best(results.load.runs.nginx);
    for (const name of o.servers) {
      const b = best(results.load.runs[name]);
      const q = best(results.load.quiet[name]);
      s.load[name] = {
        rps: b.rps,
        p99: b.latencyMs.p99,
        toNginx: b.rps / n.rps,
        quietRps: q.rps,
        quietToNginx: q.rps / best(results.load.quiet.nginx).rps,
        toQuiet: b.rps / q.rps,
      };
    }
  }
  for (const g of results.graph) {
    const direct = median(g.runs.direct.map((r) => r.cold.seconds));
    const per = {};
    for (const [name, runs] of Object.entries(g.runs)) {
      const cold = median(runs.map((r) => r.cold.seconds));
      const warm = median(runs.map((r) => r.warm?.seconds ?? NaN));
      per[name] = {
        cold,
        warm,
        coldRatio: cold / direct,
        warmRatio: warm / direct,
        failed: runs.filter((r) => r.cold.error || r.warm?.error).length,
        runs: runs.length,
        rssMiB: Math.max(...runs.map((r) => r.rssMiB ?? NaN).filter(Number.isFinite)),
        rssOneMiB: Math.max(...runs.map((r) => r.rssOneMiB ?? NaN).filter(Number.isFinite)),
        coldUpstream: median(runs.map((r) => r.coldUpstream)),
        warmUpstream: median(runs.map((r) => r.warmUpstream ?? NaN)),
      };
    }
    s.graph.push({ upstream: g.upstream, modules: g.modules, zipMiB: g.zipMiB, per });
  }
  return s;
}

function report(o, results, s) {
  const parts = [];
  const m = results.machine;
  const cols = o.servers;
  parts.push(`# gomodproxy against its peers ${results.startedAt}${o.quick ? ' (quick)' : ''}`, '');
  parts.push(`Command: \`${results.command}\``, '');
  parts.push(`Machine: ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, ${m.os}; node ${m.node}, ${m.nginx}, ${m.wrk}, ${results.goVersion}.`);
  parts.push(
    `gomodproxy: dist/ built from ${results.gitHead}${results.gitDirty ? ' with uncommitted changes in src/' : ''}, --workers ${o.workers}; nginx worker_processes ${o.workers}; goproxy ${o.goproxy ? `\`${o.goproxy}\`` : 'not given'}; Athens ${o.athens ? `\`${o.athens}\`` : 'not given'}.`,
  );
  if (o.missing.length) parts.push(`Left out (no binary given): ${o.missing.map((p) => `${p} (--${p} BIN)`).join(', ')}.`);
  parts.push(`Load average at start ${results.loadStart?.join(' ') ?? '?'}, at end ${results.loadEnd?.join(' ') ?? '?'} (${m.cpus} cores).`);
  parts.push(
    `wrk -t${o.threads} -c${o.connections}, ${o.duration} s per run, ${o.rounds} round(s), the order of the servers rotated each round, best run counts; every server has its access log on (goproxy has none to turn on).`,
  );

  parts.push('', '## Ratios', '');
  const rows = [];
  for (const kind of KINDS) {
    const h = s.hits[kind];
    if (!h) continue;
    rows.push([`warm ${kindLabel(kind)} hits/s (÷ nginx)`, ...cols.map((c) => `${kLabel(h[c].rps)} (${x(h[c].rpsRatio)})`)]);
    rows.push([`warm ${kindLabel(kind)} p99 ms (÷ nginx)`, ...cols.map((c) => `${f2(h[c].p99)} (${x(h[c].p99Ratio)})`)]);
    rows.push([`warm ${kindLabel(kind)} CPU µs/req`, ...cols.map((c) => f1(h[c].cpuUsPerReq))]);
  }
  if (s.hits.info)
    rows.push([
      'peak RSS MiB during the hits (whole tree)',
      ...cols.map((c) => f0(Math.max(...KINDS.filter((k) => s.hits[k]).map((k) => s.hits[k][c].rssMiB)))),
    ]);
  if (Object.keys(s.load).length) {
    rows.push([`load phase: quiet .info hits/s (÷ nginx)`, ...cols.map((c) => `${kLabel(s.load[c].quietRps)} (${x(s.load[c].quietToNginx)})`)]);
    rows.push([`same under ${results.load.what} (÷ nginx then)`, ...cols.map((c) => `${kLabel(s.load[c].rps)} (${x(s.load[c].toNginx)})`)]);
    rows.push([`same: p99 ms under load`, ...cols.map((c) => f2(s.load[c].p99))]);
    rows.push(['loaded ÷ quiet hits/s', ...cols.map((c) => x(s.load[c].toQuiet))]);
  }
  for (const g of s.graph) {
    const what = `${g.upstream === 'registry' ? 'registry' : 'local upstream'}, ${g.modules ?? '?'} zips`;
    const cell = (c, k) => {
      const p = g.per[c];
      if (!p) return '-';
      if (k === 'coldRatio' && c === 'direct') return `${f2(p.cold)} s (1.00x)`;
      const v = k === 'coldRatio' ? p.cold : p.warm;
      return `${f2(v)} s (${x(p[k])})${p.failed ? ` ${p.failed}/${p.runs} FAILED` : ''}`;
    };
    const gcols = [...cols.filter((c) => c !== 'nginx')];
    rows.push([
      `cold go mod download all, ${what}: median s (÷ direct ${f2(g.per.direct?.cold)} s)`,
      ...cols.map((c) => (gcols.includes(c) ? cell(c, 'coldRatio') : '-')),
    ]);
    rows.push([`warm go mod download all, ${what} (÷ direct)`, ...cols.map((c) => (gcols.includes(c) ? cell(c, 'warmRatio') : '-'))]);
    rows.push([
      `peak RSS MiB serving it (whole tree / largest process)`,
      ...cols.map((c) => (g.per[c] ? `${f0(g.per[c].rssMiB)} / ${f0(g.per[c].rssOneMiB)}` : '-')),
    ]);
    rows.push([
      `upstream requests, cold / warm (direct: ${f0(g.per.direct?.coldUpstream)})`,
      ...cols.map((c) => (g.per[c] ? `${f0(g.per[c].coldUpstream)} / ${f0(g.per[c].warmUpstream)}` : '-')),
    ]);
  }
  if (Object.keys(results.stampede).length) {
    rows.push([
      `${o.clients} clients on one cold zip: upstream requests for it (in all)`,
      ...cols.map((c) => {
        const st = results.stampede[c];
        return st ? `${st.zipRequests} (${st.totalRequests})${st.ok !== o.clients ? ` ${o.clients - st.ok} WRONG` : ''}` : '-';
      }),
    ]);
    rows.push([`same: time to the last byte ms`, ...cols.map((c) => (results.stampede[c] ? f0(results.stampede[c].lastMs) : '-'))]);
  }
  parts.push(mdTable(['figure', ...cols], rows));
  parts.push(
    '',
    'Hits: best req/s and its p99 of the rounds, ratio to nginx serving the same files (higher req/s and lower p99 are better). CPU µs/req = the server\'s CPU time (all its processes) per request, lowest of the rounds: it moves much less with other load on the machine than req/s. Graph: median wall time of the downloads, each with a fresh GOMODCACHE and, for "cold", a fresh server with an empty cache; ratio to the go command fetching the same graph from the same upstream itself ("direct"), through the same recording relay. RSS: the sum over the server\'s whole process tree (gomodproxy: primary + workers; Athens: with its go subprocesses), sampled every 100 ms over a cold and a warm download.',
  );

  // Raw figures
  parts.push('', '## Every measured run', '');
  const raw = [];
  for (const kind of KINDS)
    for (const name of cols)
      for (const [i, mm] of (results.warm[kind][name] ?? []).entries())
        raw.push([
          `warm ${kindLabel(kind)}`,
          i + 1,
          name,
          f0(mm.rps),
          f2(mm.latencyMs.p50),
          f2(mm.latencyMs.p99),
          f0(mm.mbps),
          mm.errors,
          f1(mm.cpuUsPerReq),
          f0(mm.rssMiB),
          `${f0(mm.otherCpuPct)}%${mm.otherCpuPct > NOISY_PCT ? ' NOISY' : ''}`,
          f2(mm.load1),
        ]);
  for (const [which, runs] of [
    ['quiet .info', results.load.quiet],
    ['loaded .info', results.load.runs],
  ])
    for (const name of cols)
      for (const [i, mm] of (runs[name] ?? []).entries())
        raw.push([
          which,
          i + 1,
          name,
          f0(mm.rps),
          f2(mm.latencyMs.p50),
          f2(mm.latencyMs.p99),
          f0(mm.mbps),
          mm.errors,
          f1(mm.cpuUsPerReq),
          f0(mm.rssMiB),
          `${f0(mm.otherCpuPct)}%`,
          f2(mm.load1),
        ]);
  if (raw.length)
    parts.push(mdTable(['run', 'round', 'server', 'req/s', 'p50 ms', 'p99 ms', 'MiB/s', 'errors', 'CPU µs/req', 'peak RSS MiB', 'other CPU', 'load 1m'], raw));
  if (results.tree)
    parts.push(
      '',
      `Hits: ${results.tree.versions} versions of a synthetic tree (bench/lib/fill.mjs), URLs per kind ${KINDS.map((k) => `${k} ${results.tree.urls[k]}`).join(', ')}; each proxy's cache was filled through it first (${Object.entries(
        results.fill,
      )
        .filter(([n]) => n !== 'nginx')
        .map(([n, f]) => `${n} ${f1(f.seconds)} s, ${f.upstreamRequests} upstream requests`)
        .join(
          '; ',
        )}), then every URL was read back and checked. Upstream requests during the measured hits: ${results.warmUpstreamRequests ?? '-'} (must be 0). "other CPU" = CPU of processes this benchmark did not start, % of one core (the loaded runs count the load itself).`,
    );
  const tv = Object.entries(results.timeV).filter(([, v]) => v != null);
  if (tv.length)
    parts.push(
      '',
      `/usr/bin/time -v maximum RSS (the largest single process over the server's whole life) of the servers of the hit phases: ${tv.map(([k, v]) => `${k.replace(/^hits-/, '')} ${f0(v)} MiB`).join(', ')}.`,
    );
  for (const g of results.graph) {
    parts.push('', `Graph downloads, ${g.upstream} (${g.modules ?? '?'} zips, ${f0(g.zipMiB)} MiB):`, '');
    const gr = [];
    for (const [name, runs] of Object.entries(g.runs))
      for (const r of runs)
        gr.push([
          r.round,
          name,
          r.cold.error ? `FAILED: ${r.cold.error}` : `${f2(r.cold.seconds)} (${r.cold.zips})`,
          r.warm ? (r.warm.error ? `FAILED: ${r.warm.error}` : `${f2(r.warm.seconds)} (${r.warm.zips})`) : '-',
          `${r.coldUpstream ?? '-'} / ${r.warmUpstream ?? '-'}`,
          Object.entries(r.coldByKind ?? {})
            .map(([k, n]) => `${k} ${n}`)
            .join(', '),
          r.rssMiB != null ? `${f0(r.rssMiB)} / ${f0(r.rssOneMiB)} / ${f0(r.timeVMaxMiB)}` : '-',
          r.procPeaksMiB ? r.procPeaksMiB.map(f0).join(' ') : '-',
        ]);
    parts.push(
      mdTable(
        [
          'round',
          'server',
          'cold s (zips)',
          'warm s (zips)',
          'upstream requests cold / warm',
          'cold upstream requests by kind',
          'RSS MiB tree peak / largest / time -v',
          'peak MiB per process',
        ],
        gr,
      ),
    );
  }
  if (Object.keys(results.stampede).length) {
    parts.push('', `${o.clients} concurrent clients on one cold zip (synthetic upstream, ${o.latencyMs} ms before each answer):`, '');
    parts.push(
      mdTable(
        ['server', 'zip', 'right answers', 'statuses', 'p50 ms', 'last byte ms', 'upstream: that zip', 'upstream: all', 'by kind'],
        Object.entries(results.stampede).map(([n, st]) => [
          n,
          `${st.path} (${f0(st.zipBytes / 1024)} KiB)`,
          `${st.ok}/${o.clients}`,
          st.statuses.join(' '),
          f0(st.p50Ms),
          f0(st.lastMs),
          st.zipRequests,
          st.totalRequests,
          JSON.stringify(st.byKind),
        ]),
      ),
    );
  }
  if (results.load.what)
    parts.push(
      '',
      `Load phase: per round, quiet .info runs of every server, then ${results.load.what} started ${o.loadRamp} s before the loaded runs and stopped after them. The load used ${results.load.loadCpuPct.map((p) => `${f0(p)}%`).join(', ')} of one core during the loaded runs${results.load.builds != null ? ` and finished ${results.load.builds} builds` : ''}; load average when the loaded runs began: ${results.load.loadAvg.map((l) => l?.join(' ') ?? '?').join('; ')}.`,
    );
  if (!haveTime) parts.push('', 'Note: /usr/bin/time is not installed (Debian package "time"); the time -v figures are empty, the /proc samples stand.');
  if (results.errors.length) parts.push('', '## Errors', '', ...results.errors.map((e) => `- ${e}`));
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  if (o.nice !== 0) {
    os.setPriority(o.nice);
    try {
      writeFileSync('/proc/self/autogroup', `${o.nice}`);
    } catch {
      // no autogroups
    }
    setNiceness(o.nice);
  }
  // The whole run is bounded too: past the budget everything started is stopped.
  const watchdog = setTimeout(() => {
    log(`budget of ${o.budget} s spent: stopping every process this benchmark started`);
    void stopAll().finally(() => process.exit(2));
  }, o.budget * 1000);
  const started = Date.now();
  const { runDir, stamp } = newRunDir('peersrun');
  const versions = await checkTools();
  const buildWarning = await buildDist(o.build);
  if (o.missing.length) log(`left out, no binary given: ${o.missing.map((p) => `${p} (--${p} BIN)`).join(', ')}`);
  await waitQuiet(o.waitQuiet);
  const results = {
    startedAt: new Date(started).toISOString(),
    command: `node bench/peers/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    options: { ...o, only: [...o.only] },
    machine: machineInfo(versions),
    goVersion: (await run('go', 'go', ['version'])).stdout.trim(),
    loadStart: loadAvg(),
    loadEnd: null,
    buildWarning,
    ...(await gitState()),
    tree: null,
    fill: {},
    warm: Object.fromEntries(KINDS.map((k) => [k, {}])),
    warmUpstreamRequests: null,
    load: { what: null, quiet: {}, runs: {}, loadAvg: [], loadCpuPct: [], builds: null },
    stampede: {},
    graph: [],
    timeV: {},
    errors: [],
    seconds: 0,
  };
  try {
    if (o.only.has('warm') || o.only.has('load') || o.only.has('stampede')) {
      try {
        await hitsPhases(o, runDir, results);
      } catch (e) {
        results.errors.push(`hits phases: ${e.message}`);
        log(`hits phases failed: ${e.message}`);
      }
    }
    if (o.only.has('graph') && o.graph !== 'none') {
      const modes = [];
      const want = o.graph === 'both' ? ['registry', 'local'] : o.graph === 'auto' ? ['auto'] : [o.graph];
      let reg = null;
      if (want.includes('registry') || want.includes('auto')) {
        reg = await registry();
        if (reg) modes.push({ name: 'registry', registry: reg, graph: { dir: GRAPH_DIR } });
        else {
          const msg = 'the registry of "go env GOPROXY" did not answer (or GOPROXY names none)';
          log(`${msg}${want.includes('auto') ? ': the graph runs against the local synthetic upstream' : ''}`);
          results.errors.push(msg);
        }
      }
      if (want.includes('local') || (want.includes('auto') && !reg)) modes.push({ name: 'local', graph: await localGraph(o, runDir) });
      for (const mode of modes) {
        try {
          await graphPhase(o, runDir, mode, results);
        } catch (e) {
          results.errors.push(`graph (${mode.name}): ${e.message}`);
          log(`graph phase (${mode.name}) failed: ${e.message}`);
        }
      }
    }
  } finally {
    clearTimeout(watchdog);
  }
  results.seconds = (Date.now() - started) / 1000;
  results.loadEnd = loadAvg();
  const s = summarize(o, results);
  const md = `${report(o, results, s)}\n\nWhole run: ${results.seconds.toFixed(0)} s. Logs: ${path.relative(REPO, runDir)}/\n`;
  const json = `${JSON.stringify({ ...results, summary: s }, null, 2)}\n`;
  writeFileSync(path.join(OUT, `peers-${stamp}.md`), md);
  writeFileSync(path.join(OUT, `peers-${stamp}.json`), json);
  writeFileSync(path.join(OUT, 'peers-latest.md'), md);
  writeFileSync(path.join(OUT, 'peers-latest.json'), json);
  process.stdout.write(`\n${md}\nwritten: bench/.out/peers-${stamp}.md and .json (also bench/.out/peers-latest.md)\n`);
  if (results.errors.length) process.exitCode = 1;
}

main()
  .catch((err) => {
    process.stderr.write(`bench/peers: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
