// The checksum database, seen from the proxy: the /sumdb/<name>/ endpoints the go command uses
// (served through us, cached, answering from cache while the database is down), and the check
// that every public module version's hashes agree with the database before it is stored.
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import type { Coordination } from '../cluster/coordination.js';
import type { Config, Timeouts } from '../config/index.js';
import { ProxyError } from '../errors.js';
import { compilePrefixPatterns, unescapePath, unescapeVersion, type PrefixMatcher } from '../module/index.js';
import { ProxySource, type ChainMember, type FetchContext, type ModuleRef } from '../sources/index.js';
import { HASH_SIZE, SumdbClient, SumdbError, SumdbForkError, parseTilePath, tilePath, type GosumdbSetting, type SumdbOps, type Tile } from '../sumdb/index.js';
import type { Metrics } from './metrics.js';
import { TEXT, sendBody, type Exchange } from './respond.js';

/** Where the database is reached: one of our upstream proxies (its /sumdb/<name>/), or the database itself. */
interface Route {
  source: ProxySource;
  prefix: string;
  describe: string;
}

const MAX_SUMDB_BYTES = 1 << 20;
const LATEST_TTL_MS = 5_000;
const PARTIAL_TTL_MS = 10_000;

export interface SumdbServiceOptions {
  setting: GosumdbSetting;
  noSumdb: string;
  store: BlobStore;
  /** The lock of the verified tree head, shared by every process that keeps it. */
  coordination: Pick<Coordination, 'tryLock'>;
  /** The upstream chain's members, in order: the go command asks each proxy whether it supports the database. */
  upstreams: { member: ChainMember; fallthrough: 'not-found' | 'any' }[];
  timeouts: Timeouts;
  /** Modules whose route says not to consult the database (private ones): never named to it. */
  skip?: (modulePath: string) => boolean;
  metrics: Metrics;
  log: Logger;
  via: string;
  /**
   * Never reach the database (`gomodproxy verify --offline`): only lookups and tiles verified
   * earlier and kept in the cache can answer.
   */
  offline?: boolean;
}

/** The hashes a checksum-database record holds for one module version. */
export interface RecordedHashes {
  zip?: string;
  mod?: string;
}

/** Picks a version's zip and go.mod hashes out of the go.sum lines of its record. */
export function recordedHashes(lines: readonly string[], modulePath: string, version: string): RecordedHashes {
  const out: RecordedHashes = {};
  const zipPrefix = `${modulePath} ${version} `;
  const modPrefix = `${modulePath} ${version}/go.mod `;
  for (const l of lines) {
    if (out.zip === undefined && l.startsWith(zipPrefix)) out.zip = l.slice(zipPrefix.length).trim();
    else if (out.mod === undefined && l.startsWith(modPrefix)) out.mod = l.slice(modPrefix.length).trim();
  }
  return out;
}

/** An artifact whose hash disagrees with the checksum database: refused, and remembered for a while. */
export class ChecksumMismatch extends ProxyError {
  constructor(message: string) {
    super('upstream', message);
  }
}

export class SumdbService {
  readonly name: string;
  readonly client: SumdbClient;
  private readonly noSumdb: PrefixMatcher;
  private route: Promise<Route> | undefined;
  private readonly brief = new Map<string, { data: Buffer; until: number }>();
  /** The connection pool to the database's own address, when that is the route. */
  private directSource: ProxySource | undefined;

  constructor(private readonly o: SumdbServiceOptions) {
    this.name = o.setting.name;
    this.noSumdb = compilePrefixPatterns(o.noSumdb);
    const ops: SumdbOps = {
      readRemote: (path) => this.readRemote(path),
      readConfig: async (file) => (await o.store.getBuffer(this.stateKey(file), MAX_SUMDB_BYTES))?.data ?? Buffer.alloc(0),
      writeConfig: (file, oldValue, newValue) => this.writeConfig(file, oldValue, newValue),
      readCache: async (file) => (await o.store.getBuffer(`sumdb/${file}`, MAX_SUMDB_BYTES).catch(() => null))?.data ?? null,
      writeCache: async (file, data) => {
        await o.store.put(`sumdb/${file}`, data);
      },
      log: (msg) => o.log.info({ sumdb: this.name }, msg),
      securityError: (msg) => {
        o.metrics.sumdbForks.inc();
        o.log.fatal({ sumdb: this.name, report: msg }, 'checksum database misbehavior detected: it presented a forked tree');
      },
    };
    this.client = new SumdbClient({ verifierKey: o.setting.verifierKey, ops });
  }

