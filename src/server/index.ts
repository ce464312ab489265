// Wiring: configuration -> store, upstream chain, metrics -> the app, listening.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { BlobStore } from '../cache/blobstore.js';
import { createBlobStore } from '../cache/create.js';
import type { Coordination } from '../cluster/coordination.js';
import { createCoordination } from '../cluster/create.js';
import { STATE_PREFIX } from '../cache/keys.js';
import { ConfigError, describeOrigin, formatGoProxyList, parseListen, type Config } from '../config/index.js';
import type { ChainHooks } from '../sources/index.js';
import { AccessConfigError, createAccess, type Access } from '../access/index.js';
import { jobEndpoints } from './admin-jobs.js';
import { ProxyApp } from './app.js';
import { Jobs } from './jobs.js';
import type { GarbageCollector, GcStatus, PinStore } from '../catalog/index.js';
import { scheduleGc } from '../catalog/index.js';
import { pinEndpoints } from './admin-pins.js';
import { createGarbageCollector } from './gc-wiring.js';
import type { Loggers } from './logging.js';
import { Metrics } from './metrics.js';
import { SyncScheduler } from './sync.js';
import { createRouting } from './wiring.js';

export { ProxyApp } from './app.js';
export { Metrics } from './metrics.js';
export { createLoggers, type Loggers } from './logging.js';
export { createCoordination } from '../cluster/create.js';
export { createRouting, type Routing } from './wiring.js';
export type { Jobs, JobRecord } from './jobs.js';
export type { SyncScheduler, SyncJobStatus } from './sync.js';
export { createGarbageCollector } from './gc-wiring.js';

export interface RunningServer {
  app: ProxyApp;
  /** Garbage collection of this server's store (status() for the stats API). */
  gc: GarbageCollector;
  server: Server;
  url: string;
  metrics: Metrics;
  jobs: Jobs;
  /** The scheduled sync jobs: status() for /-/api/stats. */
  sync: SyncScheduler;
  /** Graceful stop: in-flight responses get up to timeoutMs (default shutdownTimeout). */
  stop(timeoutMs?: number): Promise<void>;
  reloadTls(): void;
}

export interface StartOptions {
  /** In a cluster: metrics aggregated over every worker. */
  metricsText?: () => Promise<string>;
  metrics?: Metrics;
  /** Shared with the other processes of this server (the workers relay remembered answers). */
  coordination?: Coordination;
  /**
   * No sign-in, limits or audit: the app answers only its own process (`gomodproxy prefetch`
   * drives it over a private socket), which is the operator already.
   */
  withoutAccess?: boolean;
}

/** Everything a server is made of, checked and ready to listen; close() undoes it (for the primary's check of the settings). */
export interface BuiltServer {
  app: ProxyApp;
  metrics: Metrics;
  instanceId: string;
  sumdbName: string;
  access: Access | null;
  /** Background jobs (POST /-/api/prefetch, sync runs): nothing runs until asked or scheduled. */
  jobs: Jobs;
  /** The scheduled sync jobs; start() schedules them (startServer does, once listening). */
  sync: SyncScheduler;
  /** Where bytes live and who coordinates, for the listening line. */
  storage: { store: string; coordination: string };
  /** Stops scheduling and every job (their records say so), and closes the jobs' socket. */
  stopJobs(): Promise<void>;
  gc: GarbageCollector;
  pins: PinStore;
  close(): Promise<void>;
}

/**
 * Builds the server from its settings without listening: every setting a worker would trip on
 * (files, routes, access, the data folder, the certificate) fails here, as a ConfigError.
 */
