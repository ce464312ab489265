import { vi } from 'vitest';
import { randomBytes } from 'node:crypto';
// Shared by the modzip tests: the Go oracle (test/gotools/modzip), file trees on disk, and a
// byte-level zip writer for zips no well-behaved library would produce.
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { runGoTool } from '../helpers/gotools.js';
import type { ZipSourceFile } from '../../src/modzip/index.js';

export interface GoCheck {
  err: string | null;
  h1: string | null;
  checkErr?: string;
  hashErr?: string;
  unzipErr?: string;
  files?: string[];
}

export interface GoCreate {
  err: string | null;
  h1: string | null;
  files?: string[];
  omitted?: string[];
}

export async function goCheck(zip: string, mod: string, version: string): Promise<GoCheck> {
  return JSON.parse(await runGoTool('modzip', ['check', zip, mod, version])) as GoCheck;
}

/** `files`: zip.Create over every entry (as cmd/go over a git listing); `dir`: zip.CreateFromDir. */
export async function goCreate(how: 'files' | 'dir', dir: string, mod: string, version: string, out: string): Promise<GoCreate> {
  const cmd = how === 'files' ? 'create-files' : 'create';
  return JSON.parse(await runGoTool('modzip', [cmd, dir, mod, version, out])) as GoCreate;
}

export async function goHashZip(zip: string): Promise<{ err: string | null; h1: string | null }> {
  return JSON.parse(await runGoTool('modzip', ['hashzip', zip])) as { err: string | null; h1: string | null };
}

/** A file tree to write for a test: file contents, links, empty folders, sparse files, FIFOs. */
export type TreeNode = string | Buffer | { symlink: string } | { dir: true } | { sparse: number } | { fifo: true };
export type Tree = Record<string, TreeNode>;

/** Writes a tree under root (made if need be). */
export async function writeTree(root: string, tree: Tree): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const [name, node] of Object.entries(tree)) {
    const p = path.join(root, name);
    await mkdir(path.dirname(p), { recursive: true });
    if (typeof node === 'string' || Buffer.isBuffer(node)) await writeFile(p, node);
    else if ('symlink' in node) await symlink(node.symlink, p);
    else if ('dir' in node) await mkdir(p, { recursive: true });
    else if ('sparse' in node) {
      await writeFile(p, '');
      await truncate(p, node.sparse);
    } else await promisify(execFile)('mkfifo', [p]);
  }
  return root;
}

