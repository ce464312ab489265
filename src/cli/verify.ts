// `gomodproxy verify`: re-checks everything in the cache. Each version's zip is checked as an
// upstream's would be and hashed again; the h1 must equal the .ziphash stored beside it and, for
// public modules, the checksum database's record (reached as the server reaches it, through the
// same SumdbService, so its verified tree, tiles and lookups are shared with the server). With
// --offline only what is on disk counts: the .ziphash, and database records verified and kept
// earlier. With --purge, bad versions are removed and their module's list rewritten, so the next
// request fetches (and verifies) them again.
//
// Memory stays bounded whatever the size of the cache: one pass over the store's keys keeps only
// module folders (and a count for the progress bar), then each module's folder is listed on its
// own, and zips are read as streams.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pino from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { createBlobStore } from '../cache/create.js';
import { FsBlobStore } from '../cache/fs.js';
import { STATE_PREFIX, artifactKey, localListKey, zipHashKey } from '../cache/keys.js';
import { writeLocalList } from '../cache/locallist.js';
import { HostCoordination } from '../cluster/coordination.js';
import { ConfigError, loadConfig, type Config, type LoadOptions } from '../config/index.js';
import { canonicalVersion, isValid, parseGoMod, sort as sortVersions, unescapePath, unescapeVersion } from '../module/index.js';
import { ZipError, checkModuleZip, hashGoMod } from '../modzip/index.js';
import { Metrics } from '../server/metrics.js';
import { recordedHashes, type SumdbService } from '../server/sumdb.js';
import { createRouting } from '../server/wiring.js';
import { MAX_GOMOD_BYTES, MAX_INFO_BYTES, type ModuleRef } from '../sources/index.js';
import { SumdbError, SumdbForkError } from '../sumdb/index.js';
import { progressPrinter } from './progress.js';

export interface VerifyOptions extends LoadOptions {
  /** Check only against what is on disk; never reach the database. */
  offline?: boolean;
  /** Delete the files of every bad version. */
  purge?: boolean;
  /** Versions checked at once. */
  concurrency?: number;
  /** Progress bar (true), plain progress lines (false); default: a bar when stderr is a terminal. */
  progress?: boolean;
}

type Ext = 'info' | 'mod' | 'zip' | 'ziphash';

/** One module version's files in the cache. */
export interface CachedVersion {
  mod: ModuleRef;
  version: string;
  escapedVersion: string;
  files: Set<Ext>;
}

/** What was found about one version. */
export interface VersionReport {
  module: string;
  version: string;
  /** bad: something disagrees or is broken; unverified: the database could not be asked; ok otherwise. */
  status: 'ok' | 'bad' | 'unverified';
  /** Why it is bad or unverified, one line each. */
  problems: string[];
  /** How its hashes were checked. */
  checkedBy: 'database' | 'cached-record' | 'local' | 'private';
  purged: boolean;
  /** Bytes of the files read to check it (for the progress rate). */
  bytes?: number;
}

export interface VerifySummary {
  modules: number;
  versions: number;
  ok: number;
  bad: number;
  unverified: number;
  purged: number;
  /** Public versions whose hashes were compared with a database record. */
  againstDatabase: number;
  private: number;
  /** Set when the database presented a forked tree: the run stops, nothing it said can be trusted. */
  fork?: SumdbForkError;
  ms: number;
}

export interface VerifyCacheOptions {
  store: BlobStore;
  /** The checksum database, or null to compare the files only against each other. */
  sumdb: SumdbService | null;
  offline: boolean;
  purge: boolean;
  concurrency: number;
  /** Rewrites a module's list after a purge (the disk store shares a lock with running servers). */
  rewriteList?: (mod: ModuleRef) => Promise<void>;
  onProgress?: (done: number, total: number, bad: number, bytes: number) => void;
  onReport?: (r: VersionReport) => void;
  /** Something the operator should know that is about no version in particular. */
  onWarning?: (msg: string) => void;
}

