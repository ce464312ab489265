// Mutable answers kept in the blob store (the default, and where no Redis is configured): every
// process over the same store sees them, and they survive restarts.
import type { AnswerStore, StoredAnswer } from '../cluster/coordination.js';
import type { BlobStore } from './blobstore.js';

export class BlobAnswers implements AnswerStore {
  constructor(private readonly store: BlobStore) {}

  async get(key: string, maxBytes: number): Promise<StoredAnswer | null> {
    const got = await this.store.getBuffer(key, maxBytes);
    return got && { data: got.data, mtimeMs: got.stat.mtimeMs };
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.store.put(key, data);
  }

  async delete(key: string): Promise<void> {
    await this.store.delete(key);
  }

  keys(prefix: string): AsyncIterable<string> {
    return this.store.list(prefix);
  }
}
