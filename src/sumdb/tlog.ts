// The tamper-evident log behind a Go checksum database (golang.org/x/mod/sumdb/tlog): RFC 6962 Merkle
// trees, their hashes stored in the order of Crosby & Wallach ("stored hash index"), record and tree
// proofs, and tiles, the unit in which clients download hashes.
//
// Sizes and indexes are JavaScript numbers. Logs of 2^53 records are far away, but 2^31 is not (the
// public database holds tens of millions of records, with about twice as many stored hashes), so no
// 32-bit bit operator is used on them: shifts are multiplications and floored divisions by powers of two.
import { createHash } from 'node:crypto';
import { decodeStdBase64 } from './base64.js';
import { SumdbError } from './errors.js';

/** A SHA-256 hash: 32 bytes. */
export type Hash = Buffer;
export const HASH_SIZE = 32;

/** Reads stored hashes by stored hash index; the result has one hash per index, in order. */
export type HashReader = (indexes: readonly number[]) => Promise<readonly Hash[]> | readonly Hash[];

/** A tree head: the number of records and the root hash. */
export interface Tree {
  readonly n: number;
  readonly hash: Hash;
}

const shr = (n: number, k: number): number => Math.floor(n / 2 ** k);
const shl = (n: number, k: number): number => n * 2 ** k;

/** Number of trailing zero bits of a positive integer. */
function trailingZeros(n: number): number {
  let c = 0;
  while (n > 0 && n % 2 === 0) {
    n /= 2;
    c++;
  }
  return c;
}

/** The largest power of two k < n, with l = log2 k. */
function maxpow2(n: number): { k: number; l: number } {
  let l = 0;
  while (2 ** (l + 1) < n) l++;
  return { k: 2 ** l, l };
}

function bug(what: string): Error {
  return new Error(`tlog: bad math in ${what}`);
}

function checkCount(got: readonly Hash[], want: number): void {
  if (got.length !== want) throw new Error(`tlog: hash reader returned ${got.length} hashes for ${want} indexes`);
}

/** SHA-256(0x00 ‖ data): the leaf hash of a record (RFC 6962 §2.1). */
export function recordHash(data: Buffer | string): Hash {
  return createHash('sha256').update(Buffer.of(0)).update(data).digest();
}

/** SHA-256(0x01 ‖ left ‖ right): an interior node (RFC 6962 §2.1). */
export function nodeHash(left: Hash, right: Hash): Hash {
  return createHash('sha256').update(Buffer.of(1)).update(left).update(right).digest();
}

/** The hash of the empty tree: SHA-256 of nothing. */
export function emptyHash(): Hash {
  return createHash('sha256').digest();
}

/** Position of hash (level, n) in the dense storage order used by tlog. */
export function storedHashIndex(level: number, n: number): number {
  // Level L's n'th hash is written right after level L+1's 2n+1'th hash.
  for (let l = level; l > 0; l--) n = 2 * n + 1;
  // Level 0's n'th hash is written at n + n/2 + n/4 + ...
  let i = 0;
  for (; n > 0; n = shr(n, 1)) i += n;
  return i + level;
}

/** The inverse of {@link storedHashIndex}. */
export function splitStoredHashIndex(index: number): { level: number; n: number } {
  // storedHashIndex(0, n) < 2n, so the record that wrote this hash is in [index/2, index/2 + log2(index)].
  let n = Math.floor(index / 2);
  let indexN = storedHashIndex(0, n);
  if (indexN > index) throw bug('splitStoredHashIndex');
  for (;;) {
    // Record n adds 1 + trailingZeros(n+1) hashes.
    const x = indexN + 1 + trailingZeros(n + 1);
    if (x > index) break;
    n++;
    indexN = x;
  }
  const level = index - indexN;
  return { level, n: shr(n, level) };
}

/** How many hashes are stored for a tree of n records. */
export function storedHashCount(n: number): number {
  if (n === 0) return 0;
  let numHash = storedHashIndex(0, n - 1) + 1;
  for (let i = n - 1; i % 2 === 1; i = shr(i, 1)) numHash++;
  return numHash;
}

