// Garbage collection of the cache: keeps the module data in the store under a size (gc.maxBytes)
// and an age since last served (gc.maxAge), working on the BlobStore alone, so `gomodproxy gc`
// and a server's schedule run the same code over the same store.
//
// Policy. Zips are the bulk of the bytes and the cheapest to fetch again, so they go first:
// every zip not served for maxAge, then the least recently served until the module data is under
// maxBytes. Then the .info and .mod of versions without a zip that nobody asked for within maxAge
// (and, if the store is still over the limit, the least recently asked for). A version goes only
// if it can be fetched again: never while offline, never when its route has no source that
// fetches, never when it was imported or published here (its .origin says so), never when a pin
// covers it. "Last served" is the latest of what the processes wrote down (served.ts) and the
// time the file was stored (a miss is served as it is stored).
//
// Safe while serving. A reader that opened a file keeps reading it: files are unlinked, never
// truncated (POSIX keeps an open file's bytes until its last descriptor closes; an object store
// finishes a GET it started). Nothing is removed whose fetch lock someone holds. Just before each
// removal the file is looked at again: one stored anew since the listing (another mtime) stays,
// and an age eviction of a key served here since the last flush is given up. A version's .info
// goes before the rest of its metadata, since the .info is what marks a version present.
import type { Logger } from 'pino';
import type { BlobStore, ListedBlob } from '../cache/blobstore.js';
import { artifactKey, localListKey } from '../cache/keys.js';
import { localVersions, writeLocalList } from '../cache/locallist.js';
import type { Coordination } from '../cluster/coordination.js';
import { canonicalVersion, checkPath, isValid, unescapePath, unescapeVersion, type ModuleRef } from '../module/index.js';
import type { PinMatcher, PinStore } from './pins.js';
import { foldServedTimes, readServedTimes, type ServedRecorder, type ServedTimes } from './served.js';

/** The one collection at a time, across every process and instance sharing the store. */
export const GC_LOCK_KEY = 'state/gc';
/** The last report of a real (not dry) run, for status() in every process. */
export const GC_REPORT_KEY = 'state/gc/last-report.json';
const MAX_ORIGIN_BYTES = 64 << 10;
const MAX_REPORT_ENTRIES = 200;
const EXAMPLES = 10;
/** A marker of a served record nobody consumed for this long belongs to a process that is gone. */
const MARKER_TTL_MS = 7 * 86_400_000;

export type GcFileKind = 'info' | 'mod' | 'zip' | 'ziphash' | 'origin';
export type GcTrigger = 'cli' | 'schedule' | 'api';
/** Why a version that could have gone stayed. */
export type KeptReason = 'pinned' | 'not-refetchable' | 'in-use' | 'changed' | 'served-since-plan';

/** One file a collection removed, as the module index and the other processes need to hear of it. */
export interface GcRemoved {
  module: string;
  version: string;
  kind: GcFileKind;
  key: string;
}

export interface GcRemovedEntry extends GcRemoved {
  bytes: number;
  /** When the version's file was last served (or stored). */
  lastServedMs: number;
  /** age: not served for maxAge; size: the least recently served while over maxBytes. */
  why: 'age' | 'size';
}

export interface GcPolicy {
  maxBytes: number | null;
  maxAgeMs: number | null;
}

export interface GcRunOptions extends Partial<GcPolicy> {
  /** Plan only: report what would go; nothing in the store changes. */
  dryRun?: boolean;
  trigger?: GcTrigger;
  /** Skip (resolve null) when a run began less than this long ago: the other workers' ticks of one schedule. */
  unlessRanWithinMs?: number;
}

export interface KeptGroup {
  versions: number;
  bytes: number;
  /** A few of them, "module@version: why". */
  examples: string[];
}

