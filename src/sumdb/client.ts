// A verifying checksum-database client, after golang.org/x/mod/sumdb's Client, but asynchronous and
// meant for a long-running server: failures are not remembered (the next call retries), and only
// authenticated data is kept in memory.
//
// Every answer is checked before it is used: the tree note's signature, the record's presence in the
// signed tree (through tiles authenticated against the root hash), and the consistency of each newly
// seen tree with the newest one verified before (persisted through readConfig/writeConfig, so other
// processes and later runs share one timeline).
import { SumdbError, SumdbForkError } from './errors.js';
import type { SumdbErrorCode } from './errors.js';
import { NoteError, newVerifier, openNote } from './note.js';
import type { Verifier } from './note.js';
import { HASH_SIZE, checkTree, emptyHash, parseRecord, parseTree, proveTree, recordHash, storedHashIndex, tileHashReader, tilePath, treeHash } from './tlog.js';
import type { HashReader, Tile, TileReader, Tree } from './tlog.js';

/**
 * The outside world of a {@link SumdbClient}. All methods may be called concurrently.
 *
 * Files are named like x/mod's: configuration `<db name>/latest`; cache `<db name>/lookup/<path>@<version>`
 * and `<db name>/tile/8/0/x001/234[.p/W]` (paths in the `!`-escaped form of the lookup URL).
 */
export interface SumdbOps {
  /**
   * GETs `path` (`/lookup/<path>@<version>`, `/tile/...`, `/latest`) from the database and resolves with
   * the body of a 200 answer. Rejects otherwise; an error with `status` 404 or 410 means "not there".
   */
  readRemote(path: string): Promise<Buffer>;
  /** The content of a configuration file; an empty buffer if it does not exist yet. */
  readConfig(file: string): Promise<Buffer>;
  /**
   * Atomically replaces `oldValue` with `newValue`: resolves false, writing nothing, if the stored
   * content is no longer `oldValue` (an absent file counts as empty). Rejects only on I/O errors.
   */
  writeConfig(file: string, oldValue: Buffer, newValue: Buffer): Promise<boolean>;
  /** A cached file, or null if absent (any error counts as absent). Only verified data is ever cached. */
  readCache(file: string): Promise<Buffer | null>;
  /** Caches an immutable, verified file. Failures should be swallowed or rejected; they are only logged. */
  writeCache(file: string, data: Buffer): Promise<void>;
  log(msg: string): void;
  /** Reports proof of database misbehavior (multi-line). The lookup then fails with {@link SumdbForkError}. */
  securityError(msg: string): void;
}

export interface SumdbClientOptions {
  /** `<name>+<hash>+<key>` (see parseGosumdb for GOSUMDB-style settings). */
  readonly verifierKey: string;
  readonly ops: SumdbOps;
  /** Tile height; 8, as every Go checksum database serves. */
  readonly tileHeight?: number;
  /** How many authenticated tiles to keep in memory (each is at most 8 KiB at height 8). */
  readonly memoryTiles?: number;
}

/** A verified tree head and the signed note it came in. */
export interface SignedTree {
  readonly tree: Tree;
  readonly note: Buffer;
}

/** Where a tree note falls relative to the newest verified one. */
const When = { Past: 1, Now: 2, Future: 3 } as const;
type When = (typeof When)[keyof typeof When];

// Bounds a misbehaving writeConfig that keeps reporting conflicts without the stored value changing.
const MAX_CONFIG_ROUNDS = 1000;

export class SumdbClient {
  readonly name: string;
  private readonly verifier: Verifier;
  private readonly ops: SumdbOps;
  private readonly height: number;
  private readonly memoryTiles: number;

  private init: Promise<void> | null = null;
  private latest: SignedTree;
  private readonly lookups = new Map<string, Promise<Buffer>>();
  private readonly tileFetches = new Map<string, Promise<Buffer>>();
  // Tiles authenticated in this process, LRU by path.
  private readonly tiles = new Map<string, Buffer>();
  // Tile data that came from the cache, so it need not be written back.
  private readonly fromCache = new WeakSet<Buffer>();
  // Tile data that came from memory or the cache rather than the database.
  private readonly local = new WeakSet<Buffer>();

  constructor(options: SumdbClientOptions) {
    this.verifier = newVerifier(options.verifierKey.trim());
    this.name = this.verifier.name;
    this.ops = options.ops;
    this.height = options.tileHeight ?? 8;
    if (!Number.isInteger(this.height) || this.height < 1 || this.height > 30) throw new RangeError(`invalid tile height ${this.height}`);
    this.memoryTiles = options.memoryTiles ?? 2048;
    this.latest = { tree: { n: 0, hash: emptyHash() }, note: Buffer.alloc(0) };
  }