  /** Closes the connections to the database's own address (those through upstreams belong to the chain). */
  async close(): Promise<void> {
    await this.directSource?.close();
  }

  /** Whether a module is checked against the database (and may ever be named to it). */
  checks(modulePath: string): boolean {
    return !this.noSumdb(modulePath) && !(this.o.skip?.(modulePath) ?? false);
  }

  /**
   * The database's hashes for a module version, verified; throws a ProxyError the go user can act
   * on when the database cannot vouch for it (unknown version, unreachable, forked).
   */
  async recorded(mod: ModuleRef, version: string): Promise<RecordedHashes> {
    try {
      return recordedHashes(await this.client.lookup(mod.path, version), mod.path, version);
    } catch (err) {
      throw this.lookupError(err, `${mod.path}@${version}`);
    }
  }

  /**
   * Compares a module version's h1 hash with the database's record; throws a ProxyError the go
   * user can act on when they disagree or the database cannot vouch for it.
   */
  async verify(mod: ModuleRef, version: string, kind: 'mod' | 'zip', h1: string, sourceId: string): Promise<void> {
    const want = (await this.recorded(mod, version))[kind];
    if (want === undefined) {
      throw new ProxyError(
        'upstream',
        `checksum database ${this.name} has no ${kind === 'zip' ? 'zip' : 'go.mod'} hash for ${mod.path}@${version}; gomodproxy will not serve it unverified`,
      );
    }
    if (want !== h1) {
      this.o.metrics.checksumMismatches.labels(kind).inc();
      this.o.log.error(
        { module: mod.path, version, kind, source: sourceId, got: h1, want, sumdb: this.name },
        'checksum mismatch: refused an upstream artifact',
      );
      throw new ChecksumMismatch(
        `SECURITY: checksum mismatch for ${mod.path}@${version}${kind === 'mod' ? '/go.mod' : ''}: ${sourceId} sent ${h1} but checksum database ${this.name} records ${want}; gomodproxy refused it and cached nothing. Report it to the operator of ${sourceId}`,
      );
    }
  }

  private lookupError(err: unknown, what: string): ProxyError {
    if (err instanceof SumdbForkError) {
      return new ProxyError(
        'upstream',
        `SECURITY ERROR: checksum database ${this.name} presented a forked tree while verifying ${what}; gomodproxy refuses to trust it. Report it to the database operator`,
        { cause: err },
      );
    }
    if (err instanceof SumdbError && err.code === 'not-found') {
      return new ProxyError('upstream', `${err.message}; gomodproxy will not serve an unverified public module`, { cause: err });
    }
    return new ProxyError('upstream', err instanceof Error ? err.message : String(err), { cause: err });
  }

  private stateKey(file: string): string {
    return `state/sumdb/${file}`;
  }

  /** Compare-and-swap of the newest verified tree head, across processes sharing the data folder. */
  private async writeConfig(file: string, oldValue: Buffer, newValue: Buffer): Promise<boolean> {
    const key = this.stateKey(file);
    for (let i = 0; i < 400; i++) {
      const lock = await this.o.coordination.tryLock(key);
      if (!lock) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      try {
        const current = (await this.o.store.getBuffer(key, MAX_SUMDB_BYTES))?.data ?? Buffer.alloc(0);
        if (!current.equals(oldValue)) return false;
        await this.o.store.put(key, newValue);
        return true;
      } finally {
        await lock.release();
      }
    }
    throw new Error(`timed out waiting for the lock of ${key}`);
  }

  private async readRemote(path: string): Promise<Buffer> {
    // A not-found (404), so that the go command, and our own client, treat it as "not here" rather than an outage.
    if (this.o.offline) {
      throw new ProxyError(
        'not-found',
        `not found: gomodproxy is offline and ${path.replace(/^\//, '')} of checksum database ${this.name} is not in its cache; only what was verified and kept before is served`,
      );
    }
    const route = await this.resolveRoute();
    const ctx: FetchContext = { via: this.o.via };
    return route.source.fetchPath(`${route.prefix}${path.replace(/^\//, '')}`, MAX_SUMDB_BYTES, ctx);
  }

  /**
   * As the go command (GO-MODULES.md §1.8): with no URL configured, ask each upstream proxy in
   * order whether it supports the database; the first that does carries all traffic; a not-found
   * moves on, other errors move on only after a '|'; with none left, go to the database itself.
   */
  private resolveRoute(): Promise<Route> {
    if (this.route) return this.route;
    const value = this.findRoute();
    this.route = value;
    value.catch(() => {
      // A failed probe is retried on a later request rather than remembered forever.
      if (this.route === value) this.route = undefined;
    });
    return value;
  }