/** First path elements that hold our own state, never modules (module paths need a dot there). */
function isModuleKey(key: string): boolean {
  const first = key.slice(0, key.indexOf('/'));
  return first.includes('.') && !key.startsWith(STATE_PREFIX);
}

/**
 * Pass one: the module folders (`<escaped path>` of every `<escaped path>/@v/...` key), each with
 * an estimate of its number of versions for the progress bar. Only the folder being listed keeps
 * its version names, so memory grows with the number of modules, not of files.
 */
async function moduleFolders(store: BlobStore): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let current = '';
  let seen = new Set<string>();
  const flush = (): void => {
    if (current !== '') out.set(current, (out.get(current) ?? 0) + seen.size);
  };
  for await (const key of store.list('')) {
    if (!isModuleKey(key)) continue;
    const at = key.lastIndexOf('/@v/');
    if (at <= 0) continue;
    const name = key.slice(at + 4);
    const m = /^(.+)\.(info|mod|zip|ziphash)$/.exec(name);
    if (!m || name.includes('/')) continue;
    const dir = key.slice(0, at);
    if (dir !== current) {
      flush();
      current = dir;
      seen = new Set();
    }
    seen.add(m[1]!);
  }
  flush();
  return out;
}

/** Pass two, per module: its versions and which of their files are present, sorted as Go sorts versions. */
async function moduleVersions(store: BlobStore, escapedPath: string): Promise<CachedVersion[]> {
  let mod: ModuleRef;
  try {
    mod = { path: unescapePath(escapedPath), escaped: escapedPath };
  } catch {
    return [];
  }
  const prefix = `${escapedPath}/@v/`;
  const byVersion = new Map<string, CachedVersion>();
  for await (const key of store.list(prefix)) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    const m = /^([^/]+)\.(info|mod|zip|ziphash)$/.exec(name);
    if (!m) continue;
    const escapedVersion = m[1]!;
    let version: string;
    try {
      version = unescapeVersion(escapedVersion);
    } catch {
      continue;
    }
    // Only canonical versions have immutable files; anything else is not ours to judge.
    if (!isValid(version) || canonicalVersion(version) !== version) continue;
    let v = byVersion.get(version);
    if (!v) {
      v = { mod, version, escapedVersion, files: new Set() };
      byVersion.set(version, v);
    }
    v.files.add(m[2] as Ext);
  }
  const order = sortVersions([...byVersion.keys()]);
  return order.map((v) => byVersion.get(v)!);
}

