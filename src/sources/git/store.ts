// The shared cache of bare repositories under the data folder (<data>/vcs by default: a top-level
// name without a dot, so it can never be a module path). Bounded on disk: after fetches, when the
// total passes maxBytes, the least recently used repositories that no request is using are
// removed. Every process sharing the data folder may evict; removal takes the repository's lock
// and renames it away first, so no process ever sees half a repository.
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { BareRepo, type RepoContext } from './repo.js';

export interface StoreLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export class RepoStore {
  private readonly repos = new Map<string, BareRepo>();
  readonly tmpDir: string;
  private readonly trashDir: string;
  private gcTimer: NodeJS.Timeout | undefined;
  private gcRunning: Promise<void> | undefined;
  private lastGc = 0;

  constructor(
    readonly root: string,
    private readonly maxBytes: number,
    private readonly ctx: RepoContext,
    private readonly log?: StoreLog,
    private readonly gcIntervalMs = 60_000,
    private readonly foreignIdleMs = 600_000,
  ) {
    this.tmpDir = path.join(root, 'tmp');
    this.trashDir = path.join(root, 'trash');
  }

  /** Creates the folders and removes what a crashed process left behind. */
  async open(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    await rm(this.trashDir, { recursive: true, force: true }).catch(() => undefined);
    const now = Date.now();
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const p = path.join(this.tmpDir, name);
      const st = await stat(p).catch(() => null);
      // Another live process may be using a fresh one.
      if (st && now - st.mtimeMs > 3_600_000) await rm(p, { force: true, recursive: true }).catch(() => undefined);
    }
  }

  /** The repository for url (directory named like cmd/go's: sha256 of "git3:" + url). */
  get(url: string): BareRepo {
    let r = this.repos.get(url);
    if (!r) {
      const dir = path.join(this.root, createHash('sha256').update(`git3:${url}`).digest('hex'));
      r = new BareRepo(url, dir, { ...this.ctx, onFetched: () => this.scheduleGc() });
      this.repos.set(url, r);
    }
    return r;
  }

  /** Checks the size bound soon (at most once per interval). */
  scheduleGc(): void {
    if (this.maxBytes <= 0 || this.gcTimer || this.gcRunning) return;
    const wait = Math.max(0, this.lastGc + this.gcIntervalMs - Date.now());
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      this.gcRunning = this.gc()
        .then(() => undefined)
        .catch((err: unknown) => this.log?.warn({ err: (err as Error).message }, 'git cache: size check failed'))
        .finally(() => {
          this.gcRunning = undefined;
          this.lastGc = Date.now();
        });
    }, wait);
    this.gcTimer.unref();
  }

  /** Removes least recently used repositories until the cache fits maxBytes. */
  async gc(): Promise<{ before: number; after: number; removed: string[] }> {
    const names = (await readdir(this.root).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}$/.test(n));
    const items: { dir: string; bytes: number; used: number }[] = [];
    for (const n of names) {
      const dir = path.join(this.root, n);
      const marker = await stat(path.join(dir, 'gomodproxy-remote')).catch(() => null);
      items.push({ dir, bytes: await du(dir), used: marker?.mtimeMs ?? 0 });
    }
    const before = items.reduce((a, b) => a + b.bytes, 0);
    let total = before;
    const removed: string[] = [];
    items.sort((a, b) => a.used - b.used);
    const now = Date.now();
    for (const it of items) {
      if (total <= this.maxBytes) break;
      const mine = [...this.repos.values()].find((r) => r.dir === it.dir);
      // Another process may be reading a repository it used a moment ago (we cannot see its
      // sessions): leave recently used ones alone unless they are ours and idle.
      if (!mine && now - it.used < this.foreignIdleMs) continue;
      const ok = mine ? await mine.remove(this.trashDir) : await this.removeForeign(it.dir);
      if (ok) {
        total -= it.bytes;
        removed.push(it.dir);
      }
    }
    if (removed.length > 0)
      this.log?.info({ removed: removed.length, bytesBefore: before, bytesAfter: total }, 'git cache: evicted least recently used repositories');
    return { before, after: total, removed };
  }

  private async removeForeign(dir: string): Promise<boolean> {
    const lock = await this.ctx.locks.tryAcquire(`${dir}.lock`);
    if (!lock) return false;
    try {
      await mkdir(this.trashDir, { recursive: true });
      const aside = path.join(this.trashDir, `${path.basename(dir)}-${randomBytes(4).toString('hex')}`);
      await rename(dir, aside);
      await rm(aside, { recursive: true, force: true });
      return true;
    } catch {
      return false;
    } finally {
      await lock.release();
    }
  }

  close(): void {
    if (this.gcTimer) clearTimeout(this.gcTimer);
    this.gcTimer = undefined;
  }
}

/** Bytes used by a directory tree (allocated blocks, as du counts). */
export async function du(dir: string): Promise<number> {
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    const st = await lstat(p).catch(() => null);
    if (!st) return;
    total += st.blocks !== undefined ? st.blocks * 512 : st.size;
    if (st.isDirectory()) {
      const names = await readdir(p).catch(() => [] as string[]);
      await Promise.all(names.map((n) => walk(path.join(p, n))));
    }
  };
  await walk(dir);
  return total;
}