  /**
   * The verified go.sum lines for module `path` at `version` (a trailing "/go.mod" is ignored):
   * `<path> <version> h1:...` and `<path> <version>/go.mod h1:...`, as the database recorded them.
   */
  async lookup(path: string, version: string): Promise<string[]> {
    const vers = version.endsWith('/go.mod') ? version.slice(0, -'/go.mod'.length) : version;
    const what = `${path}@${vers}`;
    try {
      await this.ready();
      const remotePath = `/lookup/${escapeModulePath(path)}@${escapeVersion(vers)}`;
      const file = this.name + remotePath;
      let p = this.lookups.get(file);
      if (p === undefined) {
        p = this.fetchRecord(file, remotePath).finally(() => this.lookups.delete(file));
        this.lookups.set(file, p);
      }
      const text = (await p).toString('utf8');
      const prefixes = [`${path} ${vers} `, `${path} ${vers}/go.mod `];
      const lines = text.split('\n').filter((l) => prefixes.some((pre) => l.startsWith(pre)));
      if (lines.length === 0) {
        throw new SumdbError('verification', `the database answered with a record for another module: ${JSON.stringify(text.split('\n')[0])}`);
      }
      return lines;
    } catch (err) {
      throw this.explain(what, err);
    }
  }

  /**
   * Fetches the database's current signed tree, checks it against the newest one verified before
   * (advancing that if it is newer) and returns the newest verified tree.
   */
  async refreshLatest(): Promise<SignedTree> {
    try {
      await this.ready();
      const msg = await this.readRemote('/latest');
      await this.mergeLatest(msg);
      return this.latest;
    } catch (err) {
      throw this.explain('latest tree', err);
    }
  }

  /** The newest verified tree head known to this client (after reading the persisted one). */
  async latestTree(): Promise<SignedTree> {
    await this.ready();
    return this.latest;
  }

  private ready(): Promise<void> {
    if (this.init === null) {
      this.init = (async () => {
        const data = await this.ops.readConfig(`${this.name}/latest`);
        await this.mergeLatest(data);
      })();
      // A failed start (an unreadable file, the network) must not poison the client forever.
      this.init.catch(() => {
        this.init = null;
      });
    }
    return this.init;
  }

  private async readRemote(path: string): Promise<Buffer> {
    try {
      return await this.ops.readRemote(path);
    } catch (err) {
      const status = (err as { status?: unknown } | null)?.status;
      const code: SumdbErrorCode = status === 404 || status === 410 ? 'not-found' : 'remote';
      const msg = err instanceof Error ? err.message : String(err);
      throw new SumdbError(code, `reading ${path}: ${msg}`, { cause: err });
    }
  }

  private async fetchRecord(file: string, remotePath: string): Promise<Buffer> {
    const cached = await this.ops.readCache(file).catch(() => null);
    if (cached !== null && cached.length > 0) {
      try {
        return await this.verifyRecord(cached);
      } catch (err) {
        // Proof of a fork stands whatever its source; anything else may be a damaged cache file.
        if (err instanceof SumdbForkError) throw err;
        this.ops.log(`sumdb ${this.name}: cached ${file} failed verification (${errorMessage(err)}); fetching it again`);
      }
    }
    const data = await this.readRemote(remotePath);
    const text = await this.verifyRecord(data);
    await this.ops.writeCache(file, data).catch((err: unknown) => this.ops.log(`sumdb ${this.name}: caching ${file}: ${errorMessage(err)}`));
    return text;
  }

  /** Checks a lookup answer (record, then signed tree) and returns the record text. */
  private async verifyRecord(data: Buffer): Promise<Buffer> {
    const { id, text, rest } = parseRecord(data);
    await this.mergeLatest(rest);
    const latest = this.latest.tree;
    if (id >= latest.n) {
      throw new SumdbError('verification', `cannot validate record ${id} in tree of size ${latest.n}`);
    }
    const [h] = await this.hashReader(latest)([storedHashIndex(0, id)]);
    if (h === undefined || !h.equals(recordHash(text))) {
      throw new SumdbError('verification', 'cannot authenticate record data in server response');
    }
    return text;
  }

  /**
   * Merges a signed tree into the newest verified one, in memory and then in the persisted config.
   * The config update is a compare-and-swap loop: another process (or lookup) may have advanced it
   * meanwhile, and its tree must then be checked against ours rather than overwritten.
   */
  private async mergeLatest(msg: Buffer): Promise<void> {
    if ((await this.mergeLatestMem(msg)) !== When.Future) return;
    const file = `${this.name}/latest`;
    for (let round = 0; round < MAX_CONFIG_ROUNDS; round++) {
      const stored = await this.ops.readConfig(file);
      if ((await this.mergeLatestMem(stored)) !== When.Past) return;
      if (await this.ops.writeConfig(file, stored, this.latest.note)) return;
    }
    throw new SumdbError('remote', `could not update ${file}: it keeps changing under us`);
  }

