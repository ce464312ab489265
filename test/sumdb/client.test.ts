// The verifying client against a checksum database built from golang.org/x/mod's sumdb.Server.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { SumdbClient, SumdbError, SumdbForkError, checkTree, openNote, newVerifier, parseTree } from '../../src/sumdb/index.js';
import { cleanupAll } from '../helpers/tmp.js';
import { MemoryOps, startGoSumdb, sumLines } from './helpers.js';
import type { GoSumdbServer } from './helpers.js';

afterAll(cleanupAll);

let db: GoSumdbServer;
beforeEach(async () => {
  db = await startGoSumdb();
});

const client = (ops: MemoryOps): SumdbClient => new SumdbClient({ verifierKey: db.vkey, ops });

async function addModules(prefix: string, count: number, from = 0): Promise<void> {
  const lines: string[] = [];
  for (let i = from; i < from + count; i++) lines.push(...sumLines(`example.com/${prefix}${i}`, 'v1.0.0'));
  await db.add(lines);
}

describe('lookups', () => {
  it('returns the verified lines and persists the tree it verified against', async () => {
    await db.add([...sumLines('example.com/a', 'v1.0.0'), ...sumLines('example.com/b', 'v1.2.3'), ...sumLines('example.com/a', 'v1.1.0')]);
    const ops = MemoryOps.forUrl(db.url);
    const c = client(ops);
    expect(await c.lookup('example.com/b', 'v1.2.3')).toEqual(sumLines('example.com/b', 'v1.2.3'));
    expect(await c.lookup('example.com/a', 'v1.0.0')).toEqual(sumLines('example.com/a', 'v1.0.0'));
    expect(await c.lookup('example.com/a', 'v1.1.0/go.mod')).toEqual(sumLines('example.com/a', 'v1.1.0'));

    const latest = ops.config.get(`${db.name}/latest`);
    expect(latest?.toString()).toBe((await db.get('/latest')).toString());
    expect(parseTree(openNote(latest!, [newVerifier(db.vkey)]).text).n).toBe(3);
    expect([...ops.cache.keys()].sort()).toEqual([
      `${db.name}/lookup/example.com/a@v1.0.0`,
      `${db.name}/lookup/example.com/a@v1.1.0`,
      `${db.name}/lookup/example.com/b@v1.2.3`,
      `${db.name}/tile/8/0/000.p/3`,
    ]);
  });

  it('escapes upper case with a literal ! and finds the record', async () => {
    await db.add(sumLines('github.com/Azure/Go-Thing', 'v0.1.0-RC1'));
    const ops = MemoryOps.forUrl(db.url);
    expect(await client(ops).lookup('github.com/Azure/Go-Thing', 'v0.1.0-RC1')).toEqual(sumLines('github.com/Azure/Go-Thing', 'v0.1.0-RC1'));
    expect(ops.remoteReads[0]).toBe('/lookup/github.com/!azure/!go-!thing@v0.1.0-!r!c1');
  });

  it('serves a second client from the cache alone', async () => {
    await addModules('m', 300);
    const shared = { config: new Map<string, Buffer>(), cache: new Map<string, Buffer>() };
    const first = MemoryOps.forUrl(db.url, shared);
    await client(first).lookup('example.com/m7', 'v1.0.0');
    await client(first).lookup('example.com/m290', 'v1.0.0');
    const second = MemoryOps.forUrl(db.url, shared);
    expect(await client(second).lookup('example.com/m7', 'v1.0.0')).toEqual(sumLines('example.com/m7', 'v1.0.0'));
    expect(await client(second).lookup('example.com/m290', 'v1.0.0')).toHaveLength(2);
    expect(second.remoteReads).toEqual([]);
  });

  it('says when the database does not know a module version', async () => {
    await addModules('m', 2);
    const err = await client(MemoryOps.forUrl(db.url))
      .lookup('example.com/missing', 'v1.0.0')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SumdbError);
    expect((err as SumdbError).code).toBe('not-found');
    expect((err as SumdbError).message).toMatch(
      /^verifying example\.com\/missing@v1\.0\.0: checksum database sumdb\.test: reading \/lookup\/example\.com\/missing@v1\.0\.0: 404/,
    );
    expect((err as SumdbError).message).toMatch(/GONOSUMDB/);
    expect((err as SumdbError).message).not.toContain('\n');
  });

  it('refuses malformed module paths and versions without asking the database', async () => {
    const ops = MemoryOps.forUrl(db.url);
    for (const [p, v] of [
      ['example.com/a b', 'v1.0.0'],
      ['example.com/a', 'v1.0.0/../x'],
      ['example.com/a!b', 'v1.0.0'],
      ['', 'v1.0.0'],
    ] as const) {
      await expect(client(ops).lookup(p, v)).rejects.toMatchObject({ code: 'input' });
    }
    expect(ops.remoteReads).toEqual([]);
  });
});

