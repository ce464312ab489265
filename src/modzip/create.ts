// Building a module zip from a file tree (a repository listing at one commit), as the go command
// does in modfetch/coderepo.go: x/mod's zip.Create over the listed files, whose rules decide which
// files are left out (vendored packages, nested modules, symlinks…) and which make the whole
// version invalid.
import { createHash, hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { canonicalVersion, check as checkModuleVersion, checkFilePath, ModuleError } from '../module/index.js';
import { CollisionChecker } from './collisions.js';
import { hash1Bytes, type HashedName } from './dirhash.js';
import { quote, ZipError } from './errors.js';
import { cleanPath, goLang, isGoModFold, langAtLeast, splitPath } from './gopath.js';
import { resolveLimits, type ZipLimits } from './limits.js';
import { deflateSmall, METHOD_DEFLATE, METHOD_STORE, SegmentDeflater, ZipWriter } from './zipwriter.js';

/** One entry of a module's file tree. */
export interface ZipSourceFile {
  /** Path relative to the module root, slash-separated. */
  name: string;
  /** What the tree says it is: only regular files go into a zip; symlinks and others are left out. */
  mode: 'file' | 'symlink' | 'other';
  /** Size in bytes of a regular file's contents; the stream from open() must yield exactly this many. */
  size: number;
  open(): NodeJS.ReadableStream | Promise<NodeJS.ReadableStream>;
}

export interface ModuleZipOptions {
  modulePath: string;
  version: string;
  /**
   * The root go.mod's `go` version (e.g. "1.24" or "1.21.3", without "go"), which decides the
   * vendor-directory rules. Pass undefined when the go.mod has no `go` line or does not parse
   * (x/mod reads it with modfile.ParseLax and treats any error as "no version"). It is ignored
   * when the list has no regular file named exactly "go.mod", as x/mod ignores such a go.mod.
   */
  goVersion?: string;
  limits?: ZipLimits;
}

export interface OmittedFile {
  name: string;
  reason: string;
}

export interface ZipPlan {
  /** The files that go into the zip, in the order given. */
  include: ZipSourceFile[];
  /** Files left out, with x/mod's reason. */
  omitted: OmittedFile[];
}

// x/mod's wording for omitted files.
const VENDORED = 'file is in vendor directory';
const SUBMODULE = 'file is in another module';
const HG_ARCHIVAL = "file is inserted by 'hg archive' and is always omitted";
const SYMLINK = 'file is a symbolic link';
const NOT_REGULAR = 'not a regular file';

/**
 * x/mod's isVendoredPackage, including its version-dependent quirks: before go 1.24 every file
 * below a nested vendor directory counts as vendored (an indexing bug kept for checksum
 * stability), and vendor/modules.txt is only left out from go 1.24 on.
 */
export function isVendoredPackage(name: string, goLangVersion: string): boolean {
  const from124 = langAtLeast(goLangVersion, 1, 24);
  if (from124 && name === 'vendor/modules.txt') return true;
  let i: number;
  if (name.startsWith('vendor/')) {
    i = 'vendor/'.length;
  } else {
    const j = name.indexOf('/vendor/');
    if (j < 0) return false;
    i = from124 ? j + '/vendor/'.length : '/vendor/'.length;
  }
  return name.slice(i).includes('/');
}

/**
 * Decides which files of a module tree go into its zip, applying zip.Create's checks in their
 * order. The list is what cmd/go hands to zip.Create: for a module in a subdirectory of its
 * repository without a LICENSE of its own, the caller appends the repository root's LICENSE
 * (as "LICENSE", last), as coderepo.go does. Throws ZipError when the tree cannot make a valid module zip (a file that is invalid
 * rather than omitted, or a size limit exceeded); the message names module@version and the
 * first problem.
 */
export function planModuleZip(files: ZipSourceFile[], opts: ModuleZipOptions): ZipPlan {
  const lim = resolveLimits(opts.limits);
  const where = `${opts.modulePath}@${opts.version}`;
  const fail = (cause: string, err?: unknown): ZipError =>
    new ZipError(`cannot create module zip for ${where}: ${cause}`, err === undefined ? undefined : { cause: err });

  const canon = canonicalVersion(opts.version);
  if (canon !== opts.version) throw fail(`version ${quote(opts.version)} is not canonical (should be ${quote(canon)})`);
  try {
    checkModuleVersion(opts.modulePath, opts.version);
  } catch (err) {
    if (err instanceof ModuleError) throw fail(err.message, err);
    throw err;
  }

  // Directories holding a go.mod (any case, regular files only) are other modules.
  const haveGoMod = new Set<string>();
  let rootGoMod = false;
  for (const f of files) {
    const [dir, base] = splitPath(f.name);
    if (f.mode === 'file' && isGoModFold(base)) {
      haveGoMod.add(dir);
      if (dir === '' && base === 'go.mod') rootGoMod = true;
    }
  }
  const lang = rootGoMod ? goLang(opts.goVersion) : '';
  const inSubmodule = (p: string): boolean => {
    for (;;) {
      const dir = splitPath(p)[0];
      if (dir === '') return false;
      if (haveGoMod.has(dir)) return true;
      p = dir.slice(0, -1);
    }
  };

  const include: ZipSourceFile[] = [];
  const omitted: OmittedFile[] = [];
  const invalid: string[] = [];
  const seen = new Set<string>();
  // x/mod records only the first problem of each path.
  const omit = (p: string, reason: string): void => {
    if (seen.has(p)) return;
    seen.add(p);
    omitted.push({ name: p, reason });
  };
  const reject = (p: string, reason: string): void => {
    if (seen.has(p)) return;
    seen.add(p);
    invalid.push(reason);
  };
  const collisions = new CollisionChecker();
  let remaining = lim.maxTotalSize;
  let sizeError: string | undefined;

  for (const f of files) {
    const p = f.name;
    if (p !== cleanPath(p)) {
      reject(p, `file ${quote(p)}: file path is not clean`);
      continue;
    }
    if (p.startsWith('/')) {
      reject(p, `file ${quote(p)}: file path is not relative`);
      continue;
    }
    if (isVendoredPackage(p, lang)) {
      omit(p, VENDORED);
      continue;
    }
    if (inSubmodule(p)) {
      omit(p, SUBMODULE);
      continue;
    }
    if (p === '.hg_archival.txt') {
      omit(p, HG_ARCHIVAL);
      continue;
    }
    try {
      checkFilePath(p);
    } catch (err) {
      if (!(err instanceof ModuleError)) throw err;
      reject(p, err.message);
      continue;
    }
    if (p !== 'go.mod' && p.length === 6 && isGoModFold(p)) {
      reject(p, `file ${quote(p)}: go.mod files must have lowercase names`);
      continue;
    }
    const clash = collisions.check(p, false);
    if (clash !== undefined) {
      reject(p, clash);
      continue;
    }
    if (f.mode === 'symlink') {
      omit(p, SYMLINK);
      continue;
    }
    if (f.mode !== 'file') {
      omit(p, NOT_REGULAR);
      continue;
    }
    const size = f.size;
    if (size >= 0 && size <= remaining) {
      remaining -= size;
    } else if (sizeError === undefined) {
      sizeError = `module source tree too large (max size is ${lim.maxTotalSize} bytes)`;
    }
    if (p === 'go.mod' && size > lim.maxGoModSize) {
      reject(p, `go.mod file too large (max size is ${lim.maxGoModSize} bytes)`);
      continue;
    }
    if (p === 'LICENSE' && size > lim.maxLicenseSize) {
      reject(p, `LICENSE file too large (max size is ${lim.maxLicenseSize} bytes)`);
      continue;
    }
    include.push(f);
  }
  if (sizeError !== undefined) throw fail(sizeError);
  if (invalid.length > 0) {
    const more = invalid.length - 1;
    throw fail(`${invalid[0]}${more > 0 ? ` (and ${more} more problem${more > 1 ? 's' : ''})` : ''}`);
  }
  return { include, omitted };
}

/** Files up to this size are read whole and deflated in one call; bigger ones are streamed. */
const SMALL_FILE = 256 << 10;

/**
 * Writes the module zip of `files` to `out` (deflate, or store where deflate gains nothing;
 * fixed timestamps, no directory entries, entries named `<module>@<version>/<name>`), reading
 * one file at a time and never holding the zip in memory, and returns its h1 (computed from the
 * data as it streams) and its size in bytes. A small file is held whole while it is compressed;
 * a large one passes through in segments of a megabyte. `out`'s backpressure is respected.
 * `out` is ended on success and destroyed on failure. Throws ZipError as planModuleZip does, or
 * when a file's stream does not yield its declared size; a source's own error is passed on.
 */
export async function writeModuleZip(files: ZipSourceFile[], opts: ModuleZipOptions, out: NodeJS.WritableStream): Promise<{ h1: string; size: number }> {
  const w = new ZipWriter(out);
  // The one source being read (the next is opened only once this one is consumed: a git
  // source may serve every file from one `git cat-file --batch`, in order).
  let src: NodeJS.ReadableStream | undefined;
  try {
    const plan = planModuleZip(files, opts);
    const prefix = `${opts.modulePath}@${opts.version}/`;
    const hashes: HashedName[] = [];
    for (const f of plan.include) {
      const name = Buffer.from(prefix + f.name, 'utf8');
      if (name.length > 0xffff) {
        throw new ZipError(`cannot create module zip for ${opts.modulePath}@${opts.version}: file ${quote(f.name)}: name too long for a zip file`);
      }
      // A failed output stops the work before another file is opened.
      w.check();
      src = await f.open();
      const sha256 = f.size <= SMALL_FILE ? await addSmall(w, name, src, f, opts) : await addStreamed(w, name, src, f, opts);
      src = undefined;
      hashes.push({ name, sha256 });
    }
    const size = await w.finish();
    return { h1: hash1Bytes(hashes), size };
  } catch (err) {
    if (src) release(src);
    w.abort(err);
    throw err;
  }
}

/** A small file: read whole, hashed, deflated (or stored) and written with its sizes up front. */
async function addSmall(w: ZipWriter, name: Buffer, src: NodeJS.ReadableStream, f: ZipSourceFile, opts: ModuleZipOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    const b = asBuffer(c);
    n += b.length;
    // Leaving the loop destroys the source: nothing more is read from it.
    if (n > f.size) throw sizeChanged(opts, f, n);
    chunks.push(b);
  }
  if (n !== f.size) throw sizeChanged(opts, f, n);
  const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, n);
  const deflated = deflateSmall(data);
  if (deflated) await w.addEntry(name, METHOD_DEFLATE, zlib.crc32(data), deflated, n);
  else await w.addEntry(name, METHOD_STORE, zlib.crc32(data), data, n);
  return hash('sha256', data, 'buffer');
}