  private async mergeLatestMem(msg: Buffer): Promise<When> {
    if (msg.length === 0) {
      // The empty timeline: the starting point, and in the past of any signed tree.
      return this.latest.tree.n === 0 ? When.Now : When.Past;
    }
    let text: string;
    try {
      text = openNote(msg, [this.verifier]).text;
    } catch (err) {
      if (err instanceof NoteError) {
        throw new SumdbError(err.code, `reading tree note: ${err.message}`, { cause: err });
      }
      throw err;
    }
    const signed: SignedTree = { tree: parseTree(text), note: msg };
    // Other lookups may move this.latest while we wait for tiles: re-check until we can install ours.
    let latest = this.latest;
    for (;;) {
      if (signed.tree.n <= latest.tree.n) {
        await this.checkTrees(signed, latest);
        return signed.tree.n < latest.tree.n ? When.Past : When.Now;
      }
      await this.checkTrees(latest, signed);
      if (this.latest === latest) {
        this.latest = signed;
        return When.Future;
      }
      latest = this.latest;
    }
  }

  /** Checks that `older` is a prefix of `newer`; on proof of the contrary, reports it and throws SumdbForkError. */
  private async checkTrees(older: SignedTree, newer: SignedTree): Promise<void> {
    if (older.tree.n === newer.tree.n && older.tree.hash.equals(newer.tree.hash)) return;
    let h = newer.tree.hash;
    let proof: readonly Buffer[] = [];
    let proofError = '';
    if (older.tree.n !== newer.tree.n) {
      // Two signed heads of one size with different hashes are a fork by themselves; otherwise recompute
      // the older root from the newer tree's (authenticated) tiles.
      const thr = this.hashReader(newer.tree);
      try {
        h = await treeHash(older.tree.n, thr);
      } catch (err) {
        if (err instanceof SumdbError) {
          throw new SumdbError(err.code, `checking tree#${older.tree.n} against tree#${newer.tree.n}: ${err.message}`, { cause: err });
        }
        throw err;
      }
      if (h.equals(older.tree.hash)) return;
      // The tiles for this proof were just read, so it costs no more requests; the report then stands
      // on its own, even if the misbehaving server disappears.
      try {
        proof = await proveTree(newer.tree.n, older.tree.n, thr);
        checkTree(proof, newer.tree.n, newer.tree.hash, older.tree.n, h);
      } catch (err) {
        proofError = `internal error: ${errorMessage(err)}`;
      }
    }
    const indent = (b: Buffer): string => b.toString('utf8').replaceAll('\n', '\n\t');
    let report =
      'SECURITY ERROR\ngo.sum database server misbehavior detected!\n\n' +
      `old database:\n\t${indent(older.note)}\n` +
      `new database:\n\t${indent(newer.note)}\n` +
      `proof of misbehavior:\n\t${h.toString('base64')}`;
    if (proofError !== '') report += `\t${proofError}\n`;
    for (const p of proof) report += `\n\t${p.toString('base64')}`;
    this.ops.securityError(report);
    throw new SumdbForkError(this.name, older.note, newer.note, report);
  }

  private tileFile(t: Tile): string {
    return `${this.name}/${tilePath(t)}`;
  }

  private remember(path: string, data: Buffer): void {
    this.tiles.delete(path);
    this.tiles.set(path, data);
    while (this.tiles.size > this.memoryTiles) {
      const oldest = this.tiles.keys().next().value;
      if (oldest === undefined) break;
      this.tiles.delete(oldest);
    }
  }

  /**
   * Reads stored hashes of `tree` through tiles, all authenticated against it. Tiles kept from earlier
   * (in memory or in the cache) were authenticated against an earlier tree; if they fail against this
   * one (a damaged cache file, or a database that rewrote its history), they are fetched again from
   * the database, once, so the check is made with the tiles the database serves for this tree.
   */
  private hashReader(tree: Tree): HashReader {
    return async (indexes) => {
      const first = this.tileReader(false);
      try {
        return await tileHashReader(tree, first.reader)(indexes);
      } catch (err) {
        if (!first.usedLocal() || !(err instanceof SumdbError && err.code === 'verification')) throw err;
        this.ops.log(`sumdb ${this.name}: stored tiles failed authentication against tree#${tree.n} (${err.message}); fetching them again`);
        return tileHashReader(tree, this.tileReader(true).reader)(indexes);
      }
    };
  }

  private tileReader(remoteOnly: boolean): { reader: TileReader; usedLocal: () => boolean } {
    let usedLocal = false;
    return {
      usedLocal: () => usedLocal,
      reader: {
        height: this.height,
        readTiles: (tiles) =>
          Promise.all(
            tiles.map(async (t) => {
              const data = await this.readTile(t, remoteOnly);
              if (this.local.has(data)) usedLocal = true;
              return data;
            }),
          ),
        saveTiles: (tiles, data) => this.saveTiles(tiles, data),
      },
    };
  }

