#!/usr/bin/env node
// Warm hits of two builds of gomodproxy, alternating, over the same data folder: did a change
// cost the hot path anything? wrk measures them in turn, A B B A ..., each run on a freshly started
// server, so a busy machine, and where a process happened to land, weigh on each alike.
//
//   npm run build && cp -r dist bench/.out/dist-base     # before the change (bench/.out is gitignored)
//   ... change, npm run build ...
//   node bench/hotpath-ab.mjs --dist bench/.out/dist-base,dist [--rounds 6] [--duration 8] [--kinds info,zip] [--wait-quiet 300]
//
// --dist A,A measures the noise floor: what the same build differs from itself on this machine.
// The tree is bench/run.mjs's (bench/.out/tree, 320 versions), made or reused by lib/fill.mjs;
// kinds as there: .info and .mod of every version (memory hits), .zip of the 1 MiB versions
// (memory hits after the first), zip3m the 3 MiB ones (over the memory-cache item limit: a hit
// from the store). Per build: best and median req/s, the lowest CPU time per request (all its
// processes, from /proc), which moves much less with other load than req/s does, and the memory
// of its process tree right after the load (RSS, and PSS, which counts shared pages once).
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fillMain, kindItems } from './lib/fill.mjs';
import { f1, mdTable, pct } from './lib/format.mjs';
import { foreignCpu, installCleanupHandlers, memoryOf, stopAll, treeCpuSeconds } from './lib/procs.mjs';
import { OUT, REPO, startGomodproxy, stopServer, warmAll, wrk } from './lib/servers.mjs';
import { NOISY_PCT, checkTools, log, newRunDir, options, waitQuiet } from './lib/session.mjs';

