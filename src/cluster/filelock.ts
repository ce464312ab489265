// Cross-process locks for processes that share one data folder (worker processes, or two
// instances on one host): an exclusively created file beside the artifact. The holder touches
// it while it works; a lock whose holder died (same host, pid gone) or went silent is stale
// and may be broken.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, open, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { ensureDir, forgetDir } from '../dirs.js';
import path from 'node:path';

export interface LockInfo {
  pid: number;
  host: string;
  since: number;
  /** What the lock guards (a store key), for whoever finds the file. */
  key?: string;
  /** Expected size of what the holder is writing, once it knows (lets followers send Content-Length). */
  size?: number;
  /** The file it stages into, for followers on this host. */
  staging?: string;
}

export interface HeldLock {
  readonly file: string;
  /** When it was taken (ms): with pid and host, tells this grant from a later one. */
  readonly since: number;
  /** Records facts for followers (e.g. the expected size); updates are written in order, and release waits for them. */
  update(extra: Partial<LockInfo>): Promise<void>;
  release(): Promise<void>;
  /**
   * Whether the lock can only be ours without looking: released, or young enough that nobody may
   * have broken it (a lock is broken only once its file is staleMs old, and the heartbeat keeps it
   * younger). Undefined when only the file can tell.
   */
  surelyHeld(): boolean | undefined;
}

const HOST = hostname();

export class FileLocks {
  constructor(readonly staleMs = 30_000) {}

  /** Takes the lock, or returns null if a live holder has it. */
  async tryAcquire(file: string, extra: Partial<LockInfo> = {}): Promise<HeldLock | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const info: LockInfo = { pid: process.pid, host: HOST, since: Date.now(), ...extra };
      try {
        await ensureDir(path.dirname(file));
        const fh = await open(file, 'wx', 0o644).catch(async (err: NodeJS.ErrnoException) => {
          // The folder was removed after we last made it (a purge, a gc): make it again.
          if (err.code !== 'ENOENT') throw err;
          forgetDir(path.dirname(file));
          await ensureDir(path.dirname(file));
          return open(file, 'wx', 0o644);
        });
        try {
          await fh.writeFile(JSON.stringify(info));
        } finally {
          await fh.close();
        }
        return this.held(file, info);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (!(await this.breakIfStale(file))) return null;
    }
    return null;
  }

  /** Whether a live holder has the lock now (a stale lock counts as not held). */
  async isHeld(file: string): Promise<boolean> {
    const state = await this.inspect(file);
    return state !== null && !state.stale;
  }

  /** The holder's info, if the lock is held and readable. */
  async info(file: string): Promise<LockInfo | null> {
    return (await this.holder(file))?.info ?? null;
  }

  /** Null when nobody (alive) holds the lock; else the holder, whose info may be unreadable for a moment. */
  async holder(file: string): Promise<{ info: LockInfo | null } | null> {
    const state = await this.inspect(file);
    return state && !state.stale ? { info: state.info } : null;
  }

  /** Removes the lock if its holder is gone (crashed); true if it did. */
  async removeIfStale(file: string): Promise<boolean> {
    const state = await this.inspect(file);
    if (!state?.stale) return false;
    return this.breakIfStale(file);
  }

  private async inspect(file: string): Promise<{ stale: boolean; info: LockInfo | null; ino: number } | null> {
    let st;
    try {
      st = await stat(file);
    } catch {
      return null;
    }
    let info: LockInfo | null = null;
    try {
      info = JSON.parse(await readFile(file, 'utf8')) as LockInfo;
    } catch {
      // Being written right now, or garbage: judge by age alone.
    }
    let stale = Date.now() - st.mtimeMs > this.staleMs;
    if (!stale && info && info.host === HOST && info.pid !== process.pid && !processAlive(info.pid)) stale = true;
    return { stale, info, ino: st.ino };
  }

  /** Removes a stale lock without ever removing a fresh one another process just created. */
  private async breakIfStale(file: string): Promise<boolean> {
    const state = await this.inspect(file);
    if (state === null) return true;
    if (!state.stale) return false;
    const aside = `${file}.stale-${randomBytes(4).toString('hex')}`;
    try {
      await rename(file, aside);
    } catch {
      return true; // someone else moved it first; just retry
    }
    const moved = await stat(aside).catch(() => null);
    if (moved && moved.ino !== state.ino) {
      // We moved a fresh lock that replaced the stale one in the meantime: put it back.
      await link(aside, file).catch(() => undefined);
    }
    await unlink(aside).catch(() => undefined);
    return true;
  }

  private held(file: string, info: LockInfo): HeldLock {
    let released = false;
    const current = { ...info };
    const beat = setInterval(
      () => {
        const t = new Date();
        utimes(file, t, t).catch(() => undefined);
      },
      Math.max(250, Math.floor(this.staleMs / 4)),
    );
    beat.unref();
    let pending: Promise<void> = Promise.resolve();
    const write = async (): Promise<void> => {
      if (released) return;
      // Replace, never rewrite in place: a reader must never see the file empty or half written.
      const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
      try {
        await writeFile(tmp, JSON.stringify(current));
        await rename(tmp, file);
      } catch {
        await unlink(tmp).catch(() => undefined);
      }
    };
    return {
      file,
      since: info.since,
      update: (extra) => {
        Object.assign(current, extra);
        pending = pending.then(write);
        return pending;
      },
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(beat);
        // An update still being written would put the file back after the unlink.
        await pending;
        await unlink(file).catch(() => undefined);
      },
      surelyHeld: () => {
        if (released) return false;
        return Date.now() - info.since < this.staleMs / 2 ? true : undefined;
      },
    };
  }
}

/** Whether a process of this host is still there (one owned by another user counts). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
