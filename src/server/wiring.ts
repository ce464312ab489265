// Builds what decides where a module comes from: one direct (VCS) source shared by every
// chain, the upstream chains, the route table and the checksum database service. The server and
// the operator commands (verify, import) use this one wiring, so they reach the same upstreams
// and the same database, and skip the same private modules.
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import type { Coordination } from '../cluster/coordination.js';
import { ConfigError, type Config, type UpstreamSpec } from '../config/index.js';
import { RefusingSource, SourceChain, createDirectSource, makeSource, type ChainHooks, type ModuleSource } from '../sources/index.js';
import type { Metrics } from './metrics.js';
import { offlineMiss } from './offline.js';
import { notPublished } from './publish.js';
import { RouteTable } from './routes.js';
import { createSumdbService, type SumdbService } from './sumdb.js';

export interface Routing {
  routes: RouteTable;
  sumdb: SumdbService | null;
  close(): Promise<void>;
}

export interface RoutingOptions {
  store: BlobStore;
  coordination: Pick<Coordination, 'tryLock'>;
  metrics: Metrics;
  log: Logger;
  /** This instance's id, for the loop-detection header. */
  via: string;
  hooks?: ChainHooks;
  /** Checksum database: only what was verified and kept before (verify --offline, serve offline). */
  offline?: boolean;
  /** Every route's sources replaced by one that fetches nothing (serve offline). */
  sourcesOff?: boolean;
}

const OFF_SPEC: Omit<UpstreamSpec, 'timeouts'> = { kind: 'off', url: 'off', priority: 0, balance: 'failover', fallthrough: 'not-found' };

export function createRouting(config: Config, o: RoutingOptions): Routing {
  const policy = { failures: config.health.failures, cooldownMs: config.health.cooldown };
  // One direct source for every chain: it owns the shared repository cache and its locks.
  let direct: ModuleSource | undefined;
  const directOpts = config.git.enabled || config.gocmd.enabled ? { direct: () => (direct ??= createDirectSource(config, o.log) as ModuleSource) } : {};
  // Offline, nothing may leave the host whatever a route names: every chain is one refusing
  // source, so even a path that reached a chain would fetch nothing (the answers never get there).
  const offlineSource = new RefusingSource('offline', (what) => offlineMiss(what, what).message);
  const newChain = (specs: UpstreamSpec[]): SourceChain => {
    const chain = o.sourcesOff
      ? new SourceChain([{ ...OFF_SPEC, timeouts: config.timeouts }], () => offlineSource, policy, o.hooks)
      : new SourceChain(specs, (spec) => makeSource(spec, directOpts), policy, o.hooks);
    for (const m of chain.members) o.metrics.upstreamHealthy.labels(m.source.id).set(1);
    return chain;
  };
  const defaultChain = newChain(config.upstreams);
  let routes: RouteTable;
  try {
    // Published modules are fetched from nowhere: a chain that refuses, whatever reaches it.
    const published = new RefusingSource('published', (what) => notPublished(what).message);
    const publishedChain = new SourceChain([{ ...OFF_SPEC, timeouts: config.timeouts }], () => published, policy, o.hooks);
    routes = new RouteTable(
      config,
      (specs) => (specs ? newChain(specs) : defaultChain),
      () => publishedChain,
    );
  } catch (err) {
    throw new ConfigError(`invalid routes: ${(err as Error).message}`);
  }
  const sumdb = createSumdbService(config, {
    store: o.store,
    coordination: o.coordination,
    // The database is reached through public upstreams only, as the go command does.
    upstreams: defaultChain.members.map((member, i) => ({ member, fallthrough: config.upstreams[i]?.fallthrough ?? 'not-found' })),
    skip: (modulePath) => !routes.routeFor(modulePath).sumdb,
    metrics: o.metrics,
    log: o.log,
    via: o.via,
    offline: o.offline,
  });
  return {
    routes,
    sumdb,
    close: async () => {
      await Promise.all([sumdb?.close(), ...routes.chains().map((c) => c.close())]);
    },
  };
}
