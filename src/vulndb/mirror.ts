// A mirror of the Go vulnerability database in the store, under vulndb/ (a name without a dot,
// so never a module path), in the database's own layout: vulndb/ is itself a database that
// `govulncheck -db file://<data>/vulndb` reads. Each file is kept as .json and .json.gz.
//
// refreshVulndb() is the sync job: one refresh at a time across the processes sharing the store
// (a lock), skipped when index/db.json has not changed, else the indexes and every entry that is
// new or modified are fetched and checked for shape (schema.ts) before anything is written;
// entries go first, the indexes next and index/db.json last, so readers never see an index
// naming an entry that is not there. A failed refresh leaves the last good snapshot in place,
// which is what is served while the source is down. Offline, nothing is ever fetched.
//
// Each process keeps the snapshot's AffectedIndex in memory (built from one derived file,
// vulndb/gomodproxy-affected.json), reloaded when index/db.json changes, for the admin API and
// the policy that refuses vulnerable versions.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import type { Logger } from 'pino';
import { EnvHttpProxyAgent, interceptors, type Dispatcher } from 'undici';
import type { BlobStore } from '../cache/blobstore.js';
import type { Coordination } from '../cluster/coordination.js';
import { errorMessage } from '../errors.js';
import { AffectedIndex } from './affected.js';
import { VulnDbError, parseDbMeta, parseEntry, parseModulesIndex, parseVulnsIndex, type OsvEntry, type VulnsIndexEntry } from './schema.js';

export const VULNDB_PREFIX = 'vulndb/';
const AFFECTED_KEY = `${VULNDB_PREFIX}gomodproxy-affected.json`;
const STATE_KEY = `${VULNDB_PREFIX}gomodproxy-state.json`;
const LOCK_KEY = `${VULNDB_PREFIX}refresh`;
const MAX_INDEX_BYTES = 128 << 20;
const MAX_ENTRY_BYTES = 8 << 20;
/** How long a first read waits for another process's first refresh (a full download of the database). */
const FIRST_SYNC_WAIT_MS = 120_000;

/** What one refresh did, for logs, the stats API and a scheduler. */
export interface VulnRefreshReport {
  status: 'updated' | 'current' | 'skipped' | 'failed';
  source: string;
  /** index/db.json's modified time of the snapshot held afterwards. */
  modified: string | null;
  /** Entries in the snapshot held afterwards. */
  entries: number;
  fetched: number;
  removed: number;
  /** Why it was skipped or failed. */
  reason?: string;
  durationMs: number;
}

/** The refresh as a scheduler sees it. */
export interface VulnSync {
  refreshVulndb(): Promise<VulnRefreshReport>;
}

export interface VulnMirrorOptions {
  store: BlobStore;
  coordination: Pick<Coordination, 'tryLock' | 'released'>;
  log: Logger;
  /** http(s)://host[/path] or file:///dir of a database in the go.dev/security/vuln/database layout. */
  url: string;
  ttlMs: number;
  offline: boolean;
  /** Entries fetched at once. */
  concurrency: number;
  timeouts: { connect: number; firstByte: number; idle: number };
  /** Keep the snapshot fresh from start, not only once something asked for it (the refusing policy needs it). */
  eager: boolean;
}

interface State {
  /** When the source last answered with a usable database (what the TTL counts from). */
  checkedAt: string | null;
  lastError: string | null;
  lastAttempt: string;
}

interface Stored {
  modified: string;
  vulns: Map<string, string>;
}

export class VulnMirror implements VulnSync {
  private index = new AffectedIndex([]);
  private loadedModified: string | null = null;
  private entries = 0;
  private refreshing: Promise<VulnRefreshReport> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private used: boolean;
  private lastAttempt = 0;
  private lastReport: VulnRefreshReport | null = null;
  private loaded = false;
  private readonly agent: Dispatcher | null;
  private readonly base: string;

  constructor(private readonly o: VulnMirrorOptions) {
    this.used = o.eager;
    this.base = o.url.replace(/\/+$/, '');
    this.agent = /^https?:/.test(this.base)
      ? new EnvHttpProxyAgent({ connect: { timeout: o.timeouts.connect }, headersTimeout: o.timeouts.firstByte, bodyTimeout: o.timeouts.idle }).compose(
          interceptors.redirect({ maxRedirections: 5 }),
        )
      : null;
  }

  /** The known vulnerabilities, by module (empty until a snapshot is held). */
  get affected(): AffectedIndex {
    return this.index;
  }

