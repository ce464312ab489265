// The transparency log, compared value by value with golang.org/x/mod/sumdb/tlog (test/gotools/tlogcheck)
// on every tree of 1..300 records and on trees around the 256·256 boundary, where tiles change level.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SumdbError,
  checkRecord,
  checkTree,
  emptyHash,
  formatRecord,
  formatTree,
  hashFromTile,
  newTiles,
  nodeHash,
  parseRecord,
  parseTilePath,
  parseTree,
  proveRecord,
  proveTree,
  readTileData,
  recordHash,
  splitStoredHashIndex,
  storedHashCount,
  storedHashIndex,
  storedHashes,
  tileForIndex,
  tileHashReader,
  tilePath,
  treeHash,
} from '../../src/sumdb/index.js';
import type { Hash, HashReader, Tile, TileReader, Tree } from '../../src/sumdb/index.js';
import { runGoTool } from '../helpers/gotools.js';

const BIG = 65536 + 256 + 1;
const BOUNDARY_SIZES = [65535, 65536, 65537, 65792, BIG];
const records = Array.from({ length: BIG }, (_, i) => `example.com/m${i} v1.0.${i % 7} h1:${Buffer.from(`r${i}`.padEnd(32, '.')).toString('base64')}\n`);

interface TileReadQuery {
  h: number;
  tree: number;
  indexes: number[];
}
interface GoAnswer {
  storedHashes: string;
  hashCounts: number[];
  treeHashes: string[];
  recordProofs: string[][];
  treeProofs: string[][];
  newTiles: { path: string; data: string }[][];
  tileForIndex: string[];
  tileReads: { tiles: string[]; hashes: string[] }[];
  parsedPaths: (Tile | null)[];
}

const b64 = (h: Hash): string => h.toString('base64');

// Queries, built once and sent to Go in one run.
const treeSizes = [...Array.from({ length: 300 }, (_, i) => i + 1), ...BOUNDARY_SIZES];
const recordProofs: [number, number][] = [];
const treeProofs: [number, number][] = [];
for (let t = 1; t <= 300; t++) {
  for (const n of new Set([0, t - 1, Math.floor(t / 2), (t * 7919) % t])) recordProofs.push([t, n]);
  for (const n of new Set([1, t, Math.ceil(t / 2), ((t * 7919) % t) + 1])) treeProofs.push([t, n]);
}
for (const t of BOUNDARY_SIZES) {
  for (const n of [0, 255, 256, 65279, 65534, 65535, 65536, 65791, t - 1]) if (n < t) recordProofs.push([t, n]);
  for (const n of [1, 256, 257, 65535, 65536, 65537, t]) if (n <= t) treeProofs.push([t, n]);
}
const newTileQueries: [number, number, number][] = [
  [8, 0, 300],
  [8, 100, 300],
  [8, 255, 257],
  [8, 256, 512],
  [2, 0, 23],
  [2, 5, 23],
  [3, 0, 300],
  [1, 0, 9],
  [8, 65535, 65537],
  [8, 65536, BIG],
  [8, 0, BIG],
];
const tileForIndexQueries: [number, number][] = [];
for (const h of [1, 2, 3, 8]) for (let x = 0; x < storedHashCount(300); x++) tileForIndexQueries.push([h, x]);
for (const n of [65535, 65536, 65792]) for (const level of [0, 1, 8, 16]) tileForIndexQueries.push([8, storedHashIndex(level, n >> level)]);
const tileReadQueries: TileReadQuery[] = [
  { h: 8, tree: BIG, indexes: [storedHashIndex(0, 0)] },
  { h: 8, tree: BIG, indexes: [storedHashIndex(0, BIG - 1)] },
  { h: 8, tree: BIG, indexes: [storedHashIndex(8, 1), storedHashIndex(16, 0)] },
  { h: 8, tree: BIG, indexes: [storedHashIndex(0, 300), storedHashIndex(0, 65600), storedHashIndex(3, 7)] },
  { h: 8, tree: 65536, indexes: [storedHashIndex(0, 65535)] },
  { h: 8, tree: 300, indexes: [storedHashIndex(0, 17)] },
  { h: 8, tree: 256, indexes: [storedHashIndex(0, 0)] },
  { h: 2, tree: 300, indexes: [storedHashIndex(0, 5)] },
  { h: 2, tree: 300, indexes: [storedHashIndex(0, 299), storedHashIndex(1, 10), storedHashIndex(3, 4)] },
  { h: 1, tree: 7, indexes: [storedHashIndex(0, 3)] },
  { h: 3, tree: 300, indexes: [storedHashIndex(0, 100), storedHashIndex(0, 299)] },
];
const parsePaths = [
  'tile/4/0/001',
  'tile/4/0/001.p/5',
  'tile/3/5/x123/x456/078',
  'tile/3/5/x123/x456/078.p/2',
  'tile/1/0/x003/x057/500',
  'tile/3/5/123/456/078',
  'tile/3/-1/123/456/078',
  'tile/1/data/x003/x057/500',
  'tile/8/data/000.p/3',
  'tile/8/0/x001/234',
  'tile/8/0/x000/001',
  'tile/8/0/1',
  'tile/8/0/000.p/256',
  'tile/8/0/000.p/0',
  'tile/8/0/000.p/',
  'tile/31/0/000',
  'tile/0/0/000',
  'tile/+8/0/000',
  'tile/08/0/000',
  'tile/8/00/000',
  'tile/8/0',
  'tiles/8/0/000',
  'tile/8/0/000/',
  'tile/8/0/x001/x002/003.p/17',
];

