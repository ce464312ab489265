// Publishing: modules that exist in no repository the proxy can reach, uploaded to it
// (`gomodproxy publish`, or `PUT /-/api/publish/<module>/@v/<version>` from CI). Only modules
// under a route with publish: true, only by users who pass auth.publish. The upload is held to
// every rule a fetched zip is (checkModuleZip), its go.mod must name the module, and the version
// must be canonical and fit the path's major version. A version, once published, never changes:
// the same bytes again are a no-op, other bytes a 409 that names both hashes. Published versions
// are private (never named to an upstream or the checksum database) and are never evicted
// (their .origin says "publish"); they are served from the store alone (routes.ts, app.ts).
//
// Bodies: the zip alone (any Content-Type but multipart/form-data: `curl -T module.zip`), whose
// go.mod is then the version's .mod; or multipart/form-data with a `zip` part and a `mod` part,
// which must equal the zip's go.mod. The zip streams to a staging file of the store, so memory
// stays flat whatever its size; it is committed, then the .mod, and the .info last.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { BlobStore, BlobWrite } from '../cache/blobstore.js';
import { artifactKey, zipHashKey } from '../cache/keys.js';
import { originBytes, originKey, storeChange } from '../catalog/index.js';
import type { Coordination, StoreChange } from '../cluster/coordination.js';
import { ProxyError, errorMessage } from '../errors.js';
import { ModuleError, build, canonicalVersion, check, escapeVersion, major, parseGoMod, splitPathVersion, type ModuleRef } from '../module/index.js';
import { MAX_GO_MOD, MAX_ZIP_FILE, ZipError, checkModuleZip, hashGoMod, hashZipFile } from '../modzip/index.js';
import { moduleOf, sendJson, versionOf, type AdminEndpoint } from './admin.js';
import { multipartBoundary, readMultipart, type PartSink } from './multipart.js';
import type { Exchange } from './respond.js';
import type { RouteTable } from './routes.js';
import type { StorageSpace } from './space.js';

/** Room for multipart framing around a zip at the limit. */
const FRAMING_BYTES = 1 << 20;
const LOCK_WAIT_MS = 60_000;

export interface PublishDeps {
  store: BlobStore;
  coordination: Pick<Coordination, 'tryLock'>;
  routes: RouteTable;
  space: StorageSpace;
  log: Logger;
  /** The store gained these artifacts (the module index, the other processes). */
  stored(changes: StoreChange[]): void;
  /** Keeps <module>/@v/list of the data folder. */
  rewriteLocalList(mod: ModuleRef): void;
  /** Drops what any instance remembers of the module (a not-found from before it was published). */
  invalidate(mod: ModuleRef): Promise<void>;
}

/** The answer to a publish, as the API sends it (and `gomodproxy publish` prints it). */
export interface PublishResult {
  module: string;
  version: string;
  /** True when this exact content was already published (nothing was written). */
  unchanged: boolean;
  time: string;
  h1: string;
  goModH1: string;
  /** The two go.sum lines a client computes for this version. */
  goSum: string[];
  size: number;
}

/** The not-found line of a published module's missing version. */
export function notPublished(subject: string): ProxyError {
  return new ProxyError(
    'not-found',
    `not found: ${subject} has not been published to this gomodproxy; publish it with gomodproxy publish --version <version> (or PUT /-/api/publish/<module>/@v/<version>)`,
  );
}

export function publishEndpoints(d: PublishDeps): AdminEndpoint[] {
  return [
    {
      method: 'PUT',
      role: 'publish',
      path: /^publish\/(.+)\/@v\/([^/]+)$/,
      usage: 'use PUT /-/api/publish/<module>/@v/<version> with the module zip as the body (curl -T module.zip), or multipart/form-data with zip and mod parts',
      subject: (params) => ({ module: params[0], version: params[1] }),
      run: async ({ ex, params }) => {
        const mod = moduleOf(params[0] as string);
        ex.module = mod.path;
        const result = await publish(d, ex, mod, params[1] as string);
        sendJson(ex, result.unchanged ? 200 : 201, result);
      },
    },
  ];
}

