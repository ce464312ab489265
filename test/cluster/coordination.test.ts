// HostCoordination's part of the Coordination interface beyond locking itself: what a holder
// tells followers (size, host, staging file), released() for followers, the fencing check, and
// invalidations reaching every listener.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOST, HostCoordination, type Invalidation } from '../../src/cluster/coordination.js';
import { FileLocks } from '../../src/cluster/filelock.js';

async function coordination(): Promise<HostCoordination> {
  return new HostCoordination(await mkdtemp(path.join(tmpdir(), 'gmp-coord-')), new FileLocks(10_000), undefined, 5);
}

describe('HostCoordination', () => {
  it('tells followers what the holder said, and who it is', async () => {
    const co = await coordination();
    const lock = await co.tryLock('example.com/m/@v/v1.0.0.zip', { staging: '/data/x.partial' });
    expect(lock).not.toBeNull();
    expect(await co.tryLock('example.com/m/@v/v1.0.0.zip')).toBeNull();
    expect(await co.holder('example.com/m/@v/v1.0.0.zip')).toEqual({ host: HOST, staging: '/data/x.partial' });
    await lock!.update({ size: 1234 });
    expect(await co.holder('example.com/m/@v/v1.0.0.zip')).toEqual({ host: HOST, staging: '/data/x.partial', size: 1234 });
    expect(await lock!.stillHeld()).toBe(true);
    await lock!.release();
    expect(await co.holder('example.com/m/@v/v1.0.0.zip')).toBeNull();
    expect(await lock!.stillHeld()).toBe(false);
  });

  it('a release right after an update, not waiting for it, leaves no lock behind', async () => {
    const co = await coordination();
    for (let i = 0; i < 20; i++) {
      const key = `example.com/m/@v/v1.0.${i}.zip`;
      const lock = await co.tryLock(key);
      void lock!.update({ staging: `/data/${i}.partial`, size: i });
      await lock!.release();
      expect(await co.holder(key)).toBeNull();
      expect(await co.tryLock(key)).not.toBeNull();
    }
  });

  it('a later grant has a different token; released() returns once the holder lets go', async () => {
    const co = await coordination();
    const key = 'example.com/m/@v/v1.1.0.zip';
    const first = (await co.tryLock(key))!;
    const events: string[] = [];
    const waiting = co.released(key, 60_000).then(() => events.push('released'));
    await new Promise((r) => setTimeout(r, 20));
    events.push('letting go');
    await first.release();
    await waiting;
    expect(events).toEqual(['letting go', 'released']);
    const second = (await co.tryLock(key))!;
    expect(second.token).not.toBe(first.token);
    // Nobody holds a key nobody locked: released() returns at once.
    await co.released('example.com/none/@v/v1.0.0.zip', 60_000);
    await second.release();
  });

  it('released() gives up at its timeout while the holder keeps the lock', async () => {
    const co = await coordination();
    const key = 'example.com/m/@v/v1.2.0.zip';
    const lock = (await co.tryLock(key))!;
    await co.released(key, 30);
    expect(await co.holder(key)).not.toBeNull();
    await lock.release();
  });

  it('an invalidation reaches every listener in this process and the relay for the others', async () => {
    const co = await coordination();
    const heard: Invalidation[] = [];
    const relayed: Invalidation[] = [];
    co.onInvalidate((w) => heard.push(w));
    co.relayInvalidationsTo((w) => relayed.push(w));
    await co.invalidate({ pattern: 'example.com/*', version: 'v1.0.0' });
    co.invalidated({ pattern: 'example.org/x' });
    expect(heard).toEqual([{ pattern: 'example.com/*', version: 'v1.0.0' }, { pattern: 'example.org/x' }]);
    // What came from another process is not sent back out.
    expect(relayed).toEqual([{ pattern: 'example.com/*', version: 'v1.0.0' }]);
    expect(co.degraded()).toBeNull();
  });
});
