// `gomodproxy serve`: one process, or a primary with N workers sharing the port (node:cluster)
// over one data folder. The primary starts one worker, which checks every setting as it builds
// its server; only once it listens are the others started (a bad setting is one message and exit
// 2, never workers crash-looping). From then on the primary only supervises: restarts crashed
// workers, forwards signals, relays what workers learn (remembered answers), aggregates metrics
// for whichever worker answers /metrics, and sweeps the leftovers of crashes from the data
// folder. It never loads the server itself (tens of MB it would hold for nothing).
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import type { Logger } from 'pino';
import { createBlobStore } from '../cache/create.js';
import { HostCoordination, type Coordination } from '../cluster/coordination.js';
import { sweepLeftovers } from '../cluster/janitor.js';
import { relayThroughPrimary, relayToWorkers } from '../cluster/relay.js';
import { createCoordination } from '../cluster/create.js';
import { ConfigError, loadConfig, parseListen, type Config, type LoadOptions } from '../config/index.js';
import { createLoggers } from '../server/logging.js';

const METRICS_REQ = 'gomodproxy:metrics';
const METRICS_RES = 'gomodproxy:metrics:res';
/** A worker that exits with this code found a bad setting: restarting it would only fail again. */
const CONFIG_ERROR_EXIT = 2;
const SWEEP_EVERY_MS = 3_600_000;

export async function runServe(opts: LoadOptions): Promise<void> {
  const config = loadConfig(opts);
  if (config.workers > 1 && cluster.isPrimary) {
    await checkListen(config);
    superviseWorkers(config);
    return;
  }
  const { Metrics, startServer } = await import('../server/index.js');
  const loggers = createLoggers(config.log.level, config.log.access);
  const metrics = new Metrics();
  let metricsText: (() => Promise<string>) | undefined;
  const host = new HostCoordination(config.data);
  const coordination = await createCoordination(config, loggers.log, host);
  if (cluster.isWorker) {
    const { AggregatorRegistry } = await import('prom-client');
    AggregatorRegistry.setRegistries([metrics.registry]);
    // prom-client answers the primary's metrics requests only once an AggregatorRegistry exists in the worker.
    new AggregatorRegistry();
    metricsText = askPrimaryForMetrics;
    // With Redis, every process hears the others through it; the primary relays only for the host.
    if (coordination === host) relayThroughPrimary(host);
  } else {
    sweepNowAndThen(config, host, loggers.log, coordination);
  }
  let running;
  try {
    running = await startServer(config, loggers, { metrics, metricsText, coordination });
  } catch (err) {
    loggers.flush();
    if (err instanceof ConfigError && cluster.isWorker) {
      process.stderr.write(`gomodproxy: configuration error:\n${err.message.replace(/^/gm, '  ')}\n`);
      process.exit(CONFIG_ERROR_EXIT);
    }
    throw err;
  }
  let stopping = false;
  const stop = (reason: string, code: number, timeoutMs = config.shutdownTimeout): void => {
    if (stopping) return;
    stopping = true;
    loggers.log.info({ reason }, 'shutting down: finishing in-flight responses');
    running
      .stop(timeoutMs)
      .then(() => {
        loggers.log.info('stopped');
        loggers.flush();
        process.exit(code);
      })
      .catch((err: unknown) => {
        loggers.log.error({ err }, 'shutdown failed');
        loggers.flush();
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('SIGHUP', () => {
    try {
      running.reloadTls();
    } catch (err) {
      loggers.log.error({ err }, 'TLS reload failed; still serving with the previous certificate');
    }
  });
  // A promise nobody awaited failed: a bug in one request's path, not a broken process.
  process.on('unhandledRejection', (err) => {
    metrics.bugs.labels('unhandled-rejection').inc();
    loggers.log.error({ err }, 'unhandled promise rejection (a bug); the request it belonged to may have failed; still serving');
  });
  // A throw from an event handler leaves this process in an unknown state: stop taking requests,
  // let the ones in flight finish (other clients' downloads are not cut), then exit so that the
  // supervisor starts a fresh worker.
  process.on('uncaughtException', (err) => {
    metrics.bugs.labels('uncaught-exception').inc();
    loggers.log.fatal({ err }, 'uncaught exception (a bug): finishing in-flight responses, then restarting this process');
    loggers.flush();
    if (stopping) return;
    setTimeout(
      () => {
        loggers.flush();
        process.exit(1);
      },
      Math.min(config.shutdownTimeout, 10_000) + 2_000,
    ).unref();
    stop('uncaught exception', 1, Math.min(config.shutdownTimeout, 10_000));
  });
}

/** The port is checked here, before any worker: a port another process holds is one clear line. */
async function checkListen(config: Config): Promise<void> {
  const { host, port } = parseListen(config.listen) as { host: string; port: number };
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new ConfigError(
          `invalid setting listen: cannot listen on ${config.listen} (${err.code ?? err.message})${err.code === 'EADDRINUSE' ? '; another process has that port: stop it or choose another with --listen' : ''}`,
        ),
      ),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

/**
 * V8 lets a process's young generation grow to 16 MiB per semi-space: on a server whose garbage is
 * short-lived request objects that is tens of MB per worker for no measurable CPU saved. 4 MiB
 * keeps each worker about 16 MB smaller at the same CPU per request (bench/README.md, memory).
 * A size the operator gave (in the node options) is kept.
 */
function workerExecArgv(): string[] {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('--max-semi-space-size'));
  return given ? process.execArgv : [...process.execArgv, '--max-semi-space-size=4'];
}

/** Sweeps crash leftovers at start and every hour, off every request's path. */
function sweepNowAndThen(config: Config, coordination: HostCoordination, log: Logger, keys: Coordination = coordination): void {
  const sweep = (): void => {
    sweepLeftovers(config.data, coordination)
      .then((r) => {
        if (r.removed.length > 0)
          log.info(
            { files: r.removed.length, bytes: r.bytes, examples: r.removed.slice(0, 5) },
            'removed leftovers of interrupted writes from the data folder',
          );
      })
      .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'sweeping the data folder for leftovers failed'));
  };
  // Uploads that an instance killed mid-write left in the object store: no object was made, but their parts cost storage.
  const opened = createBlobStore(config);
  const sweepStore = (): void => {
    // Only while the coordination sees every instance's locks: a degraded one sees this host's alone.
    const isLive = keys.degraded() === null ? async (key: string) => (await keys.holder(key)) !== null : undefined;
    opened
      .then(async (store) => ({ store, n: (await store.removeAbandonedWrites?.(ABANDONED_AFTER_MS, isLive)) ?? 0 }))
      .then(({ store, n }) => {
        if (n > 0) log.info({ uploads: n, store: store.description }, 'aborted uploads that interrupted writes left in the store');
      })
      .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'removing abandoned uploads from the store failed'));
  };
  setTimeout(() => {
    sweep();
    sweepStore();
  }, 1_000).unref();
  setInterval(sweep, SWEEP_EVERY_MS).unref();
  setInterval(sweepStore, STORE_SWEEP_EVERY_MS).unref();
}