/** A large file: deflated as it is read, its CRC-32 and sizes in a data descriptor after it. */
async function addStreamed(w: ZipWriter, name: Buffer, src: NodeJS.ReadableStream, f: ZipSourceFile, opts: ModuleZipOptions): Promise<Buffer> {
  await w.startStreamed(name);
  const deflater = new SegmentDeflater((b) => w.data(b));
  const sha = createHash('sha256');
  let crc = 0;
  let n = 0;
  for await (const c of src) {
    const b = asBuffer(c);
    n += b.length;
    if (n > f.size) throw sizeChanged(opts, f, n);
    sha.update(b);
    crc = zlib.crc32(b, crc);
    await deflater.write(b);
  }
  if (n !== f.size) throw sizeChanged(opts, f, n);
  await deflater.end();
  await w.endStreamed(crc, n);
  return sha.digest();
}

function asBuffer(c: string | Buffer | Uint8Array): Buffer {
  if (Buffer.isBuffer(c)) return c;
  return typeof c === 'string' ? Buffer.from(c, 'utf8') : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

function release(s: NodeJS.ReadableStream): void {
  const destroy = (s as Partial<Readable>).destroy;
  if (typeof destroy === 'function') destroy.call(s);
}

function sizeChanged(opts: ModuleZipOptions, f: ZipSourceFile, got: number): ZipError {
  const what = got > f.size ? `has more than its declared ${f.size} bytes` : `has ${got} bytes, not its declared ${f.size}`;
  return new ZipError(`cannot create module zip for ${opts.modulePath}@${opts.version}: file ${quote(f.name)} ${what}`);
}