export async function buildServer(config: Config, loggers: Loggers, opts: StartOptions = {}): Promise<BuiltServer> {
  const { log, accessLog } = loggers;
  const store = await createBlobStore(config);
  await store.checkWritable();
  const instanceId = config.instanceId ?? (await instanceIdOf(store));
  const metrics = opts.metrics ?? new Metrics();
  store.onError = (op, reason) => metrics.storageErrors.labels(op, reason).inc();
  const coordination = opts.coordination ?? (await createCoordination(config, log));
  const hooks: ChainHooks = {
    onUpstream: (id, kind, outcome, ms, err) => metrics.upstream(id, kind, outcome, ms, err?.kind),
    onHealthChange: (id, healthy) => {
      metrics.upstreamHealthy.labels(id).set(healthy ? 1 : 0);
      log.warn({ upstream: id, healthy }, healthy ? 'upstream recovered' : 'upstream failing: skipped during its cool-down');
    },
  };
  const { routes, sumdb } = createRouting(config, {
    store,
    coordination,
    metrics,
    log,
    via: instanceId,
    hooks,
    offline: config.offline,
    sourcesOff: config.offline,
  });
  let access: Access | null = null;
  if (!opts.withoutAccess) {
    try {
      access = await createAccess(config.auth, {
        dataDir: config.data,
        onReloadError: (what, err) => log.error({ what, err: (err as Error).message }, 'reloading an access file failed; the previous contents stay in force'),
      });
    } catch (err) {
      if (err instanceof AccessConfigError) throw new ConfigError(err.message);
      throw err;
    }
    // With no sign-in method, limit, audit or restricted reader configured, the hot path skips access control entirely.
    const restricted = [...config.routes.map((r) => r.read ?? config.read), config.read, config.auth.metrics].some((rules) => !rules.includes('anonymous'));
    if (access.authenticator.methods.length === 0 && !access.rateLimiter.enabled && !access.fetchLimiter.enabled && !access.audit.enabled && !restricted) {
      await access.close();
      access = null;
    }
  }
  const app = new ProxyApp({ config, store, coordination, routes, metrics, log, accessLog, instanceId, metricsText: opts.metricsText, sumdb, access });
  const { gc, pins } = createGarbageCollector(config, {
    store,
    coordination,
    routes,
    log,
    served: app.served,
    metrics,
    // What this process holds in memory goes with the store's copy; the module indexes of every process hear of it.
    onRemoved: (entries) => {
      const changes = [];
      for (const e of entries) {
        if (e.kind !== 'info' && e.kind !== 'mod' && e.kind !== 'zip') continue;
        app.memory.delete(e.key);
        changes.push({ module: e.module, version: e.version, kind: e.kind, size: null, mtimeMs: Date.now() });
      }
      app.storeChanged(changes);
    },
  });
  app.admin.add(...pinEndpoints(pins));
  app.statusParts.set('gc', async () => gcSummary(await gc.status()));
  try {
    app.checkTls();
  } catch (err) {
    await access?.close();
    throw new ConfigError(`invalid setting tls: ${(err as Error).message}`);
  }
  const jobs = new Jobs({
    app: {
      store,
      handleForJobs: app.handleForJobs,
      settle: async () => {
        await Promise.allSettled([app.artifacts.drain(), app.mutable.drain()]);
      },
    },
    log,
    instanceId,
    concurrency: config.jobs.concurrency,
    history: config.jobs.history,
  });
  const sync = new SyncScheduler({
    jobs,
    app: { revalidate: (mod, kind) => app.revalidate(mod, kind), dropFromMemories: (pattern) => app.invalidations.dropFromMemories({ pattern }) },
    store,
    coordination,
    modules: {
      modulesMatching: async (patterns) => {
        await app.index.ready();
        return app.index.modulesMatching(patterns);
      },
    },
    metrics,
    log,
    config: config.sync,
    offline: config.offline,
    concurrency: config.jobs.concurrency,
  });
  app.admin.add(...jobEndpoints({ jobs, sync, offline: config.offline, pathPrefix: config.pathPrefix }));
  app.statusParts.set('sync', () => sync.status());
  const stopJobs = async (): Promise<void> => {
    sync.stop();
    await jobs.close();
    await sync.drain();
  };
  return {
    app,
    metrics,
    instanceId,
    sumdbName: sumdb?.name ?? 'off',
    access,
    jobs,
    sync,
    stopJobs,
    storage: { store: store.description, coordination: coordination.description },
    gc,
    pins,
    close: async () => {
      await stopJobs();
      await app.close();
    },
  };
}

