// Shared by the modzip tests: the Go oracle (test/gotools/modzip), file trees on disk, and a
// byte-level zip writer for zips no well-behaved library would produce.
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
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
export async function goCreate(
  how: 'files' | 'dir',
  dir: string,
  mod: string,
  version: string,
  out: string,
): Promise<GoCreate> {
  const cmd = how === 'files' ? 'create-files' : 'create';
  return JSON.parse(await runGoTool('modzip', [cmd, dir, mod, version, out])) as GoCreate;
}

export async function goHashZip(zip: string): Promise<{ err: string | null; h1: string | null }> {
  return JSON.parse(await runGoTool('modzip', ['hashzip', zip])) as { err: string | null; h1: string | null };
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
