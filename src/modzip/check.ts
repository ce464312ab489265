// Checking an untrusted module zip (from an upstream proxy) before it is stored or served: every
// rule of x/mod's zip.CheckZip, plus what the go command only finds out when it hashes and
// unzips (methods, declared sizes, CRCs), plus refusing symlinks. The zip's h1 comes out of the
// same single pass over the data.
import { createHash } from 'node:crypto';
import { canonicalVersion, check as checkModuleVersion, checkFilePath, ModuleError } from '../module/index.js';
import { CollisionChecker } from './collisions.js';
import { hash1Bytes, type HashedName } from './dirhash.js';
import { quote, ZipError } from './errors.js';
import { cleanPath, isGoModFold, splitPath } from './gopath.js';
import { resolveLimits, type ResolvedLimits, type ZipLimits } from './limits.js';
import { isEncrypted, isSystemError, OpenZip, unixFileType, ZipFormatError, type RawEntry } from './zipreader.js';

export interface CheckedZip {
  /** The zip's `h1:` hash, as dirhash.HashZip computes it (what go.sum and the checksum database hold). */
  h1: string;
  /** Number of file entries (directory entries are not counted). */
  files: number;
  /** Total declared (and verified) uncompressed size of the files, in bytes. */
  uncompressedSize: number;
  hasGoMod: boolean;
  /** The root go.mod's contents, when there is one (at most 16 MiB by the rules above). */
  goMod?: Buffer;
}

export const EMPTY_SHA256 = createHash('sha256').digest();
const S_IFREG = 0o100000;

/**
 * Checks that the zip file at `zipPath` is a valid module zip for modulePath@version that the go
 * command would accept, and computes its h1. Reads the file as a stream (never a whole entry in
 * memory, except go.mod) and stops early on the first entry whose data misbehaves, without
 * inflating more than its declared size.
 *
 * Throws ZipError (one-line message naming module@version and the cause) for anything wrong with
 * the zip; other errors (the file cannot be opened, EIO) are passed through.
 */
export async function checkModuleZip(zipPath: string, modulePath: string, version: string, limits?: ZipLimits): Promise<CheckedZip> {
  const lim = resolveLimits(limits);
  const invalid = invalidFor(modulePath, version);
  checkZipTarget(modulePath, version);
  const zip = await openZip(zipPath, lim, invalid);
  try {
    const plan = planZip(zip.entries, modulePath, version, lim);

    // Read in file order so the disk sees one forward sweep, whatever the directory order.
    const byOffset = entriesByOffset(zip.entries);
    const hashes: HashedName[] = [];
    let goMod: Buffer | undefined;
    for (const e of byOffset) {
      const info = plan.entries.get(e) as EntryPlan;
      const what = `file ${quote(info.rel)}`;
      if (info.isDir) {
        await zip.checkDirectory(e, what);
        hashes.push({ name: e.nameBytes, sha256: EMPTY_SHA256 });
        continue;
      }
      const chunks: Buffer[] | undefined = info.isGoMod ? [] : undefined;
      const data = await zip.readFile(e, what, {
        strictCrc: true,
        ...(chunks ? { onChunk: (c: Buffer) => chunks.push(c) } : {}),
      });
      if (chunks) goMod = Buffer.concat(chunks);
      hashes.push({ name: e.nameBytes, sha256: data.sha256 });
    }
    return checkedZip(hashes, plan, goMod);
  } catch (err) {
    throw asZipError(err, invalid);
  } finally {
    await zip.close();
  }
}

// The steps of checkModuleZip, shared with the streaming checker (stream.ts), which must fail and
// succeed exactly as checkModuleZip does.

/** Builds the ZipError for a problem of modulePath@version's zip. */
export function invalidFor(modulePath: string, version: string): (cause: string, err?: unknown) => ZipError {
  const where = `${modulePath}@${version}`;
  return (cause, err) => new ZipError(`module zip for ${where} is invalid: ${cause}`, err === undefined ? undefined : { cause: err });
}

/** zip.CheckZip refuses a malformed module path or version before looking at the file. */
export function checkZipTarget(modulePath: string, version: string): void {
  const invalid = invalidFor(modulePath, version);
  const canon = canonicalVersion(version);
  if (canon !== version) throw invalid(`version ${quote(version)} is not canonical (should be ${quote(canon)})`);
  try {
    checkModuleVersion(modulePath, version);
  } catch (err) {
    if (err instanceof ModuleError) throw invalid(err.message, err);
    throw err;
  }
}

/** Opens the zip and reads its central directory (format problems become ZipErrors). */
export async function openZip(zipPath: string, lim: ResolvedLimits, invalid: (cause: string, err?: unknown) => ZipError): Promise<OpenZip> {
  try {
    return await OpenZip.open(zipPath, lim.maxZipSize);
  } catch (err) {
    if (err instanceof ZipFormatError) throw invalid(err.message, err);
    throw err;
  }
}

/** The module rules over the central directory's names and declared sizes; throws the first problem. */
export function planZip(entries: RawEntry[], modulePath: string, version: string, lim: ResolvedLimits): NamePlan {
  const rules = new NameRules(`${modulePath}@${version}/`, lim);
  for (const e of entries) rules.add(e);
  return acceptPlan(rules.plan, modulePath, version);
}