/**
 * The hashes to store, starting at storedHashIndex(0, n), when appending record n with leaf hash h:
 * the leaf and the roots of the subtrees it completes (read from earlier hashes through `reader`).
 */
export async function storedHashesForRecordHash(n: number, h: Hash, reader: HashReader): Promise<Hash[]> {
  const hashes = [h];
  const m = trailingZeros(n + 1);
  const indexes = new Array<number>(m);
  for (let i = 0; i < m; i++) indexes[m - 1 - i] = storedHashIndex(i, shr(n, i) - 1);
  const old = m === 0 ? [] : await reader(indexes);
  checkCount(old, m);
  for (let i = 0; i < m; i++) {
    h = nodeHash(old[m - 1 - i]!, h);
    hashes.push(h);
  }
  return hashes;
}

/** Like {@link storedHashesForRecordHash} for the record's data. */
export function storedHashes(n: number, data: Buffer | string, reader: HashReader): Promise<Hash[]> {
  return storedHashesForRecordHash(n, recordHash(data), reader);
}

/** Storage indexes of the complete subtrees that make up records [lo, hi), left to right. */
function subTreeIndex(lo: number, hi: number, need: number[]): number[] {
  while (lo < hi) {
    const { k, l } = maxpow2(hi - lo + 1);
    if (lo % k !== 0) throw bug('subTreeIndex');
    need.push(storedHashIndex(l, shr(lo, l)));
    lo += k;
  }
  return need;
}

/** A cursor over hashes read for a list of indexes, consumed in the order the indexes were built. */
class Cursor {
  pos = 0;
  constructor(readonly hashes: readonly Hash[]) {}
  take(count: number): readonly Hash[] {
    if (this.pos + count > this.hashes.length) throw bug('hash cursor');
    const out = this.hashes.slice(this.pos, this.pos + count);
    this.pos += count;
    return out;
  }
  done(what: string): void {
    if (this.pos !== this.hashes.length) throw bug(what);
  }
}

/** The hash of records [lo, hi) from the hashes of {@link subTreeIndex}(lo, hi). */
function subTreeHash(lo: number, hi: number, cur: Cursor): Hash {
  let numTree = 0;
  while (lo < hi) {
    const { k } = maxpow2(hi - lo + 1);
    if (lo % k !== 0) throw bug('subTreeHash');
    numTree++;
    lo += k;
  }
  const hs = cur.take(numTree);
  let h = hs[numTree - 1]!;
  for (let i = numTree - 2; i >= 0; i--) h = nodeHash(hs[i]!, h);
  return h;
}

/** The root hash of the tree of n records, from the stored hashes (at most 1 + log2 n of them are read). */
export async function treeHash(n: number, reader: HashReader): Promise<Hash> {
  if (n === 0) return emptyHash();
  const indexes = subTreeIndex(0, n, []);
  const hashes = await reader(indexes);
  checkCount(hashes, indexes.length);
  const cur = new Cursor(hashes);
  const h = subTreeHash(0, n, cur);
  cur.done('treeHash');
  return h;
}

/** A proof that a tree contains a record (RFC 6962's "Merkle audit path"). */
export type RecordProof = readonly Hash[];
/** A proof that a tree contains an earlier tree as a prefix (RFC 6962's "Merkle consistency proof"). */
export type TreeProof = readonly Hash[];

function leafProofIndex(lo: number, hi: number, n: number, need: number[]): number[] {
  if (!(lo <= n && n < hi)) throw bug('leafProofIndex');
  if (lo + 1 === hi) return need;
  const { k } = maxpow2(hi - lo);
  if (n < lo + k) {
    leafProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    leafProofIndex(lo + k, hi, n, need);
  }
  return need;
}