export interface GcReport {
  dryRun: boolean;
  trigger: GcTrigger;
  startedMs: number;
  finishedMs: number;
  store: string;
  limits: GcPolicy;
  /** Module data (every file under a module's folder: zips, hashes, .mod, .info, .origin, lists). */
  before: { bytes: number; modules: number; versions: number; zips: number };
  after: { bytes: number; underLimit: boolean };
  freedBytes: number;
  /** Files removed (or that would be), per kind. */
  evicted: Record<GcFileKind, number>;
  /** Versions that lost their zip, and versions removed entirely. */
  versions: { zipOnly: number; whole: number };
  /** Every file removed (the saved report keeps the first ones; removedTotal says how many there were). */
  removed: GcRemovedEntry[];
  removedTotal: number;
  kept: Record<KeptReason, KeptGroup>;
  /** Set when nothing at all may be evicted, with why. */
  nothingEvictable?: string;
  /** Things the operator should know: no limit set, still over the limit and why. */
  notes: string[];
  /** Leftovers of interrupted writes removed (null: not looked for, as in a dry run). */
  leftovers: { files: number; bytes: number } | null;
  emptyFolders: number;
  servedRecordsFolded: number;
  /** Removals that failed (the run goes on; the CLI exits non-zero). */
  errors: string[];
}

export interface GcStatus {
  limits: GcPolicy;
  schedule: { cron: string; nextRunMs: number | null } | null;
  running: boolean;
  /** The last real run's report (from the store: any process's, or the gc command's). */
  lastRun: GcReport | null;
}

export interface GcDeps {
  store: BlobStore;
  coordination: Pick<Coordination, 'tryLock' | 'holder'>;
  /** Why a module's versions could not be fetched again if evicted, or null when they can. */
  refetchable(modulePath: string): string | null;
  /** Set when nothing can be fetched again at all (offline): the reason. */
  offline?: string | null;
  pins: Pick<PinStore, 'matcher'>;
  /** The limits in the configuration; a run may override them. */
  policy: GcPolicy;
  /** This process's recorder: flushed before a run reads the records, and asked before an age eviction. */
  served?: Pick<ServedRecorder, 'flush' | 'servedSinceFlush'>;
  log?: Logger;
  /** Told of every version's removed files, after their removal (the module index, the memory caches). */
  onRemoved?(entries: GcRemoved[]): void | Promise<void>;
  /** Told of every real run's report (metrics). */
  onReport?(report: GcReport): void;
  /** Removes leftovers of interrupted writes (the janitor), where there is a data folder. */
  sweepLeftovers?(): Promise<{ files: number; bytes: number }>;
  now?(): number;
}

/** Another collection holds the lock. */
export class GcBusyError extends Error {
  constructor() {
    super('another garbage collection is running on this store');
    this.name = 'GcBusyError';
  }
}

export interface StoredFile {
  key: string;
  size: number;
  mtimeMs: number;
}

/** One version's files in the store. */
export interface StoredVersion {
  mod: ModuleRef;
  version: string;
  escapedVersion: string;
  files: Partial<Record<GcFileKind, StoredFile>>;
  /** The .origin's "source", when it has one; "unreadable" when it cannot be parsed. */
  origin?: string;
}

/** The module data in the store, from one listing. */
export interface ModuleData {
  versions: StoredVersion[];
  modules: Map<string, ModuleRef>;
  /** Every file under module folders, bytes. */
  bytes: number;
  /** The top-level folders that hold modules (for the sweep of empty folders). */
  tops: Set<string>;
}

const FILE = /^([^/]+)\.(info|mod|zip|ziphash|origin)$/;

/** Whether a top-level name can start a module path (module paths need a dot in their first element). */
function isModuleTop(name: string): boolean {
  return name.includes('.') && !name.startsWith('.');
}

/** Every blob under module folders: folder by folder where the store has them, so the git cache and the like are never walked. */
async function* moduleBlobs(store: BlobStore): AsyncIterable<ListedBlob> {
  if (store.listFolders) {
    for await (const top of store.listFolders('')) if (isModuleTop(top)) yield* store.listStats(top);
    return;
  }
  for await (const b of store.listStats('')) if (isModuleTop(b.key.slice(0, b.key.indexOf('/')))) yield b;
}