export async function startServer(config: Config, loggers: Loggers, opts: StartOptions = {}): Promise<RunningServer> {
  const { log } = loggers;
  const { app, metrics, instanceId, sumdbName, access, storage, jobs, sync, stopJobs, gc } = await buildServer(config, loggers, opts);
  const { host, port } = parseListen(config.listen) as { host: string; port: number };
  const server = await app.listen(host, port);
  // Behind the listening, so start-up never waits for a walk of the store.
  app.startBackground();
  sync.start();
  app.served.start(config.gc.servedFlush);
  // Every process schedules it; the store's gc lock lets one of them collect per tick.
  const scheduled = config.gc.schedule
    ? scheduleGc(gc, config.gc.schedule, log, (r) =>
        log.info(
          {
            freedBytes: r.freedBytes,
            evicted: r.evicted,
            bytes: r.after.bytes,
            underLimit: r.after.underLimit,
            kept: keptCounts(r),
            startedMs: r.startedMs,
            finishedMs: r.finishedMs,
          },
          'garbage collection done',
        ),
      )
    : null;
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const url = `${config.tls ? 'https' : 'http'}://${shownHost}:${boundPort}${config.pathPrefix}`;
  for (const warning of config.warnings) log.warn(warning);
  // What is fetched from where and what is checked, and which setting said so: an operator whose
  // `go env -w GOPROXY=...` or GOPRIVATE was (or was not) taken sees it here.
  const o = config.origins;
  log.info(
    {
      url,
      data: config.data,
      store: storage.store,
      coordination: storage.coordination,
      upstream: formatGoProxyList(config.upstreams),
      offline: config.offline,
      sumdb: sumdbName,
      private: config.private,
      noSumdb: config.noSumdb,
      from: { upstream: describeOrigin(o.upstream), sumdb: describeOrigin(o.sumdb), private: describeOrigin(o.private), noSumdb: describeOrigin(o.noSumdb) },
      instanceId,
    },
    'listening',
  );
  // Whoever started us (a supervisor, a test) may be waiting for that line.
  loggers.flush();
  return {
    app,
    gc,
    server,
    url,
    metrics,
    jobs,
    sync,
    stop: async (timeoutMs = config.shutdownTimeout) => {
      scheduled?.stop();
      await stopJobs();
      await app.shutdown(server, timeoutMs);
    },
    reloadTls: () => {
      app.reloadTls();
      access?.audit.reopen();
    },
  };
}

/**
 * Lock files on this host, or Redis across hosts (with the lock files as its fallback while
 * Redis is lost: misses are then single-flight per host, hits unaffected).
 */
/** One id per data folder: every worker and instance sharing it recognises its own requests. */
export async function instanceIdOf(store: BlobStore): Promise<string> {
  const key = `${STATE_PREFIX}instance-id`;
  const got = await store.getBuffer(key, 256);
  const existing = got?.data.toString('utf8').trim();
  if (existing && /^[A-Za-z0-9._-]{1,64}$/.test(existing)) return existing;
  const id = `gmp-${randomBytes(6).toString('hex')}`;
  await store.put(key, Buffer.from(`${id}\n`));
  // Two processes starting together may both have written: settle on whatever is stored now.
  const now = await store.getBuffer(key, 256);
  return now?.data.toString('utf8').trim() || id;
}

function keptCounts(r: { kept: Record<string, { versions: number }> }): Record<string, number> {
  return Object.fromEntries(
    Object.entries(r.kept)
      .filter(([, g]) => g.versions > 0)
      .map(([k, g]) => [k, g.versions]),
  );
}

/** What GET /-/api/stats and the web UI show of garbage collection: the limits and the last run, without its list of files. */
function gcSummary(s: GcStatus): Record<string, unknown> {
  const r = s.lastRun;
  return {
    maxBytes: s.limits.maxBytes,
    maxAgeMs: s.limits.maxAgeMs,
    schedule: s.schedule,
    running: s.running,
    lastRun: r
      ? {
          trigger: r.trigger,
          finishedAt: new Date(r.finishedMs).toISOString(),
          freedBytes: r.freedBytes,
          evicted: r.evicted,
          bytesAfter: r.after.bytes,
          underLimit: r.after.underLimit,
          notes: r.notes,
        }
      : null,
  };
}
