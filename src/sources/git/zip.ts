// The module zip of a version, as cmd/go builds it (codeRepo.Zip): the files of the commit (of
// the module's directory only, for a module in a subdirectory) with every rule of
// golang.org/x/mod/zip applied by modzip, plus the repository root's LICENSE for a module below
// the root that has none. The zip is streamed to the caller as it is written.
//
// cmd/go lists the files with `git archive`, which applies .gitattributes (eol conversion,
// filters). Without any .gitattributes in play the archive holds the blobs as they are, so the
// files are streamed straight from the object store (`git ls-tree` + `git cat-file --batch`);
// otherwise the archive is made the same way as cmd/go's (`git archive`, spooled to a temporary
// file as cmd/go spools it) and read back from there. Attributes from the operator's global or
// system git configuration are not applied in either case: a module's checksum must not depend
// on the machine that made the zip (the checksum database's entries were made without them).
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { parseGoMod } from '../../module/index.js';
import { planModuleZip, writeModuleZip, ZipError, type ZipSourceFile } from '../../modzip/index.js';
import type { ZipBody } from '../types.js';
import type { CatFileBatch } from './catfile.js';
import { invalid } from './errors.js';
import type { CodeRepo } from './resolve.js';
import { MAX_GO_MOD, MAX_LICENSE } from './resolve.js';
import { indexTar } from './tar.js';

/** cmd/go refuses a downloaded archive over 500 MiB; a tar is uncompressed, so allow it more room. */
const MAX_ARCHIVE = 2 * 1024 * 1024 * 1024;

export interface ZipOptions {
  /** Directory for a temporary archive. */
  tmpDir: string;
  /** Called when the zip is fully written or failed (temporary files are gone by then). */
  onDone?: (err: Error | undefined) => void;
}

interface TreeEntry {
  mode: string;
  type: string;
  hash: string;
  size: number;
  name: string;
}

/** Files of the module, from wherever they are read, and what to release when the zip is done. */
interface Listing {
  files: ZipSourceFile[];
  /** The module's go.mod as it will be zipped (for the vendor rules' Go version). */
  goMod: () => Promise<Buffer | null>;
  /** Told which files go into the zip, in order, before any is opened. */
  prepare?: (include: ZipSourceFile[]) => void;
  release: () => Promise<void>;
}

/** Builds the zip of version (already validated by stat) and returns it as a stream. */
export async function moduleZip(repo: CodeRepo, version: string, opts: ZipOptions): Promise<ZipBody> {
  const { rev, dir: subdir } = await repo.findDir(version);
  const info = await repo.code.stat(rev);
  const entries = await lsTree(repo, info.name, subdir);
  const listing = (await hasAttributes(repo, info.name, subdir, entries)) ? await fromArchive(repo, info.name, subdir, opts.tmpDir) : fromTree(repo, entries);
  let handedOff = false;
  try {
    const files = listing.files;
    if (subdir !== '' && !files.some((f) => f.name === 'LICENSE')) {
      const data = await repo.code.readFile(rev, 'LICENSE', MAX_LICENSE);
      if (data) files.push({ name: 'LICENSE', mode: 'file', size: data.length, open: () => Readable.from([data]) });
    }
    // x/mod reads the vendor rules' Go version from the zip's own go.mod (ParseLax; errors mean none).
    let goVersion: string | undefined;
    const gm = await listing.goMod();
    if (gm) {
      try {
        goVersion = parseGoMod(gm, 'go.mod').go;
      } catch {
        goVersion = undefined;
      }
    }
    const zipOpts = { modulePath: repo.modPath, version, goVersion };
    try {
      listing.prepare?.(planModuleZip(files, zipOpts).include);
    } catch (err) {
      if (err instanceof ZipError) throw invalid(`${repo.modPath}@${version}: ${err.message}`);
      throw err;
    }
    const out = new PassThrough();
    handedOff = true;
    // The zip is written behind the stream its reader consumes; how it ended reaches the reader
    // through the stream, and the listing is released whatever happened.
    void writeModuleZip(files, zipOpts, out)
      .then(
        () => undefined,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      )
      .then(async (err) => {
        if (err) out.destroy(err);
        await listing.release().catch(() => undefined);
        opts.onDone?.(err);
      });
    return { stream: out, size: undefined };
  } finally {
    if (!handedOff) await listing.release();
  }
}

/** The module directory's files (git ls-tree -r -l). */
async function lsTree(repo: CodeRepo, commit: string, subdir: string): Promise<TreeEntry[]> {
  const r = await repo.code.repo.git(['ls-tree', '-r', '-l', '-z', '--end-of-options', subdir ? `${commit}:${subdir}` : commit], { maxStdout: 1 << 30 });
  const entries: TreeEntry[] = [];
  for (const rec of r.stdout.toString('utf8').split('\0')) {
    const tab = rec.indexOf('\t');
    if (tab < 0) continue;
    const [mode, type, hash, size] = rec.slice(0, tab).split(/ +/) as [string, string, string, string];
    entries.push({ mode, type, hash, size: size === '-' ? 0 : Number(size), name: rec.slice(tab + 1) });
  }
  return entries;
}

/** Whether any .gitattributes applies to the module's files: inside its directory or in a parent. */
async function hasAttributes(repo: CodeRepo, commit: string, subdir: string, entries: TreeEntry[]): Promise<boolean> {
  if (entries.some((e) => e.name === '.gitattributes' || e.name.endsWith('/.gitattributes'))) return true;
  const parts = subdir ? subdir.split('/') : [];
  for (let i = 0; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (await repo.code.exists(commit, dir ? `${dir}/.gitattributes` : '.gitattributes')) return true;
  }
  return false;
}