  private async findRoute(): Promise<Route> {
    const direct = (url: string): Route => {
      this.directSource ??= new ProxySource({ kind: 'proxy', url, priority: 0, balance: 'failover', fallthrough: 'not-found', timeouts: this.o.timeouts });
      return { source: this.directSource, prefix: '', describe: url };
    };
    if (this.o.setting.url) return direct(this.o.setting.url);
    for (const { member, fallthrough } of this.o.upstreams) {
      const source = member.source;
      // As in the go command, `direct` and `off` end the walk: the database is then reached at its own address.
      if (source.id === 'direct' || source.id === 'off') break;
      if (!(source instanceof ProxySource)) continue;
      const prefix = `sumdb/${this.name}/`;
      try {
        await source.fetchPath(`${prefix}supported`, 4096, { via: this.o.via });
        this.o.log.info({ sumdb: this.name, via: source.id }, 'checksum database reached through an upstream proxy');
        return { source, prefix, describe: `${source.id}/${prefix}` };
      } catch (err) {
        if (err instanceof ProxyError && err.isNotFound) continue;
        if (fallthrough === 'any') continue;
        throw new ProxyError('upstream', `cannot reach checksum database ${this.name} through ${source.id}: ${(err as Error).message}`, { cause: err });
      }
    }
    return direct(`https://${this.name}`);
  }

  /** /sumdb/<name>/... for the go command. `rest` is what follows "sumdb/". */
  async serve(ex: Exchange, rest: string): Promise<void> {
    if (!rest.startsWith(`${this.name}/`)) {
      throw new ProxyError('not-found', `not found: this gomodproxy proxies checksum database ${this.name} only`);
    }
    const path = rest.slice(this.name.length + 1);
    if (path === 'supported') {
      sendBody(ex, 200, ['Content-Type', TEXT, 'Content-Length', '0', 'Cache-Control', 'no-cache'], Buffer.alloc(0));
      return;
    }
    if (path === 'latest') {
      const data = await this.briefly('latest', LATEST_TTL_MS, async () => {
        try {
          return (await this.client.refreshLatest()).note;
        } catch (err) {
          if (err instanceof SumdbForkError) throw this.lookupError(err, 'the latest tree');
          // Database unreachable: the newest tree we verified still serves the go command.
          const known = await this.client.latestTree().catch(() => null);
          if (known && known.note.length > 0) {
            this.o.log.warn({ sumdb: this.name, err: (err as Error).message }, 'checksum database unreachable: serving the last verified tree');
            return known.note;
          }
          throw new ProxyError('upstream', `cannot reach checksum database ${this.name}: ${(err as Error).message}`, { cause: err });
        }
      });
      this.send(ex, data, 'no-cache');
      return;
    }
    if (path.startsWith('lookup/')) {
      await this.serveLookup(ex, path.slice(7));
      return;
    }
    if (path.startsWith('tile/')) {
      await this.serveTile(ex, path);
      return;
    }
    throw new ProxyError('not-found', `not found: ${path} is not a checksum database endpoint`);
  }

  private async serveLookup(ex: Exchange, spec: string): Promise<void> {
    const at = spec.lastIndexOf('@');
    let modulePath: string;
    let version: string;
    try {
      if (at <= 0) throw new Error('missing @version');
      modulePath = unescapePath(spec.slice(0, at));
      version = unescapeVersion(spec.slice(at + 1));
    } catch (err) {
      throw new ProxyError('bad-request', `malformed checksum database lookup ${JSON.stringify(spec)}: ${(err as Error).message}`);
    }
    ex.module = modulePath;
    ex.version = version;
    if (!this.checks(modulePath)) {
      // Private stays private: its name never reaches the database.
      throw new ProxyError(
        'not-found',
        `not found: ${modulePath} is private to this gomodproxy and never looked up in ${this.name}; set GONOSUMDB (or GOPRIVATE) for it on the client`,
      );
    }
    try {
      await this.client.lookup(modulePath, version);
    } catch (err) {
      if (err instanceof SumdbError && err.code === 'not-found' && this.o.offline) {
        throw new ProxyError(
          'not-found',
          `not found: gomodproxy is offline and the ${this.name} record of ${modulePath}@${version} is not in its cache; add the module with gomodproxy prefetch ${modulePath}@${version} on a connected machine (it keeps the record), or with gomodproxy import <folder>`,
        );
      }
      if (err instanceof SumdbError && err.code === 'not-found') throw new ProxyError('not-found', `not found: ${err.message}`);
      throw this.lookupError(err, `${modulePath}@${version}`);
    }
    // The client verified the answer and cached its exact bytes; relay those.
    const file = `sumdb/${this.name}/lookup/${spec}`;
    const cached = await this.o.store.getBuffer(file, MAX_SUMDB_BYTES);
    const data = cached?.data ?? (await this.readRemote(`/lookup/${spec}`));
    this.send(ex, data, 'public, max-age=86400');
  }

