// Building a module zip from a file tree (a repository listing at one commit), as the go command
// does in modfetch/coderepo.go: x/mod's zip.Create over the listed files, whose rules decide which
// files are left out (vendored packages, nested modules, symlinks…) and which make the whole
// version invalid.
import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { canonicalVersion, check as checkModuleVersion, checkFilePath, ModuleError } from '../module/index.js';
import { CollisionChecker } from './collisions.js';
import { hash1Bytes, type HashedName } from './dirhash.js';
import { quote, ZipError } from './errors.js';
import { cleanPath, goLang, isGoModFold, langAtLeast, splitPath } from './gopath.js';
import { resolveLimits, type ZipLimits } from './limits.js';

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

// A fixed timestamp keeps our zips reproducible; the go command ignores times (and writes zero).
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);

/**
 * Writes the module zip of `files` to `out` (deflate, fixed timestamps, no directory entries,
 * entries named `<module>@<version>/<name>`), reading one file at a time and never holding the
 * zip in memory, and returns its h1 (computed from the data as it streams) and its size in bytes.
 * `out` is ended on success and destroyed on failure. Throws ZipError as planModuleZip does, or
 * when a file's stream does not yield its declared size.
 */
export async function writeModuleZip(
  files: ZipSourceFile[],
  opts: ModuleZipOptions,
  out: NodeJS.WritableStream,
): Promise<{ h1: string; size: number }> {
  const plan = planModuleZip(files, opts);
  const prefix = `${opts.modulePath}@${opts.version}/`;
  const zip = new yazl.ZipFile();
  const output = zip.outputStream as PassThrough;
  const hashes: HashedName[] = [];
  let failed = false;
  // The one source being read (yazl pumps entries one after another).
  let current: NodeJS.ReadableStream | undefined;
  const abort = (err: unknown): void => {
    if (failed) return;
    failed = true;
    if (current) release(current);
    output.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  zip.on('error', abort);

  for (const f of plan.include) {
    const entryName = prefix + f.name;
    zip.addReadStreamLazy(
      entryName,
      { compress: true, mtime: FIXED_MTIME, forceDosTimestamp: true, mode: 0o100644, size: f.size },
      (cb) => {
        if (failed) {
          cb(new Error('aborted'), new PassThrough());
          return;
        }
        Promise.resolve()
          .then(() => f.open())
          .then(
            (src) => {
              if (failed) {
                release(src);
                return;
              }
              current = src;
              cb(null, src.pipe(hashing(opts, f, entryName, hashes, abort, src)));
            },
            (err: unknown) => abort(err),
          );
      },
    );
  }
  zip.end();

  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(output, counter, out);
  } catch (err) {
    abort(err);
    throw err;
  }
  return { h1: hash1Bytes(hashes), size };
}

/** Passes a file's bytes on to the zip while hashing them and holding them to the declared size. */
function hashing(
  opts: ModuleZipOptions,
  f: ZipSourceFile,
  entryName: string,
  hashes: HashedName[],
  abort: (err: unknown) => void,
  src: NodeJS.ReadableStream,
): Transform {
  const sha = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      if (n > f.size) {
        done(sizeChanged(opts, f, n));
        return;
      }
      sha.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      if (n !== f.size) {
        done(sizeChanged(opts, f, n));
        return;
      }
      hashes.push({ name: Buffer.from(entryName, 'utf8'), sha256: sha.digest() });
      done();
    },
  });
  // pipe() forwards no errors: either side failing fails the whole zip.
  src.on('error', (err) => {
    t.destroy();
    abort(err);
  });
  t.on('error', (err) => {
    release(src);
    abort(err);
  });
  return t;
}

function release(s: NodeJS.ReadableStream): void {
  const destroy = (s as Partial<Readable>).destroy;
  if (typeof destroy === 'function') destroy.call(s);
}

function sizeChanged(opts: ModuleZipOptions, f: ZipSourceFile, got: number): ZipError {
  const what =
    got > f.size ? `has more than its declared ${f.size} bytes` : `has ${got} bytes, not its declared ${f.size}`;
  return new ZipError(`cannot create module zip for ${opts.modulePath}@${opts.version}: file ${quote(f.name)} ${what}`);
}