/** A local file holding the zip: the store's own file on disk, else a temporary copy. */
async function localZip(store: BlobStore, key: string): Promise<{ file: string; size: number; done: () => Promise<void> } | null> {
  if (store instanceof FsBlobStore) {
    const stat = await store.head(key);
    return stat ? { file: store.localPath(key), size: stat.size, done: async () => undefined } : null;
  }
  const blob = await store.get(key);
  if (!blob) return null;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gomodproxy-verify-'));
  const file = path.join(dir, 'module.zip');
  try {
    await pipeline(blob.stream, createWriteStream(file));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { file, size: blob.size, done: () => rm(dir, { recursive: true, force: true }) };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Checks one version; never throws except for a forked database (which stops the whole run). */
async function checkVersion(v: CachedVersion, o: VerifyCacheOptions): Promise<VersionReport> {
  const { store, sumdb } = o;
  const label = `${v.mod.path}@${v.version}`;
  const problems: string[] = [];
  const unverified: string[] = [];
  let zipH1: string | undefined;
  let modH1: string | undefined;
  let bytes = 0;

  if (v.files.has('zip')) {
    const key = artifactKey(v.mod.escaped, v.escapedVersion, 'zip');
    try {
      const local = await localZip(store, key);
      if (local) {
        bytes += local.size;
        try {
          zipH1 = (await checkModuleZip(local.file, v.mod.path, v.version)).h1;
        } finally {
          await local.done();
        }
      }
    } catch (err) {
      if (err instanceof ZipError) problems.push(`the zip is invalid: ${err.message}`);
      else unverified.push(`cannot read the zip: ${message(err)}`);
    }
    const stored = await store
      .getBuffer(zipHashKey(v.mod.escaped, v.escapedVersion), 1024)
      .then((b) => b?.data.toString('utf8').trim())
      .catch((err: unknown) => {
        unverified.push(`cannot read the .ziphash: ${message(err)}`);
        return undefined;
      });
    if (stored === undefined) {
      if (!v.files.has('ziphash')) problems.push('the zip has no .ziphash beside it');
    } else if (zipH1 !== undefined && stored !== zipH1) {
      problems.push(`the zip hashes to ${zipH1} but its .ziphash says ${stored}`);
    }
  }

  if (v.files.has('mod')) {
    try {
      const got = await store.getBuffer(artifactKey(v.mod.escaped, v.escapedVersion, 'mod'), MAX_GOMOD_BYTES);
      if (got) {
        bytes += got.data.length;
        modH1 = hashGoMod(got.data);
        try {
          parseGoMod(got.data, `${label}/go.mod`);
        } catch (err) {
          problems.push(`the .mod is not a valid go.mod: ${message(err)}`);
        }
      }
    } catch (err) {
      unverified.push(`cannot read the .mod: ${message(err)}`);
    }
  }

  if (v.files.has('info')) {
    try {
      const got = await store.getBuffer(artifactKey(v.mod.escaped, v.escapedVersion, 'info'), MAX_INFO_BYTES);
      if (got) {
        const info = JSON.parse(got.data.toString('utf8')) as { Version?: unknown } | null;
        if (!info || typeof info !== 'object' || info.Version !== v.version) {
          problems.push(`the .info describes ${JSON.stringify(info?.Version)} instead of ${v.version}`);
        }
      }
    } catch (err) {
      problems.push(`the .info is not valid JSON: ${message(err)}`);
    }
  }

  let checkedBy: VersionReport['checkedBy'] = 'local';
  if (sumdb && !sumdb.checks(v.mod.path)) {
    checkedBy = 'private';
  } else if (sumdb && (zipH1 !== undefined || modH1 !== undefined)) {
    try {
      const rec = recordedHashes(await sumdb.client.lookup(v.mod.path, v.version), v.mod.path, v.version);
      checkedBy = o.offline ? 'cached-record' : 'database';
      if (zipH1 !== undefined && rec.zip !== zipH1) {
        const recorded = `checksum database ${sumdb.name} records ${rec.zip ?? 'no zip hash'}`;
        // One sentence per file: the .ziphash disagreement, if any, already named the zip's hash.
        const i = problems.findIndex((p) => p.startsWith('the zip hashes to'));
        if (i >= 0) problems[i] += ` and ${recorded}`;
        else problems.push(`the zip hashes to ${zipH1} but ${recorded}`);
      }
      if (modH1 !== undefined && rec.mod !== modH1) {
        problems.push(`the .mod hashes to ${modH1} but checksum database ${sumdb.name} records ${rec.mod ?? 'no go.mod hash'}`);
      }
    } catch (err) {
      if (err instanceof SumdbForkError) throw err;
      if (o.offline) {
        // No record verified and kept earlier: the files were checked against each other only.
      } else if (err instanceof SumdbError && err.code === 'not-found') {
        problems.push(
          `checksum database ${sumdb.name} does not know ${label} (the go command would refuse it; if the module is private, add it to noSumdb / GONOSUMDB)`,
        );
      } else {
        unverified.push(message(err));
      }
    }
  }

  const status = problems.length > 0 ? 'bad' : unverified.length > 0 ? 'unverified' : 'ok';
  return { module: v.mod.path, version: v.version, status, problems: status === 'bad' ? problems : unverified, checkedBy, purged: false, bytes };
}

/** Removes a version: .info first (it is what marks a version present), then the rest. */
async function purgeVersion(store: BlobStore, v: CachedVersion): Promise<void> {
  for (const ext of ['info', 'zip', 'ziphash', 'mod'] as const) {
    const key = ext === 'ziphash' ? zipHashKey(v.mod.escaped, v.escapedVersion) : artifactKey(v.mod.escaped, v.escapedVersion, ext);
    await store.delete(key);
  }
}

/** The list as the go command's download cache keeps it: the versions with a .mod, sorted. */
async function rewriteListGeneric(store: BlobStore, mod: ModuleRef): Promise<void> {
  const versions = (await moduleVersions(store, mod.escaped)).filter((v) => v.files.has('mod')).map((v) => v.version);
  await store.put(localListKey(mod.escaped), Buffer.from(versions.map((v) => `${v}\n`).join('')));
}

/** Walks the whole store and checks every version; the caller prints. */
export async function verifyCache(o: VerifyCacheOptions): Promise<VerifySummary> {
  const t0 = Date.now();
  const summary: VerifySummary = { modules: 0, versions: 0, ok: 0, bad: 0, unverified: 0, purged: 0, againstDatabase: 0, private: 0, ms: 0 };
  if (o.sumdb && !o.offline) {
    // Ask for the database's newest tree first: a fork shows at once, before any version is judged,
    // and an unreachable database is said once rather than per version.
    try {
      await o.sumdb.client.refreshLatest();
    } catch (err) {
      if (err instanceof SumdbForkError) {
        summary.fork = err;
        summary.ms = Date.now() - t0;
        return summary;
      }
      o.onWarning?.(`${message(err)}; versions whose records were verified and kept earlier are still checked against those`);
    }
  }
  const folders = await moduleFolders(o.store);
  let total = [...folders.values()].reduce((a, b) => a + b, 0);
  const touched = new Map<string, ModuleRef>();
  let bytes = 0;
  o.onProgress?.(0, total, 0, 0);

  async function* versions(): AsyncGenerator<CachedVersion> {
    for (const [dir, estimate] of folders) {
      const vs = await moduleVersions(o.store, dir);
      // The first pass only estimated: correct the total so the bar ends at 100 %.
      total += vs.length - estimate;
      if (vs.length > 0) summary.modules++;
      yield* vs;
    }
  }
  const queue = versions();
  let stop: SumdbForkError | undefined;
  const worker = async (): Promise<void> => {
    // Async generators queue concurrent next() calls, so the workers share one walk.
    for (;;) {
      if (stop) return;
      const next = await queue.next();
      if (next.done) return;
      const v = next.value;
      let r: VersionReport;
      try {
        r = await checkVersion(v, o);
      } catch (err) {
        if (err instanceof SumdbForkError) {
          stop ??= err;
          return;
        }
        r = { module: v.mod.path, version: v.version, status: 'unverified', problems: [message(err)], checkedBy: 'local', purged: false };
      }
      if (r.status === 'bad' && o.purge) {
        try {
          await purgeVersion(o.store, v);
          r.purged = true;
          summary.purged++;
          touched.set(v.mod.escaped, v.mod);
        } catch (err) {
          r.problems.push(`could not purge it: ${message(err)}`);
        }
      }
      summary.versions++;
      summary[r.status]++;
      bytes += r.bytes ?? 0;
      if (r.checkedBy === 'database' || r.checkedBy === 'cached-record') summary.againstDatabase++;
      if (r.checkedBy === 'private') summary.private++;
      o.onReport?.(r);
      o.onProgress?.(summary.versions, Math.max(total, summary.versions), summary.bad, bytes);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  await queue.return(undefined);
  for (const mod of touched.values()) await (o.rewriteList ?? ((m) => rewriteListGeneric(o.store, m)))(mod);
  if (stop) summary.fork = stop;
  summary.ms = Date.now() - t0;
  return summary;
}

async function instanceId(store: BlobStore): Promise<string> {
  const got = await store.getBuffer(`${STATE_PREFIX}instance-id`, 256).catch(() => null);
  const id = got?.data.toString('utf8').trim();
  return id && /^[A-Za-z0-9._-]{1,64}$/.test(id) ? id : 'gomodproxy-verify';
}

/** The database as the server reaches it (same route, same cache, same modules skipped), or null when off. */
function sumdbFor(config: Config, store: BlobStore, via: string, offline: boolean): { sumdb: SumdbService | null; close: () => Promise<void> } {
  // The command prints its own report; the service's logs would only repeat it.
  return createRouting(config, {
    store,
    coordination: new HostCoordination(config.data),
    metrics: new Metrics(),
    log: pino({ level: 'silent' }),
    via,
    offline,
  });
}

/** Runs the command; resolves with its exit code (0 all good, 1 something bad, 2 could not check everything). */
export async function runVerify(opts: VerifyOptions): Promise<number> {
  const config = loadConfig(opts);
  // A mistyped --data would otherwise "verify" an empty cache and report success.
  if (!existsSync(config.data)) {
    process.stderr.write(`gomodproxy verify: data folder ${config.data} does not exist; give the one serve uses with --data (or GOMODPROXY_DATA)\n`);
    return 2;
  }
  const store = await createBlobStore(config);
  const offline = opts.offline ?? false;
  let db: ReturnType<typeof sumdbFor>;
  try {
    db = sumdbFor(config, store, await instanceId(store), offline);
  } catch (err) {
    throw new ConfigError(`invalid routes: ${message(err)}`);
  }
  const sumdb = db.sumdb;
  const out = process.stdout;
  const progress = progressPrinter({ command: 'verify', verb: 'checked', bar: opts.progress ?? Boolean(process.stderr.isTTY) });
  const coordination = new HostCoordination(config.data);
  let summary: VerifySummary;
  try {
    summary = await verifyCache({
      store,
      sumdb,
      offline,
      purge: opts.purge ?? false,
      concurrency: opts.concurrency ?? 4,
      rewriteList: (mod) => writeLocalList(store, coordination, mod),
      onProgress: (done, total, bad, bytes) => progress.update({ done, total, bad, bytes }),
      onWarning: (msg) => {
        progress.end();
        process.stderr.write(`gomodproxy verify: warning: ${msg}\n`);
      },
      onReport: (r) => {
        if (r.status === 'ok') return;
        progress.end();
        const tag = r.status === 'bad' ? (r.purged ? 'PURGED' : 'BAD') : 'UNVERIFIED';
        out.write(`${tag} ${r.module}@${r.version}: ${r.problems.join('; ')}\n`);
      },
    });
  } finally {
    progress.end();
    await db.close();
  }

  const where = sumdb === null ? 'checksum database off' : offline ? `offline; ${sumdb.name} records kept earlier only` : `checksum database ${sumdb.name}`;
  const parts = [`${summary.ok} ok`, `${summary.bad} bad${summary.purged > 0 ? ` (${summary.purged} purged)` : ''}`];
  if (summary.unverified > 0) parts.push(`${summary.unverified} unverified`);
  parts.push(`${summary.againstDatabase} checked against the database`);
  if (summary.private > 0) parts.push(`${summary.private} private (never sent to the database)`);
  out.write(
    `verified ${summary.versions} versions of ${summary.modules} modules in ${config.data} (${where}) in ${(summary.ms / 1000).toFixed(1)} s: ${parts.join(', ')}\n`,
  );
  if (summary.fork) {
    process.stderr.write(`gomodproxy verify: stopped: ${summary.fork.message}\n${summary.fork.proof}\n`);
    return 2;
  }
  if (summary.bad > summary.purged) {
    out.write('run `gomodproxy verify --purge` to remove the bad versions; they are fetched (and verified) again when next asked for\n');
  } else if (summary.purged > 0) {
    out.write('a running gomodproxy may keep answering purged files from its memory cache until it restarts\n');
  }
  if (summary.bad > 0) return 1;
  return summary.unverified > 0 ? 2 : 0;
}
