// Scheduled sync: the `sync` jobs of the configuration keep the cache a mirror of what it watches.
// A run refreshes the list and @latest of every watched module (the cached modules its patterns
// match, and every pattern that is a module path itself), fetches the versions its `versions`
// setting selects that the cache lacks, and runs its prefetch file again. Runs are jobs
// (jobs.ts): readable from any process while they run, and kept in the history.
//
// Every worker of every instance schedules every job; one runs each tick. A tick takes the job's
// coordination lock (state/jobs/sync-<name>: lock files on one host, Redis across hosts), then
// reads the tick last run from the store: another process that ran this tick already has written
// it there. So a job runs once per tick across a cluster, keeps running when the worker or
// instance that ran it last is gone, and never overlaps itself (the lock, and croner's protect
// within a process). Offline, nothing is scheduled: a run needs an upstream.
import { readFile } from 'node:fs/promises';
import { Cron } from 'croner';
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { STATE_PREFIX } from '../cache/keys.js';
import type { Coordination, FetchLock } from '../cluster/coordination.js';
import type { SyncJobConfig, SyncVersions } from '../config/schema.js';
import { ProxyError, errorMessage } from '../errors.js';
import { escapePath, isPseudoVersion, isValid, major, modulePathError, sort, type ModuleRef } from '../module/index.js';
import type { JobRecord, Jobs, RunningJob } from './jobs.js';
import type { Metrics } from './metrics.js';
import { InputError, parseInput, type Replacement, type Wanted } from './prefetch-input.js';

/** The modules the cache holds, by pattern. */
export interface CachedModules {
  /** Module paths with at least one cached version matching any of the GOPRIVATE-style patterns. */
  modulesMatching(patterns: readonly string[]): Promise<string[]> | string[];
}