  private async serveTile(ex: Exchange, path: string): Promise<void> {
    let tile: Tile;
    try {
      tile = parseTilePath(path);
    } catch (err) {
      throw new ProxyError('bad-request', `malformed tile path ${JSON.stringify(path)}: ${(err as Error).message}`);
    }
    const full = tile.w === 2 ** tile.h;
    const immutable = 'public, max-age=31536000, immutable';
    // Tiles our client authenticated are kept where the go command keeps its own.
    const verified = await this.cached(`sumdb/${this.name}/${path}`);
    if (verified) {
      this.send(ex, verified, full ? immutable : 'no-cache');
      return;
    }
    const fullPath = tilePath({ ...tile, w: 2 ** tile.h });
    const relayKey = `sumdbproxy/${this.name}/${fullPath}`;
    if (full) {
      const relayed = await this.cached(relayKey);
      if (relayed) {
        this.send(ex, relayed, immutable);
        return;
      }
      const data = await this.readRemote(`/${path}`);
      // Full tiles never change: keep them, so they still answer when the database is down.
      await this.o.store.put(relayKey, data).catch((err: unknown) => this.o.log.warn({ err, relayKey }, 'could not cache a tile'));
      this.send(ex, data, immutable);
      return;
    }
    // A partial hash tile is a prefix of every wider one of the same position: a full tile we hold
    // answers it at once. (Data tiles hold records of any length: no such shortcut.)
    const hashes = tile.l >= 0;
    const size = tile.w * HASH_SIZE;
    const whole = hashes ? ((await this.cached(`sumdb/${this.name}/${fullPath}`)) ?? (await this.cached(relayKey))) : null;
    if (whole && whole.length >= size) {
      this.send(ex, whole.subarray(0, size), 'no-cache');
      return;
    }
    let data: Buffer;
    try {
      data = await this.briefly(path, PARTIAL_TTL_MS, () => this.readRemote(`/${path}`));
    } catch (err) {
      // The database is unreachable (or the width is gone): a wider partial tile we verified still answers.
      const wider = hashes ? await this.widerPartial(tile) : null;
      if (!wider) throw err;
      this.o.log.warn({ sumdb: this.name, tile: path, err: (err as Error).message }, 'checksum database unreachable: serving a tile from a wider verified one');
      data = wider.subarray(0, size);
    }
    this.send(ex, data, 'no-cache');
  }

  /** The widest verified partial tile at `tile`'s position, if it covers `tile`. */
  private async widerPartial(tile: Tile): Promise<Buffer | null> {
    const dir = `sumdb/${this.name}/${tilePath({ ...tile, w: 2 ** tile.h })}.p/`;
    let best = 0;
    try {
      for await (const key of this.o.store.list(dir)) {
        const w = Number(key.slice(dir.length));
        if (Number.isInteger(w) && w > best) best = w;
      }
    } catch {
      return null;
    }
    if (best < tile.w) return null;
    const data = await this.cached(`${dir}${best}`);
    return data && data.length >= tile.w * HASH_SIZE ? data : null;
  }

  private async cached(key: string): Promise<Buffer | null> {
    return (await this.o.store.getBuffer(key, MAX_SUMDB_BYTES).catch(() => null))?.data ?? null;
  }

  private async briefly(key: string, ttl: number, load: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.brief.get(key);
    if (hit && hit.until > Date.now()) return hit.data;
    const data = await load();
    if (this.brief.size > 1000) this.brief.clear();
    this.brief.set(key, { data, until: Date.now() + ttl });
    return data;
  }

  private send(ex: Exchange, data: Buffer, cacheControl: string): void {
    sendBody(ex, 200, ['Content-Type', TEXT, 'Content-Length', String(data.length), 'Cache-Control', cacheControl], data);
  }
}

/** Builds the service from the configuration, or null when the database is off. */
export function createSumdbService(config: Config, deps: Omit<SumdbServiceOptions, 'setting' | 'noSumdb' | 'timeouts'>): SumdbService | null {
  if (config.sumdb === 'off') return null;
  return new SumdbService({ ...deps, setting: config.sumdb, noSumdb: config.noSumdb, timeouts: config.timeouts });
}