function leafProof(lo: number, hi: number, n: number, cur: Cursor): Hash[] {
  if (!(lo <= n && n < hi)) throw bug('leafProof');
  // The verifier knows the leaf hash itself.
  if (lo + 1 === hi) return [];
  const { k } = maxpow2(hi - lo);
  let p: Hash[];
  let th: Hash;
  if (n < lo + k) {
    p = leafProof(lo, lo + k, n, cur);
    th = subTreeHash(lo + k, hi, cur);
  } else {
    th = subTreeHash(lo, lo + k, cur);
    p = leafProof(lo + k, hi, n, cur);
  }
  p.push(th);
  return p;
}

function invalidInputs(what: string): Error {
  return new RangeError(`tlog: invalid inputs in ${what}`);
}

/** The proof that the tree of size t contains record n. */
export async function proveRecord(t: number, n: number, reader: HashReader): Promise<RecordProof> {
  if (t < 0 || n < 0 || n >= t) throw invalidInputs('proveRecord');
  const indexes = leafProofIndex(0, t, n, []);
  if (indexes.length === 0) return [];
  const hashes = await reader(indexes);
  checkCount(hashes, indexes.length);
  const cur = new Cursor(hashes);
  const p = leafProof(0, t, n, cur);
  cur.done('proveRecord');
  return p;
}

function proofFailed(): SumdbError {
  return new SumdbError('verification', 'invalid transparency proof');
}

function runRecordProof(p: RecordProof, end: number, lo: number, hi: number, n: number, leaf: Hash): Hash {
  // p[0..end) is the part of the proof for this subtree; its last hash is the sibling at this level.
  if (!(lo <= n && n < hi)) throw bug('runRecordProof');
  if (lo + 1 === hi) {
    if (end !== 0) throw proofFailed();
    return leaf;
  }
  if (end === 0) throw proofFailed();
  const { k } = maxpow2(hi - lo);
  const sib = p[end - 1]!;
  if (n < lo + k) return nodeHash(runRecordProof(p, end - 1, lo, lo + k, n, leaf), sib);
  return nodeHash(sib, runRecordProof(p, end - 1, lo + k, hi, n, leaf));
}

/** Checks that p proves that the tree of size t with hash th has record n with leaf hash h; throws if not. */
export function checkRecord(p: RecordProof, t: number, th: Hash, n: number, h: Hash): void {
  if (t < 0 || n < 0 || n >= t) throw invalidInputs('checkRecord');
  if (!runRecordProof(p, p.length, 0, t, n, h).equals(th)) throw proofFailed();
}

function treeProofIndex(lo: number, hi: number, n: number, need: number[]): number[] {
  if (!(lo < n && n <= hi)) throw bug('treeProofIndex');
  if (n === hi) {
    if (lo === 0) return need;
    return subTreeIndex(lo, hi, need);
  }
  const { k } = maxpow2(hi - lo);
  if (n <= lo + k) {
    treeProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    treeProofIndex(lo + k, hi, n, need);
  }
  return need;
}

function treeProof(lo: number, hi: number, n: number, cur: Cursor): Hash[] {
  if (!(lo < n && n <= hi)) throw bug('treeProof');
  if (n === hi) {
    // This subtree is exactly the old tree, whose hash the verifier knows.
    if (lo === 0) return [];
    return [subTreeHash(lo, hi, cur)];
  }
  const { k } = maxpow2(hi - lo);
  let p: Hash[];
  let th: Hash;
  if (n <= lo + k) {
    p = treeProof(lo, lo + k, n, cur);
    th = subTreeHash(lo + k, hi, cur);
  } else {
    th = subTreeHash(lo, lo + k, cur);
    p = treeProof(lo + k, hi, n, cur);
  }
  p.push(th);
  return p;
}

/** The proof that the tree of size t contains the tree of size n as a prefix. */
export async function proveTree(t: number, n: number, reader: HashReader): Promise<TreeProof> {
  if (t < 1 || n < 1 || n > t) throw invalidInputs('proveTree');
  const indexes = treeProofIndex(0, t, n, []);
  if (indexes.length === 0) return [];
  const hashes = await reader(indexes);
  checkCount(hashes, indexes.length);
  const cur = new Cursor(hashes);
  const p = treeProof(0, t, n, cur);
  cur.done('proveTree');
  return p;
}