  /** Loads the stored snapshot and starts the timer that keeps it fresh and reloads it when another process refreshed it. */
  async start(): Promise<void> {
    await this.reload().catch((err: unknown) => this.o.log.warn({ err: errorMessage(err) }, 'could not load the stored vulnerability database'));
    this.loaded = true;
    if (this.loadedModified !== null) this.used = true;
    const every = Math.max(250, Math.min(this.o.ttlMs, 60_000));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
    if (this.used) void this.tick();
  }

  close(): void {
    clearInterval(this.timer);
    void this.agent?.close();
  }

  /** What /-/api/stats shows. */
  async status(): Promise<Record<string, unknown>> {
    const state = await this.state();
    return {
      url: this.base,
      modified: this.loadedModified,
      entries: this.entries,
      modules: this.index.modules,
      checkedAt: state?.checkedAt ?? null,
      lastAttempt: state?.lastAttempt ?? null,
      lastError: state?.lastError ?? null,
      offline: this.o.offline,
    };
  }

  /**
   * Before a read of the mirror: the first read with nothing held waits for a refresh; a stale
   * snapshot is served at once while one refreshes in the background.
   */
  async beforeRead(): Promise<VulnRefreshReport | null> {
    this.used = true;
    if (this.loadedModified === null) {
      await this.reload().catch(() => undefined);
      if (this.loadedModified !== null || this.o.offline) return null;
      const r = await this.refreshVulndb();
      if (r.status === 'skipped' && !this.o.offline) {
        // Another process holds the first refresh: its snapshot is this one's too, once it is stored.
        await this.o.coordination.released(LOCK_KEY, FIRST_SYNC_WAIT_MS);
        await this.reload().catch(() => undefined);
      }
      return r;
    }
    void this.tick();
    return null;
  }

  /** Whether the snapshot is older than the TTL (by the time any process last checked the source). */
  private async due(): Promise<boolean> {
    const state = await this.state();
    const checked = state?.checkedAt ? Date.parse(state.checkedAt) : 0;
    return Date.now() - checked >= this.o.ttlMs;
  }

