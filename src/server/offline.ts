// Offline mode: the answers a proxy with upstreams would give, computed from the cache alone.
// Immutable artifacts are served from the store as always (artifacts.ts refuses their misses);
// this file answers what would otherwise ask an upstream: @v/list from the versions held, @latest
// as the go command would choose among them, and a query only when it names a version held.
// Every miss is a 404, so the go command's fallback to its next GOPROXY entry still works, with
// one line that says how to get the version onto this host.
import type { BlobStore } from '../cache/blobstore.js';
import { artifactKey } from '../cache/keys.js';
import { localVersions } from '../cache/locallist.js';
import { ProxyError } from '../errors.js';
import { canonicalVersion, check, escapeVersion, isPseudoVersion, prerelease } from '../module/index.js';
import { MAX_INFO_BYTES, type ModuleRef } from '../sources/index.js';
import type { MutableRequest } from './mutable.js';
import { TEXT, sendBody, type Exchange } from './respond.js';
import type { RouteTable } from './routes.js';

/**
 * The not-found line of an offline proxy: `subject` is what is missing (`m@v1.2.3`, `any version
 * of m`), `spec` what to prefetch (`m@v1.2.3`, `m@latest`).
 */
export function offlineMiss(subject: string, spec: string): ProxyError {
  return new ProxyError(
    'not-found',
    `not found: gomodproxy is offline and ${subject} is not in its cache; add it on a connected machine with gomodproxy prefetch ${spec} (then bring the data folder here), or with gomodproxy import <folder>`,
  );
}

export interface OfflineDeps {
  store: BlobStore;
  /** Operator policy: denied versions are neither listed nor chosen. */
  policy: RouteTable;
  /** The not-found answer (default offlineMiss): published modules, too, have only what the store holds. */
  miss?: (subject: string, spec: string) => ProxyError;
  /** Why a branch, tag or commit cannot be resolved, in the not-found line. */
  queryNote?: string;
}

export class OfflineAnswers {
  private readonly miss: (subject: string, spec: string) => ProxyError;

  constructor(private readonly d: OfflineDeps) {
    this.miss = d.miss ?? offlineMiss;
  }

  async serve(ex: Exchange, r: MutableRequest): Promise<void> {
    switch (r.kind) {
      case 'list': {
        const held = await this.held(r.mod);
        if (held.length === 0) throw this.miss(`any version of ${r.mod.path}`, `${r.mod.path}@latest`);
        // As a proxy lists: releases and pre-releases; pseudo-versions only through @latest.
        const listed = held.filter((v) => !isPseudoVersion(v));
        ex.cache = 'hit';
        this.send(ex, TEXT, Buffer.from(listed.map((v) => `${v}\n`).join('')));
        return;
      }
      case 'latest': {
        for (const v of latestOrder(await this.held(r.mod))) {
          const info = await this.info(r.mod, v);
          if (!info) continue;
          ex.cache = 'hit';
          this.send(ex, 'application/json', info);
          return;
        }
        throw this.miss(`any version of ${r.mod.path}`, `${r.mod.path}@latest`);
      }
      case 'query': {
        const q = r.version.version;
        const v = heldCandidate(r.mod.path, q);
        if (v === undefined)
          throw this.miss(`${r.mod.path}@${q} (${this.d.queryNote ?? 'resolving a branch, tag or commit needs an upstream'})`, `${r.mod.path}@${q}`);
        if (this.d.policy.hasPolicy) this.d.policy.checkPolicy(r.mod.path, v);
        const info = await this.info(r.mod, v);
        if (!info) throw this.miss(`${r.mod.path}@${v}`, `${r.mod.path}@${v}`);
        ex.cache = 'hit';
        this.send(ex, 'application/json', info);
        return;
      }
    }
  }

  /** The versions held (those with a .mod, as the go command's cache lists them), minus denied ones. */
  private async held(mod: ModuleRef): Promise<string[]> {
    const all = await localVersions(this.d.store, mod);
    return this.d.policy.hasVersionRules(mod.path) ? all.filter((v) => !this.d.policy.isDeniedVersion(mod.path, v)) : all;
  }

  private async info(mod: ModuleRef, version: string): Promise<Buffer | null> {
    const got = await this.d.store.getBuffer(artifactKey(mod.escaped, escapeVersion(version), 'info'), MAX_INFO_BYTES);
    return got?.data ?? null;
  }

  private send(ex: Exchange, type: string, body: Buffer): void {
    // What the cache holds grows (prefetch, import): never let a client keep an answer long.
    sendBody(ex, 200, ['Content-Type', type, 'Content-Length', String(body.length), 'Cache-Control', 'no-cache'], body);
  }
}

/**
 * The order in which the go command would take a version as @latest (GO-MODULES.md §4): the
 * highest release, else the highest pre-release, else (what a proxy's @latest offers when the
 * list has nothing) the highest pseudo-version. `sorted` is in Go's semver order, lowest first.
 */
export function latestOrder(sorted: readonly string[]): string[] {
  const releases: string[] = [];
  const prereleases: string[] = [];
  const pseudo: string[] = [];
  for (const v of sorted) {
    if (isPseudoVersion(v)) pseudo.push(v);
    else if (prerelease(v) !== '') prereleases.push(v);
    else releases.push(v);
  }
  return [...releases.reverse(), ...prereleases.reverse(), ...pseudo.reverse()];
}

/**
 * The canonical version a query names, if it names one at all: `v1.2.3+meta` is v1.2.3 (what the
 * go command asks before the canonical form), `v2.0.0` on a path without /v2 is v2.0.0+incompatible.
 * A shorthand (`v1.2`), a branch, a tag or a commit names none: resolving those needs an upstream.
 */
export function heldCandidate(modulePath: string, query: string): string | undefined {
  const c = canonicalVersion(query);
  if (c === '' || query.split('+')[0] !== c.split('+')[0]) return undefined;
  for (const v of c.endsWith('+incompatible') ? [c] : [c, `${c}+incompatible`]) {
    try {
      check(modulePath, v);
      return v;
    } catch {
      // Not this form.
    }
  }
  return undefined;
}
