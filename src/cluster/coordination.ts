// Who fetches a store key, and what every process learns about it. The server knows only this
// interface; below it, processes on one host share lock files in the data folder and answers
// relayed by the cluster primary (HostCoordination). Lock files live under state/locks/ named
// by a hash of the key, never beside the artifact: a request that ends not-found must leave no
// folder behind, or anonymous clients could grow the data folder without bound.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { FileLocks, type HeldLock } from './filelock.js';
import { RememberedAnswers } from './remembered.js';

export interface FetchLock {
  /** Tells followers what the holder knows (the expected size, once the upstream said it). */
  update(info: { size?: number }): Promise<void>;
  release(): Promise<void>;
}

export interface Coordination {
  /** The fetch lock of a store key; null while a live holder has it. */
  tryLock(key: string): Promise<FetchLock | null>;
  /** The live holder of key's lock, with what it has told followers; null when nobody holds it. */
  holder(key: string): Promise<{ size?: number } | null>;
  /** Not-found and refused upstream answers, remembered for a while by every process. */
  readonly answers: RememberedAnswers;
}

/** Coordination of the processes that share one data folder (workers, or instances on one host). */
export class HostCoordination implements Coordination {
  readonly answers: RememberedAnswers;
  private readonly dir: string;

  constructor(
    dataDir: string,
    private readonly locks = new FileLocks(),
    answers = new RememberedAnswers(),
  ) {
    this.dir = path.join(dataDir, 'state', 'locks');
    this.answers = answers;
  }

  /** The lock file of a key: flat, fixed-length names, so any key maps to one file in one folder. */
  lockFile(key: string): string {
    return path.join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.lock`);
  }

  async tryLock(key: string): Promise<FetchLock | null> {
    const held: HeldLock | null = await this.locks.tryAcquire(this.lockFile(key), { key });
    return held && { update: (info) => held.update(info), release: () => held.release() };
  }

  async holder(key: string): Promise<{ size?: number } | null> {
    const h = await this.locks.holder(this.lockFile(key));
    if (!h) return null;
    return h.info?.size !== undefined ? { size: h.info.size } : {};
  }
}
