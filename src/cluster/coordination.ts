// Who fetches a store key, and what every process learns about it. The server knows only this
// interface. Two implementations: HostCoordination, for the processes that share one data folder
// (lock files under state/locks/, answers relayed by the cluster primary), and RedisCoordination
// (redis.ts), for instances on several hosts over one object store. Lock files are named by a
// hash of the key, never placed beside the artifact: a request that ends not-found must leave
// no folder behind, or anonymous clients could grow the data folder without bound.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { FileLocks, type HeldLock } from './filelock.js';
import { RememberedAnswers } from './remembered.js';

/** What a lock's holder tells followers. */
export interface HolderInfo {
  /** The expected size of what it writes, once the upstream said it (followers send Content-Length). */
  size?: number;
  /** The holder's host and staging file: a follower on the same host reads that file as it grows. */
  host?: string;
  staging?: string;
}

export interface FetchLock {
  /** Grows with every grant of the key's lock (a fencing token): a later holder has a larger one. */
  readonly token: number;
  update(info: { size?: number; staging?: string }): Promise<void>;
  /** False once the lock expired and another took it: a holder that lost it must not commit. */
  stillHeld(): Promise<boolean>;
  release(): Promise<void>;
}

/** Mutable answers to drop everywhere: the modules matching a pattern (GOPRIVATE syntax), or one version of them. */
export interface Invalidation {
  pattern: string;
  version?: string;
}

/**
 * A change to what the store holds, told to every process for its module index: an artifact
 * committed (with its size) or removed (size null). Lost notices cost only freshness: each
 * index also rescans the store now and then.
 */
export interface StoreChange {
  module: string;
  version: string;
  kind: 'info' | 'mod' | 'zip';
  size: number | null;
  mtimeMs: number;
  /** Where a committed .info came from (an upstream's id, "git", ...), when the committer knows it. */
  source?: string;
}

/** A mutable answer as kept for every process: its bytes and when it was fetched. */
export interface StoredAnswer {
  data: Buffer;
  mtimeMs: number;
}

/** Where mutable answers (list, @latest, query .info) are kept for the other processes and instances. */
export interface AnswerStore {
  get(key: string, maxBytes: number): Promise<StoredAnswer | null>;
  put(key: string, data: Buffer): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys under a prefix, in no particular order. */
  keys(prefix: string): AsyncIterable<string>;
}

export interface Coordination {
  /** For logs: "host", "redis://host:port/db". */
  readonly description: string;
  /** The name of this host in holders' info: a follower reads the staging file of a holder with the same name. */
  readonly host: string;
  /** The fetch lock of a store key; null while a live holder has it. */
  tryLock(key: string, info?: { staging?: string }): Promise<FetchLock | null>;
  /** The live holder of key's lock, with what it has told followers; null when nobody holds it. */
  holder(key: string): Promise<HolderInfo | null>;
  /** Settles when nobody holds key's lock (its holder committed or gave up), or after timeoutMs. */
  released(key: string, timeoutMs: number): Promise<void>;
  /** Not-found and refused upstream answers, remembered for a while by every process. */
  readonly answers: RememberedAnswers;
  /** Mutable answers shared by every process; null: keep them in the blob store. */
  readonly mutable: AnswerStore | null;
  /** Tells every process to drop what matches from its memory (the caller drops the stored answers). */
  invalidate(what: Invalidation): Promise<void>;
  /** Called in every process (the sender's included) for each invalidation. */
  onInvalidate(listener: (what: Invalidation) => void): void;
  /** Tells the other processes (not this one) what the store gained or lost; never waits or fails. */
  announce(changes: readonly StoreChange[]): void;
  /** Called with the changes other processes announce. */
  onStoreChange(listener: (changes: readonly StoreChange[]) => void): void;
  /** Null while it works as designed; else the one line /readyz reports. */
  degraded(): string | null;
  close(): Promise<void>;
}

