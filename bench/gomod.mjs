#!/usr/bin/env node
// go.mod parsing speed (parseGoMod, run on every .mod the proxy stores), without the network.
// Moved here from test/module/gomod.test.ts, which asserted a time and so failed on busy
// machines; the test now checks that a big file parses whole, and this script says how fast.
//
//   npm run build && node bench/gomod.mjs [--runs 15] [--dist dist,other/dist]
//
// --dist names builds to compare (default dist/): their runs alternate, so that a busy machine
// weighs on each alike. Cases (each the median of --runs, after two unmeasured runs):
//   require2k   a 2000-line require block, a third of the lines "// indirect" (a big module's go.mod)
//   small       a typical go.mod: a dozen requires, a replace, a retract, comments
// ms is wall time per parse; cpu the process's user+system time per parse.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const RUNS = Number(opt('runs', 15));
const builds = [];
for (const d of opt('dist', 'dist').split(',')) {
  const { parseGoMod } = await import(path.resolve(REPO, d, 'module', 'index.js'));
  builds.push({ label: d, parseGoMod });
}

const line = (i) => `\texample.com/dep${i} v1.${i}.0${i % 3 === 0 ? ' // indirect' : ''}`;
const cases = [
  {
    name: 'require2k',
    data: Buffer.from(`module m\ngo 1.21\nrequire (\n${Array.from({ length: 2000 }, (_, i) => line(i)).join('\n')}\n)\n`),
    reps: 10,
  },
  {
    name: 'small',
    data: Buffer.from(
      [
        '// Package m does things.',
        'module example.com/m',
        '',
        'go 1.22',
        '',
        'require (',
        ...Array.from({ length: 12 }, (_, i) => line(i)),
        ')',
        '',
        'replace example.com/dep3 => ../dep3',
        '',
        'retract v1.0.1 // published by mistake',
        '',
      ].join('\n'),
    ),
    reps: 2000,
  },
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const results = new Map();
for (const c of cases) for (const b of builds) results.set(`${c.name} ${b.label}`, { wall: [], cpu: [] });
for (let r = -2; r < RUNS; r++) {
  for (const c of cases) {
    for (const b of builds) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < c.reps; i++) b.parseGoMod(c.data);
      const wall = (performance.now() - t0) / c.reps;
      const u = process.cpuUsage(c0);
      if (r < 0) continue;
      const res = results.get(`${c.name} ${b.label}`);
      res.wall.push(wall);
      res.cpu.push((u.user + u.system) / 1000 / c.reps);
    }
  }
}

console.log(`go.mod parse, median of ${RUNS} runs`);
console.log('case       build                 bytes     ms/parse  cpu ms/parse');
for (const c of cases) {
  for (const b of builds) {
    const res = results.get(`${c.name} ${b.label}`);
    console.log(
      `${c.name.padEnd(10)} ${b.label.padEnd(20)} ${String(c.data.length).padStart(7)} ${median(res.wall).toFixed(4).padStart(12)} ${median(res.cpu).toFixed(4).padStart(13)}`,
    );
  }
}