/** Lists the module data: every version's files, and the bytes of everything under module folders. */
export async function listModuleData(store: BlobStore): Promise<ModuleData> {
  const out: ModuleData = { versions: [], modules: new Map(), bytes: 0, tops: new Set() };
  const byVersion = new Map<string, StoredVersion>();
  const bad = new Set<string>();
  for await (const b of moduleBlobs(store)) {
    out.bytes += b.size;
    out.tops.add(b.key.slice(0, b.key.indexOf('/')));
    const at = b.key.lastIndexOf('/@v/');
    if (at <= 0) continue;
    const m = FILE.exec(b.key.slice(at + 4));
    if (!m) continue;
    const escapedPath = b.key.slice(0, at);
    if (bad.has(escapedPath)) continue;
    let mod = out.modules.get(escapedPath);
    if (!mod) {
      try {
        const path = unescapePath(escapedPath);
        checkPath(path);
        mod = { path, escaped: escapedPath };
      } catch {
        // Not a module's folder: its bytes count, nothing in it is ours to judge.
        bad.add(escapedPath);
        continue;
      }
      out.modules.set(escapedPath, mod);
    }
    const escapedVersion = m[1] as string;
    let version: string;
    try {
      version = unescapeVersion(escapedVersion);
    } catch {
      continue;
    }
    // Only canonical versions have immutable files.
    if (!isValid(version) || canonicalVersion(version) !== version) continue;
    const id = `${escapedPath}/@v/${escapedVersion}`;
    let v = byVersion.get(id);
    if (!v) {
      v = { mod, version, escapedVersion, files: {} };
      byVersion.set(id, v);
      out.versions.push(v);
    }
    v.files[m[2] as GcFileKind] = { key: b.key, size: b.size, mtimeMs: b.mtimeMs };
  }
  return out;
}

/** What a version's .origin says about where it came from. */
async function readOrigin(store: BlobStore, key: string): Promise<string> {
  try {
    const got = await store.getBuffer(key, MAX_ORIGIN_BYTES);
    if (!got) return 'none';
    const v = JSON.parse(got.data.toString('utf8')) as { source?: unknown };
    return typeof v.source === 'string' ? v.source : 'unknown';
  } catch {
    return 'unreadable';
  }
}

/** Reads every version's .origin, a few at a time: one small read each, and there may be one per version. */
async function readOrigins(store: BlobStore, versions: StoredVersion[]): Promise<void> {
  const withOrigin = versions.filter((v) => v.files.origin);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < withOrigin.length) {
      const v = withOrigin[next++] as StoredVersion;
      v.origin = await readOrigin(store, (v.files.origin as StoredFile).key);
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, withOrigin.length) }, worker));
}

/** Why an .origin forbids eviction, or null. */
function originProblem(origin: string | undefined): string | null {
  switch (origin) {
    case undefined:
    case 'none':
      return null;
    case 'import':
      return 'imported into the cache (gomodproxy import): no source may have it';
    case 'publish':
      return 'published to this proxy: it exists nowhere else';
    case 'unreadable':
      return 'its .origin cannot be read, so where it came from is unknown';
    default:
      return null;
  }
}

function emptyKept(): Record<KeptReason, KeptGroup> {
  const g = (): KeptGroup => ({ versions: 0, bytes: 0, examples: [] });
  return { pinned: g(), 'not-refetchable': g(), 'in-use': g(), changed: g(), 'served-since-plan': g() };
}

function versionBytes(v: StoredVersion): number {
  let n = 0;
  for (const f of Object.values(v.files)) n += f?.size ?? 0;
  return n;
}

export class GarbageCollector {
  private running = false;
  private schedule: { cron: string; nextRun: () => Date | null } | null = null;

  constructor(private readonly d: GcDeps) {}

  get policy(): GcPolicy {
    return this.d.policy;
  }

  /** Set by whoever schedules the runs, for status(). */
  scheduled(cron: string, nextRun: () => Date | null): void {
    this.schedule = { cron, nextRun };
  }

  async status(): Promise<GcStatus> {
    const got = await this.d.store.getBuffer(GC_REPORT_KEY, 16 << 20).catch(() => null);
    let lastRun: GcReport | null;
    try {
      lastRun = got ? (JSON.parse(got.data.toString('utf8')) as GcReport) : null;
    } catch {
      // A report cut by a crash of its writer is as good as none.
      lastRun = null;
    }
    const next = this.schedule?.nextRun() ?? null;
    return {
      limits: this.d.policy,
      schedule: this.schedule ? { cron: this.schedule.cron, nextRunMs: next ? next.getTime() : null } : null,
      running: this.running,
      lastRun,
    };
  }