let go: GoAnswer;
let stored: Hash[] = [];
const reader: HashReader = (indexes) =>
  indexes.map((x) => {
    const h = stored[x];
    if (h === undefined) throw new Error(`no stored hash ${x}`);
    return h;
  });

beforeAll(async () => {
  const goRun = runGoTool(
    'tlogcheck',
    ['tlog'],
    JSON.stringify({
      records,
      treeSizes,
      recordProofs,
      treeProofs,
      newTiles: newTileQueries,
      tileForIndex: tileForIndexQueries,
      tileReads: tileReadQueries,
      parsePaths,
    }),
  );
  stored = [];
  for (let i = 0; i < records.length; i++) stored.push(...(await storedHashes(i, records[i]!, reader)));
  go = JSON.parse(await goRun) as GoAnswer;
});

describe('hashes and storage, against Go', () => {
  it('stores exactly the hashes Go stores', () => {
    expect(stored.length).toBe(storedHashCount(BIG));
    const goStored = Buffer.from(go.storedHashes, 'base64');
    expect(goStored.length).toBe(stored.length * 32);
    for (let i = 0; i < stored.length; i++) {
      if (!goStored.subarray(i * 32, i * 32 + 32).equals(stored[i]!)) expect.fail(`stored hash ${i} differs`);
    }
  });

  it('computes the same tree hashes and stored hash counts', async () => {
    const mine: string[] = [];
    for (const n of treeSizes) mine.push(b64(await treeHash(n, reader)));
    expect(mine).toEqual(go.treeHashes);
    expect(treeSizes.map(storedHashCount)).toEqual(go.hashCounts);
  });

  it('inverts storedHashIndex', () => {
    for (let x = 0; x < stored.length; x++) {
      const { level, n } = splitStoredHashIndex(x);
      if (storedHashIndex(level, n) !== x) expect.fail(`splitStoredHashIndex(${x}) = ${level}, ${n}`);
    }
  });

  it('uses RFC 6962 hashing', () => {
    const sha = (...parts: Buffer[]): string => createHash('sha256').update(Buffer.concat(parts)).digest('hex');
    expect(b64(emptyHash())).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(recordHash('a').toString('hex')).toBe(sha(Buffer.of(0), Buffer.from('a')));
    const l = recordHash('a');
    const r = recordHash('b');
    expect(nodeHash(l, r).toString('hex')).toBe(sha(Buffer.of(1), l, r));
  });
});

