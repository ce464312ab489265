// The h1 directory hash (golang.org/x/mod/sumdb/dirhash.Hash1) used in go.sum and the checksum
// database, over file lists, go.mod contents and zip files.
import { createHash } from 'node:crypto';
import { ZipError } from './errors.js';
import { OpenZip, ZipFormatError, type RawEntry } from './zipreader.js';

const EMPTY_SHA256 = createHash('sha256').digest();
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** One summary line's input: a name as raw bytes (Go strings are bytes) and its content's SHA-256. */
export interface HashedName {
  name: Buffer;
  sha256: Buffer;
}

/**
 * Hash1 over names already in byte form. Names are sorted by their bytes (Go's string order);
 * entries with equal names keep their given order.
 */
export function hash1Bytes(files: Iterable<HashedName>): string {
  const list = [...files].sort((a, b) => Buffer.compare(a.name, b.name));
  const h = createHash('sha256');
  for (const f of list) {
    if (f.name.includes(0x0a)) throw new ZipError('dirhash: filenames with newlines are not supported');
    h.update(f.sha256.toString('hex'));
    h.update('  ');
    h.update(f.name);
    h.update('\n');
  }
  return `h1:${h.digest('base64')}`;
}

/**
 * dirhash.Hash1 for a list of files given by name and content SHA-256. Names are compared as
 * UTF-8 bytes, which orders some names differently from JS string comparison (UTF-16 code units).
 * A name containing a newline, or a string that is not well-formed Unicode, cannot be hashed.
 */
export function hash1(files: Iterable<{ name: string; sha256: Buffer }>): string {
  const list: HashedName[] = [];
  for (const f of files) {
    if (LONE_SURROGATE.test(f.name)) throw new ZipError(`dirhash: file name ${JSON.stringify(f.name)} is not well-formed Unicode`);
    list.push({ name: Buffer.from(f.name, 'utf8'), sha256: f.sha256 });
  }
  return hash1Bytes(list);
}

/** The go.sum `/go.mod` hash of a go.mod file's contents (Hash1 over one file named "go.mod"). */
export function hashGoMod(data: Buffer): string {
  return hash1([{ name: 'go.mod', sha256: createHash('sha256').update(data).digest() }]);
}

/**
 * dirhash.HashZip: the h1 of a zip file's entries (names and contents; directory entries count,
 * as empty files). No module rules are applied, but the data is read with the same checks Go
 * applies when it opens each entry. It also fails on some malformed layouts Go would still read
 * (see zipreader.ts); use checkModuleZip for untrusted module zips.
 */
export async function hashZipFile(path: string): Promise<string> {
  let zip: OpenZip;
  try {
    zip = await OpenZip.open(path);
  } catch (err) {
    throw wrap(err, path);
  }
  try {
    // HashZip opens entries through a map from name to the last entry of that name, so every
    // duplicate is hashed with the last one's contents.
    const last = new Map<string, RawEntry>();
    for (const e of zip.entries) last.set(e.nameBytes.toString('latin1'), e);
    const hashes = new Map<RawEntry, Buffer>();
    for (const e of last.values()) {
      const what = `file ${JSON.stringify(e.nameBytes.toString('utf8'))}`;
      if (e.nameBytes.at(-1) === 0x2f) {
        await zip.checkDirectory(e, what);
        hashes.set(e, EMPTY_SHA256);
      } else {
        hashes.set(e, (await zip.readFile(e, what, { strictCrc: false })).sha256);
      }
    }
    return hash1Bytes(
      zip.entries.map((e) => ({
        name: e.nameBytes,
        sha256: hashes.get(last.get(e.nameBytes.toString('latin1')) as RawEntry) as Buffer,
      })),
    );
  } catch (err) {
    throw wrap(err, path);
  } finally {
    await zip.close();
  }
}

function wrap(err: unknown, path: string): unknown {
  if (err instanceof ZipFormatError) return new ZipError(`cannot hash zip file ${JSON.stringify(path)}: ${err.message}`, { cause: err });
  return err;
}
