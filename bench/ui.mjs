#!/usr/bin/env node
// The web UI under load, and the hot path beside it. See bench/README.md.
//
//   npm run build && node bench/ui.mjs [--modules 2000] [--versions 10] [--duration 8] ...
//
// 1. Fills a data folder (bench/.out/uidata/, reused while its shape is the same) with
//    modules × versions module versions written straight into the go command's cache layout
//    (.info, .mod, a small valid .zip, the .origin sidecar), each go.mod requiring a few others
//    and a tenth of them one "core" module, so that dependents exist; starts gomodproxy on it
//    (--upstream off, --workers N).
// 2. Latency of the pages with wrk --latency: the first view of distinct module pages (their
//    versions' .info and .origin read from the store), then module pages, search pages (the page
//    and the instant-search fragment over prefixes, substrings, no match), the most-required
//    module's page and the home page, each warm, over C connections. Aim: p99 < 50 ms.
// 3. Warm .info hits with wrk over every version, alone and while the UI is polled (a loop
//    fetching the home page, a search, a module page and stats.json at R requests/s), rounds
//    alternated; prints the ratio of the best runs. Aim: unchanged (ratio >= 0.95).
// Everything runs on 127.0.0.1, every step is bounded in time, and every process started here is
// stopped at the end, on an error and on Ctrl-C.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import yazl from 'yazl';
import { escapePath } from './lib/fill.mjs';
import { f0, f1, f2, mdTable } from './lib/format.mjs';
import { pool, stats, timedGet } from './lib/http.mjs';
import { foreignCpu, installCleanupHandlers, stopAll } from './lib/procs.mjs';
import { OUT, startGomodproxy, stopServer, wrk } from './lib/servers.mjs';
import { NOISY_PCT, buildDist, checkTools, gitState, log, machineInfo, newRunDir, options, waitQuiet } from './lib/session.mjs';

const FORMAT = 1; // bump when the data folder changes shape
const AIMS = { p99Ms: 50, rpsRatio: 0.95 };

const HELP = `usage: node bench/ui.mjs [options]     (run "npm run build" first, or pass --build)

  --modules N        modules in the data folder (default 2000)
  --versions N       versions of each (default 10)
  --duration S       seconds of each measured wrk run (default 8)
  --connections C    wrk connections for the page latencies (default 4)
  --hit-connections C  wrk connections for the .info hits (default 8)
  --workers N        gomodproxy --workers (default: cores = ${os.availableParallelism()})
  --poll-rate R      UI requests per second while the hits are measured (default 4)
  --rounds N         alternations of alone / polled (default 2)
  --cold N           distinct module pages viewed for the first time, one at a time (default 200)
  --node-arg ARG     an option for gomodproxy's node (repeatable), e.g. --node-arg --cpu-prof
  --build            run "npm run build" first
  --wait-quiet S     wait up to S seconds for a quiet machine first
`;