describe('proofs, against Go', () => {
  it('builds the same record proofs, and they check', async () => {
    for (const [i, [t, n]] of recordProofs.entries()) {
      const p = await proveRecord(t, n, reader);
      expect(p.map(b64), `proveRecord(${t}, ${n})`).toEqual(go.recordProofs[i]);
      checkRecord(p, t, await treeHash(t, reader), n, stored[storedHashIndex(0, n)]!);
    }
  });

  it('builds the same tree proofs, and they check', async () => {
    for (const [i, [t, n]] of treeProofs.entries()) {
      const p = await proveTree(t, n, reader);
      expect(p.map(b64), `proveTree(${t}, ${n})`).toEqual(go.treeProofs[i]);
      checkTree(p, t, await treeHash(t, reader), n, await treeHash(n, reader));
    }
  });

  it('rejects wrong proofs', async () => {
    const t = 300;
    const th = await treeHash(t, reader);
    const p = await proveRecord(t, 17, reader);
    const leaf = stored[storedHashIndex(0, 17)]!;
    expect(() => checkRecord(p, t, th, 17, recordHash('other'))).toThrow(/invalid transparency proof/);
    expect(() => checkRecord(p, t, th, 18, leaf)).toThrow(SumdbError);
    expect(() => checkRecord(p.slice(1), t, th, 17, leaf)).toThrow(/invalid transparency proof/);
    expect(() => checkRecord([...p, leaf], t, th, 17, leaf)).toThrow(/invalid transparency proof/);
    const bent = p.map((h, i) => (i === 3 ? nodeHash(h, h) : h));
    expect(() => checkRecord(bent, t, th, 17, leaf)).toThrow(/invalid transparency proof/);

    const tp = await proveTree(t, 100, reader);
    const old = await treeHash(100, reader);
    expect(() => checkTree(tp, t, th, 100, recordHash('x'))).toThrow(/invalid transparency proof/);
    expect(() => checkTree(tp, t, th, 101, old)).toThrow(/invalid transparency proof/);
    expect(() => checkTree(tp.slice(0, -1), t, th, 100, old)).toThrow(/invalid transparency proof/);
    expect(() => checkTree(tp, t, old, 100, old)).toThrow(/invalid transparency proof/);
  });
});

describe('tiles, against Go', () => {
  it('publishes the same tiles with the same content', async () => {
    for (const [i, [h, oldN, newN]] of newTileQueries.entries()) {
      const mine = [];
      for (const t of newTiles(h, oldN, newN)) mine.push({ path: tilePath(t), data: (await readTileData(t, reader)).toString('base64') });
      expect(mine, `newTiles(${h}, ${oldN}, ${newN})`).toEqual(go.newTiles[i]);
    }
  });

  it('maps stored hash indexes to the same tiles', () => {
    expect(tileForIndexQueries.map(([h, x]) => tilePath(tileForIndex(h, x)))).toEqual(go.tileForIndex);
  });

  it('parses tile paths as Go does', () => {
    const mine = parsePaths.map((p) => {
      try {
        return parseTilePath(p);
      } catch (err) {
        expect(err).toBeInstanceOf(SumdbError);
        return null;
      }
    });
    expect(mine).toEqual(go.parsedPaths);
    expect(go.parsedPaths.filter((t) => t !== null).length).toBeGreaterThan(5);
  });

  it('reads hashes through the same tiles as Go, in the same order', async () => {
    for (const [i, q] of tileReadQueries.entries()) {
      const tree: Tree = { n: q.tree, hash: await treeHash(q.tree, reader) };
      const asked: string[] = [];
      const saved: string[] = [];
      const tr: TileReader = {
        height: q.h,
        readTiles: async (tiles) => {
          asked.push(...tiles.map(tilePath));
          return Promise.all(tiles.map((t) => readTileData(t, reader)));
        },
        saveTiles: (tiles) => void saved.push(...tiles.map(tilePath)),
      };
      const got = await tileHashReader(tree, tr)(q.indexes);
      expect({ tiles: asked, hashes: got.map(b64) }, JSON.stringify(q)).toEqual(go.tileReads[i]);
      expect(saved).toEqual(asked);
    }
  });

  it('reports a tampered tile, wherever the damage is, and saves nothing', async () => {
    for (const q of tileReadQueries) {
      const tree: Tree = { n: q.tree, hash: await treeHash(q.tree, reader) };
      const count = (await plan(tree, q)).length;
      for (let victim = 0; victim < count; victim++) {
        let saved = 0;
        const tr: TileReader = {
          height: q.h,
          readTiles: async (tiles) => {
            const data = await Promise.all(tiles.map((t) => readTileData(t, reader)));
            const d = Buffer.from(data[victim]!);
            d[d.length - 1]! ^= 0x80;
            data[victim] = d;
            return data;
          },
          saveTiles: () => void saved++,
        };
        await expect(tileHashReader(tree, tr)(q.indexes), `${JSON.stringify(q)} tile ${victim}`).rejects.toThrow('downloaded inconsistent tile');
        expect(saved).toBe(0);
      }
    }
  });

  it('rejects tiles of the wrong size and indexes outside the tree', async () => {
    const tree: Tree = { n: 300, hash: await treeHash(300, reader) };
    const short: TileReader = {
      height: 8,
      readTiles: async (tiles) => Promise.all(tiles.map(async (t) => (await readTileData(t, reader)).subarray(32))),
      saveTiles: () => undefined,
    };
    await expect(tileHashReader(tree, short)([0])).rejects.toThrow(/has \d+ bytes, want/);
    const fine: TileReader = { ...short, readTiles: async (tiles) => Promise.all(tiles.map((t) => readTileData(t, reader))) };
    await expect(tileHashReader(tree, fine)([storedHashIndex(0, 300)])).rejects.toThrow(/not in tree/);
  });

  it('computes a hash from a wider tile and refuses the wrong tile', async () => {
    const t = tileForIndex(8, storedHashIndex(0, 5));
    expect(tilePath(t)).toBe('tile/8/0/000.p/6');
    const wide: Tile = { h: 8, l: 0, n: 0, w: 256 };
    const data = await readTileData(wide, reader);
    expect(hashFromTile(wide, data, storedHashIndex(0, 5)).equals(stored[storedHashIndex(0, 5)]!)).toBe(true);
    expect(hashFromTile(wide, data, storedHashIndex(3, 2)).equals(stored[storedHashIndex(3, 2)]!)).toBe(true);
    expect(() => hashFromTile(wide, data, storedHashIndex(0, 256))).toThrow(/is in tile\/8\/0\/001\.p\/1 not tile\/8\/0\/000/);
  });
});