/** Small files are read ahead of the zip writer, up to this many at a time and this size each. */
const READ_AHEAD_FILES = 64;
const READ_AHEAD_MAX_SIZE = 256 << 10;

/**
 * The files straight from the object store, from one `git cat-file --batch`. The zip writer takes
 * files one after the other; the small ones among the next few are asked for ahead, so their
 * bytes are already here when it gets to them (a bounded window: never the whole module).
 */
function fromTree(repo: CodeRepo, entries: TreeEntry[]): Listing {
  const bare = repo.code.repo;
  const readers: CatFileBatch[] = [];
  let main: CatFileBatch | undefined;
  const cat = (): CatFileBatch => {
    if (!main) readers.push((main = bare.catFile()));
    return main;
  };
  const files: ZipSourceFile[] = [];
  const hashOf = new Map<ZipSourceFile, { hash: string; size: number }>();
  let goModHash: string | undefined;
  // Read-ahead state, set up once the files that go into the zip are known.
  let order: ZipSourceFile[] = [];
  const indexOf = new Map<ZipSourceFile, number>();
  const ahead = new Map<number, Promise<Buffer>>();
  let issued = 0;
  let next = 0;
  const issue = (upTo: number): void => {
    for (; issued <= upTo && issued < order.length; issued++) {
      const o = hashOf.get(order[issued] as ZipSourceFile) as { hash: string; size: number };
      // A big file is streamed when its turn comes; nothing is asked for beyond it until then.
      if (o.size > READ_AHEAD_MAX_SIZE) break;
      if (o.size === 0) continue;
      const p = cat()
        .read(o.hash, READ_AHEAD_MAX_SIZE)
        .then((r) => {
          if (!r || r.type !== 'blob') throw new Error(`git object ${o.hash} is missing`);
          return r.data;
        });
      p.catch(() => undefined);
      ahead.set(issued, p);
    }
  };
  const open = (f: ZipSourceFile): NodeJS.ReadableStream => {
    const o = hashOf.get(f) as { hash: string; size: number };
    if (o.size === 0) return Readable.from([]);
    const i = indexOf.get(f);
    if (i === undefined || i !== next) {
      // Not the order we expected: serve it from a reader of its own.
      const own = bare.catFile();
      readers.push(own);
      return own.stream(o.hash);
    }
    next++;
    let out: NodeJS.ReadableStream;
    const pending = ahead.get(i);
    if (pending) {
      ahead.delete(i);
      out = Readable.from(
        (async function* () {
          yield await pending;
        })(),
      );
    } else {
      // A big file (or one not asked for yet): stream it now, in its place in the queue.
      if (issued === i) issued++;
      out = cat().stream(o.hash);
    }
    issue(i + READ_AHEAD_FILES);
    return out;
  };
  for (const e of entries) {
    // A submodule is an empty directory in git archive's output, which cmd/go skips.
    if (e.type === 'commit') continue;
    const mode = e.mode.startsWith('100') ? 'file' : e.mode === '120000' ? 'symlink' : 'other';
    const f: ZipSourceFile = { name: e.name, mode, size: mode === 'file' ? e.size : 0, open: () => open(f) };
    hashOf.set(f, { hash: e.hash, size: f.size });
    files.push(f);
    if (e.name === 'go.mod' && mode === 'file') goModHash = e.hash;
  }
  return {
    files,
    goMod: async () => {
      if (!goModHash) return null;
      const o = await cat().read(goModHash, MAX_GO_MOD);
      return o?.data ?? null;
    },
    prepare: (include) => {
      order = include.filter((f) => hashOf.has(f));
      order.forEach((f, i) => indexOf.set(f, i));
      issue(READ_AHEAD_FILES - 1);
    },
    release: async () => {
      for (const r of readers) r.close();
    },
  };
}

/** The files of `git archive` (attributes applied), spooled to a temporary tar file. */
async function fromArchive(repo: CodeRepo, commit: string, subdir: string, tmpDir: string): Promise<Listing> {
  const tarFile = path.join(tmpDir, `${randomBytes(8).toString('hex')}.tar`);
  const release = (): Promise<void> => rm(tarFile, { force: true });
  try {
    await repo.code.repo.archive(commit, subdir, tarFile, MAX_ARCHIVE);
    const entries = await indexTar(tarFile);
    const prefix = subdir ? `${subdir.replace(/\/+$/, '')}/` : '';
    const files: ZipSourceFile[] = [];
    let goModAt: { offset: number; size: number } | undefined;
    for (const e of entries) {
      if (!e.name.startsWith(prefix)) continue;
      const name = e.name.slice(prefix.length);
      if (name === '' || name.endsWith('/') || e.type === 'dir') continue;
      const { offset, size } = e;
      files.push({
        name,
        mode: e.type === 'file' ? 'file' : e.type === 'symlink' ? 'symlink' : 'other',
        size,
        open: () => (size === 0 ? Readable.from([]) : createReadStream(tarFile, { start: offset, end: offset + size - 1 })),
      });
      if (name === 'go.mod' && e.type === 'file') goModAt = { offset, size };
    }
    return {
      files,
      goMod: async () => {
        if (!goModAt || goModAt.size > MAX_GO_MOD) return null;
        const data = Buffer.alloc(goModAt.size);
        const fh = await open(tarFile, 'r');
        try {
          await fh.read(data, 0, data.length, goModAt.offset);
        } finally {
          await fh.close();
        }
        return data;
      },
      release,
    };
  } catch (err) {
    await release();
    throw err;
  }
}