  private async tick(): Promise<void> {
    try {
      await this.reloadIfChanged();
      if (!this.used || this.o.offline || this.refreshing) return;
      // After a failure, wait a while before asking the source again, whatever the TTL.
      if (Date.now() - this.lastAttempt < Math.min(this.o.ttlMs, 60_000)) return;
      if (!(await this.due())) return;
      const r = await this.refreshVulndb();
      if (r.status === 'failed') this.o.log.warn({ source: this.base, reason: r.reason }, 'vulnerability database refresh failed; serving the last snapshot');
      else if (r.status === 'updated')
        this.o.log.info({ source: this.base, modified: r.modified, fetched: r.fetched, removed: r.removed }, 'vulnerability database updated');
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'vulnerability database check failed');
    }
  }

  /** The sync job. Never throws: a failure is a report. */
  refreshVulndb(): Promise<VulnRefreshReport> {
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refresh(): Promise<VulnRefreshReport> {
    const t0 = Date.now();
    this.lastAttempt = t0;
    const report = (status: VulnRefreshReport['status'], extra: Partial<VulnRefreshReport> = {}): VulnRefreshReport => {
      const r = {
        status,
        source: this.base,
        modified: this.loadedModified,
        entries: this.entries,
        fetched: 0,
        removed: 0,
        durationMs: Date.now() - t0,
        ...extra,
      };
      this.lastReport = r;
      return r;
    };
    if (this.o.offline)
      return report('skipped', { reason: 'offline: the vulnerability database is never fetched; bring a data folder with vulndb/ from a connected machine' });
    const lock = await this.o.coordination.tryLock(LOCK_KEY);
    if (!lock) return report('skipped', { reason: 'another process is refreshing the vulnerability database' });
    try {
      const result = await this.sync();
      await this.writeState(null);
      await this.reload();
      return report(result.fetched > 0 || result.removed > 0 || result.changed ? 'updated' : 'current', result);
    } catch (err) {
      const reason = err instanceof VulnDbError ? `the source's database is not usable: ${err.message}` : errorMessage(err);
      await this.writeState(reason).catch(() => undefined);
      return report('failed', { reason });
    } finally {
      await lock.release();
    }
  }

  private async sync(): Promise<{ fetched: number; removed: number; changed: boolean }> {
    const dbRaw = await this.fetch('index/db', MAX_INDEX_BYTES);
    const db = parseDbMeta(dbRaw);
    const stored = await this.storedSnapshot();
    if (stored && stored.modified === db.modified) return { fetched: 0, removed: 0, changed: false };

    const vulnsRaw = await this.fetch('index/vulns', MAX_INDEX_BYTES);
    const vulns = parseVulnsIndex(vulnsRaw);
    const ids = new Set(vulns.map((x) => x.id));
    // db.json's time is that of the newest entry: one newer than every entry listed means the
    // source was caught mid-update (db.json first), and keeping it would hide the rest for good.
    const newest = Math.max(0, ...vulns.map((x) => Date.parse(x.modified)));
    if (Date.parse(db.modified) > newest) {
      throw new VulnDbError(
        `index/db.json (modified ${db.modified}) is newer than every entry index/vulns.json lists; the source is being updated, try again later`,
      );
    }
    const modulesRaw = await this.fetch('index/modules', MAX_INDEX_BYTES);
    const named = new Set(parseModulesIndex(modulesRaw, ids).flatMap((m) => m.vulns.map((x) => `${m.path} ${x.id}`)));

    const previous = await this.storedAffected();
    const changed = vulns.filter((x) => stored?.vulns.get(x.id) !== x.modified || !previous.has(x.id));
    const fresh = await this.fetchEntries(changed);
    for (const { entry } of fresh.values()) {
      for (const a of entry.affected) {
        if (!named.has(`${a.module} ${entry.id}`)) {
          throw new VulnDbError(`ID/${entry.id}.json affects ${a.module}, but index/modules.json does not say so; the source's indexes disagree (mid-update?)`);
        }
      }
    }

    for (const [id, { raw }] of fresh) await this.putBoth(`ID/${id}`, raw);
    const entries: OsvEntry[] = vulns.map((x) => fresh.get(x.id)?.entry ?? (previous.get(x.id) as OsvEntry));
    await this.o.store.put(AFFECTED_KEY, Buffer.from(JSON.stringify({ modified: db.modified, entries })));
    await this.putBoth('index/vulns', vulnsRaw);
    await this.putBoth('index/modules', modulesRaw);
    await this.putBoth('index/db', dbRaw);

    let removed = 0;
    for (const id of stored?.vulns.keys() ?? []) {
      if (ids.has(id)) continue;
      await this.o.store.delete(`${VULNDB_PREFIX}ID/${id}.json`);
      await this.o.store.delete(`${VULNDB_PREFIX}ID/${id}.json.gz`);
      removed++;
    }
    return { fetched: fresh.size, removed, changed: true };
  }

  private async fetchEntries(wanted: VulnsIndexEntry[]): Promise<Map<string, { raw: Buffer; entry: OsvEntry }>> {
    const out = new Map<string, { raw: Buffer; entry: OsvEntry }>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < wanted.length) {
        const want = wanted[next++] as VulnsIndexEntry;
        const raw = await this.fetch(`ID/${want.id}`, MAX_ENTRY_BYTES);
        const entry = parseEntry(raw, want.id);
        // A cache in front of the source may hand out an entry older than the index: not a snapshot to keep.
        if (Date.parse(entry.modified) < Date.parse(want.modified)) {
          throw new VulnDbError(`ID/${want.id}.json was modified ${entry.modified}, before the ${want.modified} index/vulns.json names`);
        }
        out.set(want.id, { raw, entry });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, Math.max(1, wanted.length)) }, worker));
    return out;
  }

  private async putBoth(endpoint: string, raw: Buffer): Promise<void> {
    await this.o.store.put(`${VULNDB_PREFIX}${endpoint}.json.gz`, zlib.gzipSync(raw));
    await this.o.store.put(`${VULNDB_PREFIX}${endpoint}.json`, raw);
  }

  /** One endpoint of the source, uncompressed: the .json.gz (as govulncheck asks), else the .json. */
  private async fetch(endpoint: string, max: number): Promise<Buffer> {
    if (this.agent === null) {
      const dir = fileURLToPath(this.base);
      const plain = await readFile(`${dir}/${endpoint}.json`).catch(() => null);
      const data = plain ?? gunzip(await readFile(`${dir}/${endpoint}.json.gz`).catch(() => notFound(this.base, endpoint)), max, endpoint);
      if (data.length > max) throw new VulnDbError(`${endpoint}.json is over ${max} bytes`);
      return data;
    }
    const gz = await this.get(`${endpoint}.json.gz`, max);
    if (gz !== null) return gunzip(gz, max, endpoint);
    const plain = await this.get(`${endpoint}.json`, max);
    if (plain === null) notFound(this.base, endpoint);
    return plain;
  }

  private async get(file: string, max: number): Promise<Buffer | null> {
    const url = `${this.base}/${file}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await (this.agent as Dispatcher).request({ origin: new URL(url).origin, path: new URL(url).pathname, method: 'GET' });
    } catch (err) {
      throw new Error(`cannot reach the vulnerability database at ${this.base} (${errorMessage(err)}) for ${file}`, { cause: err });
    }
    if (res.statusCode === 404 || res.statusCode === 410) {
      await res.body.dump();
      return null;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`the vulnerability database at ${this.base} answered ${res.statusCode} for ${file}`);
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body) {
      n += (c as Buffer).length;
      if (n > max) {
        res.body.destroy();
        throw new VulnDbError(`${file} is over ${max} bytes`);
      }
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    // A server that compressed a .json on the fly already had it decoded by nobody: undici leaves Content-Encoding to us.
    return res.headers['content-encoding'] === 'gzip' ? gunzip(body, max, file) : body;
  }

  private async storedSnapshot(): Promise<Stored | null> {
    const db = await this.o.store.getBuffer(`${VULNDB_PREFIX}index/db.json`, MAX_INDEX_BYTES);
    const vulns = await this.o.store.getBuffer(`${VULNDB_PREFIX}index/vulns.json`, MAX_INDEX_BYTES);
    if (!db || !vulns) return null;
    try {
      return { modified: parseDbMeta(db.data).modified, vulns: new Map(parseVulnsIndex(vulns.data).map((x) => [x.id, x.modified])) };
    } catch {
      return null;
    }
  }

  /** The entries of the stored snapshot, from the derived file, else (a folder copied in by hand) from the entries themselves. */
  private async storedAffected(): Promise<Map<string, OsvEntry>> {
    const got = await this.o.store.getBuffer(AFFECTED_KEY, MAX_INDEX_BYTES);
    if (got) {
      try {
        const parsed = JSON.parse(got.data.toString('utf8')) as { entries: OsvEntry[] };
        return new Map(parsed.entries.map((e) => [e.id, e]));
      } catch {
        // Rebuilt below.
      }
    }
    const out = new Map<string, OsvEntry>();
    const stored = await this.storedSnapshot();
    for (const id of stored?.vulns.keys() ?? []) {
      const raw = await this.o.store.getBuffer(`${VULNDB_PREFIX}ID/${id}.json`, MAX_ENTRY_BYTES);
      if (!raw) continue;
      try {
        out.set(id, parseEntry(raw.data, id));
      } catch {
        // Not kept: refetched at the next refresh.
      }
    }
    return out;
  }

  private async reloadIfChanged(): Promise<void> {
    const db = await this.o.store.getBuffer(`${VULNDB_PREFIX}index/db.json`, MAX_INDEX_BYTES);
    if (!db) return;
    let modified: string;
    try {
      modified = parseDbMeta(db.data).modified;
    } catch {
      return;
    }
    if (modified !== this.loadedModified) await this.reload();
  }

  private async reload(): Promise<void> {
    const stored = await this.storedSnapshot();
    if (!stored) return;
    const entries = await this.storedAffected();
    this.index = new AffectedIndex(entries.values());
    this.entries = stored.vulns.size;
    this.loadedModified = stored.modified;
  }

  private async state(): Promise<State | null> {
    const got = await this.o.store.getBuffer(STATE_KEY, 64 << 10).catch(() => null);
    if (!got) return null;
    try {
      return JSON.parse(got.data.toString('utf8')) as State;
    } catch {
      return null;
    }
  }

  private async writeState(error: string | null): Promise<void> {
    const prev = await this.state();
    const now = new Date().toISOString();
    // A failure does not restart the TTL: the source is asked again soon (each process waits a minute at most between tries).
    const state: State =
      error === null ? { checkedAt: now, lastError: null, lastAttempt: now } : { checkedAt: prev?.checkedAt ?? null, lastError: error, lastAttempt: now };
    await this.o.store.put(STATE_KEY, Buffer.from(JSON.stringify(state)));
  }

  /** The last refresh this process ran. */
  get last(): VulnRefreshReport | null {
    return this.lastReport;
  }

  /** Whether the stored snapshot (if any) has been read since start: before, nothing is known to be vulnerable. */
  get started(): boolean {
    return this.loaded;
  }

  /** Whether a snapshot is held. */
  get held(): boolean {
    return this.loadedModified !== null;
  }
}

function gunzip(data: Buffer, max: number, what: string): Buffer {
  try {
    return zlib.gunzipSync(data, { maxOutputLength: max });
  } catch (err) {
    throw new VulnDbError(`${what}.json.gz is not a gzip file within ${max} bytes (${errorMessage(err)})`);
  }
}

function notFound(base: string, endpoint: string): never {
  throw new VulnDbError(`${base} has no ${endpoint}.json (is it a Go vulnerability database? see go.dev/security/vuln/database)`);
}