/** Throws the plan's first problem (as checkModuleZip reports it), or returns the plan. */
export function acceptPlan(plan: NamePlan, modulePath: string, version: string): NamePlan {
  const invalid = invalidFor(modulePath, version);
  if (plan.sizeError !== undefined) throw invalid(plan.sizeError);
  if (plan.problems.length > 0) {
    const more = plan.problems.length - 1;
    throw invalid(`${plan.problems[0]}${more > 0 ? ` (and ${more} more problem${more > 1 ? 's' : ''})` : ''}`);
  }
  return plan;
}

/** Entries in the order of their data in the file (directory order breaks ties). */
export function entriesByOffset(entries: RawEntry[]): RawEntry[] {
  return [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset || a.index - b.index);
}

/** The result, once every entry's data has been checked (hashes in file order). */
export function checkedZip(hashes: HashedName[], plan: NamePlan, goMod: Buffer | undefined): CheckedZip {
  const result: CheckedZip = {
    h1: hash1Bytes(hashes),
    files: plan.files,
    uncompressedSize: plan.totalSize,
    hasGoMod: goMod !== undefined,
  };
  if (goMod !== undefined) result.goMod = goMod;
  return result;
}

/** How checkModuleZip reports a failure while reading entries. */
export function asZipError(err: unknown, invalid: (cause: string, err?: unknown) => ZipError): unknown {
  if (err instanceof ZipError || isSystemError(err)) return err;
  if (err instanceof ZipFormatError) return invalid(err.message, err);
  return err;
}

export interface EntryPlan {
  /** The name relative to the module root, as it appears after the prefix. */
  rel: string;
  isDir: boolean;
  isGoMod: boolean;
}

export interface NamePlan {
  entries: Map<RawEntry, EntryPlan>;
  problems: string[];
  sizeError: string | undefined;
  files: number;
  totalSize: number;
}

/**
 * zip.CheckZip's pass over the names and declared sizes, then our own refusals, per entry, in
 * central directory order. Entry by entry, so that the streaming checker can apply it to the
 * central directory as it arrives.
 */
export class NameRules {
  readonly plan: NamePlan = { entries: new Map(), problems: [], sizeError: undefined, files: 0, totalSize: 0 };
  private readonly collisions = new CollisionChecker();

  constructor(
    private readonly prefix: string,
    private readonly lim: ResolvedLimits,
  ) {}

  add(e: RawEntry): void {
    const { prefix, lim, collisions } = this;
    const out = this.plan;
    const full = e.name;
    if (full === undefined) {
      out.problems.push(`file name ${quote(e.nameBytes.toString('utf8'))} is not valid UTF-8`);
      return;
    }
    if (!full.startsWith(prefix)) {
      out.problems.push(`file ${quote(full)} does not have prefix ${quote(prefix)}`);
      return;
    }
    const rel = full.slice(prefix.length);
    const isDir = rel === '' || rel.endsWith('/');
    out.entries.set(e, { rel, isDir, isGoMod: false });
    if (rel === '') {
      // The module root's own directory entry: CheckZip skips it, HashZip still hashes it.
      if (e.uncompressedSize !== 0) out.problems.push(`file ${quote(rel)} is a directory with contents`);
      return;
    }
    const name = isDir ? rel.slice(0, -1) : rel;
    if (cleanPath(name) !== name) {
      out.problems.push(`file ${quote(rel)} is not clean`);
      return;
    }
    try {
      checkFilePath(name);
    } catch (err) {
      if (!(err instanceof ModuleError)) throw err;
      out.problems.push(err.message);
      return;
    }
    const clash = collisions.check(name, isDir);
    if (clash !== undefined) {
      out.problems.push(clash);
      return;
    }
    if (isDir) {
      // Go's reader fails to open a directory entry that claims contents, so HashZip would fail.
      if (e.uncompressedSize !== 0) out.problems.push(`file ${quote(rel)} is a directory with contents`);
      return;
    }
    const base = splitPath(name)[1];
    if (isGoModFold(base)) {
      if (base !== name) {
        out.problems.push(`file ${quote(rel)}: go.mod file not in module root directory`);
        return;
      }
      if (name !== 'go.mod') {
        out.problems.push(`file ${quote(rel)}: go.mod files must have lowercase names`);
        return;
      }
    }
    const sz = e.uncompressedSize;
    if (sz <= lim.maxTotalSize - out.totalSize) {
      out.totalSize += sz;
    } else if (out.sizeError === undefined) {
      out.sizeError = `total uncompressed size of module contents too large (max size is ${lim.maxTotalSize} bytes)`;
    }
    if (name === 'go.mod' && sz > lim.maxGoModSize) {
      out.problems.push(`go.mod file too large (max size is ${lim.maxGoModSize} bytes)`);
      return;
    }
    if (name === 'LICENSE' && sz > lim.maxLicenseSize) {
      out.problems.push(`LICENSE file too large (max size is ${lim.maxLicenseSize} bytes)`);
      return;
    }
    // Beyond x/mod: what only shows when the data is read, decided up front from the headers.
    if (e.method !== 0 && e.method !== 8) {
      out.problems.push(`file ${quote(rel)} uses unsupported compression method ${e.method} (only store and deflate are allowed)`);
      return;
    }
    if (isEncrypted(e)) {
      out.problems.push(`file ${quote(rel)} is encrypted`);
      return;
    }
    const type = unixFileType(e);
    if (type !== 0 && type !== S_IFREG) {
      out.problems.push(`file ${quote(rel)} is ${type === 0o120000 ? 'a symbolic link' : 'not a regular file'}`);
      return;
    }
    out.files++;
    if (name === 'go.mod') (out.entries.get(e) as EntryPlan).isGoMod = true;
  }
}
