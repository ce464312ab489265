import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rename, writeFile, readFile, utimes } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { ForeignView, HOLDBACK_BYTES, LocalView, readStaged, type OpenCommitted } from '../../src/cache/staging.js';
import { FileLocks } from '../../src/cluster/filelock.js';
import { SingleFlight } from '../../src/cluster/flight.js';
import { ProxyError } from '../../src/errors.js';

async function dir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'gmp-staging-'));
}

/** Opens a committed file as a store's get does, streamed (no positional read: the BlobCursor path). */
function opener(file: string): OpenCommitted {
  return async (start) => {
    const data = await readFile(file).catch(() => null);
    if (!data) return null;
    return { size: data.length, etag: '"x"', mtimeMs: 0, stream: Readable.from([data.subarray(start)]), close: async () => undefined };
  };
}

async function drain(gen: AsyncGenerator<Buffer>, seen?: (n: number) => void): Promise<Buffer> {
  const out: Buffer[] = [];
  let n = 0;
  for await (const c of gen) {
    out.push(c);
    n += c.length;
    seen?.(n);
  }
  return Buffer.concat(out);
}

describe('staged artifacts', () => {
  it('streams to readers while writing, holding back the tail until the commit', async () => {
    const d = await dir();
    const staging = path.join(d, 'x.zip.partial');
    const final = path.join(d, 'x.zip');
    const data = randomBytes(HOLDBACK_BYTES * 4);
    const view = new LocalView(staging, opener(final), 'x.zip');
    view.setSize(data.length);
    const fh = await open(staging, 'w');
    let maxSeenBeforeCommit = 0;
    let committed = false;
    const reader = drain(
      readStaged(view, () => false),
      (n) => {
        if (!committed) maxSeenBeforeCommit = Math.max(maxSeenBeforeCommit, n);
      },
    );
    for (let off = 0; off < data.length; off += 10_000) {
      const chunk = data.subarray(off, off + 10_000);
      await fh.write(chunk);
      view.progress(off + chunk.length);
      await new Promise((r) => setImmediate(r));
    }
    await fh.close();
    // Everything but the held-back tail goes out (the reader gets there when it gets there);
    // not a byte more: having read all it may, it waits for a change, and none comes before the commit.
    await expect.poll(() => maxSeenBeforeCommit, { timeout: 60_000, interval: 5 }).toBe(data.length - HOLDBACK_BYTES);
    expect(maxSeenBeforeCommit).toBeGreaterThan(0);
    expect(maxSeenBeforeCommit).toBeLessThanOrEqual(data.length - HOLDBACK_BYTES);
    committed = true;
    await rename(staging, final);
    view.commit(data.length);
    expect((await reader).equals(data)).toBe(true);
    // A reader arriving after the commit reads the final file.
    expect((await drain(readStaged(view, () => false))).equals(data)).toBe(true);
  });

  it('fails readers when the fetch fails, after they got only what was safe', async () => {
    const d = await dir();
    const staging = path.join(d, 'y.zip.partial');
    const view = new LocalView(staging, opener(path.join(d, 'y.zip')), 'y.zip');
    await writeFile(staging, randomBytes(HOLDBACK_BYTES + 100));
    view.progress(HOLDBACK_BYTES + 100);
    const got: number[] = [];
    const reading = drain(
      readStaged(view, () => false),
      (n) => got.push(n),
    );
    // Fail only once the reader has had what was safe, so that what is under test (it got that,
    // then the error) does not depend on how fast it read.
    await expect.poll(() => Math.max(0, ...got), { timeout: 60_000, interval: 5 }).toBe(100);
    view.fail(new ProxyError('upstream', 'upstream broke off'));
    await expect(reading).rejects.toThrow('upstream broke off');
    expect(Math.max(0, ...got)).toBe(100);
  });

  it('follows another process through its staging file and lock', async () => {
    const d = await dir();
    const staging = path.join(d, 'z.zip.partial');
    const final = path.join(d, 'z.zip');
    const data = randomBytes(200_000);
    let lockHeld = true;
    const view = new ForeignView(
      staging,
      opener(final),
      async () => {
        const committed = await readFile(final)
          .then((b) => b.length)
          .catch(() => null);
        return { committedSize: committed, lockHeld, expectedSize: data.length };
      },
      'z.zip',
      5,
    );
    await writeFile(staging, data.subarray(0, 150_000));
    let seen = 0;
    const reading = drain(
      readStaged(view, () => false),
      (n) => (seen = n),
    );
    // It follows: the safe part of the partial file goes out before the rest exists.
    await expect.poll(() => seen, { timeout: 60_000, interval: 5 }).toBe(150_000 - HOLDBACK_BYTES);
    await writeFile(staging, data);
    await rename(staging, final);
    lockHeld = false;
    expect((await reading).equals(data)).toBe(true);
    expect(view.size()).toBe(data.length);
  });

  it('reports a follower whose leader gave up', async () => {
    const d = await dir();
    const view = new ForeignView(path.join(d, 'n.partial'), opener(path.join(d, 'n')), async () => ({ committedSize: null, lockHeld: false }), 'n.zip', 5);
    await view.refresh();
    expect(view.state()).toBe('failed');
    expect(view.error()?.message).toMatch(/gave up; retry/);
  });
});

describe('cross-process locks', () => {
  it('admits one holder at a time and frees on release', async () => {
    const d = await dir();
    const locks = new FileLocks(10_000);
    const file = path.join(d, 'a', 'v1.zip.lock');
    const first = await locks.tryAcquire(file);
    expect(first).not.toBeNull();
    expect(await locks.tryAcquire(file)).toBeNull();
    expect(await locks.isHeld(file)).toBe(true);
    await first?.update({ size: 42 });
    expect((await locks.info(file))?.size).toBe(42);
    await first?.release();
    expect(await locks.isHeld(file)).toBe(false);
    const again = await locks.tryAcquire(file);
    expect(again).not.toBeNull();
    await again?.release();
  });

  it('breaks the lock of a dead process on this host, and a silent one', async () => {
    const d = await dir();
    const locks = new FileLocks(2_000);
    const dead = path.join(d, 'dead.lock');
    await writeFile(dead, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), since: Date.now() }));
    const a = await locks.tryAcquire(dead);
    expect(a).not.toBeNull();
    await a?.release();
    const silent = path.join(d, 'silent.lock');
    await writeFile(silent, JSON.stringify({ pid: process.ppid, host: 'another-host', since: 0 }));
    expect(await locks.tryAcquire(silent)).toBeNull();
    const old = new Date(Date.now() - 60_000);
    await utimes(silent, old, old);
    const b = await locks.tryAcquire(silent);
    expect(b).not.toBeNull();
    await b?.release();
  });
});

describe('single flight', () => {
  it('shares one run among concurrent callers and forgets it after', async () => {
    const f = new SingleFlight<number>();
    let runs = 0;
    const fn = async (): Promise<number> => {
      runs++;
      await new Promise((r) => setTimeout(r, 10));
      return runs;
    };
    const all = await Promise.all(Array.from({ length: 20 }, () => f.do('k', fn)));
    expect(new Set(all)).toEqual(new Set([1]));
    expect(f.has('k')).toBe(false);
    expect(await f.do('k', fn)).toBe(2);
  });
});
