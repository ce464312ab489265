// The default BlobStore: a folder in the go command's download-cache layout. Writes go to a
// temporary name in the destination folder, are fsynced, then renamed, so a crash or a full
// disk at any byte leaves the old state or the whole new blob, never a part.
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, opendir, readFile, rename, rm, rmdir, stat, statfs, unlink, writeFile, copyFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ProxyError } from '../errors.js';
import {
  assertSafeKey,
  storageError,
  storageFailureOf,
  type BlobReader,
  type BlobStat,
  type BlobStore,
  type BlobWrite,
  type ListedBlob,
  type StorageFailure,
} from './blobstore.js';
import { ensureDir, forgetDir, openCreating } from '../dirs.js';

/** Files the store writes for its own bookkeeping; never listed as blobs. */
const TRANSIENT = /\.(partial|lock|tmp-[0-9a-f]+)$/;

export class FsBlobStore implements BlobStore {
  readonly root: string;
  readonly description: string;
  /** Told of every failed read or write (the server counts them against storage, not an upstream). */
  onError: ((op: 'read' | 'write', reason: StorageFailure) => void) | undefined;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `fs:${this.root}`;
  }

  /** Bytes an unprivileged writer can still put on the data folder's file system. */
  async freeBytes(): Promise<number> {
    const st = await statfs(this.root);
    return st.bavail * st.bsize;
  }

  /** The file that holds `key`. Only the disk store has one; cross-process locks use it. */
  localPath(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, key);
  }

  stagingPath(key: string): string {
    return `${this.localPath(key)}.partial`;
  }

  async head(key: string): Promise<BlobStat | null> {
    try {
      const st = await stat(this.localPath(key));
      return st.isFile() ? toStat(st) : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.fail(err, 'read');
    }
  }

  /** Opens a blob's file for reading, or null when there is none. */
  private async openBlob(key: string): Promise<FileHandle | null> {
    try {
      return await open(this.localPath(key), 'r');
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.fail(err, 'read');
    }
  }

  async get(key: string, opts: { start?: number } = {}): Promise<BlobReader | null> {
    const fh = await this.openBlob(key);
    if (!fh) return null;
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return null;
      }
      return fileReader(fh, toStat(st), opts.start ?? 0);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw this.fail(err, 'read');
    }
  }

  async getBuffer(key: string, maxBytes: number): Promise<{ stat: BlobStat; data: Buffer } | null> {
    const fh = await this.openBlob(key);
    if (!fh) return null;
    try {
      const st = await fh.stat();
      if (!st.isFile()) return null;
      if (st.size > maxBytes) throw new ProxyError('internal', `stored blob ${key} is ${st.size} bytes, more than the ${maxBytes} expected`);
      const data = await fh.readFile();
      return { stat: toStat(st, data.length), data };
    } catch (err) {
      if (err instanceof ProxyError) throw err;
      throw this.fail(err, 'read');
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async put(key: string, data: Uint8Array): Promise<BlobStat> {
    const dest = this.localPath(key);
    const tmp = `${dest}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      const fh = await openCreating(tmp, path.dirname(dest));
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, dest);
      return toStat(await stat(dest));
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw this.fail(err, 'write');
    }
  }

  async beginWrite(key: string): Promise<BlobWrite> {
    const dest = this.localPath(key);
    const staging = this.stagingPath(key);
    let fh: FileHandle | undefined;
    try {
      // Not exclusive: a staging file left by a holder that died is ours to overwrite (we hold the key's lock).
      fh = await openCreating(staging, path.dirname(dest), 'w');
    } catch (err) {
      throw this.fail(err, 'write');
    }
    const out = fh;
    let done = false;
    const drop = async (): Promise<void> => {
      if (done) return;
      done = true;
      await out.close().catch(() => undefined);
      await rm(staging, { force: true }).catch(() => undefined);
    };
    return {
      stagingFile: staging,
      append: async (chunk) => {
        try {
          await out.write(chunk);
        } catch (err) {
          throw this.fail(err, 'write');
        }
      },
      // Staged beside the blob, so committing is fsync and rename: readers of the staging file
      // keep reading the same inode under its new name.
      commit: async () => {
        try {
          await out.sync();
          await out.close();
          done = true;
          await rename(staging, dest);
          return toStat(await stat(dest));
        } catch (err) {
          await drop();
          throw this.fail(err, 'write');
        }
      },
      abort: drop,
    };
  }

  async putFile(key: string, file: string): Promise<BlobStat> {
    const dest = this.localPath(key);
    try {
      await ensureDir(path.dirname(dest));
      const fh = await open(file, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await rename(file, dest).catch(async (err: NodeJS.ErrnoException) => {
          // The folder was removed (a gc of empty folders) after this process last made it.
          if (err.code !== 'ENOENT') throw err;
          forgetDir(path.dirname(dest));
          await ensureDir(path.dirname(dest));
          await rename(file, dest);
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        // Staged on another file system: copy beside the destination, then rename.
        const tmp = `${dest}.tmp-${randomBytes(6).toString('hex')}`;
        await copyFile(file, tmp);
        await rename(tmp, dest);
        await unlink(file).catch(() => undefined);
      }
      return toStat(await stat(dest));
    } catch (err) {
      throw this.fail(err, 'write');
    }
  }

  async delete(key: string): Promise<boolean> {
    try {
      await unlink(this.localPath(key));
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw this.fail(err, 'write');
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const f of this.files(prefix)) yield f.key;
  }

  async *listStats(prefix: string): AsyncIterable<ListedBlob> {
    for await (const f of this.files(prefix)) {
      let st;
      try {
        st = await stat(f.file);
      } catch (err) {
        // Removed since the folder was read (a purge, a collection): not there any more.
        if (isMissing(err)) continue;
        throw this.fail(err, 'read');
      }
      yield { key: f.key, size: st.size, mtimeMs: st.mtimeMs };
    }
  }

  private files(prefix: string): AsyncIterable<{ key: string; file: string }> {
    const clean = prefix.replace(/\/+$/, '');
    const start = clean === '' ? this.root : this.localPath(clean);
    return this.walk(start, clean === '' ? '' : `${clean}/`);
  }

  private async *walk(dir: string, keyPrefix: string): AsyncIterable<{ key: string; file: string }> {
    let handle;
    try {
      handle = await opendir(dir);
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw this.fail(err, 'read');
    }
    for await (const ent of handle) {
      if (ent.isDirectory()) yield* this.walk(path.join(dir, ent.name), `${keyPrefix}${ent.name}/`);
      else if (ent.isFile() && !TRANSIENT.test(ent.name)) yield { key: `${keyPrefix}${ent.name}`, file: path.join(dir, ent.name) };
    }
  }

  async *listFolders(prefix: string): AsyncIterable<string> {
    const clean = prefix.replace(/\/+$/, '');
    let handle;
    try {
      handle = await opendir(clean === '' ? this.root : this.localPath(clean));
    } catch (err) {
      if (isMissing(err)) return;
      throw this.fail(err, 'read');
    }
    for await (const ent of handle) if (ent.isDirectory()) yield ent.name;
  }

  async removeEmptyFolders(prefix: string): Promise<number> {
    const clean = prefix.replace(/\/+$/, '');
    if (clean === '') throw new Error('removeEmptyFolders needs a prefix: the root of the store is never removed');
    let removed = 0;
    // rmdir removes only an empty folder, atomically: a file created in it meanwhile keeps it.
    const visit = async (dir: string): Promise<boolean> => {
      let handle;
      try {
        handle = await opendir(dir);
      } catch (err) {
        if (isMissing(err)) return false;
        throw this.fail(err, 'read');
      }
      let empty = true;
      for await (const ent of handle) {
        if (ent.isDirectory() && (await visit(path.join(dir, ent.name)))) continue;
        empty = false;
      }
      if (!empty) return false;
      try {
        await rmdir(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || isMissing(err)) return false;
        throw this.fail(err, 'write');
      }
      // This process made it once and would skip making it again: it must not.
      forgetDir(dir);
      removed++;
      return true;
    };
    await visit(this.localPath(clean));
    return removed;
  }

  /** Storage trouble is ours: counted, and answered with the cause and the fix. */
  private fail(err: unknown, op: 'read' | 'write'): ProxyError {
    if (err instanceof ProxyError) return err;
    this.onError?.(op, storageFailureOf(err));
    return storageError(err, op);
  }

  async checkWritable(): Promise<void> {
    const probe = path.join(this.root, `state/.probe-${process.pid}`);
    try {
      await mkdir(path.dirname(probe), { recursive: true });
      await writeFile(probe, 'ok');
      const back = await readFile(probe, 'utf8');
      await unlink(probe);
      if (back !== 'ok') throw new Error('read back different bytes');
    } catch (err) {
      throw this.fail(err, 'write');
    }
  }
}

/**
 * A blob read from its open file: positionally (the server's streaming decides what is read
 * ahead), or as a stream made on first use, which then owns the handle and closes it when done.
 */
function fileReader(fh: FileHandle, stat: BlobStat, start: number): BlobReader {
  let stream: Readable | undefined;
  let closed: Promise<void> | undefined;
  return {
    ...stat,
    get stream(): Readable {
      // 64 KiB, Node's own default: a client reading slowly holds one such piece, not a megabyte.
      stream ??= fh.createReadStream({ autoClose: true, highWaterMark: 64 << 10, start });
      return stream;
    },
    read: async (buf, position) => (await fh.read(buf, 0, buf.length, position)).bytesRead,
    close: () => {
      if (stream) {
        stream.on('error', () => undefined);
        stream.destroy();
        return Promise.resolve();
      }
      closed ??= fh.close().catch(() => undefined);
      return closed;
    },
  };
}

function toStat(st: Stats, size = st.size): BlobStat {
  // size + mtime (+ inode) change whenever the file is replaced: good enough for a strong validator of immutable bytes.
  return {
    size,
    mtimeMs: Math.floor(st.mtimeMs),
    etag: `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${(st.ino % 0x100000000).toString(16)}"`,
  };
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
