// The module index: which module versions the store holds, with their sizes, for the admin API,
// the web UI, sync jobs and stats. Built by one walk of the store, then kept as artifacts are
// committed or removed (by this process, or announced by the others through the coordination),
// with a rescan now and then for announcements that were lost. Never on the hot path, and
// never a folder walk per request: a search over tens of thousands of modules is a scan of an
// in-memory sorted array.
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { MUTABLE_PREFIX, STATE_PREFIX, artifactKey } from '../cache/keys.js';
import type { StoreChange } from '../cluster/coordination.js';
import {
  compilePrefixPatterns,
  escapePath,
  escapeVersion,
  isPseudoVersion,
  isValid,
  prerelease,
  semver,
  unescapePath,
  unescapeVersion,
  type ModuleRef,
} from '../module/index.js';

export type ArtifactKind = StoreChange['kind'];

/** Where a version came from, as recorded when its .info was stored (the .origin sidecar). */
export interface VersionOrigin {
  /** The upstream's id (its URL), "git", "import", "publish". */
  source: string;
  /** When it was stored (ISO 8601). */
  at: string;
}

export interface IndexedVersion {
  version: string;
  /** Bytes of each stored artifact; absent: not stored. */
  info?: number;
  mod?: number;
  zip?: number;
  /** When the newest of them was stored (ms). */
  storedMs: number;
  /** The .info's Time, once read (null: unreadable). */
  time?: string | null;
  /** Read with the time (null: none recorded). */
  origin?: VersionOrigin | null;
}

export interface IndexedModule {
  path: string;
  escaped: string;
  versions: Map<string, IndexedVersion>;
}

export interface ModuleSummary {
  path: string;
  versions: number;
  /** The highest release (else pre-release, else pseudo-version) held. */
  latest: string | null;
  bytes: number;
  /** When anything of it was last stored (ms). */
  storedMs: number;
}

export interface IndexTotals {
  modules: number;
  versions: number;
  bytes: number;
  zips: number;
  zipBytes: number;
}

export interface ModuleIndexOptions {
  store: BlobStore;
  log: Logger;
  /** Rescan the store this often (ms) for changes whose announcement was lost; 0: never. */
  rescanMs: number;
}

const ORIGIN_MAX_BYTES = 4096;
const INFO_MAX_BYTES = 16 << 10;