/** Uploads orphaned by a crash cost storage until swept: more often than the data folder. */
const STORE_SWEEP_EVERY_MS = 5 * 60_000;

/** No write lasts a day (a zip is at most 500 MiB, under upstream timeouts): an upload older than that was abandoned. */
const ABANDONED_AFTER_MS = 24 * 3600_000;

function superviseWorkers(config: Config): void {
  const n = config.workers;
  const { log, flush } = createLoggers(config.log.level, false);
  // prom-client (with OpenTelemetry's API, which it loads) comes in at the first metrics request.
  let aggregator: Promise<{ clusterMetrics(): Promise<string> }> | undefined;
  const host = new HostCoordination(config.data);
  // The primary asks Redis (when configured) which keys are being written, for the store's sweep.
  createCoordination(config, log, host).then(
    (keys) => sweepNowAndThen(config, host, log, keys),
    (err: unknown) => {
      log.warn({ err: (err as Error).message }, 'cannot set up the coordination for the store sweep; sweeping with this host alone');
      sweepNowAndThen(config, host, log);
    },
  );
  let stopping = false;
  /** Set once a worker has listened: until then a worker that exits means the start itself fails. */
  let started = false;
  const crashes: number[] = [];
  cluster.setupPrimary({ execArgv: workerExecArgv() });
  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('message', (msg: { type?: string; id?: number }) => {
      if (relayToWorkers(msg, w, Object.values(cluster.workers ?? {}))) return;
      if (msg?.type !== METRICS_REQ) return;
      aggregator ??= import('prom-client').then((m) => new m.AggregatorRegistry());
      aggregator
        .then((a) => a.clusterMetrics())
        .then((text) => w.send({ type: METRICS_RES, id: msg.id, text }))
        .catch((err: unknown) => w.send({ type: METRICS_RES, id: msg.id, error: String(err) }));
    });
    return w;
  };
  // The first worker checks the settings by building its server; the others follow once it listens.
  fork().once('listening', () => {
    started = true;
    for (let i = 1; i < n; i++) fork();
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('all workers stopped');
        flush();
        process.exit(process.exitCode ?? 0);
      }
      return;
    }
    if (code === CONFIG_ERROR_EXIT || !started) {
      // The worker printed the setting that is wrong (or why it could not start); the others would only say the same.
      log.fatal(
        { worker: worker.process.pid, code, signal },
        code === CONFIG_ERROR_EXIT ? 'a worker refused the configuration; stopping' : 'the first worker could not start; stopping',
      );
      stopping = true;
      const others = Object.values(cluster.workers ?? {});
      for (const w of others) w?.process.kill('SIGTERM');
      flush();
      process.exitCode = code === CONFIG_ERROR_EXIT ? CONFIG_ERROR_EXIT : 1;
      if (others.length === 0) process.exit();
      return;
    }
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && (crashes[0] as number) < now - 60_000) crashes.shift();
    if (crashes.length > 5 * n) {
      log.fatal({ crashes: crashes.length }, 'workers keep crashing; giving up');
      flush();
      process.exit(1);
    }
    log.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting a new one');
    fork();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: n }, 'shutting down workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => {
      log.error('workers did not stop in time; killing them');
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      flush();
      process.exit(1);
    }, config.shutdownTimeout + 10_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Workers reload their certificates; the primary only passes the signal on.
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });
}

let nextId = 0;
const pending = new Map<number, { resolve: (t: string) => void; reject: (e: Error) => void }>();

function askPrimaryForMetrics(): Promise<string> {
  if (pending.size === 0) {
    process.on('message', onMetrics);
  }
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    process.send?.({ type: METRICS_REQ, id });
    setTimeout(() => {
      if (pending.delete(id)) reject(new Error('the primary process did not answer the metrics request'));
    }, 10_000).unref();
  });
}

function onMetrics(msg: { type?: string; id?: number; text?: string; error?: string }): void {
  if (msg?.type !== METRICS_RES || msg.id === undefined) return;
  const p = pending.get(msg.id);
  if (!p) return;
  pending.delete(msg.id);
  if (msg.error !== undefined) p.reject(new Error(msg.error));
  else p.resolve(msg.text ?? '');
  if (pending.size === 0) process.off('message', onMetrics);
}
