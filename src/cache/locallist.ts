// <module>/@v/list as the go command's download cache keeps it: the versions that have a .mod,
// sorted. It keeps the data folder a valid file:// GOPROXY.
import type { Coordination } from '../cluster/coordination.js';
import { isValid, sort as sortVersions, unescapeVersion, type ModuleRef } from '../module/index.js';
import type { BlobStore } from './blobstore.js';
import { localListKey } from './keys.js';

/** Versions with a stored .mod, sorted as Go sorts them. */
export async function localVersions(store: BlobStore, mod: ModuleRef): Promise<string[]> {
  const prefix = `${mod.escaped}/@v/`;
  const out: string[] = [];
  for await (const k of store.list(prefix)) {
    const name = k.slice(prefix.length);
    if (!name.endsWith('.mod') || name.includes('/')) continue;
    try {
      const v = unescapeVersion(name.slice(0, -4));
      if (isValid(v)) out.push(v);
    } catch {
      // Not a version's file.
    }
  }
  return sortVersions(out);
}

/** Rewrites the list under a lock shared with other processes on the same folder. */
export async function writeLocalList(store: BlobStore, coordination: Pick<Coordination, 'tryLock'>, mod: ModuleRef): Promise<void> {
  const key = localListKey(mod.escaped);
  for (let i = 0; i < 400; i++) {
    const lock = await coordination.tryLock(key);
    if (!lock) {
      await new Promise((res) => setTimeout(res, 25));
      continue;
    }
    try {
      const versions = await localVersions(store, mod);
      await store.put(key, Buffer.from(versions.map((v) => `${v}\n`).join('')));
    } finally {
      await lock.release();
    }
    return;
  }
  throw new Error(`timed out waiting for the lock of ${key}`);
}
