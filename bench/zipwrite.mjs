#!/usr/bin/env node
// Module zip writing speed (writeModuleZip, what a git source uses for every .zip it builds),
// without git or the network: the files come from memory in 64 KiB chunks, as a pipe would
// give them, and the zip goes to a sink that takes every chunk on the next tick.
//
//   npm run build && node bench/zipwrite.mjs [--runs 15] [--dist dist,other/dist]
//
// --dist names builds to compare (default dist/): their runs alternate, so that a busy machine
// weighs on each alike. Cases (each the median of --runs, after two unmeasured runs):
//   small   400 files of 8 KiB, source-code-like text (a typical module)
//   large   50 MB: 25 files of 2 MB, text and random bytes alternating (the streamed path)
// and beside them the floor: zlib.deflateRawSync + crc32 + sha256 of the same files, nothing else.
// MB/s is uncompressed input per second of wall time; cpu is the process's user+system time
// (thread-pool compression included), less sensitive to other load on the machine.
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const RUNS = Number(opt('runs', 15));
const builds = [];
for (const d of opt('dist', 'dist').split(',')) {
  const { writeModuleZip } = await import(path.resolve(REPO, d, 'modzip', 'index.js'));
  builds.push({ label: d, writeModuleZip });
}

// Source-like text that deflates about 2:1, harder than most Go code (a seeded PRNG keeps runs
// comparable).
let seed = 12345;
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const words = `func return if else for range err nil := = { } ( ) ; , . package import type struct interface
  string int byte error ctx context.Context fmt.Errorf bytes.Buffer len cap make append
  // the of to and a in is that for it with as`.split(/\s+/);
const ident = () => Array.from({ length: 3 + Math.floor(rand() * 8) }, () => String.fromCharCode(97 + Math.floor(rand() * 26))).join('');
function text(n) {
  let s = '';
  while (s.length < n) {
    const line = [];
    const k = 2 + Math.floor(rand() * 10);
    for (let j = 0; j < k; j++) line.push(rand() < 0.6 ? words[Math.floor(rand() * words.length)] : ident());
    s += '\t'.repeat(Math.floor(rand() * 3)) + line.join(' ') + '\n';
  }
  return Buffer.from(s.slice(0, n));
}

function source(name, data) {
  return {
    name,
    mode: 'file',
    size: data.length,
    open: () => {
      const chunks = [];
      for (let o = 0; o < data.length; o += 64 << 10) chunks.push(data.subarray(o, o + (64 << 10)));
      return Readable.from(chunks, { objectMode: false });
    },
  };
}

const small = [source('go.mod', Buffer.from('module example.com/m\n\ngo 1.22\n'))];
for (let k = 0; k < 399; k++) small.push(source(`pkg${k % 20}/file${k}.go`, text(8 << 10)));
const large = [source('go.mod', Buffer.from('module example.com/m\n\ngo 1.22\n'))];
for (let k = 0; k < 25; k++) large.push(source(`data/blob${k}.bin`, k % 2 ? randomBytes(2e6) : text(2e6)));

function sink() {
  return new Writable({
    highWaterMark: 64 << 10,
    write(_chunk, _enc, cb) {
      setImmediate(cb);
    },
  });
}

const opts = { modulePath: 'example.com/m', version: 'v1.0.0' };
const writer = (b) => async (files) => {
  const r = await b.writeModuleZip(files, opts, sink());
  return r.size;
};
function floor(files) {
  for (const f of files) {
    const data = dataOf.get(f);
    zlib.deflateRawSync(data);
    zlib.crc32(data);
    createHash('sha256').update(data).digest();
  }
  return 0;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bytes = (files) => files.reduce((n, f) => n + f.size, 0);
async function bench(label, files, runners) {
  for (const r of runners) for (let k = 0; k < 2; k++) await r.run(files);
  const res = runners.map(() => ({ ms: [], cpu: [], size: 0 }));
  for (let k = 0; k < RUNS; k++) {
    for (const [j, r] of runners.entries()) {
      const c0 = process.cpuUsage();
      const t = process.hrtime.bigint();
      res[j].size = await r.run(files);
      res[j].ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      const c = process.cpuUsage(c0);
      res[j].cpu.push((c.user + c.system) / 1000);
    }
  }
  const mb = bytes(files) / 1e6;
  for (const [j, r] of runners.entries()) {
    const m = median(res[j].ms);
    console.log(
      `${label.padEnd(6)} ${r.label.padEnd(22)} ${String(files.length).padStart(4)} files ${mb.toFixed(1).padStart(5)} MB  ` +
        `median ${m.toFixed(1).padStart(7)} ms  min ${Math.min(...res[j].ms)
          .toFixed(1)
          .padStart(7)} ms  ` +
        `cpu ${median(res[j].cpu).toFixed(1).padStart(7)} ms  ${(mb / (m / 1000)).toFixed(0).padStart(4)} MB/s` +
        (res[j].size ? `  zip ${(res[j].size / 1e6).toFixed(2)} MB` : ''),
    );
  }
}

// The floor needs the files' bytes; keep them beside the sources.
const dataOf = new Map();
for (const f of [...small, ...large]) {
  const chunks = [];
  for await (const c of f.open()) chunks.push(c);
  dataOf.set(f, Buffer.concat(chunks));
}

const runners = builds.map((b) => ({ label: b.label, run: writer(b) }));
await bench('small', small, [...runners, { label: 'floor (deflate+crc+sha)', run: floor }]);
await bench('large', large, [...runners, { label: 'floor (deflate+crc+sha)', run: floor }]);
