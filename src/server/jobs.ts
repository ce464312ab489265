// Jobs the server runs in the background: a prefetch an administrator asked for (POST
// /-/api/prefetch), a sync run (scheduled, or POST /-/api/sync/<name>). A job's record lives in
// the store (state/jobs/<id>.json), written about once a second while it runs and at its end, so
// that any worker of any instance answers GET /-/api/jobs/<id> the same: the process that runs a
// job is only the one that was asked. Records are few (the last jobs.history) and small (at most
// MAX_FAILURES failures are listed).
//
// A job fetches through the engine of `gomodproxy prefetch`, driving this server's own app over a
// private socket opened for the first job and closed at shutdown, so each version takes every
// path a client's miss takes (verification, single flight, storage).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { STATE_PREFIX } from '../cache/keys.js';
import { ProxyError, errorMessage } from '../errors.js';
import { AppSocket } from './appsocket.js';
import type { Replacement, Wanted } from './prefetch-input.js';
import { Prefetcher, type PrefetchProgress, type VersionEvent } from './prefetcher.js';

export type JobKind = 'prefetch' | 'sync';
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

/** One thing a job could not do: a module version (or query) with the reason, or a step of its own. */
export interface JobFailure {
  module?: string;
  version?: string;
  query?: string;
  reason: string;
}

export type JobProgress = PrefetchProgress;

/** What a sync run did beyond fetching. */
export interface SyncRunFacts {
  /** The scheduled time it ran for; absent for a run asked for by hand. */
  tick?: string;
  /** Modules whose list and @latest it refreshed (the watched ones), and how many of those refreshes succeeded. */
  modules: number;
  refreshed: number;
  /** Versions it brought into the cache. */
  versionsAdded: number;
}

export interface JobRecord {
  id: string;
  kind: JobKind;
  /** A sync job's name. */
  name?: string;
  state: JobState;
  /** What it was asked to do, in a few words. */
  what: string;
  /** The administrator who asked for it, when one did. */
  by?: string;
  /** Who runs it: instance id, host and process. */
  runner: string;
  created: string;
  started?: string;
  finished?: string;
  /** When its runner last wrote it: a job still running that is not written for long was abandoned. */
  updated: string;
  progress: JobProgress;
  failures: JobFailure[];
  /** Failures beyond those listed. */
  failuresOmitted: number;
  /** Why the job as a whole failed or stopped short (a prefetch file that cannot be read, a shutdown). */
  error?: string;
  sync?: SyncRunFacts;
}

export const JOBS_PREFIX = `${STATE_PREFIX}jobs/`;
const MAX_FAILURES = 100;
const MAX_RECORD_BYTES = 1 << 20;
/** A record is written at most this often while its job runs... */
const WRITE_EVERY_MS = 1_000;
/** ...and at least this often, so that readers can tell a live job from an abandoned one. */
const HEARTBEAT_MS = 10_000;
const ABANDONED_AFTER_MS = 60_000;
/** Jobs one process runs at once; more wait their turn. */
const RUNNING_PER_PROCESS = 2;

const ID_PATTERN = /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$/;