function parseArgs(argv) {
  const o = {
    dists: ['bench/.out/dist-base', 'dist'],
    waitQuiet: 0,
    rounds: 6,
    duration: 8,
    warmup: 1,
    kinds: ['info', 'zip'],
    workers: os.availableParallelism(),
    connections: 8,
    threads: 1,
  };
  for (const { a, val, num } of options(argv)) {
    if (a === '--dist') o.dists = val().split(',');
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--duration') o.duration = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--kinds') o.kinds = val().split(',');
    else if (a === '--workers') o.workers = num();
    else if (a === '--connections') o.connections = num();
    else if (a === '--wait-quiet') o.waitQuiet = num();
    else throw new Error(`unknown option ${a}`);
  }
  if (o.dists.length !== 2) throw new Error('--dist takes two builds: A,B');
  return o;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  await checkTools();
  const { runDir, stamp } = newRunDir('ab');
  const tree = path.join(OUT, 'tree');
  const manifest = await fillMain(tree, { modules: 40, versionsPer: 8 });
  const rows = [];
  for (const kind of o.kinds) {
    await waitQuiet(o.waitQuiet);
    const items = kindItems(tree, manifest, kind);
    const pathsFile = path.join(runDir, `paths-${kind}.txt`);
    writeFileSync(pathsFile, `${items.map((i) => i.path).join('\n')}\n`);
    // A fresh server for every measured run: where a process's memory and threads land differs
    // from one start to the next, and a pair of long-lived servers would keep that difference.
    const servers = o.dists.map((d, i) => ({ label: d, tag: i === 0 ? 'A' : 'B', cli: path.resolve(REPO, d, 'cli', 'main.js'), rounds: [] }));
    for (let r = 0; r < o.rounds; r++) {
      for (const x of r % 2 === 0 ? servers : [...servers].reverse()) {
        const s = await startGomodproxy(o, runDir, `${kind}-${x.tag}-${r}`, { data: tree, cli: x.cli });
        try {
          await warmAll(s.port, items, o.workers);
          await wrk(o, s.port, pathsFile, o.warmup, 3);
          const other = foreignCpu();
          const cpu0 = treeCpuSeconds(s.pid, s.only);
          const w = await wrk(o, s.port, pathsFile, o.duration, r * 31);
          const cpu = treeCpuSeconds(s.pid, s.only).total - cpu0.total;
          const mem = memoryOf(s.pid, s.only);
          const m = { rps: w.rps, p99: w.latencyMs.p99, cpuUs: (1e6 * cpu) / w.requests, errors: w.errors, otherCpu: other.stop(), mem };
          x.rounds.push(m);
          log(
            `${kind.padEnd(5)} ${x.label.padEnd(22)} ${m.rps.toFixed(0).padStart(7)} req/s  p99 ${m.p99.toFixed(2)} ms  CPU ${m.cpuUs.toFixed(1)} µs/req  RSS ${mem.rss.toFixed(0)} MiB PSS ${mem.pss.toFixed(0)} MiB (${mem.processes} processes)  other CPU ${m.otherCpu.toFixed(0)}%${m.errors ? `  ERRORS ${m.errors}` : ''}`,
          );
        } finally {
          await stopServer(s);
        }
      }
    }
    const sum = servers.map((x) => ({
      label: x.label,
      // Runs during which other processes used little CPU: the ones to compare on a shared machine.
      quiet: x.rounds.filter((m) => m.otherCpu <= NOISY_PCT),
      best: Math.max(...x.rounds.map((m) => m.rps)),
      median: median(x.rounds.map((m) => m.rps)),
      cpu: Math.min(...x.rounds.map((m) => m.cpuUs)),
      errors: x.rounds.reduce((a, m) => a + m.errors, 0),
      // Memory right after the measured load, the largest of the rounds.
      rss: Math.max(...x.rounds.map((m) => m.mem.rss)),
      pss: Math.max(...x.rounds.map((m) => m.mem.pss)),
      other: Math.max(...x.rounds.map((m) => m.otherCpu)),
    }));
    rows.push({ kind, urls: items.length, a: sum[0], b: sum[1] });
  }
  const md = [
    `# Hot path A/B (${new Date().toISOString()})`,
    '',
    `A = ${o.dists[0]}, B = ${o.dists[1]}; workers ${o.workers}, wrk -t${o.threads} -c${o.connections}, ${o.rounds} rounds of ${o.duration} s each, alternating A B B A, a fresh server per run; loopback; access logs on.`,
    '',
    mdTable(
      ['kind', 'quiet runs A/B', 'A quiet median req/s', 'B quiet median req/s', 'B/A', 'A quiet CPU µs/req', 'B quiet CPU µs/req', 'B/A CPU'],
      rows.map((r) => {
        const med = (q, f) => (q.length ? median(q.map(f)) : NaN);
        const [ar, br] = [med(r.a.quiet, (m) => m.rps), med(r.b.quiet, (m) => m.rps)];
        const [ac, bc] = [med(r.a.quiet, (m) => m.cpuUs), med(r.b.quiet, (m) => m.cpuUs)];
        return [r.kind, `${r.a.quiet.length}/${r.b.quiet.length}`, f1(ar), f1(br), pct((br / ar - 1) * 100), f1(ac), f1(bc), pct((bc / ac - 1) * 100)];
      }),
    ),
    '',
    `Quiet: other processes used at most ${NOISY_PCT}% of one core during the run. All runs:`,
    '',
    mdTable(
      [
        'kind',
        'URLs',
        'A best req/s',
        'B best req/s',
        'B/A best',
        'A median',
        'B median',
        'B/A median',
        'A CPU µs/req',
        'B CPU µs/req',
        'A RSS / PSS MiB',
        'B RSS / PSS MiB',
        'errors',
        'max other CPU',
      ],
      rows.map((r) => [
        r.kind,
        r.urls,
        r.a.best.toFixed(0),
        r.b.best.toFixed(0),
        pct((r.b.best / r.a.best - 1) * 100),
        r.a.median.toFixed(0),
        r.b.median.toFixed(0),
        pct((r.b.median / r.a.median - 1) * 100),
        f1(r.a.cpu),
        f1(r.b.cpu),
        `${r.a.rss.toFixed(0)} / ${r.a.pss.toFixed(0)}`,
        `${r.b.rss.toFixed(0)} / ${r.b.pss.toFixed(0)}`,
        r.a.errors + r.b.errors,
        `${Math.max(r.a.other, r.b.other).toFixed(0)}%`,
      ]),
    ),
  ].join('\n');
  writeFileSync(path.join(OUT, `ab-${stamp}.md`), `${md}\n`);
  process.stdout.write(`\n${md}\n\nwritten: ${path.relative(REPO, path.join(OUT, `ab-${stamp}.md`))}\n`);
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