export class ModuleIndex {
  private modules = new Map<string, IndexedModule>();
  /** Module paths in order, rebuilt lazily after a module comes or goes. */
  private sorted: string[] | null = null;
  /** The same paths lower-cased, index for index (a search compares each, every time). */
  private lowered: string[] | null = null;
  /** Dropped by any change: pages that show the totals ask for them on every view. */
  private totalsCache: IndexTotals | null = null;
  private building: Promise<void> | null = null;
  private built = false;
  /** Changes applied while a walk runs: reapplied over its result, which may predate them. */
  private duringWalk: StoreChange[] | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ModuleIndexOptions) {}

  /** Settles once the first walk of the store has; starts it if need be. */
  ready(): Promise<void> {
    if (this.built) return Promise.resolve();
    return this.rescan();
  }

  /** Walks the store again (one walk at a time), keeping what changes meanwhile. */
  rescan(): Promise<void> {
    if (this.building) return this.building;
    const started = Date.now();
    this.duringWalk = [];
    this.building = this.walk()
      .then((fresh) => {
        const during = this.duringWalk ?? [];
        this.modules = fresh;
        this.sorted = null;
        this.totalsCache = null;
        this.built = true;
        this.apply(during);
        const t = this.totals();
        this.o.log.info({ modules: t.modules, versions: t.versions, bytes: t.bytes, ms: Date.now() - started }, 'module index built from the store');
      })
      .finally(() => {
        this.duringWalk = null;
        this.building = null;
      });
    return this.building;
  }

  /** Builds in the background now, and rescans every rescanMs. */
  start(): void {
    this.rescan().catch((err: unknown) =>
      this.o.log.warn({ err: (err as Error).message }, 'building the module index failed; it is tried again at the next rescan'),
    );
    if (this.o.rescanMs > 0 && !this.timer) {
      this.timer = setInterval(() => {
        this.rescan().catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'rescanning the store for the module index failed'));
      }, this.o.rescanMs);
      this.timer.unref();
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Artifacts stored or removed, here or in another process. */
  apply(changes: readonly StoreChange[]): void {
    this.duringWalk?.push(...changes);
    if (changes.length > 0) this.totalsCache = null;
    for (const c of changes) applyTo(this.modules, c, () => (this.sorted = null));
  }

  /** What the store holds; with `visible`, only the modules it lets through (a viewer's share, not cached). */
  totals(visible?: (path: string) => boolean): IndexTotals {
    if (!visible && this.totalsCache) return { ...this.totalsCache };
    const t: IndexTotals = { modules: 0, versions: 0, bytes: 0, zips: 0, zipBytes: 0 };
    for (const m of this.modules.values()) {
      if (visible && !visible(m.path)) continue;
      t.modules++;
      for (const v of m.versions.values()) {
        if (v.mod !== undefined) t.versions++;
        t.bytes += (v.info ?? 0) + (v.mod ?? 0) + (v.zip ?? 0);
        if (v.zip !== undefined) {
          t.zips++;
          t.zipBytes += v.zip;
        }
      }
    }
    if (!visible) this.totalsCache = t;
    return { ...t };
  }

  /**
   * Modules whose path starts with q, then those that contain it elsewhere (case-insensitive),
   * each group in path order; only those `visible` lets through (the caller's read access).
   */
  search(q: string, opts: { offset: number; limit: number; visible?: (path: string) => boolean }): { total: number; modules: ModuleSummary[] } {
    const needle = q.trim().toLowerCase();
    const prefixed: string[] = [];
    const containing: string[] = [];
    const paths = this.paths();
    const lowered = (this.lowered ??= paths.map((p) => p.toLowerCase()));
    for (let i = 0; i < paths.length; i++) {
      const p = paths[i] as string;
      // The match first: the caller's visibility (a route lookup and an access rule) costs more.
      const at = needle === '' ? 0 : (lowered[i] as string).indexOf(needle);
      if (at < 0 || (opts.visible && !opts.visible(p))) continue;
      (at === 0 ? prefixed : containing).push(p);
    }
    const all = prefixed.concat(containing);
    const page = all.slice(opts.offset, opts.offset + opts.limit);
    return { total: all.length, modules: page.map((p) => summarize(this.modules.get(p) as IndexedModule)) };
  }

  /** The `limit` modules stored most recently, newest first, among those `visible` lets through. */
  recent(limit: number, visible?: (path: string) => boolean): ModuleSummary[] {
    if (limit <= 0) return [];
    // One pass keeping the newest few, rather than summarizing and sorting every module.
    const top: { m: IndexedModule; storedMs: number }[] = [];
    for (const m of this.modules.values()) {
      let storedMs = 0;
      for (const v of m.versions.values()) if (v.storedMs > storedMs) storedMs = v.storedMs;
      if (top.length === limit && storedMs <= (top[top.length - 1] as { storedMs: number }).storedMs) continue;
      if (visible && !visible(m.path)) continue;
      let at = top.length;
      while (at > 0 && (top[at - 1] as { storedMs: number }).storedMs < storedMs) at--;
      top.splice(at, 0, { m, storedMs });
      if (top.length > limit) top.pop();
    }
    return top.map((x) => summarize(x.m));
  }

  module(path: string): IndexedModule | undefined {
    return this.modules.get(path);
  }

  summary(path: string): ModuleSummary | undefined {
    const m = this.modules.get(path);
    return m ? summarize(m) : undefined;
  }

  /**
   * Versions held, newest first as Go orders them: those with a .mod, as the go command's own
   * cache lists them (an .info alone is what resolving a query left behind).
   */
  versions(path: string): IndexedVersion[] {
    const m = this.modules.get(path);
    if (!m) return [];
    return [...m.versions.values()].filter((v) => v.mod !== undefined).sort((a, b) => semver.compare(b.version, a.version));
  }

  /** Cached modules (with a version that has a .mod) matching any of the patterns (GOPRIVATE syntax). */
  modulesMatching(patterns: readonly string[]): string[] {
    if (patterns.length === 0) return [];
    const m = compilePrefixPatterns(patterns.join(','));
    return this.paths().filter((p) => m(p) && [...(this.modules.get(p)?.versions.values() ?? [])].some((v) => v.mod !== undefined));
  }

  /** The versions of a module with their .info time and origin read from the store (once: they never change). */
  async details(path: string): Promise<IndexedVersion[]> {
    const m = this.modules.get(path);
    const list = this.versions(path);
    if (!m) return list;
    const unread = list.filter((v) => v.time === undefined);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < unread.length) {
        const v = unread[next++] as IndexedVersion;
        const [time, origin] = await Promise.all([this.readTime(m, v), this.readOrigin(m, v)]);
        v.time = time;
        // One heard with the commit stands while its sidecar is still being written.
        v.origin = origin ?? v.origin ?? null;
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, unread.length) }, worker));
    return list;
  }

  private async readTime(m: IndexedModule, v: IndexedVersion): Promise<string | null> {
    if (v.info === undefined) return null;
    try {
      const got = await this.o.store.getBuffer(artifactKey(m.escaped, escapeVersion(v.version), 'info'), INFO_MAX_BYTES);
      if (!got) return null;
      const info = JSON.parse(got.data.toString('utf8')) as { Time?: unknown };
      return typeof info.Time === 'string' ? info.Time : null;
    } catch {
      return null;
    }
  }

  private async readOrigin(m: IndexedModule, v: IndexedVersion): Promise<VersionOrigin | null> {
    try {
      const got = await this.o.store.getBuffer(originKey(m.escaped, escapeVersion(v.version)), ORIGIN_MAX_BYTES);
      return got ? parseOrigin(got.data) : null;
    } catch {
      return null;
    }
  }

  private paths(): string[] {
    if (!this.sorted) {
      this.sorted = [...this.modules.keys()].sort();
      this.lowered = null;
    }
    return this.sorted;
  }

  private async walk(): Promise<Map<string, IndexedModule>> {
    const fresh = new Map<string, IndexedModule>();
    for await (const b of this.o.store.listStats('')) {
      if (b.key.startsWith(STATE_PREFIX) || b.key.startsWith(MUTABLE_PREFIX) || b.key.startsWith('sumdb/')) continue;
      const c = changeOfKey(b.key, b.size, b.mtimeMs);
      if (c) applyTo(fresh, c, () => undefined);
    }
    return fresh;
  }
}