  /**
   * One collection. A real run holds the store's gc lock (GcBusyError if another has it) and
   * resolves null when unlessRanWithinMs says another process ran it just now; a dry run takes
   * no lock and changes nothing.
   */
  async run(opts: GcRunOptions = {}): Promise<GcReport | null> {
    const dryRun = opts.dryRun ?? false;
    if (dryRun) return this.collect(opts, true);
    const lock = await this.d.coordination.tryLock(GC_LOCK_KEY);
    if (!lock) throw new GcBusyError();
    this.running = true;
    try {
      if (opts.unlessRanWithinMs !== undefined) {
        const last = (await this.status()).lastRun;
        if (last && last.startedMs > this.now() - opts.unlessRanWithinMs) return null;
      }
      return await this.collect(opts, false);
    } finally {
      this.running = false;
      await lock.release();
    }
  }

  private now(): number {
    return this.d.now?.() ?? Date.now();
  }

  private async collect(opts: GcRunOptions, dryRun: boolean): Promise<GcReport> {
    const { store } = this.d;
    const startedMs = this.now();
    const limits: GcPolicy = {
      maxBytes: opts.maxBytes !== undefined ? opts.maxBytes : this.d.policy.maxBytes,
      maxAgeMs: opts.maxAgeMs !== undefined ? opts.maxAgeMs : this.d.policy.maxAgeMs,
    };
    // This process's latest hits count too: the records are read after the listing, as late as possible.
    await this.d.served?.flush();
    const data = await listModuleData(store);
    const served = await readServedTimes(store);
    const pinned = await this.d.pins.matcher();
    await readOrigins(store, data.versions);

    const report: GcReport = {
      dryRun,
      trigger: opts.trigger ?? 'cli',
      startedMs,
      finishedMs: startedMs,
      store: store.description,
      limits,
      before: { bytes: data.bytes, modules: data.modules.size, versions: data.versions.length, zips: data.versions.filter((v) => v.files.zip).length },
      after: { bytes: data.bytes, underLimit: true },
      freedBytes: 0,
      evicted: { zip: 0, ziphash: 0, mod: 0, info: 0, origin: 0 },
      versions: { zipOnly: 0, whole: 0 },
      removed: [],
      removedTotal: 0,
      kept: emptyKept(),
      notes: [],
      leftovers: null,
      emptyFolders: 0,
      servedRecordsFolded: 0,
      errors: [],
    };
    const state = { bytes: data.bytes };
    if (limits.maxBytes === null && limits.maxAgeMs === null) {
      report.notes.push('no limit is set (gc.maxBytes, gc.maxAge, or --max-bytes, --max-age): nothing is evicted');
    } else if (this.d.offline) {
      report.nothingEvictable = this.d.offline;
    } else {
      await this.evict(data, served, pinned, limits, dryRun, report, state);
    }
    report.after.bytes = state.bytes;
    report.after.underLimit = limits.maxBytes === null || state.bytes <= limits.maxBytes;
    if (!report.after.underLimit) {
      const held = report.kept.pinned.versions + report.kept['not-refetchable'].versions + report.kept['in-use'].versions;
      report.notes.push(
        report.nothingEvictable
          ? `still over the limit: ${report.nothingEvictable}`
          : held > 0
            ? 'still over the limit: what is left is pinned, cannot be fetched again, or was in use'
            : 'still over the limit',
      );
    }
    if (!dryRun) {
      await this.tidy(data, served, report);
      report.finishedMs = this.now();
      await this.save(report);
      this.d.onReport?.(report);
    } else {
      report.finishedMs = this.now();
    }
    return report;
  }