/** The tiles a read will ask for, in order. */
async function plan(tree: Tree, q: TileReadQuery): Promise<string[]> {
  const asked: string[] = [];
  await tileHashReader(tree, {
    height: q.h,
    readTiles: async (tiles) => {
      asked.push(...tiles.map(tilePath));
      return Promise.all(tiles.map((t) => readTileData(t, reader)));
    },
    saveTiles: () => undefined,
  })(q.indexes);
  return asked;
}

describe('tree notes and records', () => {
  // Golden values from x/mod's tlog/note_test.go.
  const golden = 'go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n';

  it('formats and parses tree notes', () => {
    expect(formatTree({ n: 123456789012, hash: recordHash('hello world') })).toBe(golden);
    const t = parseTree(golden);
    expect(t.n).toBe(123456789012);
    expect(t.hash.equals(recordHash('hello world'))).toBe(true);
    for (const good of [golden + 'JOE', golden + 'JOE\n', golden + 'JOE\n'.repeat(1000)]) expect(parseTree(good).n).toBe(123456789012);
    const bad = [
      'not-' + golden,
      golden.replace('123456789012', '0xabcdef'),
      golden.replace('123456789012', '0123'),
      golden.replace('123456789012', '+123'),
      golden.replace('123456789012', '-1'),
      golden.replace('Bb0=', 'BTOOBIG='),
      golden.replace('Bb0=', 'Bb0'),
      golden.slice(0, -1),
      'go.sum database tree\n',
    ];
    for (const b of bad) expect(() => parseTree(b), JSON.stringify(b)).toThrow(/malformed tree note/);
  });

  it('formats and parses records', () => {
    expect(formatRecord(123456789012, 'hello, world\n').toString()).toBe('123456789012\nhello, world\n\n');
    for (const bad of ['', 'hello\nworld', 'hello\n\nworld\n', 'hello\x01world\n']) {
      expect(() => formatRecord(1, bad), JSON.stringify(bad)).toThrow(/malformed record/);
    }
    const r = parseRecord(Buffer.from('123456789012\nhello, world\n\njunk on end\x01\xff', 'latin1'));
    expect([r.id, r.text.toString(), r.rest.toString('latin1')]).toEqual([123456789012, 'hello, world\n', 'junk on end\x01\xff']);
    const badRecords = ['not-123\nhello\n\n', '123\nhello\x01world\n\n', '123\nhello world\n', '0x123\nhello world\n\n', '-1\nhello\n\n'];
    for (const bad of badRecords) expect(() => parseRecord(Buffer.from(bad)), JSON.stringify(bad)).toThrow(/malformed record/);
    expect(() => parseRecord(Buffer.from([...Buffer.from('123\nhello'), 0xff, ...Buffer.from('world\n\n')]))).toThrow(/malformed record/);
  });
});
