// Folders known to exist. A miss creates a lock file, a staging file and the artifact in one
// module folder; remembering that it exists saves a mkdir -p (a syscall per path element) each.
import { mkdir, open, type FileHandle } from 'node:fs/promises';

const known = new Set<string>();
const MAX_KNOWN = 50_000;

/** mkdir -p, skipped for folders this process has already made or seen. */
export async function ensureDir(dir: string): Promise<void> {
  if (known.has(dir)) return;
  await mkdir(dir, { recursive: true });
  if (known.size >= MAX_KNOWN) known.clear();
  known.add(dir);
}

/** Forget a folder (someone may have removed it): the next ensureDir creates it again. */
export function forgetDir(dir: string): void {
  known.delete(dir);
}

/**
 * Opens a file for writing in dir (exclusively unless `flags` says otherwise), making the folder
 * when needed, and again if it was removed since we last made it (a purge, a gc).
 */
export async function openCreating(file: string, dir: string, flags: 'wx' | 'w' = 'wx'): Promise<FileHandle> {
  await ensureDir(dir);
  try {
    return await open(file, flags, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    forgetDir(dir);
    await ensureDir(dir);
    return open(file, flags, 0o644);
  }
}