/** Runs a tree proof over records [lo, hi) and returns the implied [old subtree hash, new subtree hash]. */
function runTreeProof(p: TreeProof, end: number, lo: number, hi: number, n: number, old: Hash): [Hash, Hash] {
  if (!(lo < n && n <= hi)) throw bug('runTreeProof');
  if (n === hi) {
    if (lo === 0) {
      if (end !== 0) throw proofFailed();
      return [old, old];
    }
    if (end !== 1) throw proofFailed();
    return [p[0]!, p[0]!];
  }
  if (end === 0) throw proofFailed();
  const { k } = maxpow2(hi - lo);
  const sib = p[end - 1]!;
  if (n <= lo + k) {
    const [oh, th] = runTreeProof(p, end - 1, lo, lo + k, n, old);
    return [oh, nodeHash(th, sib)];
  }
  const [oh, th] = runTreeProof(p, end - 1, lo + k, hi, n, old);
  return [nodeHash(sib, oh), nodeHash(sib, th)];
}

/** Checks that p proves that the tree of size t with hash th contains the tree of size n with hash h; throws if not. */
export function checkTree(p: TreeProof, t: number, th: Hash, n: number, h: Hash): void {
  if (t < 1 || n < 1 || n > t) throw invalidInputs('checkTree');
  const [h2, th2] = runTreeProof(p, p.length, 0, t, n, h);
  if (!th2.equals(th) || !h2.equals(h)) throw proofFailed();
}

// ---- tree notes and records ----

const TREE_PREFIX = 'go.sum database tree\n';

/** The text a database signs for a tree head: "go.sum database tree\n<N>\n<base64 hash>\n". */
export function formatTree(tree: Tree): string {
  return `${TREE_PREFIX}${tree.n}\n${tree.hash.toString('base64')}\n`;
}

function malformed(what: string): SumdbError {
  return new SumdbError('malformed', what);
}

/** Parses a tree head text; lines after the third are ignored (room for compatible extensions). */
export function parseTree(text: string | Buffer): Tree {
  const s = typeof text === 'string' ? text : text.toString('utf8');
  const bad = (): SumdbError => malformed('malformed tree note');
  if (!s.startsWith(TREE_PREFIX) || s.split('\n').length - 1 < 3 || Buffer.byteLength(s) > 1e6) throw bad();
  const lines = s.split('\n');
  const nText = lines[1]!;
  if (!/^(0|[1-9][0-9]*)$/.test(nText)) throw bad();
  const n = Number(nText);
  if (!Number.isSafeInteger(n)) throw bad();
  const hash = decodeStdBase64(lines[2]!);
  if (hash === null || hash.length !== HASH_SIZE) throw bad();
  return { n, hash };
}

/** Record text: valid UTF-8, no control characters but newline, ends in a newline, no blank line. */
export function isValidRecordText(text: Buffer): boolean {
  if (text.length === 0 || text[text.length - 1] !== 0x0a) return false;
  let last = -1;
  for (const b of text) {
    if ((b < 0x20 && b !== 0x0a) || (b === 0x0a && last === 0x0a)) return false;
    last = b;
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(text);
  } catch {
    return false;
  }
  return true;
}

/** A lookup answer's leading part: "<id>\n<record text>\n" (the signed tree note follows). */
export function formatRecord(id: number, text: Buffer | string): Buffer {
  const t = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  if (!isValidRecordText(t)) throw malformed('malformed record data');
  return Buffer.concat([Buffer.from(`${id}\n`), t, Buffer.from('\n')]);
}

