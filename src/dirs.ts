// Folders known to exist. A miss creates a lock file, a staging file and the artifact in one
// module folder; remembering that it exists saves a mkdir -p (a syscall per path element) each.
import { mkdir } from 'node:fs/promises';

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
