// Misses of .info and .mod: small, so fetched whole, checked, verified, answered from memory at
// once, and stored behind the response. One fetch per key: in this process a shared flight,
// across processes the key's lock (the others wait for the stored file). When the disk is too
// full to keep it, the checked answer is still served; it just is not stored.
import type { Logger } from 'pino';
import type { BlobStat } from '../cache/blobstore.js';
import type { BlobStore } from '../cache/blobstore.js';
import type { MemoryCache } from '../cache/memory.js';
import type { Coordination, FetchLock } from '../cluster/coordination.js';
import { SingleFlight } from '../cluster/flight.js';
import { ProxyError } from '../errors.js';
import { hashGoMod } from '../modzip/index.js';
import { MAX_GOMOD_BYTES, type FetchContext, type ModuleRef, withFetchSlot } from '../sources/index.js';
import type { ArtifactEntry, ArtifactRequest } from './artifact.js';
import { checkInfo, checkMod } from './check.js';
import type { Misses } from './misses.js';
import type { ArtifactKind } from './protocol.js';
import type { StorageSpace } from './space.js';

export interface SmallFetchDeps {
  store: BlobStore;
  coordination: Coordination;
  memory: MemoryCache<ArtifactEntry>;
  log: Logger;
  space: StorageSpace;
  misses: Misses;
  entry(kind: ArtifactKind, data: Buffer, stat: Pick<BlobStat, 'mtimeMs'>, cache?: 'hit' | 'miss'): ArtifactEntry;
  /** Background work that graceful shutdown waits for. */
  track(p: Promise<void>): void;
  /** An .info or .mod was stored (after a .mod, the module's local list is rewritten). */
  stored(mod: ModuleRef, version: string, kind: 'info' | 'mod', size: number, source: string): void;
}

export interface SmallAnswer {
  entry: ArtifactEntry;
  source: string;
}

const OTHER_PROCESS = 'another gomodproxy process';

export class SmallFetches {
  private readonly flights = new SingleFlight<SmallAnswer>();

  constructor(private readonly d: SmallFetchDeps) {}

  fetch(r: ArtifactRequest, key: string, ctx: FetchContext): Promise<SmallAnswer> {
    return this.flights.do(key, () => this.lead(r, key, ctx));
  }

  drain(): Promise<void> {
    return this.flights.drain();
  }

  private async lead(r: ArtifactRequest, key: string, ctx: FetchContext): Promise<SmallAnswer> {
    const kind = r.kind as 'info' | 'mod';
    for (let attempt = 0; attempt < 3; attempt++) {
      let lock: FetchLock | null;
      try {
        lock = await this.d.coordination.tryLock(key);
      } catch (err) {
        // No lock file can be made (a full disk): this answer could not be kept anyway, so it
        // is fetched without one and served without being stored.
        this.d.log.error({ key, err: (err as Error).message }, 'cannot take the fetch lock; serving without storing');
        const { data, source } = await this.fetchChecked(r, key, ctx);
        return { entry: this.d.entry(kind, data, { mtimeMs: Date.now() }, 'miss'), source };
      }
      if (!lock) {
        const got = await this.waitForOther(key, kind);
        if (got) return got;
        continue;
      }
      let handedOff = false;
      try {
        const existing = await this.d.store.getBuffer(key, MAX_GOMOD_BYTES);
        if (existing) return { entry: this.d.entry(kind, existing.data, existing.stat), source: 'cache' };
        const { data, source } = await this.fetchChecked(r, key, ctx);
        // Checked and verified: answer now, and from memory to this process's next requests.
        const now = Date.now();
        this.d.memory.set(key, this.d.entry(kind, data, { mtimeMs: now }));
        const answer = { entry: this.d.entry(kind, data, { mtimeMs: now }, 'miss'), source };
        let claim;
        try {
          claim = await this.d.space.claim(data.length, `${r.mod.path}@${r.version.version}.${kind}`);
        } catch {
          // Too little room to keep it: served from memory, fetched again by whoever asks next elsewhere.
          return answer;
        }
        // The store write (fsync, rename) and the unlock go on behind the response; other
        // processes wait on the lock until the file is in place.
        handedOff = true;
        const held = lock;
        this.d.track(
          this.store(kind, key, r, data, source).finally(async () => {
            claim.release();
            await held.release();
          }),
        );
        return answer;
      } finally {
        if (!handedOff) await lock.release();
      }
    }
    throw new ProxyError('unavailable', `${OTHER_PROCESS} kept failing to fetch ${r.mod.path}@${r.version.version}; retry`);
  }

  /** The upstreams' answer, checked and (for a public .mod) verified; not-found and refusals are remembered. */
  private async fetchChecked(r: ArtifactRequest, key: string, ctx: FetchContext): Promise<{ data: Buffer; source: string }> {
    const kind = r.kind as 'info' | 'mod';
    let res;
    try {
      res = await withFetchSlot(ctx, () => r.route.chain.run(kind, (s) => (kind === 'info' ? s.info(r.mod, r.version, ctx) : s.mod(r.mod, r.version, ctx))));
    } catch (err) {
      throw this.d.misses.learn(key, err);
    }
    let data = res.value;
    try {
      if (kind === 'info') data = checkInfo(data, r.mod, res.source.id, r.version.version).bytes;
      else checkMod(data, r.mod, r.version.version, res.source.id);
    } catch (err) {
      throw err instanceof ProxyError ? this.d.misses.refuse(key, kind, err, 'malformed') : err;
    }
    if (kind === 'mod') await this.d.misses.verifyChecksum(key, r, 'mod', hashGoMod(data), res.source.id);
    return { data, source: res.source.id };
  }

  private async store(kind: 'info' | 'mod', key: string, r: ArtifactRequest, data: Buffer, source: string): Promise<void> {
    try {
      await this.d.store.put(key, data);
      this.d.stored(r.mod, r.version.version, kind, data.length, source);
    } catch (err) {
      // The client has its answer, and this process keeps it in memory; others fetch it again.
      this.d.log.error({ key, err: (err as Error).message }, 'could not store a checked artifact');
    }
  }

  /** Another process holds the lock: wait for its result, or for it to give up. */
  private async waitForOther(key: string, kind: 'info' | 'mod'): Promise<SmallAnswer | null> {
    for (;;) {
      const got = await this.d.store.getBuffer(key, MAX_GOMOD_BYTES);
      if (got) return { entry: this.d.entry(kind, got.data, got.stat, 'miss'), source: OTHER_PROCESS };
      if (!(await this.d.coordination.holder(key))) {
        const again = await this.d.store.getBuffer(key, MAX_GOMOD_BYTES);
        if (again) return { entry: this.d.entry(kind, again.data, again.stat, 'miss'), source: OTHER_PROCESS };
        // It gave up: with an answer worth remembering (not found, refused), or for us to try.
        const remembered = this.d.misses.rememberedError(key);
        if (remembered) throw remembered;
        return null;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  }
}