  /** The policy: zips first (by age, then least recently served while over the limit), then the metadata of versions left without a zip. */
  private async evict(
    data: ModuleData,
    served: ServedTimes,
    pinned: PinMatcher,
    limits: GcPolicy,
    dryRun: boolean,
    report: GcReport,
    state: { bytes: number },
  ): Promise<void> {
    const now = this.now();
    const cutoff = limits.maxAgeMs === null ? -Infinity : now - limits.maxAgeMs;
    const over = (): boolean => limits.maxBytes !== null && state.bytes > limits.maxBytes;
    const lastOf = (f: StoredFile | undefined): number => (f ? Math.max(f.mtimeMs, served.times.get(f.key) ?? -Infinity) : -Infinity);
    const refetch = new Map<string, string | null>();
    const keep = (v: StoredVersion, reason: KeptReason, detail: string, bytes = versionBytes(v)): void => {
      const g = report.kept[reason];
      g.versions++;
      g.bytes += bytes;
      if (g.examples.length < EXAMPLES) g.examples.push(`${v.mod.path}@${v.version}: ${detail}`);
    };

    const evictable: StoredVersion[] = [];
    for (const v of data.versions) {
      const pin = pinned(v.mod.path, v.version);
      if (pin) {
        keep(v, 'pinned', `pinned by ${pin.pattern}`);
        continue;
      }
      let why = refetch.get(v.mod.path);
      if (why === undefined) {
        why = this.d.refetchable(v.mod.path);
        refetch.set(v.mod.path, why);
      }
      why ??= originProblem(v.origin);
      if (why) {
        keep(v, 'not-refetchable', why);
        continue;
      }
      evictable.push(v);
    }

    const touched = new Map<string, ModuleRef>();
    const zips = evictable
      .filter((v) => v.files.zip)
      .map((v) => ({ v, last: lastOf(v.files.zip) }))
      .sort((a, b) => a.last - b.last || (a.v.files.zip?.key ?? '').localeCompare(b.v.files.zip?.key ?? ''));
    // The version was asked for when any of its files was, its zip included (even one evicted now).
    const metaLast = new Map(evictable.map((v) => [v, Math.max(lastOf(v.files.info), lastOf(v.files.mod), lastOf(v.files.zip))]));
    const zipless = new Set(evictable.filter((v) => !v.files.zip));
    const zipGone = new Set<StoredVersion>();
    for (const { v, last } of zips) {
      const why = last < cutoff ? 'age' : over() ? 'size' : null;
      if (why === null) break;
      const files = (['zip', 'ziphash'] as const).filter((k) => v.files[k]);
      const outcome = dryRun ? 'removed' : await this.remove(v, files, why, ['zip'], report);
      if (outcome !== 'removed') {
        keep(v, outcome.reason, outcome.detail);
        continue;
      }
      this.account(v, files, why, last, report, state);
      if (v.files.info || v.files.mod || v.files.origin) report.versions.zipOnly++;
      else report.versions.whole++;
      zipless.add(v);
      zipGone.add(v);
    }
    const metas = [...zipless]
      .map((v) => ({ v, last: metaLast.get(v) as number }))
      .sort((a, b) => a.last - b.last || `${a.v.mod.escaped}@${a.v.escapedVersion}`.localeCompare(`${b.v.mod.escaped}@${b.v.escapedVersion}`));
    for (const { v, last } of metas) {
      const why = last < cutoff ? 'age' : over() ? 'size' : null;
      if (why === null) break;
      // .info first: it is what marks the version present. A hash without its zip goes with it.
      const files = (['info', 'origin', 'mod', 'ziphash'] as const).filter((k) => v.files[k] && !(k === 'ziphash' && zipGone.has(v)));
      if (files.length === 0) continue;
      const outcome = dryRun ? 'removed' : await this.remove(v, files, why, ['info', 'mod', 'zip'], report);
      if (outcome !== 'removed') {
        keep(v, outcome.reason, outcome.detail);
        continue;
      }
      this.account(v, files, why, last, report, state);
      if (zipGone.has(v)) report.versions.zipOnly--;
      report.versions.whole++;
      if (files.includes('mod')) touched.set(v.mod.escaped, v.mod);
    }
    if (!dryRun) {
      for (const mod of touched.values()) {
        try {
          state.bytes += await this.rewriteList(mod);
        } catch (err) {
          report.errors.push(`could not rewrite the list of ${mod.path}: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Counts removed files in the report and in the running total of module bytes. */
  private account(v: StoredVersion, kinds: readonly GcFileKind[], why: 'age' | 'size', last: number, report: GcReport, state: { bytes: number }): void {
    for (const k of kinds) {
      const f = v.files[k];
      if (!f) continue;
      report.evicted[k]++;
      report.freedBytes += f.size;
      state.bytes -= f.size;
      report.removedTotal++;
      report.removed.push({ module: v.mod.path, version: v.version, kind: k, key: f.key, bytes: f.size, lastServedMs: last, why });
    }
  }

  /**
   * Removes a version's files after a last look: nobody holds the fetch lock of `lockKinds`, each
   * file is still the one listed (same mtime), no zip arrived since the listing when the
   * metadata goes, and an age eviction of a key served here since the last flush is given up.
   */
  private async remove(
    v: StoredVersion,
    kinds: readonly GcFileKind[],
    why: 'age' | 'size',
    lockKinds: readonly ('info' | 'mod' | 'zip')[],
    report: GcReport,
  ): Promise<'removed' | { reason: KeptReason; detail: string }> {
    const { store, coordination } = this.d;
    for (const k of lockKinds) {
      const key = artifactKey(v.mod.escaped, v.escapedVersion, k);
      if ((await coordination.holder(key)) !== null) return { reason: 'in-use', detail: `its ${k} is being fetched or written` };
    }
    if (!kinds.includes('zip')) {
      // The metadata of a version left without a zip: a zip stored meanwhile says someone wants it.
      if ((await store.head(artifactKey(v.mod.escaped, v.escapedVersion, 'zip'))) !== null)
        return { reason: 'changed', detail: 'its zip was stored during the collection' };
    }
    for (const k of kinds) {
      const f = v.files[k];
      if (!f) continue;
      const now = await store.head(f.key);
      if (now && Math.floor(now.mtimeMs) !== Math.floor(f.mtimeMs)) return { reason: 'changed', detail: `its ${k} was stored again during the collection` };
      if (why === 'age' && (k === 'zip' || k === 'info' || k === 'mod') && this.d.served?.servedSinceFlush(f.key)) {
        return { reason: 'served-since-plan', detail: `its ${k} was served during the collection` };
      }
    }
    const gone: GcRemoved[] = [];
    for (const k of kinds) {
      const f = v.files[k];
      if (!f) continue;
      try {
        if (await store.delete(f.key)) gone.push({ module: v.mod.path, version: v.version, kind: k, key: f.key });
      } catch (err) {
        report.errors.push(`could not remove ${f.key}: ${(err as Error).message}`);
      }
    }
    if (gone.length > 0) {
      try {
        await this.d.onRemoved?.(gone);
      } catch (err) {
        this.d.log?.warn({ err: (err as Error).message }, 'a listener of garbage collection failed');
      }
    }
    return 'removed';
  }

  /** Rewrites a module's list after its .mod files went; a module with no version left loses its list too. Resolves with the change in bytes. */
  private async rewriteList(mod: ModuleRef): Promise<number> {
    const { store, coordination } = this.d;
    const key = localListKey(mod.escaped);
    const before = (await store.head(key))?.size ?? 0;
    await writeLocalList(store, coordination, mod);
    // Under the list's lock, so a version stored meanwhile (which rewrites the list under it) is never lost.
    const lock = await coordination.tryLock(key);
    if (lock) {
      try {
        if ((await localVersions(store, mod)).length === 0) await store.delete(key);
      } finally {
        await lock.release();
      }
    }
    return ((await store.head(key))?.size ?? 0) - before;
  }

  /** After the evictions: served records folded, leftovers of interrupted writes and empty folders removed. */
  private async tidy(data: ModuleData, served: ServedTimes, report: GcReport): Promise<void> {
    const { store } = this.d;
    // The folded record forgets what is no longer stored (evicted now, purged before).
    const stored = new Set<string>();
    for (const v of data.versions) for (const f of Object.values(v.files)) if (f) stored.add(f.key);
    for (const r of report.removed) stored.delete(r.key);
    try {
      report.servedRecordsFolded = await foldServedTimes(store, served, {
        keep: (key) => stored.has(key),
        markerTtlMs: MARKER_TTL_MS,
        now: this.now(),
      });
    } catch (err) {
      report.errors.push(`could not fold the served records: ${(err as Error).message}`);
    }
    if (this.d.sweepLeftovers) {
      try {
        report.leftovers = await this.d.sweepLeftovers();
      } catch (err) {
        report.errors.push(`could not sweep leftovers of interrupted writes: ${(err as Error).message}`);
      }
    }
    if (store.removeEmptyFolders) {
      for (const top of [...data.tops, 'mutable']) {
        try {
          report.emptyFolders += await store.removeEmptyFolders(top);
        } catch (err) {
          report.errors.push(`could not remove empty folders under ${top}: ${(err as Error).message}`);
        }
      }
    }
  }

  private async save(report: GcReport): Promise<void> {
    const saved: GcReport = { ...report, removed: report.removed.slice(0, MAX_REPORT_ENTRIES) };
    try {
      await this.d.store.put(GC_REPORT_KEY, Buffer.from(`${JSON.stringify(saved)}\n`));
    } catch (err) {
      report.errors.push(`could not save the report: ${(err as Error).message}`);
    }
  }
}
