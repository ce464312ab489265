// `gomodproxy serve`: one process, or a primary with N workers sharing the port (node:cluster)
// over one data folder. The primary only supervises: restarts crashed workers, forwards
// signals, and aggregates metrics for whichever worker answers /metrics.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { loadConfig, type LoadOptions } from '../config/index.js';
import { Metrics, createLoggers, startServer } from '../server/index.js';

const METRICS_REQ = 'gomodproxy:metrics';
const METRICS_RES = 'gomodproxy:metrics:res';

export async function runServe(opts: LoadOptions): Promise<void> {
  const config = loadConfig(opts);
  if (config.workers > 1 && cluster.isPrimary) {
    superviseWorkers(config.workers, config.shutdownTimeout, config.log.level);
    return;
  }
  const loggers = createLoggers(config.log.level, config.log.access);
  const metrics = new Metrics();
  let metricsText: (() => Promise<string>) | undefined;
  if (cluster.isWorker) {
    AggregatorRegistry.setRegistries([metrics.registry]);
    // prom-client answers the primary's metrics requests only once an AggregatorRegistry exists in the worker.
    new AggregatorRegistry();
    metricsText = askPrimaryForMetrics;
  }
  const running = await startServer(config, loggers, { metrics, metricsText });
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
    setTimeout(() => {
      loggers.flush();
      process.exit(1);
    }, Math.min(config.shutdownTimeout, 10_000) + 2_000).unref();
    stop('uncaught exception', 1, Math.min(config.shutdownTimeout, 10_000));
  });
}

function superviseWorkers(n: number, shutdownTimeoutMs: number, level: string): void {
  const { log, flush } = createLoggers(level, false);
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const crashes: number[] = [];
  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('message', (msg: { type?: string; id?: number }) => {
      if (msg?.type !== METRICS_REQ) return;
      aggregator
        .clusterMetrics()
        .then((text) => w.send({ type: METRICS_RES, id: msg.id, text }))
        .catch((err: unknown) => w.send({ type: METRICS_RES, id: msg.id, error: String(err) }));
    });
    return w;
  };
  for (let i = 0; i < n; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('all workers stopped');
        flush();
        process.exit(0);
      }
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
    }, shutdownTimeoutMs + 10_000).unref();
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
