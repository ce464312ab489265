#!/usr/bin/env node
// What checking a module zip costs after its last byte has arrived: StreamingZipCheck (pushes as
// the bytes come, then finish()) against checkModuleZip on the finished file. Moved here from
// test/modzip/stream.test.ts, which compared the two times and so failed on busy machines; the
// test now checks the work itself (finish() reads only the end records and inflates nothing).
//
//   npm run build && node bench/zipcheck.mjs [--runs 7] [--dist dist,other/dist]
//
// --dist names builds to compare (default dist/): their runs alternate, so that a busy machine
// weighs on each alike. Zips are written by writeModuleZip (no Go needed):
//   3mib     450 source files of 4-16 KB and six 200 KB random blobs (a typical larger module)
//   50mb     20 x 2 MB random, 20 x 2 MB source-like text, 400 source files (the streamed path)
//   65536f   65536 tiny files (zip64 end records; sorting and hashing the names is the tail work)
// Each figure is the median of --runs, after two unmeasured runs:
//   tail ms        from the last push() to finish() resolving: what a client waits for
//   full ms        checkModuleZip on the file, wall (the same wait without streaming)
//   push+fin cpu   the process's user+system time for all pushes and finish()
//   full cpu       the same for checkModuleZip
//   loop max ms    the longest event-loop delay while pushing (other requests wait this long)
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const RUNS = Number(opt('runs', 7));
const builds = [];
for (const d of opt('dist', 'dist').split(',')) {
  builds.push({ label: d, ...(await import(path.resolve(REPO, d, 'modzip', 'index.js'))) });
}
const MOD = 'example.com/bench';
const VER = 'v1.0.0';

// A seeded PRNG keeps the zips comparable between runs and builds.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Source-code-like text that deflate shrinks about as much as Go source (4 to 5 times). */
function sourceText(rand, size) {
  const words =
    'func return if else for range err nil := = { } ( ) ; , . package import type struct interface string int byte error ctx fmt.Errorf len append // the of to and a in is'.split(
      ' ',
    );
  const idents = Array.from({ length: 300 }, (_, i) => `${'abcdefghijklmnopqrstuvwxyz'[i % 26]}${Math.floor(rand() * 2 ** 30).toString(36)}`);
  const parts = [];
  let len = 0;
  while (len < size) {
    const line = [];
    for (let j = 2 + Math.floor(rand() * 10); j > 0; j--)
      line.push(rand() < 0.6 ? words[Math.floor(rand() * words.length)] : idents[Math.floor(rand() * idents.length)]);
    const s = `${'\t'.repeat(Math.floor(rand() * 3))}${line.join(' ')}\n`;
    parts.push(s);
    len += s.length;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

const mem = (name, data) => ({ name, mode: 'file', size: data.length, open: () => Readable.from([data]) });
const gomod = () => mem('go.mod', Buffer.from(`module ${MOD}\n\ngo 1.22\n`));

const modules = {
  '3mib': () => {
    const rand = rng(3);
    const files = [];
    for (let i = 0; i < 450; i++) files.push(mem(`pkg${i % 20}/file${i}.go`, sourceText(rand, 4000 + Math.floor(rand() * 12000))));
    for (let i = 0; i < 6; i++) files.push(mem(`testdata/blob${i}.bin`, randomBytes(200_000)));
    return [...files, gomod()];
  },
  '50mb': () => {
    const rand = rng(50);
    const files = [];
    for (let i = 0; i < 20; i++) files.push(mem(`data/r${i}.bin`, randomBytes(2_000_000)));
    for (let i = 0; i < 20; i++) files.push(mem(`text/t${i}.txt`, sourceText(rand, 2_000_000)));
    for (let i = 0; i < 400; i++) files.push(mem(`pkg${i % 20}/file${i}.go`, sourceText(rand, 4000 + Math.floor(rand() * 12000))));
    return [...files, gomod()];
  },
  '65536f': () => Array.from({ length: 65536 }, (_, i) => mem(`d${i >> 10}/f${i}`, Buffer.from(`f${i}\n`))),
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cpuMs = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

async function once(b, zip, data, want) {
  let c0 = process.cpuUsage();
  let t0 = performance.now();
  await b.checkModuleZip(zip, MOD, VER);
  const fullWall = performance.now() - t0;
  const fullCpu = cpuMs(c0);

  // As from the network: 64 KiB chunks, each awaited.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const s = new b.StreamingZipCheck(MOD, VER);
  c0 = process.cpuUsage();
  const CHUNK = 64 << 10;
  let last = 0;
  for (let i = 0; i < data.length; i += CHUNK) {
    if (i + CHUNK >= data.length) last = performance.now();
    await s.push(data.subarray(i, i + CHUNK));
  }
  const got = await s.finish(zip);
  const end = performance.now();
  loop.disable();
  if (s.usedFallback) throw new Error(`${b.label}: finish() fell back: ${s.fallbackReason}`);
  if (got.h1 !== want.h1) throw new Error(`${b.label}: finish() disagrees with checkModuleZip`);
  return { tail: end - last, fullWall, pushCpu: cpuMs(c0), fullCpu, loopMax: loop.max / 1e6 };
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'gmp-bench-zipcheck-'));
try {
  console.log(`module zip check after the last byte, median of ${RUNS} runs (64 KiB pushes)`);
  console.log('module  build                  MiB    tail ms    full ms  push+fin cpu  full cpu  loop max ms');
  for (const [name, make] of Object.entries(modules)) {
    const zip = path.join(tmp, `${name}.zip`);
    const out = createWriteStream(zip);
    await builds[0].writeModuleZip(make(), { modulePath: MOD, version: VER, goVersion: '1.22' }, out);
    await finished(out);
    const data = await readFile(zip);
    const want = await builds[0].checkModuleZip(zip, MOD, VER);
    const results = new Map(builds.map((b) => [b.label, []]));
    for (let r = -2; r < RUNS; r++) {
      for (const b of builds) {
        const x = await once(b, zip, data, want);
        if (r >= 0) results.get(b.label).push(x);
      }
    }
    for (const b of builds) {
      const xs = results.get(b.label);
      const m = (k) => median(xs.map((x) => x[k])).toFixed(1);
      console.log(
        `${name.padEnd(7)} ${b.label.padEnd(20)} ${(data.length / 2 ** 20).toFixed(1).padStart(5)} ${m('tail').padStart(10)} ${m('fullWall').padStart(10)} ${m('pushCpu').padStart(13)} ${m('fullCpu').padStart(9)} ${m('loopMax').padStart(12)}`,
      );
    }
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