/** Ids sort as their jobs were created (a compact ISO time first), and never collide across instances. */
export function newJobId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '')}-${randomBytes(4).toString('hex')}`;
}

export function isJobId(id: string): boolean {
  return ID_PATTERN.test(id);
}

function emptyProgress(): JobProgress {
  return { done: 0, total: 0, bytes: 0, fetched: 0, present: 0, failed: 0 };
}

/** Job records in the store, as every process of every instance reads them. */
export class JobStore {
  constructor(
    private readonly store: BlobStore,
    private readonly abandonedAfterMs = ABANDONED_AFTER_MS,
  ) {}

  private key(id: string): string {
    return `${JOBS_PREFIX}${id}.json`;
  }

  async put(r: JobRecord): Promise<void> {
    await this.store.put(this.key(r.id), Buffer.from(`${JSON.stringify(r)}\n`));
  }

  /** The record, or null for an id no job has (or had, within the history kept). */
  async get(id: string): Promise<JobRecord | null> {
    if (!isJobId(id)) return null;
    const got = await this.store.getBuffer(this.key(id), MAX_RECORD_BYTES);
    if (!got) return null;
    let r: JobRecord;
    try {
      r = JSON.parse(got.data.toString('utf8')) as JobRecord;
    } catch {
      // A put is atomic: only a record written by something else is unreadable.
      return null;
    }
    return this.judged(r);
  }

  /** A job whose runner stopped writing it (its process died) is reported as the failure it is. */
  private judged(r: JobRecord): JobRecord {
    if (r.state !== 'queued' && r.state !== 'running') return r;
    const silentMs = Date.now() - Date.parse(r.updated);
    if (!(silentMs > this.abandonedAfterMs)) return r;
    return {
      ...r,
      state: 'failed',
      error: `abandoned: ${r.runner} stopped updating it at ${r.updated} (the process ended or lost the store); ask for it again`,
    };
  }

  /** Ids of the records kept, newest first. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for await (const key of this.store.list(JOBS_PREFIX)) {
      const id = key.slice(JOBS_PREFIX.length).replace(/\.json$/, '');
      if (isJobId(id)) ids.push(id);
    }
    return ids.sort().reverse();
  }

  /** The newest records, of one kind (and name) when asked. */
  async list(limit: number, filter: { kind?: JobKind; name?: string } = {}): Promise<JobRecord[]> {
    const out: JobRecord[] = [];
    for (const id of await this.ids()) {
      if (out.length >= limit) break;
      const r = await this.get(id);
      if (!r || (filter.kind !== undefined && r.kind !== filter.kind) || (filter.name !== undefined && r.name !== filter.name)) continue;
      out.push(r);
    }
    return out;
  }

  /** Removes the records of all but the newest `keep` jobs, except those still running. Resolves with how many. */
  async prune(keep: number): Promise<number> {
    let removed = 0;
    for (const id of (await this.ids()).slice(keep)) {
      const r = await this.get(id);
      if (r && (r.state === 'queued' || r.state === 'running')) continue;
      if (await this.store.delete(this.key(id)).catch(() => false)) removed++;
    }
    return removed;
  }
}

/** What a job's work is handed: its record to tell progress through, and the engine. */
export interface RunningJob {
  readonly record: JobRecord;
  /** Aborted when the server shuts down. */
  readonly signal: AbortSignal;
  /** Records one failure (listed up to MAX_FAILURES) and logs it. */
  fail(f: JobFailure): void;
  /** The record changed: it is written within a second. */
  changed(): void;
  /** Fetches every version wanted, as `gomodproxy prefetch` does, into this job's progress; resolves with the counters. */
  prefetch(wanted: readonly Wanted[], opts: { deps: boolean; replace?: readonly Replacement[] }): Promise<JobProgress>;
}

export type JobWork = (job: RunningJob) => Promise<void>;

/** What the app offers jobs (ProxyApp has it). */
export interface JobsApp {
  readonly store: BlobStore;
  readonly handleForJobs: (req: IncomingMessage, res: ServerResponse) => void;
  /** Settles when what the app stores behind its answers is stored. */
  settle(): Promise<void>;
}

export interface JobsDeps {
  app: JobsApp;
  log: Logger;
  instanceId: string;
  /** Module versions one job fetches at once. */
  concurrency: number;
  /** Records kept. */
  history: number;
}

interface Live {
  record: JobRecord;
  work: JobWork;
  abort: AbortController;
  dirty: boolean;
  lastWrite: number;
  /** Writes of one record, one after the other. */
  writing: Promise<void>;
  done: Promise<JobRecord>;
  resolve: (r: JobRecord) => void;
}

export class Jobs {
  readonly records: JobStore;
  private readonly runner: string;
  private readonly live = new Map<string, Live>();
  private readonly waiting: Live[] = [];
  private running = 0;
  private socket: Promise<AppSocket> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closing = false;

  constructor(private readonly d: JobsDeps) {
    this.records = new JobStore(d.app.store);
    this.runner = `${d.instanceId} ${hostname()} pid ${process.pid}`;
  }

  /**
   * Creates a job and starts it (or queues it behind the jobs running here). Resolves once its
   * record is stored, so any process can read it at once; `done` settles with its final record.
   */
  async submit(
    kind: JobKind,
    what: string,
    work: JobWork,
    extra: { name?: string; by?: string; sync?: SyncRunFacts } = {},
  ): Promise<{ record: JobRecord; done: Promise<JobRecord> }> {
    if (this.closing)
      throw new ProxyError('unavailable', 'gomodproxy is shutting down and starts no more jobs; ask another instance, or again once it is back');
    const now = new Date();
    const record: JobRecord = {
      id: newJobId(now),
      kind,
      ...(extra.name !== undefined ? { name: extra.name } : {}),
      state: 'queued',
      what,
      ...(extra.by !== undefined ? { by: extra.by } : {}),
      runner: this.runner,
      created: now.toISOString(),
      updated: now.toISOString(),
      progress: emptyProgress(),
      failures: [],
      failuresOmitted: 0,
      ...(extra.sync !== undefined ? { sync: extra.sync } : {}),
    };
    let resolve!: (r: JobRecord) => void;
    const done = new Promise<JobRecord>((r) => (resolve = r));
    const live: Live = { record, work, abort: new AbortController(), dirty: false, lastWrite: 0, writing: Promise.resolve(), done, resolve };
    this.live.set(record.id, live);
    await this.write(live);
    this.waiting.push(live);
    this.startTimer();
    this.pump();
    return { record: structuredClone(record), done };
  }

  get(id: string): Promise<JobRecord | null> {
    return this.records.get(id);
  }

  list(limit: number, filter: { kind?: JobKind; name?: string } = {}): Promise<JobRecord[]> {
    return this.records.list(limit, filter);
  }

  private pump(): void {
    while (!this.closing && this.running < RUNNING_PER_PROCESS && this.waiting.length > 0) {
      const live = this.waiting.shift() as Live;
      this.running++;
      void this.run(live).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async run(live: Live): Promise<void> {
    const r = live.record;
    r.state = 'running';
    r.started = new Date().toISOString();
    await this.write(live);
    this.d.log.info({ job: r.id, kind: r.kind, name: r.name, what: r.what, by: r.by }, 'job started');
    try {
      await live.work(this.handle(live));
    } catch (err) {
      if (!live.abort.signal.aborted) {
        r.error = errorMessage(err);
        this.d.log.error({ job: r.id, err }, 'job failed');
      }
    }
    if (live.abort.signal.aborted) r.error ??= stopReason(live.abort.signal);
    r.state = r.error === undefined && r.progress.failed === 0 && r.failures.length === 0 ? 'succeeded' : 'failed';
    r.finished = new Date().toISOString();
    await this.write(live);
    this.live.delete(r.id);
    const p = r.progress;
    this.d.log[r.state === 'succeeded' ? 'info' : 'warn'](
      {
        job: r.id,
        kind: r.kind,
        name: r.name,
        state: r.state,
        fetched: p.fetched,
        present: p.present,
        failed: p.failed,
        bytes: p.bytes,
        ms: Date.parse(r.finished) - Date.parse(r.started ?? r.created),
        sync: r.sync,
        error: r.error,
      },
      'job finished',
    );
    live.resolve(structuredClone(r));
    await this.records.prune(this.d.history).catch((err: unknown) => this.d.log.warn({ err: errorMessage(err) }, 'removing old job records failed'));
  }

  private handle(live: Live): RunningJob {
    const r = live.record;
    let logged = 0;
    const fail = (f: JobFailure): void => {
      if (r.failures.length < MAX_FAILURES) r.failures.push(f);
      else r.failuresOmitted++;
      if (logged++ < MAX_FAILURES) this.d.log.warn({ job: r.id, kind: r.kind, name: r.name, ...f }, 'job: could not fetch');
      live.dirty = true;
    };
    return {
      record: r,
      signal: live.abort.signal,
      fail,
      changed: () => {
        live.dirty = true;
      },
      prefetch: async (wanted, opts) => {
        const engine = new Prefetcher({
          app: await this.appSocket(),
          store: this.d.app.store,
          deps: opts.deps,
          concurrency: this.d.concurrency,
          replace: opts.replace,
          signal: live.abort.signal,
          onEvent: (e: VersionEvent) => {
            if (e.error !== undefined) fail(failureOf(e));
          },
          onProgress: (p) => {
            r.progress = p;
            live.dirty = true;
          },
          onBug: (err) => {
            this.d.log.error({ job: r.id, err }, 'prefetch engine failed (a bug)');
            fail({ reason: `internal error: ${errorMessage(err)}` });
          },
        });
        await engine.fetchAll(wanted);
        // A version the app answered but could not keep counts as failed, once the writes behind its answers have settled.
        if (!live.abort.signal.aborted) {
          await Promise.race([this.d.app.settle(), new Promise((res) => setTimeout(res, 10_000).unref())]);
          await engine.recheck(this.d.app.store.description);
        }
        r.progress = engine.progress;
        live.dirty = true;
        return engine.progress;
      },
    };
  }

  private appSocket(): Promise<AppSocket> {
    this.socket ??= AppSocket.open(this.d.app.handleForJobs, this.d.concurrency * RUNNING_PER_PROCESS, 'gomodproxy-jobs-').catch((err: unknown) => {
      this.socket = null;
      throw err;
    });
    return this.socket;
  }

  /** Writes a record now (after any write of it in progress). */
  private write(live: Live): Promise<void> {
    live.dirty = false;
    live.lastWrite = Date.now();
    live.writing = live.writing.then(async () => {
      live.record.updated = new Date().toISOString();
      try {
        await this.records.put(live.record);
      } catch (err) {
        this.d.log.warn({ job: live.record.id, err: errorMessage(err) }, 'could not store the job record; readers see an older one');
      }
    });
    return live.writing;
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const live of this.live.values()) {
        if ((live.dirty && now - live.lastWrite >= WRITE_EVERY_MS) || now - live.lastWrite >= HEARTBEAT_MS) void this.write(live);
      }
      if (this.live.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    }, WRITE_EVERY_MS / 4);
    this.timer.unref();
  }

  /** Stops every job (their records say why), then closes the socket. */
  async close(): Promise<void> {
    this.closing = true;
    for (const live of this.waiting.splice(0)) {
      live.record.state = 'failed';
      live.record.error = 'the server shut down before it started; ask for it again';
      live.record.finished = new Date().toISOString();
      this.live.delete(live.record.id);
      await this.write(live);
      live.resolve(structuredClone(live.record));
    }
    const running = [...this.live.values()];
    for (const live of running) live.abort.abort('the server is shutting down');
    await Promise.race([Promise.allSettled(running.map((l) => l.done)), new Promise((res) => setTimeout(res, 10_000).unref())]);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const socket = await this.socket?.catch(() => null);
    this.socket = null;
    await socket?.close();
  }
}

function stopReason(signal: AbortSignal): string {
  return `stopped: ${typeof signal.reason === 'string' ? signal.reason : errorMessage(signal.reason)}`;
}

function failureOf(e: VersionEvent): JobFailure {
  const f: JobFailure = { module: e.module, reason: e.error ?? 'failed' };
  if (e.version !== undefined) f.version = e.version;
  if (e.query !== undefined) f.query = e.query;
  return f;
}