export const HOST = hostname();

/** Relays an invalidation to the other processes of this host (set by the cluster wiring). */
export type InvalidationRelay = (what: Invalidation) => void;

/** Relays store changes to the other processes of this host (set by the cluster wiring). */
export type StoreChangeRelay = (changes: readonly StoreChange[]) => void;

/** Calls each listener, so that one that throws does not keep the others from hearing. */
export function tellEach<T>(listeners: readonly ((x: T) => void)[], x: T, onError: (err: unknown) => void): void {
  for (const l of listeners) {
    try {
      l(x);
    } catch (err) {
      onError(err);
    }
  }
}

/** Coordination of the processes that share one data folder (workers, or instances on one host). */
export class HostCoordination implements Coordination {
  readonly description = 'host';
  readonly host = HOST;
  readonly answers: RememberedAnswers;
  readonly mutable = null;
  private readonly dir: string;
  private readonly listeners: ((what: Invalidation) => void)[] = [];
  private relay: InvalidationRelay | undefined;
  private changeRelay: StoreChangeRelay | undefined;
  private readonly changeListeners: ((changes: readonly StoreChange[]) => void)[] = [];

  constructor(
    dataDir: string,
    private readonly locks = new FileLocks(),
    answers = new RememberedAnswers(),
    private readonly pollMs = 20,
  ) {
    this.dir = path.join(dataDir, 'state', 'locks');
    this.answers = answers;
  }

  /** The lock file of a key: flat, fixed-length names, so any key maps to one file in one folder. */
  lockFile(key: string): string {
    return path.join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.lock`);
  }

  async tryLock(key: string, info: { staging?: string } = {}): Promise<FetchLock | null> {
    const held: HeldLock | null = await this.locks.tryAcquire(this.lockFile(key), { key, ...info });
    if (!held) return null;
    const file = this.lockFile(key);
    return {
      token: held.since,
      update: (i) => held.update(i),
      stillHeld: async () => {
        const sure = held.surelyHeld();
        if (sure !== undefined) return sure;
        const now = await this.locks.info(file);
        return now !== null && now.pid === process.pid && now.since === held.since && now.host === HOST;
      },
      release: () => held.release(),
    };
  }

  async holder(key: string): Promise<HolderInfo | null> {
    const h = await this.locks.holder(this.lockFile(key));
    if (!h) return null;
    const out: HolderInfo = {};
    if (h.info?.size !== undefined) out.size = h.info.size;
    if (h.info?.host !== undefined) out.host = h.info.host;
    if (h.info?.staging !== undefined) out.staging = h.info.staging;
    return out;
  }

  async released(key: string, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && (await this.holder(key)) !== null) await new Promise((r) => setTimeout(r, this.pollMs));
  }

  /** Where invalidations made here go for the other processes of the host. */
  relayInvalidationsTo(relay: InvalidationRelay): void {
    this.relay = relay;
  }

  invalidate(what: Invalidation): Promise<void> {
    this.invalidated(what);
    this.relay?.(what);
    return Promise.resolve();
  }

  /** Takes an invalidation another process of the host made. */
  invalidated(what: Invalidation): void {
    for (const l of this.listeners) l(what);
  }

  onInvalidate(listener: (what: Invalidation) => void): void {
    this.listeners.push(listener);
  }

  relayStoreChangesTo(relay: StoreChangeRelay): void {
    this.changeRelay = relay;
  }

  announce(changes: readonly StoreChange[]): void {
    if (changes.length > 0) this.changeRelay?.(changes);
  }

  /** Takes the store changes another process of the host announced. */
  storeChanged(changes: readonly StoreChange[]): void {
    tellEach(this.changeListeners, changes, () => undefined);
  }

  onStoreChange(listener: (changes: readonly StoreChange[]) => void): void {
    this.changeListeners.push(listener);
  }

  degraded(): string | null {
    return null;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