export async function makeTmp(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `gomodproxy-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Lists a directory the way Go's filepath.Walk does (names in byte order, symlinks not followed),
 * as the ZipSourceFile list a git source would produce: every non-directory entry.
 */
export async function listTree(root: string): Promise<ZipSourceFile[]> {
  const out: ZipSourceFile[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await readdir(dir)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const full = path.join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(full);
      if (st.isDirectory()) {
        await walk(full, r);
        continue;
      }
      out.push({
        name: r,
        mode: st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other',
        size: st.size,
        open: () => createReadStream(full),
      });
    }
  };
  await walk(root, '');
  return out;
}

/** The `go` line of a well-formed go.mod, as modfile.ParseLax would report it. */
export function goLineOf(gomod: string): string | undefined {
  return /^go[ \t]+([^\s/]+)[ \t]*(?:\/\/.*)?$/m.exec(gomod)?.[1];
}

export interface RawEntry {
  name: string | Buffer;
  /** Uncompressed contents. */
  data?: Buffer;
  /** 0 (store) or 8 (deflate) or anything else; default 8. */
  method?: number;
  /** Stored bytes to use instead of compressing `data`. */
  payload?: Buffer;
  crc?: number;
  usize?: number;
  csize?: number;
  flags?: number;
  versionMadeBy?: number;
  externalAttrs?: number;
  /** Write a data descriptor (flag 8) after the data, with or without its signature. */
  descriptor?: 'sig' | 'nosig';
  descriptorCrc?: number;
}

/** Writes a zip byte by byte, honouring every override: the only way to make the lies we test. */
export function rawZip(entries: RawEntry[], opts: { comment?: Buffer; trailing?: Buffer } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = typeof e.name === 'string' ? Buffer.from(e.name, 'utf8') : e.name;
    const data = e.data ?? Buffer.alloc(0);
    const method = e.method ?? 8;
    const payload = e.payload ?? (method === 8 ? zlib.deflateRawSync(data) : data);
    const crc = e.crc ?? zlib.crc32(data);
    const usize = e.usize ?? data.length;
    const csize = e.csize ?? payload.length;
    let flags = e.flags ?? 0x800;
    if (e.descriptor) flags |= 0x8;
    const made = e.versionMadeBy ?? (3 << 8) | 20;
    const attrs = e.externalAttrs ?? (0o100644 << 16) >>> 0;

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(e.descriptor ? 0 : crc, 14);
    local.writeUInt32LE(e.descriptor ? 0 : csize, 18);
    local.writeUInt32LE(e.descriptor ? 0 : usize, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    parts.push(local, name, payload);
    let len = local.length + name.length + payload.length;
    if (e.descriptor) {
      const d = Buffer.alloc(e.descriptor === 'sig' ? 16 : 12);
      let o = 0;
      if (e.descriptor === 'sig') {
        d.writeUInt32LE(0x08074b50, 0);
        o = 4;
      }
      d.writeUInt32LE(e.descriptorCrc ?? crc, o);
      d.writeUInt32LE(csize, o + 4);
      d.writeUInt32LE(usize, o + 8);
      parts.push(d);
      len += d.length;
    }

    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(made, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(flags, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt16LE(0, 12);
    c.writeUInt16LE(0x21, 14);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(csize, 20);
    c.writeUInt32LE(usize, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(0, 30);
    c.writeUInt16LE(0, 32);
    c.writeUInt16LE(0, 34);
    c.writeUInt16LE(0, 36);
    c.writeUInt32LE(attrs, 38);
    c.writeUInt32LE(offset, 42);
    central.push(c, name);
    offset += len;
  }
  const cd = Buffer.concat(central);
  const comment = opts.comment ?? Buffer.alloc(0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  end.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...parts, cd, end, comment, opts.trailing ?? Buffer.alloc(0)]);
}

/** A seeded PRNG (mulberry32), so a failing random case can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- zips built entry by entry, shared by the check and stream tests ----

export const MOD = 'example.com/m';
export const VER = 'v1.0.0';
export const P = `${MOD}@${VER}/`;
export const GOMOD = Buffer.from(`module ${MOD}\n\ngo 1.21\n`);

/** An entry of MOD@VER named relative to the module root. */
export const e = (name: string | Buffer, data: string | Buffer = 'x', more: Partial<RawEntry> = {}): RawEntry => ({
  name: typeof name === 'string' ? P + name : Buffer.concat([Buffer.from(P), name]),
  data: typeof data === 'string' ? Buffer.from(data) : data,
  ...more,
});

// Each case: the zip, what our message must mention, and whether x/mod (CheckZip, HashZip, Unzip)
// rejects it too. Where Go accepts, we are deliberately stricter.
export const HOSTILE_ZIPS: [string, () => Buffer, RegExp, boolean][] = [
  ['entry outside the prefix', () => rawZip([e('go.mod', GOMOD), { name: 'other/x.go', data: Buffer.from('x') }]), /does not have prefix/, true],
  ['entry for another version', () => rawZip([{ name: `${MOD}@v1.0.1/a.go`, data: Buffer.from('x') }]), /prefix/, true],
  ['../ path', () => rawZip([e('../x.go')]), /malformed file path|not clean/, true],
  ['not clean path', () => rawZip([e('a/../b.go')]), /not clean/, true],
  ['double slash', () => rawZip([e('a//b.go')]), /not clean/, true],
  ['absolute path', () => rawZip([{ name: `/${P}a.go`, data: Buffer.from('x') }]), /prefix/, true],
  ['leading slash after the prefix', () => rawZip([e('/a.go')]), /malformed file path "\/a\.go"/, true],
  ['backslash', () => rawZip([e('a\\b.go')]), /malformed file path/, true],
  ['duplicate names', () => rawZip([e('a.go', '1'), e('a.go', '2')]), /multiple entries for file "a.go"/, true],
  ['case-colliding names', () => rawZip([e('a.go'), e('A.go')]), /case-insensitive file name collision/, true],
  ['case-colliding directories', () => rawZip([e('x/a.go'), e('X/b.go')]), /case-insensitive file name collision/, true],
  ['file/dir clash', () => rawZip([e('a'), e('a/b.go')]), /both a file and a directory/, true],
  ['file/dir-entry clash', () => rawZip([e('a/', ''), e('a')]), /both a file and a directory/, true],
  ['GO.MOD', () => rawZip([e('GO.MOD', GOMOD)]), /go\.mod files must have lowercase names/, true],
  ['go.mod in a subdirectory', () => rawZip([e('go.mod', GOMOD), e('sub/go.mod', GOMOD)]), /not in module root/, true],
  ['go.mod over 16 MiB (declared)', () => rawZip([e('go.mod', GOMOD, { usize: (16 << 20) + 1 })]), /go\.mod file too large/, true],
  ['LICENSE over 16 MiB (declared)', () => rawZip([e('LICENSE', 'MIT', { usize: (16 << 20) + 1 })]), /LICENSE file too large/, true],
  [
    'total over 500 MiB (declared)',
    () => rawZip([e('a.bin', 'a', { usize: 300 << 20 }), e('b.bin', 'b', { usize: 300 << 20 })]),
    /total uncompressed size of module contents too large/,
    true,
  ],
  ['bad CRC', () => rawZip([e('a.go', 'package a\n', { crc: 0xdeadbeef })]), /bad CRC-32/, true],
  ['bad CRC, stored', () => rawZip([e('a.go', 'package a\n', { crc: 1, method: 0 })]), /bad CRC-32/, true],
  ['bad CRC in the data descriptor', () => rawZip([e('a.go', 'abc', { descriptor: 'sig', descriptorCrc: 7 })]), /data descriptor/, true],
  ['unsupported method', () => rawZip([e('a.go', 'abc', { method: 12, payload: Buffer.from('abc') })]), /unsupported compression method 12/, true],
  ['declared size larger than the data', () => rawZip([e('a.go', 'abc', { usize: 10 })]), /shorter than its declared size/, true],
  ['declared size smaller than the data', () => rawZip([e('a.go', 'abcdef', { usize: 3 })]), /larger than its declared size/, true],
  ['stored sizes disagree', () => rawZip([e('a.go', 'abcdef', { method: 0, usize: 3 })]), /./, true],
  [
    'truncated deflate stream',
    () => rawZip([e('a.go', randomBytes(5000), { payload: zlib.deflateRawSync(randomBytes(5000)).subarray(0, 100) })]),
    /corrupt compressed data|declared/,
    true,
  ],
  ['garbage deflate stream', () => rawZip([e('a.go', 'abc', { payload: Buffer.from([0xff, 0xff, 0xff, 0xff]) })]), /corrupt compressed data/, true],
  ['directory entry with contents', () => rawZip([e('d/', 'data', { method: 0 })]), /directory with contents/, true],
  ['non-UTF-8 name', () => rawZip([e(Buffer.from([0x61, 0xff, 0x2e, 0x67, 0x6f]))]), /UTF-8/, true],
  ['name starting with a byte order mark', () => rawZip([{ name: `\ufeff${P}a.go`, data: Buffer.from('x') }]), /prefix/, true],
  ['name with a newline', () => rawZip([e('a\nb.go')]), /malformed file path/, true],
  ['name with a line separator', () => rawZip([e('a\u2028b.go')]), /malformed file path/, true],
  ['encrypted flag', () => rawZip([e('a.go', 'abc', { flags: 0x801 })]), /encrypted/, false],
  ['symlink entry', () => rawZip([e('a.go', '/etc/passwd', { externalAttrs: (0o120777 << 16) >>> 0 })]), /symbolic link/, false],
  ['fifo entry', () => rawZip([e('a.go', '', { externalAttrs: (0o010644 << 16) >>> 0 })]), /not a regular file/, false],
  ['HTML instead of a zip', () => Buffer.from('<!DOCTYPE html>\n<html><body>404 page not found</body></html>\n'), /not a zip file/, true],
  ['empty file', () => Buffer.alloc(0), /not a zip file/, true],
  ['garbage', () => randomBytes(4096), /not a zip file/, true],
];

/** A zip damaged at random, half the time in its end records, where the directory and its fields live. */
export function mutate(seed: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(seed);
  if (b.length < 8) return Buffer.concat([b, randomBytesFrom(rand, 1 + Math.floor(rand() * 30))]);
  const pos = (): number => (rand() < 0.5 ? Math.floor(b.length * 0.75 + rand() * b.length * 0.25) : Math.floor(rand() * b.length));
  if (rand() < 0.4) {
    // A header field: local headers and descriptors matter as much as the central directory here.
    const records: [number, number][] = [];
    for (let i = 0; i + 4 <= b.length; i++) {
      if (b[i] !== 0x50 || b[i + 1] !== 0x4b) continue;
      const len = { 0x02014b50: 46, 0x04034b50: 30, 0x06054b50: 22, 0x06064b50: 56, 0x07064b50: 20, 0x08074b50: 16 }[b.readUInt32LE(i)];
      if (len !== undefined) records.push([i, len]);
    }
    if (records.length > 0) {
      const [at, len] = records[Math.floor(rand() * records.length)] as [number, number];
      const off = at + 4 + 2 * Math.floor(rand() * ((len - 4) / 2));
      if (off + 2 <= b.length) {
        const edge = [0, 1, 2, 8, 0x800, 0x808, 0xffff, 0x0314, 0x1314, 0xa1ff, 0x8000, (b.readUInt16LE(off) + 1) & 0xffff];
        b.writeUInt16LE(edge[Math.floor(rand() * edge.length)] as number, off);
      }
      return b;
    }
  }
  switch (Math.floor(rand() * 6)) {
    case 0: {
      for (let i = 0, k = 1 + Math.floor(rand() * 3); i < k; i++) b[Math.min(pos(), b.length - 1)] = Math.floor(rand() * 256);
      return b;
    }
    case 1: {
      const p = Math.min(pos(), b.length - 1);
      b[p] = (b[p] as number) ^ (1 << Math.floor(rand() * 8));
      return b;
    }
    case 2:
      return b.subarray(0, Math.floor(rand() * b.length));
    case 3: {
      const p = Math.min(pos(), b.length - 4);
      const edge = [0, 1, 0xff, 0xffff, 0xffffffff, 0x7fffffff, 0x10000, (b.readUInt32LE(p) + 1) >>> 0];
      b.writeUInt32LE(edge[Math.floor(rand() * edge.length)] as number, p);
      return b;
    }
    case 4: {
      const p = pos();
      const len = 1 + Math.floor(rand() * 8);
      return rand() < 0.5
        ? Buffer.concat([b.subarray(0, p), randomBytesFrom(rand, len), b.subarray(p)])
        : Buffer.concat([b.subarray(0, p), b.subarray(p + len)]);
    }
    default: {
      const p = Math.min(pos(), b.length - 2);
      const edge = [0, 1, 0xffff, 8, 0x0800, 0x0808, 0x0809];
      b.writeUInt16LE(edge[Math.floor(rand() * edge.length)] as number, p);
      return b;
    }
  }
}

export function randomBytesFrom(rand: () => number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/**
 * Runs f while counting every byte zlib inflates, to prove a bomb was not expanded: `inflated`,
 * what streams and one-call inflates delivered; `capped`, what one-call inflates produced before
 * stopping at their maxOutputLength (work done, nothing delivered).
 */
export async function countInflated<T>(f: () => Promise<T>): Promise<{ inflated: number; capped: number; result: T }> {
  let inflated = 0;
  let capped = 0;
  const realStream = zlib.createInflateRaw;
  const realSync = zlib.inflateRawSync;
  const s1 = vi.spyOn(zlib, 'createInflateRaw').mockImplementation((o) => {
    const s = realStream(o);
    const push = s.push.bind(s);
    s.push = (chunk: unknown, enc?: BufferEncoding) => {
      if (Buffer.isBuffer(chunk)) inflated += chunk.length;
      return push(chunk, enc);
    };
    return s;
  });
  const s2 = vi.spyOn(zlib, 'inflateRawSync').mockImplementation((buf, o) => {
    let r: Buffer | { buffer: Buffer };
    try {
      r = realSync(buf, o) as unknown as Buffer | { buffer: Buffer };
    } catch (err) {
      // Stopped at maxOutputLength: zlib produced that much before giving up.
      if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') capped += o?.maxOutputLength ?? 0;
      throw err;
    }
    inflated += Buffer.isBuffer(r) ? r.length : r.buffer.length;
    return r as ReturnType<typeof realSync>;
  });
  try {
    const result = await f();
    return { inflated, capped, result };
  } finally {
    s1.mockRestore();
    s2.mockRestore();
  }
}

/**
 * Runs f while counting the bytes read from files through FileHandle.read, which is how the zip
 * reader and StreamingZipCheck.finish() read (to prove what a check did not read again).
 */
export async function countFileReads<T>(f: () => Promise<T>): Promise<{ bytesRead: number; result: T }> {
  const probe = await open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number }> };
  await probe.close();
  const real = proto.read;
  let bytesRead = 0;
  const spy = vi.spyOn(proto, 'read').mockImplementation(async function (this: unknown, ...args: unknown[]) {
    const r = await real.apply(this, args);
    bytesRead += r.bytesRead;
    return r;
  });
  try {
    const result = await f();
    return { bytesRead, result };
  } finally {
    spy.mockRestore();
  }
}