/** The sidecar that records where a version came from (not part of the GOPROXY protocol). */
export function originKey(escapedPath: string, escapedVersion: string): string {
  return `${escapedPath}/@v/${escapedVersion}.origin`;
}

export function originBytes(origin: VersionOrigin): Buffer {
  return Buffer.from(`${JSON.stringify(origin)}\n`);
}

export function parseOrigin(data: Buffer): VersionOrigin | null {
  try {
    const o = JSON.parse(data.toString('utf8')) as Partial<VersionOrigin>;
    return typeof o.source === 'string' && typeof o.at === 'string' ? { source: o.source, at: o.at } : null;
  } catch {
    return null;
  }
}

/** The artifact a store key names (<escaped module>/@v/<escaped version>.<kind>), or null. */
export function changeOfKey(key: string, size: number | null, mtimeMs: number): StoreChange | null {
  const at = key.lastIndexOf('/@v/');
  if (at <= 0) return null;
  const name = key.slice(at + 4);
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || name.includes('/')) return null;
  const kind = name.slice(dot + 1);
  if (kind !== 'info' && kind !== 'mod' && kind !== 'zip') return null;
  try {
    const module = unescapePath(key.slice(0, at));
    const version = unescapeVersion(name.slice(0, dot));
    if (!isValid(version)) return null;
    return { module, version, kind, size, mtimeMs };
  } catch {
    return null;
  }
}

/** A change for an artifact of mod@version. */
export function storeChange(mod: ModuleRef, version: string, kind: ArtifactKind, size: number | null, source?: string): StoreChange {
  const c: StoreChange = { module: mod.path, version, kind, size, mtimeMs: Date.now() };
  if (source !== undefined && kind === 'info' && size !== null) c.source = source;
  return c;
}

function applyTo(modules: Map<string, IndexedModule>, c: StoreChange, membershipChanged: () => void): void {
  let m = modules.get(c.module);
  if (c.size === null) {
    const v = m?.versions.get(c.version);
    if (!m || !v) return;
    delete v[c.kind];
    if (v.info === undefined && v.mod === undefined && v.zip === undefined) m.versions.delete(c.version);
    if (m.versions.size === 0) {
      modules.delete(c.module);
      membershipChanged();
    }
    return;
  }
  if (!m) {
    m = { path: c.module, escaped: escapePath(c.module), versions: new Map() };
    modules.set(c.module, m);
    membershipChanged();
  }
  let v = m.versions.get(c.version);
  if (!v) {
    v = { version: c.version, storedMs: c.mtimeMs };
    m.versions.set(c.version, v);
  }
  v[c.kind] = c.size;
  if (c.mtimeMs > v.storedMs) v.storedMs = c.mtimeMs;
  if (c.source !== undefined && v.origin == null) v.origin = { source: c.source, at: new Date(c.mtimeMs).toISOString() };
}

function summarize(m: IndexedModule): ModuleSummary {
  let latest: string | null = null;
  let rank = -1;
  let bytes = 0;
  let storedMs = 0;
  let versions = 0;
  for (const v of m.versions.values()) {
    bytes += (v.info ?? 0) + (v.mod ?? 0) + (v.zip ?? 0);
    if (v.storedMs > storedMs) storedMs = v.storedMs;
    if (v.mod === undefined) continue;
    versions++;
    // As @latest ranks them: releases over pre-releases over pseudo-versions.
    const r = isPseudoVersion(v.version) ? 0 : prerelease(v.version) !== '' ? 1 : 2;
    if (latest === null || r > rank || (r === rank && semver.compare(v.version, latest) > 0)) {
      latest = v.version;
      rank = r;
    }
  }
  return { path: m.path, versions, latest, bytes, storedMs };
}
