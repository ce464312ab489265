// Builds the garbage collector the way `serve` and `gomodproxy gc` both use it, from the
// configuration: the limits, the pins, what can be fetched again (the routes, offline mode), the
// janitor for leftovers of interrupted writes, and the metrics.
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { GarbageCollector, PinStore, type GcDeps, type GcRemoved, type ServedRecorder } from '../catalog/index.js';
import { HostCoordination, type Coordination } from '../cluster/coordination.js';
import { sweepLeftovers } from '../cluster/janitor.js';
import type { Config } from '../config/index.js';
import { RefusingSource } from '../sources/index.js';
import type { Metrics } from './metrics.js';
import type { RouteTable } from './routes.js';

export interface GcWiring {
  store: BlobStore;
  coordination: Coordination;
  routes: RouteTable;
  log: Logger;
  /** This process's recorder (serve); absent for the gc command. */
  served?: ServedRecorder;
  metrics?: Metrics;
  onRemoved?: (entries: GcRemoved[]) => void | Promise<void>;
}

/** An upload nobody finished within a day was abandoned (a zip is at most 500 MiB, under upstream timeouts). */
const ABANDONED_AFTER_MS = 24 * 3600_000;

export function createGarbageCollector(config: Config, w: GcWiring): { gc: GarbageCollector; pins: PinStore } {
  const pins = new PinStore(w.store, w.coordination, config.gc.pin);
  const host = new HostCoordination(config.data);
  const deps: GcDeps = {
    store: w.store,
    coordination: w.coordination,
    pins,
    policy: { maxBytes: config.gc.maxBytes ?? null, maxAgeMs: config.gc.maxAge ?? null },
    offline: config.offline
      ? 'gomodproxy is offline (offline: true, or upstream: off): nothing it evicted could be fetched again, so nothing is evicted'
      : null,
    refetchable: (modulePath) => {
      const route = w.routes.routeFor(modulePath);
      // Only a source that can fetch makes an eviction undoable; off and an unconfigured direct cannot.
      if (route.chain.members.some((m) => !(m.source instanceof RefusingSource))) return null;
      return `its route ${route.name} has no source that can fetch it again (${route.chain.members.map((m) => m.source.id).join(', ')})`;
    },
    log: w.log,
    sweepLeftovers: async () => {
      const swept = await sweepLeftovers(config.data, host);
      let files = swept.removed.length;
      // Parts of uploads that writers killed mid-write left in an object store.
      const isLive = w.coordination.degraded() === null ? async (key: string) => (await w.coordination.holder(key)) !== null : undefined;
      files += (await w.store.removeAbandonedWrites?.(ABANDONED_AFTER_MS, isLive)) ?? 0;
      return { files, bytes: swept.bytes };
    },
  };
  if (w.served) deps.served = w.served;
  if (w.onRemoved) deps.onRemoved = w.onRemoved;
  const metrics = w.metrics;
  if (metrics) {
    deps.onReport = (r) => {
      metrics.gcFreedBytes.inc(r.freedBytes);
      for (const [kind, n] of Object.entries(r.evicted)) if (n > 0) metrics.gcEvicted.labels(kind).inc(n);
    };
  }
  const gc = new GarbageCollector(deps);
  if (metrics) {
    // A scrape asks twice (two gauges): one read of the report serves both.
    let cached: { at: number; value: Promise<{ finishedMs: number; bytes: number } | null> } | undefined;
    metrics.gcLastRun = () => {
      const now = Date.now();
      if (!cached || now - cached.at > 1000) {
        cached = {
          at: now,
          value: gc.status().then((s) => (s.lastRun ? { finishedMs: s.lastRun.finishedMs, bytes: s.lastRun.after.bytes } : null)),
        };
      }
      return cached.value;
    };
  }
  return { gc, pins };
}