describe('a growing log', () => {
  it('checks each new tree against the one verified before', async () => {
    await addModules('m', 3);
    const ops = MemoryOps.forUrl(db.url);
    const c = client(ops);
    await c.lookup('example.com/m1', 'v1.0.0');
    expect((await c.latestTree()).tree.n).toBe(3);

    // Cross a tile boundary and grow a second tile level.
    await addModules('m', 70_000 - 3, 3);
    expect(await c.lookup('example.com/m69999', 'v1.0.0')).toEqual(sumLines('example.com/m69999', 'v1.0.0'));
    expect((await c.latestTree()).tree.n).toBe(70_000);
    expect(parseTree(openNote(ops.config.get(`${db.name}/latest`)!, [newVerifier(db.vkey)]).text).n).toBe(70_000);
    // Old lookups answered from the cache are still checked against the newest tree.
    expect(await c.lookup('example.com/m1', 'v1.0.0')).toHaveLength(2);

    // A new process starting from the persisted tree.
    await addModules('x', 5);
    const later = MemoryOps.forUrl(db.url, { config: ops.config });
    expect(await client(later).lookup('example.com/x4', 'v1.0.0')).toHaveLength(2);
    expect(parseTree(openNote(ops.config.get(`${db.name}/latest`)!, [newVerifier(db.vkey)]).text).n).toBe(70_005);
    // Go serves hash tiles only; the client never asks for data tiles.
    expect([...ops.remoteReads, ...later.remoteReads].filter((p) => p.includes('/data/'))).toEqual([]);
  });

  it('refreshes the latest tree on request', async () => {
    await addModules('m', 4);
    const ops = MemoryOps.forUrl(db.url);
    const c = client(ops);
    expect((await c.refreshLatest()).tree.n).toBe(4);
    await addModules('m', 600, 4);
    expect((await c.refreshLatest()).tree.n).toBe(604);
    expect(ops.configWrites.length).toBe(2);
  });

  it('keeps one timeline under concurrent lookups from several clients', async () => {
    await addModules('m', 10);
    const shared = { config: new Map<string, Buffer>(), cache: new Map<string, Buffer>() };
    const opsList = [0, 1, 2].map(() => MemoryOps.forUrl(db.url, shared));
    opsList.forEach((o, i) => (o.writeDelayMs = 3 * i + 1));
    const clients = opsList.map(client);
    const lookups: Promise<string[]>[] = [];
    for (let round = 0; round < 5; round++) {
      await addModules('m', 37, 10 + round * 37);
      const size = 10 + (round + 1) * 37;
      for (let i = 0; i < 12; i++) {
        const c = clients[(round + i) % clients.length]!;
        lookups.push(c.lookup(`example.com/m${(i * 31 + round) % size}`, 'v1.0.0'));
      }
    }
    expect((await Promise.all(lookups)).every((l) => l.length === 2)).toBe(true);
    const verifier = newVerifier(db.vkey);
    const sizes = opsList.flatMap((o) => o.configWrites).map((w) => parseTree(openNote(w, [verifier]).text).n);
    // Each write replaced what it had read (compare-and-swap), so the stored tree never went back.
    const stored = parseTree(openNote(shared.config.get(`${db.name}/latest`)!, [verifier]).text).n;
    expect(stored).toBe(Math.max(...sizes));
    expect(stored).toBe(10 + 5 * 37);
  });

  it('adopts a newer tree written meanwhile instead of overwriting it', async () => {
    await addModules('m', 5);
    const config = new Map<string, Buffer>();
    const a = MemoryOps.forUrl(db.url, { config });
    const b = MemoryOps.forUrl(db.url, { config });
    a.beforeNextWrite = async () => {
      await addModules('m', 5, 5);
      await client(b).lookup('example.com/m9', 'v1.0.0'); // writes tree 10 while a is about to write tree 5
    };
    const ca = client(a);
    await ca.lookup('example.com/m1', 'v1.0.0');
    expect(a.conflicts).toBe(1);
    expect(a.configWrites).toEqual([]);
    const verifier = newVerifier(db.vkey);
    expect(parseTree(openNote(config.get(`${db.name}/latest`)!, [verifier]).text).n).toBe(10);
    // a's own view moved forward too.
    expect((await ca.latestTree()).tree.n).toBe(10);
  });

  it('replaces an older tree written meanwhile', async () => {
    await addModules('m', 5);
    const config = new Map<string, Buffer>();
    const a = MemoryOps.forUrl(db.url, { config });
    const b = MemoryOps.forUrl(db.url, { config });
    const oldNote = await db.get('/latest');
    await addModules('m', 5, 5);
    // b records tree 5 (as if from a lookup answered earlier) just before a writes tree 10.
    a.beforeNextWrite = async () => {
      expect(await b.writeConfig(`${db.name}/latest`, Buffer.alloc(0), oldNote)).toBe(true);
    };
    await client(a).lookup('example.com/m1', 'v1.0.0');
    expect(a.conflicts).toBe(1);
    expect(a.configWrites).toHaveLength(1);
    expect(parseTree(openNote(config.get(`${db.name}/latest`)!, [newVerifier(db.vkey)]).text).n).toBe(10);
  });
});

