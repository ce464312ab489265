// Temporary directories and one teardown list for everything a test file starts.
// Tests call `afterAll(cleanupAll)` once; servers, processes and directories created by the
// other helpers register themselves here, so a failing test still leaves nothing behind.
import { chmod, lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

type Cleanup = () => unknown;

const cleanups: Cleanup[] = [];

/** Set GMP_TEST_KEEP_TMP=1 to keep temporary directories for debugging (their paths are printed). */
const keepTmp = process.env.GMP_TEST_KEEP_TMP === '1';

/** Creates a fresh directory under os.tmpdir() named `gmp-<prefix>-XXXXXX` and registers it for removal. */
export async function makeTempDir(prefix: string): Promise<string> {
  const safe = prefix.replace(/[^A-Za-z0-9._-]/g, '_');
  const dir = await mkdtemp(path.join(os.tmpdir(), `gmp-${safe}-`));
  registerCleanup(async () => {
    if (keepTmp) {
      process.stderr.write(`kept temp dir ${dir}\n`);
      return;
    }
    await removeTree(dir);
  });
  return dir;
}

/** Adds a teardown step; steps run in reverse order of registration (servers stop before their dirs go). */
export function registerCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/**
 * Runs every registered teardown step, newest first, and empties the list. All steps run even if
 * some fail; the first failure is rethrown at the end so a broken teardown is still visible.
 */
export async function cleanupAll(): Promise<void> {
  let first: unknown;
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/**
 * Removes a tree even when it holds a Go module cache written without -modcacherw
 * (read-only directories make unlink fail with EACCES for non-root users).
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY') throw err;
  }
  await makeWritable(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

async function makeWritable(p: string): Promise<void> {
  const st = await lstat(p).catch(() => null);
  if (!st || !st.isDirectory()) return;
  await chmod(p, 0o755).catch(() => undefined);
  const entries = await readdir(p).catch(() => [] as string[]);
  await Promise.all(entries.map((e) => makeWritable(path.join(p, e))));
}