async function publish(d: PublishDeps, ex: Exchange, mod: ModuleRef, rawVersion: string): Promise<PublishResult> {
  const route = d.routes.routeFor(mod.path);
  if (!route.publish) {
    throw new ProxyError(
      'forbidden',
      d.routes.publishes
        ? `${mod.path} is not under a route with publish: true on this proxy (it is under ${route.name}); publish it under one of those, or ask the operator for a route`
        : `this proxy takes no published modules: no route has publish: true; ask its operator to add one, e.g. routes: [{ match: "corp.example/*", publish: true }]`,
    );
  }
  // +incompatible is canonical for a module version, though not for semver.
  const version = canonicalVersion(rawVersion) === rawVersion ? rawVersion : versionOf(rawVersion);
  try {
    check(mod.path, version);
  } catch (err) {
    if (err instanceof ModuleError) throw new ProxyError('bad-request', `cannot publish ${err.message}`);
    throw err;
  }
  const length = declaredLength(ex);
  if (length !== undefined && length > MAX_ZIP_FILE + FRAMING_BYTES) {
    throw new ProxyError('too-large', `the upload is ${length} bytes; a module zip may have at most ${MAX_ZIP_FILE} (the go command's limit)`);
  }
  const ev = escapeVersion(version);
  const key = (ext: 'info' | 'mod' | 'zip'): string => artifactKey(mod.escaped, ev, ext);
  const what = `${mod.path}@${version}`;

  const claim = await d.space.claim(length ?? MAX_ZIP_FILE, `the published ${what}.zip`);
  let write: BlobWrite | undefined;
  try {
    write = await d.store.beginWrite(key('zip'));
    const staged = write;
    const given = await receive(ex, staged, what);
    let checked;
    try {
      checked = await checkModuleZip(staged.stagingFile, mod.path, version);
    } catch (err) {
      if (err instanceof ZipError) throw new ProxyError('bad-request', `cannot publish: ${err.message}`);
      throw err;
    }
    const goMod = checked.goMod ?? Buffer.from(`module ${mod.path}\n`);
    checkGoMod(mod, version, checked.goMod, given);
    const h1 = checked.h1;
    const goModH1 = hashGoMod(goMod);

    const lock = await lockFor(d, key('info'), what);
    try {
      const existing = await storedVersion(d, mod, ev);
      if (existing.info || existing.zipH1 !== undefined || existing.mod) {
        const same = (existing.zipH1 === undefined || existing.zipH1 === h1) && (!existing.mod || existing.mod.equals(goMod));
        if (!same) {
          const theirMod = existing.mod ? hashGoMod(existing.mod) : 'none';
          throw new ProxyError(
            'conflict',
            `${what} is already published with other content: the stored zip is ${existing.zipH1 ?? 'none'} (go.mod ${theirMod}), this upload is ${h1} (go.mod ${goModH1}); a published version never changes: publish a new version`,
          );
        }
        if (existing.info) {
          return result(mod.path, version, true, existing.time ?? '', h1, goModH1, checked.uncompressedSize);
        }
        // A publish that stopped part-way (same content): complete it.
      }
      const time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const info = Buffer.from(JSON.stringify({ Version: version, Time: time }));
      const changes: StoreChange[] = [];
      if (existing.zipH1 === undefined) {
        await d.store.put(zipHashKey(mod.escaped, ev), Buffer.from(h1));
        const st = await staged.commit();
        changes.push(storeChange(mod, version, 'zip', st.size, 'publish'));
      }
      if (!existing.mod) {
        await d.store.put(key('mod'), goMod);
        changes.push(storeChange(mod, version, 'mod', goMod.length, 'publish'));
      }
      // Published versions exist nowhere else: garbage collection must never evict them.
      await d.store.put(originKey(mod.escaped, ev), originBytes({ source: 'publish', at: new Date().toISOString() }));
      await d.store.put(key('info'), info);
      changes.push(storeChange(mod, version, 'info', info.length, 'publish'));
      d.stored(changes);
      d.rewriteLocalList(mod);
      d.log.info({ module: mod.path, version, h1, user: ex.user }, 'published a version');
      await d
        .invalidate(mod)
        .catch((err: unknown) => d.log.warn({ module: mod.path, err: errorMessage(err) }, 'could not drop what instances remember of a published module'));
      return result(mod.path, version, false, time, h1, goModH1, checked.uncompressedSize);
    } finally {
      await lock.release();
    }
  } finally {
    claim.release();
    await write?.abort();
  }
}

