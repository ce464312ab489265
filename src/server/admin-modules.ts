// The admin API's read side: what the proxy holds (from the module index, never a folder walk)
// and how it is doing. GET /-/api/stats, GET /-/api/modules?q=, GET /-/api/modules/<module>,
// GET /-/api/modules/<module>/@v/<version>.
import type { IndexedVersion, ModuleIndex } from '../catalog/index.js';
import type { AffectedIndex } from '../vulndb/index.js';
import { ProxyError } from '../errors.js';
import type { ModuleRef } from '../module/index.js';
import { intParam, moduleOf, sendJson, versionOf, type AdminEndpoint } from './admin.js';
import { sampleOf } from './history.js';
import type { RouteTable } from './routes.js';
import type { SumdbService } from './sumdb.js';

export interface ModulesApiDeps {
  index: ModuleIndex;
  routes: RouteTable;
  sumdb: SumdbService | null;
  instanceId: string;
  storeDescription: string;
  startedAt: Date;
  offline: boolean;
  /** The metrics text (in a cluster, every worker's, aggregated). */
  metricsText(): Promise<string>;
  /** Null while coordination works as designed. */
  degraded(): string | null;
  /** More parts of the stats (sync jobs, garbage collection), by name. */
  statusParts: ReadonlyMap<string, () => unknown>;
  /** The vulnerability database's current index; null when it is off (versions then show vulnerabilities: null). */
  vulns: (() => AffectedIndex) | null;
}

const PAGE_DEFAULT = 50;
const PAGE_MAX = 1000;

export function modulesEndpoints(d: ModulesApiDeps): AdminEndpoint[] {
  return [
    {
      method: 'GET',
      path: /^stats$/,
      usage: 'use GET /-/api/stats',
      run: async ({ ex }) => {
        await d.index.ready();
        const { hits, misses } = sampleOf(await d.metricsText(), 0);
        const parts: Record<string, unknown> = {};
        for (const [name, status] of d.statusParts) parts[name] = await status();
        sendJson(ex, 200, {
          instance: d.instanceId,
          startedAt: d.startedAt.toISOString(),
          offline: d.offline,
          store: { description: d.storeDescription, ...d.index.totals() },
          requests: { hits, misses, hitRatio: hits + misses > 0 ? hits / (hits + misses) : null },
          upstreams: upstreams(d.routes),
          sumdb: d.sumdb ? { name: d.sumdb.name } : null,
          coordination: { degraded: d.degraded() },
          ...parts,
        });
      },
    },
    {
      method: 'GET',
      path: /^modules\/?$/,
      usage: 'use GET /-/api/modules?q=<path prefix or substring>&offset=0&limit=50',
      run: async ({ ex, query }) => {
        await d.index.ready();
        const q = query.get('q') ?? '';
        const offset = intParam(query, 'offset', 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(query, 'limit', PAGE_DEFAULT, PAGE_MAX);
        const found = d.index.search(q, { offset, limit });
        sendJson(ex, 200, {
          q,
          offset,
          limit,
          total: found.total,
          modules: found.modules.map((m) => ({ ...m, storedMs: undefined, storedAt: iso(m.storedMs) })),
        });
      },
    },
    {
      method: 'GET',
      path: /^modules\/(.+)\/@v\/([^/]+)$/,
      usage: 'use GET /-/api/modules/<module>/@v/<version>',
      run: async ({ ex, params }) => {
        await d.index.ready();
        const mod = moduleOf(params[0] as string);
        const version = versionOf(params[1] as string);
        ex.module = mod.path;
        ex.version = version;
        const v = (await d.index.details(mod.path)).find((x) => x.version === version);
        if (!v) throw new ProxyError('not-found', `${mod.path}@${version} is not in the cache`);
        sendJson(ex, 200, { module: mod.path, ...describeVersion(d, mod, v) });
      },
    },
    {
      method: 'GET',
      path: /^modules\/(.+)$/,
      usage: 'use GET /-/api/modules/<module>',
      run: async ({ ex, params }) => {
        await d.index.ready();
        const mod = moduleOf((params[0] as string).replace(/\/+$/, ''));
        ex.module = mod.path;
        const summary = d.index.summary(mod.path);
        if (!summary) throw new ProxyError('not-found', `${mod.path} is not in the cache; search with GET /-/api/modules?q=`);
        const versions = await d.index.details(mod.path);
        const route = d.routes.routeFor(mod.path);
        sendJson(ex, 200, {
          module: mod.path,
          latest: summary.latest,
          bytes: summary.bytes,
          route: route.name,
          private: route.private,
          versions: versions.map((v) => describeVersion(d, mod, v)),
        });
      },
    },
  ];
}

function describeVersion(d: ModulesApiDeps, mod: ModuleRef, v: IndexedVersion): Record<string, unknown> {
  return {
    version: v.version,
    time: v.time ?? null,
    storedAt: iso(v.storedMs),
    size: { info: v.info ?? null, mod: v.mod ?? null, zip: v.zip ?? null },
    source: v.origin?.source ?? null,
    verification: verification(d, mod.path),
    // Known to the mirrored vulnerability database (empty: none known; null: no database here).
    vulnerabilities: d.vulns ? d.vulns().findings(mod.path, v.version) : null,
  };
}

/**
 * What was checked before the version was stored: nothing public is stored unchecked when a
 * checksum database is on, so the route's policy says it for every version of the module.
 */
function verification(d: ModulesApiDeps, path: string): string {
  const route = d.routes.routeFor(path);
  if (route.private) return 'private';
  if (route.sumdb && d.sumdb?.checks(path)) return `checksum-database:${d.sumdb.name}`;
  return 'unverified';
}

function iso(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}

export function upstreams(routes: RouteTable): { id: string; healthy: boolean; restingForMs: number; lastFailure: string | null }[] {
  const now = Date.now();
  const seen = new Set<string>();
  const out = [];
  for (const chain of routes.chains()) {
    for (const m of chain.members) {
      if (seen.has(m.source.id)) continue;
      seen.add(m.source.id);
      out.push({ id: m.source.id, healthy: m.health.healthy, restingForMs: m.health.restingFor(now), lastFailure: m.lastFailure ?? null });
    }
  }
  return out;
}