/** Splits a lookup answer into the record id, the record text and the rest (the signed tree note). */
export function parseRecord(msg: Buffer): { id: number; text: Buffer; rest: Buffer } {
  const bad = (): SumdbError => malformed('malformed record data');
  const nl = msg.indexOf(0x0a);
  if (nl < 0) throw bad();
  const idText = msg.subarray(0, nl).toString('latin1');
  // x/mod also takes a sign or leading zeros here; a real database never sends them.
  if (!/^[0-9]+$/.test(idText)) throw bad();
  const id = Number(idText);
  if (!Number.isSafeInteger(id)) throw bad();
  const body = msg.subarray(nl + 1);
  const end = body.indexOf('\n\n');
  if (end < 0) throw bad();
  const text = body.subarray(0, end + 1);
  if (!isValidRecordText(text)) throw bad();
  return { id, text, rest: body.subarray(end + 2) };
}

// ---- tiles ----

/**
 * A tile of height h at level l, number n, lists w consecutive hashes at tree level h·l starting at
 * hash n·2^h of that level (w = 2^h for a complete tile). Level -1 holds record data instead of hashes.
 */
export interface Tile {
  readonly h: number;
  readonly l: number;
  readonly n: number;
  readonly w: number;
}

const PATH_BASE = 1000;

/** The tile's path, e.g. "tile/8/0/x001/234.p/5": n in 3-digit groups, all but the last prefixed "x". */
export function tilePath(t: Tile): string {
  let n = t.n;
  let nStr = String(n % PATH_BASE).padStart(3, '0');
  while (n >= PATH_BASE) {
    n = Math.floor(n / PATH_BASE);
    nStr = `x${String(n % PATH_BASE).padStart(3, '0')}/${nStr}`;
  }
  const p = t.w !== 2 ** t.h ? `.p/${t.w}` : '';
  return `tile/${t.h}/${t.l === -1 ? 'data' : String(t.l)}/${nStr}${p}`;
}

/** Parses a tile path; only the canonical spelling that {@link tilePath} produces is accepted. */
export function parseTilePath(path: string): Tile {
  const bad = (): SumdbError => new SumdbError('input', `malformed tile path ${JSON.stringify(path)}`);
  const f = path.split('/');
  if (f.length < 4 || f[0] !== 'tile') throw bad();
  const int = (s: string): number | null => (/^[0-9]{1,10}$/.test(s) ? Number(s) : null);
  const h = int(f[1]!);
  const isData = f[2] === 'data';
  const l = isData ? -1 : int(f[2]!);
  if (h === null || l === null || h < 1 || h > 30) throw bad();
  let w = 2 ** h;
  let elems = f.slice(3);
  const dotP = f[f.length - 2]!;
  if (dotP.endsWith('.p')) {
    const ww = int(f[f.length - 1]!);
    if (ww === null || ww <= 0 || ww >= w) throw bad();
    w = ww;
    elems = [...f.slice(3, f.length - 2), dotP.slice(0, -2)];
  }
  let n = 0;
  for (const e of elems) {
    const nn = int(e.startsWith('x') ? e.slice(1) : e);
    if (nn === null || nn >= PATH_BASE) throw bad();
    n = n * PATH_BASE + nn;
  }
  if (!Number.isSafeInteger(n)) throw bad();
  const t: Tile = { h, l, n, w };
  if (tilePath(t) !== path) throw bad();
  return t;
}

/** The tile of height h holding stored hash `index`, and the byte range of the hashes it is computed from. */
function tileForIndexRange(h: number, index: number): { tile: Tile; start: number; end: number } {
  const split = splitStoredHashIndex(index);
  let level = split.level;
  let n = split.n;
  const l = Math.floor(level / h);
  level -= l * h; // level within the tile
  const tn = shr(shl(n, level), h);
  n -= shr(shl(tn, h), level); // n within the tile at that level
  const w = shl(n + 1, level);
  return { tile: { h, l, n: tn, w }, start: shl(n, level) * HASH_SIZE, end: shl(n + 1, level) * HASH_SIZE };
}

