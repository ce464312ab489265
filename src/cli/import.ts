// `gomodproxy import <dir>`: takes modules from any GOPROXY-layout folder (a GOMODCACHE's
// cache/download, another proxy's data folder) into ours, checking each artifact as if an
// upstream had sent it. A version counts as imported only when it is servable: its .info (what
// marks a version present) and .mod are in the store; its .zip too when the folder had one.
//
// The go command's cache often lacks the .info: `go mod tidy` stores .mod and .zip without it,
// and a version needed only for its go.mod in the module graph has nothing but the .mod. So:
// - a pseudo-version's .info is derived: {"Version", "Time"}, the time being the commit time the
//   pseudo-version carries, which is what the go command itself would record;
// - a tagged version's time is in none of its files, and an .info without Time, though the go
//   command accepts it, shows as "Time": "0001-01-01T00:00:00Z" in `go list -m -json` (and the
//   go command writes that zero time into its own cache): such an .info would be served forever
//   (immutable), so it is fetched instead, through the upstreams of the route serve would use
//   (private modules from version control, never from a public upstream), as is a missing .mod;
// - what can be neither derived nor fetched is reported by name with the reason, none of its
//   files are written, and the command exits non-zero.
// Per version the .zip goes first and the .info last, so a version is never visible before its
// files are.
import { createReadStream } from 'node:fs';
import { opendir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { createBlobStore } from '../cache/create.js';
import { artifactKey, zipHashKey } from '../cache/keys.js';
import { writeLocalList } from '../cache/locallist.js';
import { originBytes, originKey } from '../catalog/index.js';
import { HostCoordination } from '../cluster/coordination.js';
import { loadConfig, type LoadOptions } from '../config/index.js';
import { ProxyError, errorMessage } from '../errors.js';
import { canonicalVersion, isPseudoVersion, pseudoVersionTime, unescapePath, unescapeVersion } from '../module/index.js';
import { checkModuleZip, hashGoMod } from '../modzip/index.js';
import { checkInfo, checkMod } from '../server/check.js';
import { instanceIdOf } from '../server/index.js';
import { Metrics } from '../server/metrics.js';
import { createRouting, type Routing } from '../server/wiring.js';
import { MAX_GOMOD_BYTES, MAX_INFO_BYTES, type FetchContext, type ModuleRef, type SourceChain, type VersionRef } from '../sources/index.js';
import { progressPrinter } from './progress.js';

export interface ImportOptions extends LoadOptions {
  /** Progress bar (true), plain progress lines (false); default: a bar when stderr is a terminal. */
  progress?: boolean;
}

type Ext = 'info' | 'mod' | 'zip';

interface Found {
  mod: ModuleRef;
  version: string;
  escapedVersion: string;
  /** The files the folder has for this version, with their sizes. */
  files: Map<Ext, number>;
}

/** How one version's .info came to be, when the folder had none. */
type InfoFrom = 'folder' | 'pseudo-version' | 'upstream' | 'store';

interface Counts {
  imported: number;
  present: number;
  refused: number;
  derived: number;
  fetched: number;
  withoutZip: number;
}

/** Resolves with the exit code: 0 every version imported (or already there), 1 some not, 2 nothing could be read. */
export async function runImport(dir: string, opts: ImportOptions): Promise<number> {
  const config = loadConfig(opts);
  const root = path.resolve(dir);
  const err = process.stderr;
  const unusable = await folderProblem(root);
  if (unusable) {
    err.write(`gomodproxy import: ${unusable}\n`);
    return 2;
  }
  const found = new Map<string, Found>();
  const unreadable: string[] = [];
  await walk(root, '', found, unreadable);
  for (const u of unreadable) err.write(`gomodproxy import: ${u}\n`);
  if (found.size === 0) {
    const nested = await isDir(path.join(root, 'cache', 'download'));
    err.write(
      `gomodproxy import: no module versions in ${root} (expected <module>/@v/<version>.mod, .zip, .info)${nested ? `; it looks like a GOMODCACHE: import ${path.join(root, 'cache', 'download')}` : ''}\n`,
    );
    return unreadable.length > 0 ? 2 : 1;
  }

  const store = await createBlobStore(config);
  const coordination = new HostCoordination(config.data);
  const via = await instanceIdOf(store);
  // The server's own wiring: the same routes (private modules from version control only) and the
  // same checksum database, which public modules are held to, since a folder on disk is no more
  // trusted than a proxy.
  const routing = createRouting(config, { store, coordination, metrics: new Metrics(), log: pino({ level: 'silent' }), via });
  const ctx: FetchContext = { via };
  const counts: Counts = { imported: 0, present: 0, refused: 0, derived: 0, fetched: 0, withoutZip: 0 };
  const totalBytes = [...found.values()].reduce((n, f) => n + [...f.files.values()].reduce((a, b) => a + b, 0), 0);
  const progress = progressPrinter({ command: 'import', verb: 'imported', bar: opts.progress ?? Boolean(err.isTTY) });
  const touched = new Map<string, ModuleRef>();
  let done = 0;
  let bytes = 0;
  try {
    progress.update({ done, total: found.size, bytes, totalBytes });
    for (const f of found.values()) {
      try {
        const r = await importVersion(f, { root, store, routing, ctx });
        if (r === 'present') counts.present++;
        else {
          counts.imported++;
          if (r.info === 'pseudo-version') counts.derived++;
          if (r.info === 'upstream' || r.modFetched) counts.fetched++;
          if (!r.zip) counts.withoutZip++;
          touched.set(f.mod.escaped, f.mod);
        }
      } catch (e) {
        counts.refused++;
        progress.end();
        err.write(`skip ${f.mod.path}@${f.version}: ${errorMessage(e)}\n`);
      }
      done++;
      bytes += [...f.files.values()].reduce((a, b) => a + b, 0);
      progress.update({ done, total: found.size, bytes, totalBytes, bad: counts.refused });
    }
  } finally {
    progress.end();
    await routing.close();
  }
  for (const mod of touched.values()) await writeLocalList(store, coordination, mod);

  const how: string[] = [];
  if (counts.derived > 0) how.push(`${counts.derived} with the .info derived from the pseudo-version`);
  if (counts.fetched > 0) how.push(`${counts.fetched} with a missing .info or .mod fetched through the upstreams`);
  if (counts.withoutZip > 0)
    how.push(`${counts.withoutZip} without a zip (the folder had only their go.mod; serve fetches the zip when asked, if it has an upstream)`);
  process.stdout.write(
    `imported ${counts.imported} module versions into ${config.data}${how.length > 0 ? ` (${how.join('; ')})` : ''}, ${counts.present} already present, ${counts.refused} not imported\n`,
  );
  if (counts.refused > 0) {
    err.write(`gomodproxy import: ${counts.refused} module versions were not imported (each named above with the reason); nothing of them was written\n`);
  }
  return counts.refused > 0 || unreadable.length > 0 ? 1 : 0;
}

interface VersionContext {
  root: string;
  store: BlobStore;
  routing: Routing;
  ctx: FetchContext;
}

/**
 * Imports one version, or throws why it cannot be served. Every check comes before the first
 * write, and the .info is written last.
 */
async function importVersion(f: Found, c: VersionContext): Promise<'present' | { info: InfoFrom; modFetched: boolean; zip: boolean }> {
  const { store } = c;
  const key = (ext: Ext): string => artifactKey(f.mod.escaped, f.escapedVersion, ext);
  const has = { info: Boolean(await store.head(key('info'))), mod: Boolean(await store.head(key('mod'))), zip: Boolean(await store.head(key('zip'))) };
  const wantZip = f.files.has('zip') && !has.zip;
  if (has.info && has.mod && !wantZip) return 'present';
  const route = c.routing.routes.routeFor(f.mod.path);
  const v: VersionRef = { version: f.version, escaped: f.escapedVersion };
  const verify = async (kind: 'mod' | 'zip', h1: string, sourceId: string): Promise<void> => {
    if (route.sumdb && c.routing.sumdb?.checks(f.mod.path)) await c.routing.sumdb.verify(f.mod, f.version, kind, h1, sourceId);
  };

  let info: { bytes: Buffer; from: InfoFrom } | undefined;
  if (!has.info) info = await infoFor(f, c, v, route.chain);

  let mod: Buffer | undefined;
  let modFetched = false;
  if (!has.mod) {
    let source = c.root;
    if (f.files.has('mod')) {
      mod = await readBounded(path.join(c.root, key('mod')), MAX_GOMOD_BYTES, 'mod');
    } else {
      try {
        const res = await route.chain.run('mod', (s) => s.mod(f.mod, v, c.ctx));
        mod = res.value;
        source = res.source.id;
        modFetched = true;
      } catch (err) {
        throw new ProxyError('not-found', `the folder has no .mod for it and it could not be fetched (${errorMessage(err)})`);
      }
    }
    checkMod(mod, f.mod, f.version, source);
    await verify('mod', hashGoMod(mod), source);
  }

  if (wantZip) {
    // Copy into a staged write, check the copy (not the source, which could change meanwhile), then commit.
    const write = await store.beginWrite(key('zip'));
    try {
      for await (const chunk of createReadStream(path.join(c.root, key('zip')), { highWaterMark: 1 << 20 })) await write.append(chunk as Buffer);
      const { h1 } = await checkModuleZip(write.stagingFile, f.mod.path, f.version);
      await verify('zip', h1, c.root);
      await store.put(zipHashKey(f.mod.escaped, f.escapedVersion), Buffer.from(h1));
      await write.commit();
    } finally {
      await write.abort();
    }
  }
  if (mod) await store.put(key('mod'), mod);
  // Imported versions may exist nowhere else: garbage collection must never evict them.
  if (info) await store.put(originKey(f.mod.escaped, f.escapedVersion), originBytes({ source: 'import', at: new Date().toISOString() }));
  if (info) await store.put(key('info'), info.bytes);
  return { info: info?.from ?? 'store', modFetched, zip: has.zip || wantZip };
}

/** The .info: the folder's, else derived from a pseudo-version, else fetched; else why not. */
async function infoFor(f: Found, c: VersionContext, v: VersionRef, chain: SourceChain): Promise<{ bytes: Buffer; from: InfoFrom }> {
  if (f.files.has('info')) {
    const data = await readBounded(path.join(c.root, artifactKey(f.mod.escaped, f.escapedVersion, 'info')), MAX_INFO_BYTES, 'info');
    return { bytes: checkInfo(data, f.mod, c.root, f.version).bytes, from: 'folder' };
  }
  if (isPseudoVersion(f.version)) {
    const time = pseudoVersionTime(f.version)
      .toISOString()
      .replace(/\.000Z$/, 'Z');
    return { bytes: Buffer.from(JSON.stringify({ Version: f.version, Time: time })), from: 'pseudo-version' };
  }
  try {
    const res = await chain.run('info', (s) => s.info(f.mod, v, c.ctx));
    return { bytes: checkInfo(res.value, f.mod, res.source.id, f.version).bytes, from: 'upstream' };
  } catch (err) {
    throw new ProxyError(
      'not-found',
      `the folder has no .info for it (the go command stored only its${f.files.has('zip') ? ' .mod and .zip' : ' go.mod'}), the time of a tagged version is in none of its files, and fetching the .info failed (${errorMessage(err)}); import with an upstream that has it (--upstream), or run go mod download ${f.mod.path}@${f.version} where the folder was made, so that the go command stores its .info`,
    );
  }
}

async function readBounded(file: string, max: number, ext: Ext): Promise<Buffer> {
  const data = await readFile(file);
  if (data.length > max) throw new ProxyError('bad-request', `its ${ext} file is larger than the ${max}-byte limit`);
  return data;
}

/** Why the folder cannot be imported from, in one line, or undefined when it can be. */
async function folderProblem(root: string): Promise<string | undefined> {
  try {
    const st = await stat(root);
    if (!st.isDirectory()) return `${root} is not a folder; give a GOPROXY-layout folder such as $(go env GOMODCACHE)/cache/download`;
    const d = await opendir(root);
    await d.close();
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${root} does not exist; give a GOPROXY-layout folder such as $(go env GOMODCACHE)/cache/download`;
    return `cannot read ${root} (${code ?? errorMessage(err)}); check its permissions, or run as a user who may read it`;
  }
}

async function isDir(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Finds <escaped module>/@v/<escaped version>.{info,mod,zip}, skipping the go command's sumdb and vcs caches. */
async function walk(root: string, rel: string, found: Map<string, Found>, unreadable: string[]): Promise<void> {
  let dir;
  try {
    dir = await opendir(path.join(root, rel));
  } catch (err) {
    unreadable.push(
      `cannot read ${path.join(root, rel)} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}); the modules below it were not imported`,
    );
    return;
  }
  for await (const ent of dir) {
    const childRel = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (ent.isDirectory()) {
      if (rel === '' && (ent.name === 'sumdb' || ent.name === 'cache' || ent.name === 'mutable' || ent.name === 'state')) continue;
      await walk(root, childRel, found, unreadable);
      continue;
    }
    const m = /^(.+)\/@v\/([^/]+)\.(info|mod|zip)$/.exec(childRel);
    if (!m || !ent.isFile()) continue;
    const [, escapedPath, escapedVersion, ext] = m as unknown as [string, string, string, Ext];
    let mod: ModuleRef;
    let version: string;
    try {
      mod = { path: unescapePath(escapedPath), escaped: escapedPath };
      version = unescapeVersion(escapedVersion);
    } catch {
      continue;
    }
    if (canonicalVersion(version) !== version) continue;
    const id = `${escapedPath}@${escapedVersion}`;
    let f = found.get(id);
    if (!f) {
      f = { mod, version, escapedVersion, files: new Map() };
      found.set(id, f);
    }
    const size = await stat(path.join(root, childRel)).then(
      (s) => s.size,
      () => 0,
    );
    f.files.set(ext, size);
  }
}
