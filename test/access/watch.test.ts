// FileWatcher, the poller behind htpasswd and tokens.json reloads, driven one check at a time.
// Files edited in place pass through states nobody meant (empty, cut, and, while the kernel
// truncates, the new size with the old mtime); these tests build those states on purpose and
// call check() themselves, so what they prove does not depend on when a timer fires. The only
// waits are lower bounds ("at least settleMs later"), which a slow machine only makes longer.
import { readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FileWatcher } from '../../src/access/watch.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

afterAll(cleanupAll);

interface Watched {
  file: string;
  watcher: FileWatcher<string>;
  /** Contents installed, in order. */
  applied: string[];
  errors: unknown[];
  reads: () => number;
}

/**
 * A watcher over a fresh file holding `first` (already loaded). `duringRead` runs inside each
 * read, after the file was read: the moment an in-place writer may strike.
 */
async function watched(first: string, settleMs: number, duringRead?: (n: number, file: string) => Promise<void>): Promise<Watched> {
  const dir = await makeTempDir('watch');
  const file = path.join(dir, 'watched');
  await writeFile(file, first);
  const applied: string[] = [];
  const errors: unknown[] = [];
  let reads = 0;
  const watcher = new FileWatcher(
    file,
    async () => {
      reads++;
      const text = await readFile(file, 'utf8');
      await duringRead?.(reads, file);
      if (text.includes('broken')) throw new Error(`broken contents: ${text.trim()}`);
      return text;
    },
    (text) => applied.push(text),
    (err) => errors.push(err),
    settleMs,
  );
  await watcher.prime();
  return { file, watcher, applied, errors, reads: () => reads };
}

describe('settling', () => {
  it('a poll loads a changed file only once it has seen it unchanged for settleMs; an explicit check loads it at once', async () => {
    // Ten minutes: no poll in this test can see the file settled, however slow the machine.
    const w = await watched('one\n', 600_000);
    await writeFile(w.file, 'one two\n');
    expect(await w.watcher.check(true)).toBe(false);
    expect(await w.watcher.check(true)).toBe(false);
    expect(w.reads()).toBe(0);
    expect(await w.watcher.check()).toBe(true);
    expect(w.applied).toEqual(['one two\n']);
    // Loaded: nothing more to do, for polls or checks.
    expect(await w.watcher.check(true)).toBe(false);
    expect(await w.watcher.check()).toBe(false);
    expect(w.applied).toEqual(['one two\n']);
  });

  it('the state a stat() reports mid-truncation (size 0, the old mtime) is not loaded by a poll; the finished file is', async () => {
    const settleMs = 30;
    const w = await watched('alice\nbob\n', settleMs);
    // What `cat new > file` looks like to a stat() racing the truncation: empty, yet with the
    // mtime of the version loaded, written (say) an hour ago. Judged by its mtime it has long settled.
    const { atime } = await stat(w.file);
    await utimes(w.file, atime, new Date(Date.now() - 3_600_000));
    await w.watcher.prime();
    await truncate(w.file, 0);
    await utimes(w.file, atime, new Date(Date.now() - 3_600_000));
    expect(await w.watcher.check(true)).toBe(false);
    // The writer finishes before settleMs has passed in this watcher's eyes (for the test: before
    // the next poll), which shows the poll a new stamp: it starts waiting again.
    await writeFile(w.file, 'alice\nbob\ncarol\n');
    await sleep(settleMs + 5);
    expect(await w.watcher.check(true)).toBe(false);
    expect(w.reads()).toBe(0);
    await sleep(settleMs + 5);
    expect(await w.watcher.check(true)).toBe(true);
    expect(w.applied).toEqual(['alice\nbob\ncarol\n']);
  });

  it('an empty file that stays empty for settleMs is loaded: removing every user is an edit too', async () => {
    const settleMs = 20;
    const w = await watched('alice\n', settleMs);
    await writeFile(w.file, '');
    expect(await w.watcher.check(true)).toBe(false);
    await sleep(settleMs + 5);
    expect(await w.watcher.check(true)).toBe(true);
    expect(w.applied).toEqual(['']);
  });
});

describe('a file that changes while it is read', () => {
  it('a poll does not load that read; the next one loads the finished file', async () => {
    const w = await watched('v1\n', 0, async (n, file) => {
      if (n === 1) await writeFile(file, 'v1 and v2\n');
    });
    await writeFile(w.file, 'v1+\n');
    expect(await w.watcher.check(true)).toBe(false);
    expect(w.applied).toEqual([]);
    expect(await w.watcher.check(true)).toBe(true);
    expect(w.applied).toEqual(['v1 and v2\n']);
    expect(w.reads()).toBe(2);
  });

  it('an explicit check reads it again at once, and gives up after three reads of a file that never holds still', async () => {
    const once = await watched('v1\n', 0, async (n, file) => {
      if (n === 1) await writeFile(file, 'v1 and v2\n');
    });
    await writeFile(once.file, 'v1+\n');
    expect(await once.watcher.check()).toBe(true);
    expect(once.applied).toEqual(['v1 and v2\n']);
    expect(once.reads()).toBe(2);

    const restless = await watched('v1\n', 0, async (n, file) => writeFile(file, `${'v'.repeat(n + 10)}\n`));
    await writeFile(restless.file, 'v1+\n');
    expect(await restless.watcher.check()).toBe(false);
    expect(restless.reads()).toBe(3);
    expect(restless.applied).toEqual([]);
    expect(restless.errors).toEqual([]);
  });

  it('a parse error from such a read is not reported: it was about no version of the file', async () => {
    const w = await watched('good\n', 0, async (n, file) => {
      if (n === 1) await writeFile(file, 'good again\n');
    });
    await writeFile(w.file, 'broken\n');
    expect(await w.watcher.check(true)).toBe(false);
    expect(w.errors).toEqual([]);
    expect(await w.watcher.check(true)).toBe(true);
    expect(w.applied).toEqual(['good again\n']);
  });
});

describe('broken files', () => {
  it('are reported once; the old contents stay in force until a good file is loaded', async () => {
    const w = await watched('good\n', 0);
    await writeFile(w.file, 'broken line\n');
    expect(await w.watcher.check()).toBe(false);
    expect(await w.watcher.check()).toBe(false);
    expect(await w.watcher.check(true)).toBe(false);
    expect(w.errors.map(String)).toEqual(['Error: broken contents: broken line']);
    expect(w.applied).toEqual([]);
    await writeFile(w.file, 'good at last\n');
    expect(await w.watcher.check()).toBe(true);
    expect(w.applied).toEqual(['good at last\n']);
  });
});

describe('polling', () => {
  it('loads an in-place edit by itself once it has settled, and stops when told', async () => {
    const w = await watched('one\n', 20);
    w.watcher.start(10);
    try {
      await writeFile(w.file, 'one two\n');
      await expect.poll(() => w.applied, { timeout: 60_000, interval: 10 }).toEqual(['one two\n']);
    } finally {
      w.watcher.stop();
    }
    // Stopped: an explicit check still works.
    await writeFile(w.file, 'one two three\n');
    expect(await w.watcher.check()).toBe(true);
    expect(w.applied).toEqual(['one two\n', 'one two three\n']);
  });
});