function parseArgs(argv) {
  const o = {
    modules: 2000,
    versions: 10,
    duration: 8,
    connections: 4,
    hitConnections: 8,
    threads: 1,
    workers: os.availableParallelism(),
    pollRate: 4,
    rounds: 2,
    cold: 200,
    nodeArgs: [],
    build: false,
    waitQuiet: 0,
  };
  const int = (v, min = 1) => Math.max(min, Math.floor(v));
  for (const { a, val, num } of options(argv)) {
    switch (a) {
      case '--modules':
        o.modules = int(num(), 10);
        break;
      case '--versions':
        o.versions = int(num());
        break;
      case '--duration':
        o.duration = int(num());
        break;
      case '--connections':
        o.connections = int(num());
        break;
      case '--hit-connections':
        o.hitConnections = int(num());
        break;
      case '--workers':
        o.workers = int(num());
        break;
      case '--poll-rate':
        o.pollRate = num();
        break;
      case '--rounds':
        o.rounds = int(num());
        break;
      case '--cold':
        o.cold = int(num(), 0);
        break;
      case '--node-arg':
        o.nodeArgs.push(val());
        break;
      case '--build':
        o.build = true;
        break;
      case '--wait-quiet':
        o.waitQuiet = int(num(), 0);
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${HELP}`);
    }
  }
  return o;
}

// ---- the data folder ----

const CORE = 'bench.example/ui/core/log';

function modulePath(i) {
  // Some upper-case owners, for the !-escaping of the store's paths.
  const team = i % 40;
  return `bench.example/ui/${team % 4 === 0 ? `Team${team}` : `team${team}`}/svc${String(i).padStart(5, '0')}`;
}

function zipOf(prefix, gomod, n) {
  const zip = new yazl.ZipFile();
  const opts = { mtime: new Date('2024-05-01T12:00:00Z'), mode: 0o644, compress: true };
  zip.addBuffer(gomod, `${prefix}go.mod`, opts);
  zip.addBuffer(Buffer.from(`package svc\n\n// Synthetic module ${n} for the web UI benchmark.\nfunc N() int { return ${n} }\n`), `${prefix}svc.go`, opts);
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks = [];
    zip.outputStream.on('data', (c) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

/** The data folder as gomodproxy stores it; reused when its manifest says the same shape. */
async function fillData(root, { modules, versions }) {
  const spec = { format: FORMAT, modules, versions };
  const manifest = path.join(root, '.bench-manifest.json');
  if (existsSync(manifest) && JSON.stringify(JSON.parse(readFileSync(manifest, 'utf8')).spec) === JSON.stringify(spec)) return { reused: true, ms: 0 };
  const t0 = performance.now();
  rmSync(root, { recursive: true, force: true });
  const all = [CORE, ...Array.from({ length: modules - 1 }, (_, i) => modulePath(i))];
  let seq = 0;
  for (const [i, mod] of all.entries()) {
    const dir = path.join(root, escapePath(mod), '@v');
    mkdirSync(dir, { recursive: true });
    // Each requires three others, and every tenth also the core module.
    const req = [1, 7, 31].map((k) => all[1 + ((i * k + k) % (all.length - 1))]).filter((p) => p !== mod);
    if (i > 0 && i % 10 === 0) req.push(CORE);
    const gomod = Buffer.from(`module ${mod}\n\ngo 1.21\n\nrequire (\n${[...new Set(req)].map((p) => `\t${p} v1.0.0\n`).join('')})\n`);
    for (let j = 0; j < versions; j++) {
      const version = `v1.${j}.0`;
      const time = new Date(Date.UTC(2024, 0, 1) + seq++ * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
      writeFileSync(path.join(dir, `${version}.mod`), gomod);
      writeFileSync(path.join(dir, `${version}.zip`), await zipOf(`${mod}@${version}/`, gomod, seq));
      writeFileSync(path.join(dir, `${version}.origin`), `${JSON.stringify({ source: 'https://proxy.example', at: time })}\n`);
      // .info last, as the server writes it: it is what marks a version present.
      writeFileSync(path.join(dir, `${version}.info`), JSON.stringify({ Version: version, Time: time }));
    }
    writeFileSync(path.join(dir, 'list'), Array.from({ length: versions }, (_, j) => `v1.${j}.0\n`).join(''));
  }
  writeFileSync(manifest, JSON.stringify({ spec, createdAt: new Date().toISOString() }));
  return { reused: false, ms: performance.now() - t0 };
}

// ---- measuring ----

function pathsFile(runDir, name, paths) {
  const file = path.join(runDir, `${name}.paths`);
  writeFileSync(file, `${paths.join('\n')}\n`);
  return file;
}

/** Asks for `paths` in turn at `rate` per second on one keep-alive connection until stopped; counts answers. */
function poller(port, paths, rate) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let stopped = false;
  let i = 0;
  const counts = { ok: 0, bad: 0, ms: [] };
  const loop = (async () => {
    let next = performance.now();
    while (!stopped) {
      const r = await timedGet(port, paths[i++ % paths.length], agent, { timeoutMs: 10_000 }).catch(() => null);
      if (r && r.status === 200) {
        counts.ok++;
        counts.ms.push(r.ms);
      } else counts.bad++;
      next += 1000 / rate;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      agent.destroy();
      return counts;
    },
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  const { runDir, stamp } = newRunDir('ui');
  const versions = await checkTools();
  const buildWarning = await buildDist(o.build);
  const machine = machineInfo(versions);
  log(`machine: ${machine.cpus} cores (nproc ${os.availableParallelism()}), ${machine.cpuModel}, ${machine.memGiB} GiB, node ${machine.node}`);

  const data = path.join(OUT, 'uidata');
  log(`filling ${data} with ${o.modules} modules x ${o.versions} versions...`);
  const filled = await fillData(data, o);
  log(filled.reused ? 'reused the data folder of an earlier run' : `wrote it in ${f1(filled.ms / 1000)} s`);
  await waitQuiet(o.waitQuiet);

  const s = await startGomodproxy(o, runDir, 'gomodproxy', { data, upstream: 'off', accessLog: true, nodeArgs: o.nodeArgs });
  const results = { machine, options: o, git: await gitState(), buildWarning, stamp };
  try {
    // The index is built in the background at start; the stats say when it holds everything.
    const t0 = performance.now();
    for (let i = 0; i < 600; i++) {
      const st = await statsOf(s.port).catch(() => null);
      if (st?.versions === String(o.modules * o.versions)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    results.indexMs = performance.now() - t0;
    log(`module index ready (${f0(results.indexMs)} ms after the server listened)`);

    const all = [CORE, ...Array.from({ length: o.modules - 1 }, (_, i) => modulePath(i))];
    const page = (m) => `/-/ui/modules/${m}`;

    // First views: each module page once, one at a time (its versions' .info and .origin are read then).
    const cold = [];
    for (const m of all.slice(1, 1 + o.cold)) {
      const r = await timedGet(s.port, page(m));
      if (r.status !== 200) throw new Error(`${page(m)}: ${r.status}`);
      cold.push(r.ms);
    }
    results.cold = stats(cold);
    // Then every page once, so the measured runs see what a running server has seen.
    await pool(all, 4, async (m) => {
      const r = await timedGet(s.port, page(m));
      if (r.status !== 200) throw new Error(`${page(m)}: ${r.status}`);
    });

    const queries = [
      'bench.example/ui/team1',
      'bench.example/ui/Team20/svc0',
      'svc01',
      'svc001',
      'team3',
      'core',
      'ui/',
      '',
      'nothing-matches-this',
      'SVC0199',
    ];
    const sets = {
      'module page': all.filter((_, i) => i % 7 === 1).map(page),
      'module page, most required': [page(CORE)],
      'search page': queries.map((q) => `/-/ui/search?q=${encodeURIComponent(q)}`),
      'search fragment': queries.map((q) => `/-/ui/search/results?q=${encodeURIComponent(q)}`),
      'home page': ['/-/ui/'],
    };
    results.pages = {};
    for (const [name, paths] of Object.entries(sets)) {
      const file = pathsFile(runDir, name.replace(/\W+/g, '-'), paths);
      await wrk({ ...o, connections: o.connections }, s.port, file, 1);
      const other = foreignCpu();
      const w = await wrk({ ...o, connections: o.connections }, s.port, file, o.duration);
      results.pages[name] = { ...w, otherCpu: other.stop(), bytes: Math.round(w.bytesPerReq) };
      log(`${name}: ${f0(w.rps)} req/s, p50 ${f1(w.latencyMs.p50)} ms, p99 ${f1(w.latencyMs.p99)} ms, ${w.errors} errors`);
    }

    // Warm .info hits, alone and beside the UI being polled.
    const info = [];
    for (const m of all) for (let j = 0; j < o.versions; j++) info.push(`/${escapePath(m)}/@v/v1.${j}.0.info`);
    const infoFile = pathsFile(runDir, 'info', info);
    await pool(info, 8, (p) => timedGet(s.port, p));
    await wrk({ ...o, connections: o.hitConnections }, s.port, infoFile, 1);
    const polled = ['/-/ui/', `/-/ui/search?q=${encodeURIComponent('team1')}`, page(all[Math.min(123, all.length - 1)]), '/-/ui/stats.json'];
    results.hits = { alone: [], polled: [] };
    for (let r = 0; r < o.rounds; r++) {
      for (const mode of r % 2 === 0 ? ['alone', 'polled'] : ['polled', 'alone']) {
        const p = mode === 'polled' ? poller(s.port, polled, o.pollRate) : null;
        const other = foreignCpu();
        const w = await wrk({ ...o, connections: o.hitConnections }, s.port, infoFile, o.duration);
        const ui = p ? await p.stop() : null;
        results.hits[mode].push({ ...w, otherCpu: other.stop(), ui: ui && { ok: ui.ok, bad: ui.bad, ...stats(ui.ms) } });
        log(
          `.info hits ${mode}: ${f0(w.rps)} req/s, p99 ${f2(w.latencyMs.p99)} ms${ui ? `; UI ${ui.ok} answers (${ui.bad} failed), p99 ${f1(stats(ui.ms).p99)} ms` : ''}`,
        );
      }
    }
  } finally {
    await stopServer(s);
  }
  report(results, runDir);
}

async function statsOf(port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/-/ui/stats.json', agent: false }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(JSON.parse(t)));
      })
      .on('error', reject);
  });
}

/** Other processes' CPU (% of one core) during a run; above NOISY_PCT its figures say more about them than about gomodproxy. */
function noisy(pct) {
  return `${f0(pct)}${pct > NOISY_PCT ? ' NOISY' : ''}`;
}

function report(r, runDir) {
  const best = (runs) => runs.reduce((a, b) => (b.rps > a.rps ? b : a));
  const alone = best(r.hits.alone);
  const polled = best(r.hits.polled);
  const ratio = polled.rps / alone.rps;
  const pageRows = Object.entries(r.pages).map(([name, w]) => [
    name,
    f0(w.rps),
    f1(w.latencyMs.p50),
    f1(w.latencyMs.p99),
    w.latencyMs.p99 < AIMS.p99Ms ? 'yes' : 'NO',
    f0(w.bytes),
    w.errors,
    noisy(w.otherCpu),
  ]);
  const o = r.options;
  const lines = [
    `# Web UI benchmark ${r.stamp}`,
    '',
    `Machine: ${r.machine.cpus} cores (nproc ${os.availableParallelism()}), ${r.machine.cpuModel}, ${r.machine.memGiB} GiB, ${r.machine.os}, node ${r.machine.node}; ${r.machine.wrk}`,
    `Code: ${r.git.gitHead}${r.git.gitDirty ? ' (src/ has uncommitted changes)' : ''}${r.buildWarning ? `; ${r.buildWarning}` : ''}`,
    `Data: ${o.modules} modules x ${o.versions} versions = ${o.modules * o.versions} module versions; gomodproxy --workers ${o.workers}; index ready ${f0(r.indexMs)} ms after listening`,
    '',
    `First view of ${r.cold.n} distinct module pages, one at a time: p50 ${f1(r.cold.p50)} ms, p99 ${f1(r.cold.p99)} ms, max ${f1(r.cold.max)} ms`,
    '',
    `Warm pages, wrk -t${o.threads} -c${o.connections} -d${o.duration}s --latency (aim: p99 < ${AIMS.p99Ms} ms):`,
    '',
    mdTable(['page', 'req/s', 'p50 ms', 'p99 ms', 'aim met', 'bytes', 'errors', 'other CPU %'], pageRows),
    '',
    `Warm .info hits over all ${o.modules * o.versions} versions, wrk -t${o.threads} -c${o.hitConnections} -d${o.duration}s, best of ${o.rounds}; polled: the home page, a search, a module page and stats.json in turn at ${o.pollRate}/s:`,
    '',
    mdTable(
      ['run', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'UI answers', 'UI p99 ms', 'other CPU %'],
      [
        ...r.hits.alone.map((w, i) => [`alone ${i + 1}`, f0(w.rps), f2(w.latencyMs.p50), f2(w.latencyMs.p99), w.errors, '-', '-', noisy(w.otherCpu)]),
        ...r.hits.polled.map((w, i) => [
          `polled ${i + 1}`,
          f0(w.rps),
          f2(w.latencyMs.p50),
          f2(w.latencyMs.p99),
          w.errors,
          `${w.ui.ok} (${w.ui.bad} failed)`,
          f1(w.ui.p99),
          noisy(w.otherCpu),
        ]),
      ],
    ),
    '',
    `req/s ratio polled / alone (best runs): ${f2(ratio)} (aim >= ${AIMS.rpsRatio})`,
    '',
  ];
  const text = lines.join('\n');
  writeFileSync(path.join(OUT, 'ui-latest.md'), text);
  writeFileSync(path.join(OUT, 'ui-latest.json'), JSON.stringify(r, null, 2));
  writeFileSync(path.join(runDir, 'results.md'), text);
  process.stdout.write(`${text}\nwritten to ${path.join(OUT, 'ui-latest.md')} (logs in ${runDir})\n`);
}

main().then(
  () => stopAll().then(() => process.exit(0)),
  (err) => {
    process.stderr.write(`bench/ui.mjs: ${err.stack ?? err}\n`);
    stopAll().then(() => process.exit(1));
  },
);