describe('a misbehaving database', () => {
  it('detects a rewritten history as a fork and proves it', async () => {
    await addModules('m', 300);
    const ops = MemoryOps.forUrl(db.url);
    const c = client(ops);
    await c.lookup('example.com/m5', 'v1.0.0');
    const oldNote = ops.config.get(`${db.name}/latest`)!;

    await db.fork(7);
    await addModules('n', 1);
    const err = await c.lookup('example.com/n0', 'v1.0.0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SumdbForkError);
    const fork = err as SumdbForkError;
    expect(fork.code).toBe('fork');
    expect(fork.message).toMatch(/^SECURITY ERROR: checksum database sumdb\.test signed two inconsistent trees/);
    expect(fork.oldNote.equals(oldNote)).toBe(true);
    expect(fork.newNote.toString()).toBe((await db.get('/latest')).toString());
    expect(ops.securityErrors).toEqual([fork.proof]);
    expect(fork.proof).toMatch(/^SECURITY ERROR\ngo\.sum database server misbehavior detected!\n\nold database:\n\tgo\.sum database tree\n\t300\n/);
    expect(fork.proof).toContain('\nnew database:\n\tgo.sum database tree\n\t301\n');

    // The proof stands on its own: the new tree contains a tree of size 300 whose hash is not the old one.
    const verifier = newVerifier(db.vkey);
    const oldTree = parseTree(openNote(fork.oldNote, [verifier]).text);
    const newTree = parseTree(openNote(fork.newNote, [verifier]).text);
    const [h, ...p] = fork.proof
      .split('proof of misbehavior:\n')[1]!
      .split('\n')
      .map((l) => Buffer.from(l.trim(), 'base64'));
    expect(h!.equals(oldTree.hash)).toBe(false);
    checkTree(p, newTree.n, newTree.hash, oldTree.n, h!);
    // Nothing advanced past the fork.
    expect(ops.config.get(`${db.name}/latest`)!.equals(oldNote)).toBe(true);
  });

  it('detects a rewritten history of the same size', async () => {
    await addModules('m', 20);
    const shared = { config: new Map<string, Buffer>() };
    await client(MemoryOps.forUrl(db.url, shared)).lookup('example.com/m3', 'v1.0.0');
    await db.fork(0);
    // A new process: nothing in memory, only the persisted tree.
    const ops = MemoryOps.forUrl(db.url, shared);
    const err = await client(ops)
      .lookup('example.com/m4', 'v1.0.0')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SumdbForkError);
    expect((err as SumdbForkError).proof).toMatch(/proof of misbehavior:\n\t[A-Za-z0-9+/]{43}=$/);
  });

  it('rejects a tampered tile', async () => {
    await addModules('m', 300);
    const ops = MemoryOps.forUrl(db.url);
    const real = ops.readRemote.bind(ops);
    ops.readRemote = async (p) => {
      const data = Buffer.from(await real(p));
      if (p === '/tile/8/0/000') data[77]! ^= 0x01;
      return data;
    };
    const err = await client(ops)
      .lookup('example.com/m9', 'v1.0.0')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SumdbError);
    expect(err).not.toBeInstanceOf(SumdbForkError);
    expect((err as SumdbError).code).toBe('verification');
    expect((err as SumdbError).message).toContain('downloaded inconsistent tile');
    expect([...ops.cache.keys()]).toEqual([]);
    expect(ops.config.size).toBe(1); // the tree note itself was fine
  });

  it('rejects a tampered lookup answer', async () => {
    await addModules('m', 5);
    const cases: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
      ['changed hash', (b) => Buffer.from(b.toString().replace(/ h1:[A-Za-z]/, ' h1:0')), /cannot authenticate record data/],
      ['other record id', (b) => Buffer.from(b.toString().replace(/^\d+/, '0')), /cannot authenticate record data/],
      ['id past the tree', (b) => Buffer.from(b.toString().replace(/^\d+/, '99')), /cannot validate record 99 in tree of size 5/],
      ['changed tree size', (b) => Buffer.from(b.toString().replace('tree\n5\n', 'tree\n6\n')), /invalid signature for key sumdb\.test/],
      [
        'signed by someone else',
        (b) => Buffer.from(b.toString().replace(/— sumdb\.test \S+/, `— sumdb.test ${Buffer.alloc(68, 7).toString('base64')}`)),
        /no verifiable signatures/,
      ],
      ['not a record', () => Buffer.from('<html>oops</html>\n'), /malformed record data/],
    ];
    for (const [name, tamper, why] of cases) {
      const ops = MemoryOps.forUrl(db.url);
      const real = ops.readRemote.bind(ops);
      ops.readRemote = async (p) => (p.startsWith('/lookup/') ? tamper(await real(p)) : real(p));
      const err = await client(ops)
        .lookup('example.com/m3', 'v1.0.0')
        .catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(SumdbError);
      expect((err as SumdbError).message, name).toMatch(why);
      expect(
        [...ops.cache.keys()].filter((k) => k.includes('/lookup/')),
        name,
      ).toEqual([]);
    }
  });

  it('refuses a record of another module', async () => {
    await addModules('m', 5);
    const ops = MemoryOps.forUrl(db.url);
    const real = ops.readRemote.bind(ops);
    ops.readRemote = (p) => real(p.replace('/m3@', '/m4@'));
    await expect(client(ops).lookup('example.com/m3', 'v1.0.0')).rejects.toThrow(/record for another module/);
  });
});