/** The narrowest tile of height h from which stored hash `index` can be computed. */
export function tileForIndex(h: number, index: number): Tile {
  if (!(h > 0)) throw new RangeError(`tileForIndex: invalid height ${h}`);
  return tileForIndexRange(h, index).tile;
}

/** The hash of the subtree whose 2^k leaves are the hashes in data. */
function tileHash(data: Buffer): Hash {
  if (data.length === 0) throw bug('tileHash');
  if (data.length === HASH_SIZE) return Buffer.from(data);
  const half = data.length / 2;
  return nodeHash(tileHash(data.subarray(0, half)), tileHash(data.subarray(half)));
}

/** Stored hash `index` computed from the data of tile t (tileForIndex(t.h, index) or a wider one). */
export function hashFromTile(t: Tile, data: Buffer, index: number): Hash {
  if (t.h < 1 || t.h > 30 || t.l < 0 || t.l >= 64 || t.w < 1 || t.w > 2 ** t.h) {
    throw new SumdbError('input', `invalid tile ${tilePath(t)}`);
  }
  if (data.length < t.w * HASH_SIZE) {
    throw new SumdbError('malformed', `data length ${data.length} too short for tile ${tilePath(t)}`);
  }
  const { tile: t1, start, end } = tileForIndexRange(t.h, index);
  if (t.l !== t1.l || t.n !== t1.n || t.w < t1.w) {
    throw new SumdbError('input', `index ${index} is in ${tilePath(t1)} not ${tilePath(t)}`);
  }
  return tileHash(data.subarray(start, end));
}

/** The tiles of height h to publish when the tree grows from oldTreeSize to newTreeSize records. */
export function newTiles(h: number, oldTreeSize: number, newTreeSize: number): Tile[] {
  if (!(h > 0)) throw new RangeError(`newTiles: invalid height ${h}`);
  const tiles: Tile[] = [];
  for (let level = 0; shr(newTreeSize, h * level) > 0; level++) {
    const oldN = shr(oldTreeSize, h * level);
    const newN = shr(newTreeSize, h * level);
    if (oldN === newN) continue;
    for (let n = shr(oldN, h); n < shr(newN, h); n++) tiles.push({ h, l: level, n, w: 2 ** h });
    const n = shr(newN, h);
    const w = newN - shl(n, h);
    if (w > 0) tiles.push({ h, l: level, n, w });
  }
  return tiles;
}

/** The content of hash tile t, read from stored hashes. */
export async function readTileData(t: Tile, reader: HashReader): Promise<Buffer> {
  const start = shl(t.n, t.h);
  const indexes: number[] = [];
  for (let i = 0; i < t.w; i++) indexes.push(storedHashIndex(t.h * t.l, start + i));
  const hashes = await reader(indexes);
  checkCount(hashes, indexes.length);
  return Buffer.concat(hashes);
}

/** Where a tile hash reader gets tiles from. */
export interface TileReader {
  readonly height: number;
  /** The data of each tile (t.w * 32 bytes each), from a cache or the database. Not yet trusted. */
  readTiles(tiles: readonly Tile[]): Promise<readonly Buffer[]>;
  /** Called with tiles once they are authenticated against the signed tree: now safe to persist. */
  saveTiles(tiles: readonly Tile[], data: readonly Buffer[]): void | Promise<void>;
}

/** t's k'th parent tile in a tree of n records, or null if the tree has none. */
function tileParent(t: Tile, k: number, n: number): Tile | null {
  const l = t.l + k;
  const tn = shr(t.n, k * t.h);
  let w = 2 ** t.h;
  const max = shr(n, l * t.h);
  if (shl(tn, t.h) + w >= max) {
    if (shl(tn, t.h) >= max) return null;
    w = max - shl(tn, t.h);
  }
  return { h: t.h, l, n: tn, w };
}

/**
 * A HashReader for the given signed tree that answers from tiles. Every tile it uses is authenticated
 * first: the tiles covering the tree's right edge must reproduce the signed root hash, and every other
 * tile must hash to the corresponding entry of its (authenticated) parent. So every hash it returns is
 * proven to be in the tree. Inconsistent tiles fail with "downloaded inconsistent tile".
 */
