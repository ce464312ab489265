// `gomodproxy import <dir>`: takes modules from any GOPROXY-layout folder (a GOMODCACHE's
// cache/download, another proxy's data folder) into ours, checking each artifact as if an
// upstream had sent it. Per version the .zip goes first and the .info last, so a version is
// never visible before its files are.
import { copyFile, mkdir, opendir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { FsBlobStore } from '../cache/fs.js';
import { artifactKey, zipHashKey } from '../cache/keys.js';
import { writeLocalList } from '../cache/locallist.js';
import { HostCoordination } from '../cluster/coordination.js';
import { loadConfig, type LoadOptions } from '../config/index.js';
import { ProxyError } from '../errors.js';
import { canonicalVersion, unescapePath, unescapeVersion } from '../module/index.js';
import { checkModuleZip, hashGoMod } from '../modzip/index.js';
import pino from 'pino';
import { instanceIdOf } from '../server/index.js';
import { Metrics } from '../server/metrics.js';
import { createRouting } from '../server/wiring.js';
import { MAX_GOMOD_BYTES, MAX_INFO_BYTES, type ModuleRef } from '../sources/index.js';
import { checkInfo, checkMod } from '../server/check.js';

interface Found {
  mod: ModuleRef;
  version: string;
  escapedVersion: string;
  files: Set<'info' | 'mod' | 'zip'>;
}

export async function runImport(dir: string, opts: LoadOptions): Promise<number> {
  const config = loadConfig(opts);
  const store = new FsBlobStore(config.data);
  const coordination = new HostCoordination(config.data);
  const root = path.resolve(dir);
  const found = new Map<string, Found>();
  await walk(root, '', found);
  // Public modules are checked against the checksum database as an upstream's would be: a folder
  // on disk is no more trusted than a proxy.
  const routing = createRouting(config, { store, coordination, metrics: new Metrics(), log: pino({ level: 'silent' }), via: await instanceIdOf(store) });
  const verify = async (mod: ModuleRef, version: string, kind: 'mod' | 'zip', h1: string): Promise<void> => {
    if (routing.sumdb?.checks(mod.path)) await routing.sumdb.verify(mod, version, kind, h1, root);
  };
  let imported = 0;
  let skipped = 0;
  let failed = 0;
  const touched = new Map<string, ModuleRef>();
  for (const f of found.values()) {
    const label = `${f.mod.path}@${f.version}`;
    try {
      let wrote = false;
      for (const ext of ['zip', 'mod', 'info'] as const) {
        if (!f.files.has(ext)) continue;
        const key = artifactKey(f.mod.escaped, f.escapedVersion, ext);
        if (await store.head(key)) continue;
        const src = path.join(root, key);
        if (ext === 'zip') {
          // Copy to the staging name, check the copy (not the source, which could change meanwhile), then commit.
          const staged = store.stagingPath(key);
          await mkdir(path.dirname(staged), { recursive: true });
          await copyFile(src, staged);
          try {
            const { h1 } = await checkModuleZip(staged, f.mod.path, f.version);
            await verify(f.mod, f.version, 'zip', h1);
            await store.put(zipHashKey(f.mod.escaped, f.escapedVersion), Buffer.from(h1));
            await store.putFile(key, staged);
          } finally {
            await rm(staged, { force: true });
          }
        } else {
          const data = await readFile(src);
          if (data.length > (ext === 'mod' ? MAX_GOMOD_BYTES : MAX_INFO_BYTES)) throw new ProxyError('bad-request', `${ext} file is too large`);
          if (ext === 'mod') {
            checkMod(data, f.mod, f.version, root);
            await verify(f.mod, f.version, 'mod', hashGoMod(data));
            await store.put(key, data);
            touched.set(f.mod.escaped, f.mod);
          } else {
            await store.put(key, checkInfo(data, f.mod, root, f.version).bytes);
          }
        }
        wrote = true;
      }
      if (wrote) imported++;
      else skipped++;
    } catch (err) {
      failed++;
      process.stderr.write(`skip ${label}: ${(err as Error).message}\n`);
    }
  }
  await routing.close();
  for (const mod of touched.values()) await writeLocalList(store, coordination, mod);
  process.stdout.write(`imported ${imported} module versions into ${config.data} (${skipped} already present, ${failed} refused)\n`);
  return failed > 0 ? 1 : 0;
}

/** Finds <escaped module>/@v/<escaped version>.{info,mod,zip}, skipping the go command's sumdb and vcs caches. */
async function walk(root: string, rel: string, found: Map<string, Found>): Promise<void> {
  const dir = await opendir(path.join(root, rel)).catch(() => null);
  if (!dir) return;
  for await (const ent of dir) {
    const childRel = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (ent.isDirectory()) {
      if (rel === '' && (ent.name === 'sumdb' || ent.name === 'cache' || ent.name === 'mutable' || ent.name === 'state')) continue;
      await walk(root, childRel, found);
      continue;
    }
    const m = /^(.+)\/@v\/([^/]+)\.(info|mod|zip)$/.exec(childRel);
    if (!m || !ent.isFile()) continue;
    const [, escapedPath, escapedVersion, ext] = m as unknown as [string, string, string, 'info' | 'mod' | 'zip'];
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
      f = { mod, version, escapedVersion, files: new Set() };
      found.set(id, f);
    }
    f.files.add(ext);
  }
}
