// Removes what crashed writers leave in a data folder: staging files (.partial) whose fetch no
// live process holds, temporary files of interrupted writes (.tmp-*), and lock files of dead
// holders. Run at start and now and then by one process of a server (the primary of a cluster);
// what a live fetch holds is never touched, so it is safe while serving.
import { lstat, opendir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { HostCoordination } from './coordination.js';
import { FileLocks } from './filelock.js';

export interface SweepResult {
  removed: string[];
  bytes: number;
}

export interface SweepOptions {
  /** Staging files younger than this are left alone (a fetch may be between taking its lock and writing). */
  minAgeMs?: number;
  /** Temporary files younger than this are left alone (a write may still be going on: no lock covers them). */
  tempAgeMs?: number;
  /** Top-level folders that other subsystems keep (the git repository cache). */
  skip?: string[];
}

const PARTIAL = /\.partial$/;
const TEMP = /\.tmp-[0-9a-f]+$/;
const STALE_ASIDE = /\.lock\.stale-[0-9a-f]+$/;

export async function sweepLeftovers(root: string, coordination: HostCoordination, opts: SweepOptions = {}): Promise<SweepResult> {
  const minAgeMs = opts.minAgeMs ?? 60_000;
  const tempAgeMs = opts.tempAgeMs ?? 600_000;
  const skip = new Set(opts.skip ?? ['vcs', 'gocmd']);
  const locks = new FileLocks();
  const result: SweepResult = { removed: [], bytes: 0 };
  const now = Date.now();

  const remove = async (file: string, size: number): Promise<void> => {
    try {
      await unlink(file);
      result.removed.push(path.relative(root, file));
      result.bytes += size;
    } catch {
      // Gone already (renamed into place, or removed by another sweeper).
    }
  };

  const walk = async (dir: string, rel: string): Promise<void> => {
    const handle = await opendir(dir).catch(() => null);
    if (!handle) return;
    for await (const ent of handle) {
      const childRel = rel === '' ? ent.name : `${rel}/${ent.name}`;
      const full = path.join(dir, ent.name);
      if (ent.isDirectory()) {
        if (rel === '' && skip.has(ent.name)) continue;
        await walk(full, childRel);
        continue;
      }
      if (!ent.isFile()) continue;
      const isPartial = PARTIAL.test(ent.name);
      const isTemp = TEMP.test(ent.name) || STALE_ASIDE.test(ent.name);
      const isLock = ent.name.endsWith('.lock');
      if (!isPartial && !isTemp && !isLock) continue;
      const st = await lstat(full).catch(() => null);
      if (!st) continue;
      if (isLock) {
        // A lock whose holder died (or went silent): nobody will release it.
        if (await locks.removeIfStale(full)) {
          result.removed.push(childRel);
          result.bytes += st.size;
        }
        continue;
      }
      if (now - st.mtimeMs < (isTemp ? tempAgeMs : minAgeMs)) continue;
      // A staging file is someone's fetch in progress while its key's lock is held.
      if (isPartial && (await coordination.holder(childRel.replace(PARTIAL, ''))) !== null) continue;
      await remove(full, st.size);
    }
  };

  await walk(root, '');
  return result;
}