  /** A tile's data from memory or the cache (both authenticated earlier), else from the database (not yet authenticated). */
  private readTile(tile: Tile, remoteOnly: boolean): Promise<Buffer> {
    const path = tilePath(tile);
    const full: Tile = { ...tile, w: 2 ** tile.h };
    const isPartial = tile.w !== full.w;
    const size = tile.w * HASH_SIZE;
    const mem = remoteOnly ? undefined : (this.tiles.get(path) ?? (isPartial ? this.tiles.get(tilePath(full)) : undefined));
    if (mem !== undefined && mem.length >= size) {
      const data = mem.subarray(0, size);
      this.local.add(data);
      return Promise.resolve(data);
    }

    const key = `${remoteOnly ? 'remote:' : ''}${path}`;
    let p = this.tileFetches.get(key);
    if (p !== undefined) return p;
    p = (async (): Promise<Buffer> => {
      if (!remoteOnly) {
        const cached = await this.ops.readCache(this.tileFile(tile)).catch(() => null);
        if (cached !== null && cached.length > 0) {
          this.fromCache.add(cached);
          this.local.add(cached);
          return cached;
        }
        // A prefix of a cached full tile is as good as the partial tile.
        if (isPartial) {
          const cachedFull = await this.ops.readCache(this.tileFile(full)).catch(() => null);
          if (cachedFull !== null && cachedFull.length === full.w * HASH_SIZE) {
            const prefix = cachedFull.subarray(0, size);
            this.fromCache.add(prefix);
            this.local.add(prefix);
            return prefix;
          }
        }
      }
      try {
        return await this.readRemote(`/${path}`);
      } catch (err) {
        // A partial tile may be gone because the tile has since been completed.
        if (isPartial) {
          const data = await this.readRemote(`/${tilePath(full)}`).catch(() => null);
          if (data !== null && data.length >= size) return data.subarray(0, size);
        }
        throw err;
      }
    })().finally(() => this.tileFetches.delete(key));
    this.tileFetches.set(key, p);
    return p;
  }

  private async saveTiles(tiles: readonly Tile[], data: readonly Buffer[]): Promise<void> {
    const writes: Promise<void>[] = [];
    tiles.forEach((t, i) => {
      const path = tilePath(t);
      const d = data[i]!;
      const have = this.tiles.get(path) ?? this.tiles.get(tilePath({ ...t, w: 2 ** t.h }));
      if (have !== undefined && have.subarray(0, d.length).equals(d)) return;
      this.remember(path, d);
      if (this.fromCache.has(d)) return;
      const file = this.tileFile(t);
      writes.push(this.ops.writeCache(file, d).catch((err: unknown) => this.ops.log(`sumdb ${this.name}: caching ${file}: ${errorMessage(err)}`)));
    });
    await Promise.all(writes);
  }

  /** Turns any failure into a one-line SumdbError for the Go user that names the module and the database. */
  private explain(what: string, err: unknown): SumdbError {
    if (err instanceof SumdbForkError) return err;
    const inner = err instanceof SumdbError ? err : null;
    const code: SumdbErrorCode = inner?.code ?? 'remote';
    const hint: Record<SumdbErrorCode, string> = {
      config: 'fix the checksum database settings (GOSUMDB)',
      input: 'check the module path and version',
      'not-found': 'the checksum database does not know this module version; if the module is private, list it in GONOSUMDB or GOPRIVATE',
      remote: 'check that the checksum database is reachable, then retry',
      malformed: 'the checksum database (or something between it and us) sent an answer that does not parse; retry later and report it if it persists',
      verification: 'the checksum database (or something between it and us) sent data that fails verification; retry later and report it if it persists',
      fork: 'stop using the checksum database and report it',
    };
    return new SumdbError(code, `verifying ${what}: checksum database ${this.name}: ${errorMessage(err)} (${hint[code]})`, { cause: err });
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The case-encoded path for a lookup URL: each upper-case letter becomes "!" and its lower-case form.
 * The database sends "!" literally (not %21). Paths are checked first so nothing odd reaches a URL.
 */
export function escapeModulePath(path: string): string {
  if (!/^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/.test(path) || path.startsWith('-')) {
    throw new SumdbError('input', `malformed module path ${JSON.stringify(path)}`);
  }
  return path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** The case-encoded version for a lookup URL. */
export function escapeVersion(version: string): string {
  if (!/^v[0-9A-Za-z.+-]+$/.test(version)) {
    throw new SumdbError('input', `malformed version ${JSON.stringify(version)}`);
  }
  return version.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}