/** A pattern that names one module (no glob): watched even before any version of it is cached. */
export function isModulePathPattern(pattern: string): boolean {
  return !/[*?[\\]/.test(pattern) && modulePathError(pattern) === undefined;
}

/**
 * The versions of a list a sync fetches: every listed one (all), or the newest N of each major
 * version (v0, v1, v2+incompatible, ... as Go's semver orders them, pre-releases included), the
 * newest first. Pseudo-versions are not a list's to give, and invalid lines are dropped; `latest`
 * selects nothing here (the go command's @latest rules choose it, through the app).
 */
export function selectVersions(list: readonly string[], versions: SyncVersions): string[] {
  if (versions === 'latest') return [];
  const valid = sort([...new Set(list.filter((v) => isValid(v) && !isPseudoVersion(v)))]).reverse();
  if (versions === 'all') return valid;
  const perMajor = new Map<string, number>();
  return valid.filter((v) => {
    const m = major(v);
    const n = perMajor.get(m) ?? 0;
    perMajor.set(m, n + 1);
    return n < versions.newest;
  });
}

/** The last run of a sync job, as kept in the store for every process. */
export interface SyncLastRun {
  job: string;
  tick?: string;
  started: string;
  finished?: string;
  /** abandoned: it never ended (its process died), as its lock is free again. */
  result: 'running' | 'succeeded' | 'failed' | 'abandoned';
  versionsAdded: number;
  failures: number;
  runner: string;
}

interface SyncState {
  /** The last scheduled time a run was started for. */
  lastTick?: string;
  lastRun?: SyncLastRun;
  lastSuccess?: string;
}

/** A sync job as GET /-/api/sync (and /-/api/stats) show it. */
export interface SyncJobStatus {
  name: string;
  schedule: string;
  timezone?: string;
  watch: string[];
  versions: SyncVersions;
  prefetch?: string;
  deps: boolean;
  /** The next scheduled run; null when it is not scheduled here. */
  nextRun: string | null;
  /** A run holds the job's lock now, in this process or another. */
  running: boolean;
  lastRun?: SyncLastRun;
  lastSuccess?: string;
  /** Why it is not scheduled (offline). */
  disabled?: string;
}

/** What sync asks of the app. */
export interface SyncApp {
  revalidate(mod: ModuleRef, kind: 'list' | 'latest'): Promise<Buffer>;
  /** Makes every process read the refreshed answers of modules matching the pattern. */
  dropFromMemories(pattern: string): Promise<void>;
}

export interface SyncDeps {
  jobs: Jobs;
  app: SyncApp;
  store: BlobStore;
  coordination: Coordination;
  modules: CachedModules;
  metrics: Metrics;
  log: Logger;
  config: readonly SyncJobConfig[];
  offline: boolean;
  /** Modules refreshed at once. */
  concurrency: number;
}

const STATE_KEY = (name: string): string => `${STATE_PREFIX}sync/${name}.json`;
const LOCK_KEY = (name: string): string => `${STATE_PREFIX}jobs/sync-${name}`;

export class SyncScheduler {
  private readonly crons = new Map<string, Cron>();
  private readonly byName: Map<string, SyncJobConfig>;
  private readonly runs = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly d: SyncDeps) {
    this.byName = new Map(d.config.map((j) => [j.name, j]));
  }

  /** Schedules every job (nothing offline: the configuration loader said so once). */
  start(): void {
    if (this.d.offline || this.stopped) return;
    for (const job of this.d.config) {
      const cron = new Cron(job.schedule, { timezone: job.timezone, mode: '5-or-6-parts', protect: true, unref: true }, (self) => this.tick(job, self));
      this.crons.set(job.name, cron);
    }
    if (this.d.config.length > 0)
      this.d.log.info(
        { jobs: this.d.config.map((j) => ({ name: j.name, schedule: j.schedule, next: this.crons.get(j.name)?.nextRun()?.toISOString() })) },
        'sync jobs scheduled',
      );
  }

  /** Stops scheduling; runs in progress go on until Jobs.close stops them. */
  stop(): void {
    this.stopped = true;
    for (const c of this.crons.values()) c.stop();
    this.crons.clear();
  }

  /** Settles when every run started here has been recorded and has let go of its lock. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.runs]);
  }

  async status(): Promise<SyncJobStatus[]> {
    return Promise.all(
      this.d.config.map(async (job) => {
        let state = await this.state(job.name);
        const running = (await this.d.coordination.holder(LOCK_KEY(job.name)).catch(() => null)) !== null;
        if (state.lastRun?.result === 'running' && !running) {
          // A run records its end before it lets go of the lock: still "running" once the lock is free, it died.
          const again = await this.state(job.name);
          if (again.lastRun?.result === 'running' && again.lastRun.job === state.lastRun.job) again.lastRun = { ...again.lastRun, result: 'abandoned' };
          state = again;
        }
        const s: SyncJobStatus = {
          name: job.name,
          schedule: job.schedule,
          ...(job.timezone !== undefined ? { timezone: job.timezone } : {}),
          watch: job.watch,
          versions: job.versions,
          ...(job.prefetch !== undefined ? { prefetch: job.prefetch } : {}),
          deps: job.deps,
          nextRun: this.crons.get(job.name)?.nextRun()?.toISOString() ?? null,
          running,
        };
        if (state.lastRun) s.lastRun = state.lastRun;
        if (state.lastSuccess) s.lastSuccess = state.lastSuccess;
        if (this.d.offline) s.disabled = 'gomodproxy is offline: sync jobs need an upstream';
        return s;
      }),
    );
  }

  /** Runs a job now (POST /-/api/sync/<name>); resolves with its record once it is stored. */
  async runNow(name: string, by?: string): Promise<JobRecord> {
    const job = this.byName.get(name);
    if (!job) {
      const known = [...this.byName.keys()];
      throw new ProxyError(
        'not-found',
        `no sync job ${JSON.stringify(name)}; ${known.length > 0 ? `configured: ${known.join(', ')}` : 'none is configured (sync)'}`,
      );
    }
    if (this.d.offline) throw new ProxyError('conflict', `sync job ${name} cannot run: gomodproxy is offline, and sync jobs need an upstream`);
    const lock = await this.d.coordination.tryLock(LOCK_KEY(name));
    if (!lock) throw new ProxyError('conflict', `sync job ${name} is running now (here or on another instance); see GET /-/api/sync`);
    try {
      return (await this.launch(job, lock, undefined, by)).record;
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  private tick(job: SyncJobConfig, cron: Cron): Promise<void> {
    // The scheduled time, the same in every process whatever its timer's lateness.
    const tick = cron.previousRuns(1, new Date(Date.now() + 1))[0]?.toISOString() ?? new Date().toISOString();
    const p = this.claim(job, tick).catch((err: unknown) => this.d.log.error({ sync: job.name, err }, 'sync tick failed'));
    this.runs.add(p);
    void p.finally(() => this.runs.delete(p));
    return p;
  }

  /** Takes the tick unless another process did: then runs the job to its end. */
  private async claim(job: SyncJobConfig, tick: string): Promise<void> {
    if (this.stopped) return;
    const lock = await this.d.coordination.tryLock(LOCK_KEY(job.name));
    if (!lock) {
      // Held for this very tick: another process runs it (and may not have said so yet). Held by
      // a run that started before: that run is still going.
      const last = (await this.state(job.name)).lastRun;
      if (last?.result === 'running' && last.tick !== tick) {
        this.d.metrics.syncRuns.labels(job.name, 'skipped').inc();
        this.d.log.warn(
          { sync: job.name, tick },
          'sync run skipped: the previous run is still going (here or on another instance); the schedule is too tight for it',
        );
      }
      return;
    }
    let launched = false;
    try {
      const state = await this.state(job.name);
      if (state.lastTick !== undefined && state.lastTick >= tick) return;
      await this.putState(job.name, { ...state, lastTick: tick });
      const { ended } = await this.launch(job, lock, tick);
      launched = true;
      // croner's protect holds this process's next tick until the run ends.
      await ended;
    } finally {
      if (!launched) await lock.release();
    }
  }

  /** Submits the run as a job; `ended` settles once it has ended, been recorded, and its lock released. */
  private async launch(job: SyncJobConfig, lock: FetchLock, tick: string | undefined, by?: string): Promise<{ record: JobRecord; ended: Promise<void> }> {
    const t0 = performance.now();
    const facts = { ...(tick !== undefined ? { tick } : {}), modules: 0, refreshed: 0, versionsAdded: 0 };
    const what = `sync ${job.name}${tick === undefined ? ' (run by hand)' : ''}`;
    const { record, done } = await this.d.jobs.submit('sync', what, (run) => this.work(job, run), { name: job.name, by, sync: facts });
    const lastRun: SyncLastRun = { job: record.id, started: record.created, result: 'running', versionsAdded: 0, failures: 0, runner: record.runner };
    if (tick !== undefined) lastRun.tick = tick;
    await this.putState(job.name, { ...(await this.state(job.name)), lastRun });
    const ended = done
      .then(async (r) => {
        const failures = r.failures.length + r.failuresOmitted + (r.error !== undefined ? 1 : 0);
        const added = r.sync?.versionsAdded ?? 0;
        const m = this.d.metrics;
        const now = Date.now() / 1000;
        m.syncLastRun.labels(job.name).set(now);
        m.syncDuration.labels(job.name).observe((performance.now() - t0) / 1000);
        m.syncVersionsAdded.labels(job.name).inc(added);
        m.syncFailures.labels(job.name).inc(failures);
        m.syncRuns.labels(job.name, r.state === 'succeeded' ? 'succeeded' : 'failed').inc();
        if (r.state === 'succeeded') m.syncLastSuccess.labels(job.name).set(now);
        const state = await this.state(job.name);
        await this.putState(job.name, {
          ...state,
          lastRun: {
            ...lastRun,
            finished: r.finished ?? new Date().toISOString(),
            result: r.state === 'succeeded' ? 'succeeded' : 'failed',
            versionsAdded: added,
            failures,
          },
          ...(r.state === 'succeeded' ? { lastSuccess: r.finished } : {}),
        });
      })
      .catch((err: unknown) => this.d.log.error({ sync: job.name, err }, 'recording the end of a sync run failed'))
      .finally(() => lock.release());
    this.runs.add(ended);
    void ended.finally(() => this.runs.delete(ended));
    return { record, ended };
  }

  /** One run: refresh what it watches, then fetch what the cache lacks. */
  private async work(job: SyncJobConfig, run: RunningJob): Promise<void> {
    const facts = run.record.sync as NonNullable<JobRecord['sync']>;
    const exact = job.watch.filter(isModulePathPattern);
    const modules = [...new Set([...(await this.d.modules.modulesMatching(job.watch)), ...exact])].sort();
    facts.modules = modules.length;
    run.changed();
    const wanted: Wanted[] = [];
    let next = 0;
    const refreshOne = async (path: string): Promise<void> => {
      const mod: ModuleRef = { path, escaped: escapePath(path) };
      let list: string[];
      try {
        list = (await this.d.app.revalidate(mod, 'list'))
          .toString('utf8')
          .split('\n')
          .map((l) => l.trim().split(/\s+/)[0] ?? '')
          .filter(Boolean);
      } catch (err) {
        run.fail({ module: path, reason: `refreshing its list: ${errorMessage(err)}` });
        return;
      }
      try {
        await this.d.app.revalidate(mod, 'latest');
      } catch (err) {
        // Many proxies have no @latest for a tagged module: the list decides, as for the go command.
        if (!(err instanceof ProxyError && err.isNotFound)) {
          run.fail({ module: path, reason: `refreshing its @latest: ${errorMessage(err)}` });
          return;
        }
      }
      facts.refreshed++;
      run.changed();
      const from = `sync ${job.name}`;
      if (job.versions === 'latest') wanted.push({ path, query: 'latest', zip: true, from });
      else for (const v of selectVersions(list, job.versions)) wanted.push({ path, query: v, zip: true, from });
    };
    const worker = async (): Promise<void> => {
      while (next < modules.length && !run.signal.aborted) await refreshOne(modules[next++] as string);
    };
    await Promise.all(Array.from({ length: Math.min(this.d.concurrency, modules.length) }, worker));
    // Every process reads the answers just refreshed, not the copies it remembers.
    for (const pattern of job.watch) await this.d.app.dropFromMemories(pattern);
    let replace: Replacement[] = [];
    if (job.prefetch !== undefined) {
      try {
        const input = parseInput(await readFile(job.prefetch, 'utf8'), job.prefetch);
        wanted.push(...input.wanted);
        replace = input.replace;
      } catch (err) {
        const why = err instanceof InputError ? err.message : `cannot read ${job.prefetch} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`;
        run.record.error = `the prefetch file was not run: ${why}; fix sync[].prefetch`;
        run.changed();
      }
    }
    const progress = await run.prefetch(wanted, { deps: job.deps, replace });
    facts.versionsAdded = progress.fetched;
    run.changed();
  }

  private async state(name: string): Promise<SyncState> {
    const got = await this.d.store.getBuffer(STATE_KEY(name), 1 << 16).catch(() => null);
    if (!got) return {};
    try {
      return JSON.parse(got.data.toString('utf8')) as SyncState;
    } catch {
      return {};
    }
  }

  private async putState(name: string, state: SyncState): Promise<void> {
    await this.d.store.put(STATE_KEY(name), Buffer.from(`${JSON.stringify(state)}\n`));
  }
}