function result(module: string, version: string, unchanged: boolean, time: string, h1: string, goModH1: string, size: number): PublishResult {
  return { module, version, unchanged, time, h1, goModH1, goSum: [`${module} ${version} ${h1}`, `${module} ${version}/go.mod ${goModH1}`], size };
}

function declaredLength(ex: Exchange): number | undefined {
  const v = ex.req.headers['content-length'];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Streams the body into the staging write; resolves with the `mod` part of a multipart body, if any. */
async function receive(ex: Exchange, write: BlobWrite, what: string): Promise<Buffer | undefined> {
  const boundary = multipartBoundary(ex.req.headers['content-type']);
  let written = 0;
  const toZip: PartSink = {
    write: async (chunk) => {
      written += chunk.length;
      if (written > MAX_ZIP_FILE) throw new ProxyError('too-large', `the zip of ${what} is over ${MAX_ZIP_FILE} bytes, the go command's limit`);
      await write.append(chunk);
    },
    end: () => Promise.resolve(),
  };
  try {
    if (boundary === undefined) {
      if (/^application\/json/i.test(ex.req.headers['content-type'] ?? '')) {
        throw new ProxyError(
          'bad-request',
          'send the module zip itself as the body (curl -T module.zip), or multipart/form-data with zip and mod parts; JSON is not taken',
        );
      }
      for await (const c of ex.req) await toZip.write(c as Buffer);
      if (written === 0) throw new ProxyError('bad-request', `the body is empty; send the module zip of ${what} (curl -T module.zip)`);
      return undefined;
    }
    let mod: Buffer[] | undefined;
    let modBytes = 0;
    let sawZip = false;
    await readMultipart(ex.req, boundary, (h) => {
      if (h.name === 'zip') {
        if (sawZip) throw new ProxyError('bad-request', 'the multipart body has two zip parts');
        sawZip = true;
        return toZip;
      }
      if (h.name === 'mod') {
        if (mod) throw new ProxyError('bad-request', 'the multipart body has two mod parts');
        const parts: Buffer[] = [];
        mod = parts;
        return {
          write: (chunk) => {
            modBytes += chunk.length;
            if (modBytes > MAX_GO_MOD) return Promise.reject(new ProxyError('too-large', `the mod part is over ${MAX_GO_MOD} bytes`));
            parts.push(chunk);
            return Promise.resolve();
          },
          end: () => Promise.resolve(),
        };
      }
      throw new ProxyError('bad-request', `unknown multipart part ${JSON.stringify(h.name)}: send a zip part and, optionally, a mod part`);
    });
    if (!sawZip) throw new ProxyError('bad-request', `the multipart body has no zip part; send the module zip of ${what} as -F zip=@module.zip`);
    return mod ? Buffer.concat(mod) : undefined;
  } catch (err) {
    if (err instanceof ProxyError) throw err;
    // The client went away or the stream broke: nothing was stored.
    throw new ProxyError('bad-request', `the upload of ${what} broke off (${errorMessage(err)}); nothing was published`, { cause: err });
  }
}

/** The go.mod must name the module; a given .mod must be the zip's; +incompatible means no go.mod. */
function checkGoMod(mod: ModuleRef, version: string, zipGoMod: Buffer | undefined, given: Buffer | undefined): void {
  const what = `${mod.path}@${version}`;
  if (zipGoMod) {
    let declared: string | undefined;
    try {
      declared = parseGoMod(zipGoMod, `${what}/go.mod`).module?.path;
    } catch (err) {
      throw new ProxyError('bad-request', `cannot publish ${what}: its go.mod does not parse (${errorMessage(err)})`);
    }
    if (declared !== mod.path) {
      throw new ProxyError(
        'bad-request',
        `cannot publish ${what}: its go.mod declares ${declared === undefined ? 'no module path' : `module ${declared}`}; the go command would refuse it (publish it as ${declared ?? 'the module its go.mod names'}, or fix the module line)`,
      );
    }
    if (build(version) === '+incompatible') {
      throw new ProxyError(
        'bad-request',
        `cannot publish ${what}: +incompatible versions are for modules without a go.mod, and this zip has one; publish it under ${mod.path}/${major(version)}`,
      );
    }
  } else if (splitPathVersion(mod.path).pathMajor.startsWith('/')) {
    throw new ProxyError('bad-request', `cannot publish ${what}: a module path with a major version suffix needs a go.mod in its zip`);
  }
  if (given !== undefined) {
    const expected = zipGoMod ?? Buffer.from(`module ${mod.path}\n`);
    if (!given.equals(expected)) {
      throw new ProxyError(
        'bad-request',
        `cannot publish ${what}: the mod part (${hashGoMod(given)}) is not the zip's go.mod (${hashGoMod(expected)}); the .mod of a version is its zip's go.mod: leave the mod part out`,
      );
    }
  }
}

/** One publish of a version at a time, across the processes sharing the store. */
async function lockFor(d: PublishDeps, key: string, what: string): Promise<{ release(): Promise<void> }> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const lock = await d.coordination.tryLock(key);
    if (lock) return lock;
    if (Date.now() > deadline) throw new ProxyError('unavailable', `another upload of ${what} has held it for over a minute; retry later`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface StoredVersion {
  info: boolean;
  time: string | undefined;
  mod: Buffer | undefined;
  zipH1: string | undefined;
}

async function storedVersion(d: PublishDeps, mod: ModuleRef, ev: string): Promise<StoredVersion> {
  const info = await d.store.getBuffer(artifactKey(mod.escaped, ev, 'info'), 64 << 10);
  let time: string | undefined;
  if (info) {
    try {
      time = (JSON.parse(info.data.toString('utf8')) as { Time?: string }).Time;
    } catch {
      time = undefined;
    }
  }
  const modFile = await d.store.getBuffer(artifactKey(mod.escaped, ev, 'mod'), MAX_GO_MOD);
  let zipH1: string | undefined;
  const hash = await d.store.getBuffer(zipHashKey(mod.escaped, ev), 1024);
  if (hash) zipH1 = hash.data.toString('utf8').trim();
  else if (await d.store.head(artifactKey(mod.escaped, ev, 'zip'))) zipH1 = await hashStoredZip(d.store, artifactKey(mod.escaped, ev, 'zip'));
  return { info: info !== null, time, mod: modFile?.data, zipH1 };
}

/** A stored zip without its .ziphash (an older store): hashed from a temporary copy. */
async function hashStoredZip(store: BlobStore, key: string): Promise<string | undefined> {
  const blob = await store.get(key);
  if (!blob) return undefined;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gomodproxy-publish-'));
  try {
    const file = path.join(dir, 'stored.zip');
    await pipeline(blob.stream, createWriteStream(file));
    return await hashZipFile(file);
  } finally {
    await blob.close();
    await rm(dir, { recursive: true, force: true });
  }
}