export function tileHashReader(tree: Tree, tr: TileReader): HashReader {
  return async (indexes: readonly number[]): Promise<Hash[]> => {
    const h = tr.height;
    const tileOrder = new Map<string, number>(); // tile path -> position in tiles
    const tiles: Tile[] = [];
    const add = (t: Tile): number => {
      tileOrder.set(tilePath(t), tiles.length);
      tiles.push(t);
      return tiles.length - 1;
    };

    // The tiles needed to recompute the tree hash; if they reproduce it, they are authentic.
    const stx = subTreeIndex(0, tree.n, []);
    const stxTileOrder = stx.map((x) => {
      const t = tileParent(tileForIndex(h, x), 0, tree.n);
      if (t === null) throw bug('tileHashReader');
      return tileOrder.get(tilePath(t)) ?? add(t);
    });

    // The tiles holding the requested hashes, with any parents needed to authenticate them.
    const endIndex = storedHashIndex(0, tree.n);
    const indexTileOrder = indexes.map((x) => {
      if (x >= endIndex) throw new RangeError('tlog: indexes not in tree');
      const tile = tileForIndex(h, x);
      // Walk up until reaching a tile already planned (the one on the right edge at worst).
      let k = 0;
      let found = -1;
      for (; ; k++) {
        if (k > 64) throw bug('tileHashReader: no planned parent');
        const p = tileParent(tile, k, tree.n);
        const j = p === null ? undefined : tileOrder.get(tilePath(p));
        if (j !== undefined) {
          if (k === 0) found = j;
          break;
        }
      }
      // Walk back down, planning children after their parents.
      for (k--; k >= 0; k--) {
        const p = tileParent(tile, k, tree.n);
        // Only complete tiles have parents: this one has a parent, so it must be complete.
        if (p === null || p.w !== 2 ** p.h) throw bug(`tileHashReader: ${tree.n} ${x}`);
        const j = add(p);
        if (k === 0) found = j;
      }
      return found;
    });

    const data = await tr.readTiles(tiles);
    if (data.length !== tiles.length) throw new Error(`tile reader returned ${data.length} tiles for ${tiles.length}`);
    tiles.forEach((t, i) => {
      if (data[i]!.length !== t.w * HASH_SIZE) {
        throw new SumdbError('malformed', `downloaded tile ${tilePath(t)} has ${data[i]!.length} bytes, want ${t.w * HASH_SIZE}`);
      }
    });

    const inconsistent = (): SumdbError => new SumdbError('verification', 'downloaded inconsistent tile');
    // Authenticate the right-edge tiles against the signed tree hash.
    let th: Hash | null = null;
    for (let i = stx.length - 1; i >= 0; i--) {
      const j = stxTileOrder[i]!;
      const sh = hashFromTile(tiles[j]!, data[j]!, stx[i]!);
      th = th === null ? sh : nodeHash(sh, th);
    }
    if (th === null ? tree.n !== 0 : !th.equals(tree.hash)) throw inconsistent();

    // Authenticate the remaining tiles against their parents, which come earlier in the list.
    const firstOther = stx.length === 0 ? 0 : stxTileOrder[stx.length - 1]! + 1;
    for (let i = firstOther; i < tiles.length; i++) {
      const t = tiles[i]!;
      const p = tileParent(t, 1, tree.n);
      const j = p === null ? undefined : tileOrder.get(tilePath(p));
      if (p === null || j === undefined) throw bug(`tileHashReader: lost parent of ${tilePath(t)}`);
      const ph = hashFromTile(p, data[j]!, storedHashIndex(p.l * p.h, t.n));
      if (!ph.equals(tileHash(data[i]!))) throw inconsistent();
    }

    await tr.saveTiles(tiles, data);

    return indexes.map((x, i) => {
      const j = indexTileOrder[i]!;
      return hashFromTile(tiles[j]!, data[j]!, x);
    });
  };
}
