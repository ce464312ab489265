// Prometheus metrics (gomodproxy_*). The per-request ones (hotmetrics.ts) are bound once per label
// set and reused, so counting a cached hit costs a Map lookup and a few additions, not a label hash.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotHistogram } from './hotmetrics.js';
import type { UpstreamOutcome } from '../sources/index.js';
import type { RequestKind } from '../sources/index.js';

/** Request kinds as they appear in metrics and logs. */
export type ServedKind = RequestKind | 'sumdb' | 'ops' | 'admin' | 'publish' | 'vuln' | 'ui' | 'other';
/** negative: a remembered not-found answer; refused: a remembered refusal of an upstream answer. */
export type CacheResult = 'hit' | 'miss' | 'stale' | 'revalidating' | 'negative' | 'refused' | 'none';

/** What an answered request is counted into (a client's, or a job's of this server). */
export interface RequestCounter {
  request(kind: ServedKind, status: number, cache: CacheResult, seconds: number, bytes: number): void;
}

/** Why a scheduled sync run ended as it did. */
export type SyncRunResult = 'succeeded' | 'failed' | 'skipped';

export class Metrics implements RequestCounter {
  readonly registry = new Registry();
  private readonly requests: HotCounter<'kind' | 'status'>;
  private readonly duration: HotHistogram<'kind' | 'cache'>;
  private readonly cache: HotCounter<'kind' | 'result'>;
  private readonly bytes: HotCounter<'kind'>;
  /** Hits answered off the socket, before node:http (fasthits.ts); they are in requests_total too. */
  readonly socketHits: { value: number };
  private readonly upstreamRequests: Counter<'upstream' | 'kind' | 'outcome'>;
  private readonly upstreamDuration: Histogram<'upstream' | 'kind'>;
  private readonly upstreamErrors: Counter<'upstream' | 'reason'>;
  readonly upstreamHealthy: Gauge<'upstream'>;
  readonly invalidArtifacts: Counter<'kind' | 'reason'>;
  readonly inflightFetches: Gauge;
  readonly checksumMismatches: Counter<'kind'>;
  readonly sumdbForks: Counter;
  readonly bugs: Counter<'kind'>;
  readonly storageErrors: Counter<'op' | 'reason'>;
  /** Reads how many answers this process remembers (set by whoever owns them). */
  rememberedAnswers: () => number = () => 0;
  readonly storageFree: Gauge;
  /**
   * Requests the server's own jobs (prefetch, sync) make of its app: kept apart from the
   * clients' requests, so hit ratios and request rates describe clients alone.
   */
  readonly jobRequests: RequestCounter;
  private readonly jobRequestsTotal: Counter<'kind' | 'status' | 'cache'>;
  readonly syncLastRun: Gauge<'job'>;
  readonly syncLastSuccess: Gauge<'job'>;
  readonly syncDuration: Histogram<'job'>;
  readonly syncVersionsAdded: Counter<'job'>;
  readonly syncFailures: Counter<'job'>;
  readonly syncRuns: Counter<'job' | 'result'>;
  readonly gcFreedBytes: Counter;
  readonly gcEvicted: Counter<'kind'>;
  /** Reads the last garbage collection's finish time (ms) and module bytes after it, as kept in the store (set by whoever owns the collector). */
  gcLastRun: () => Promise<{ finishedMs: number; bytes: number } | null> = () => Promise.resolve(null);
  private readonly bound = new Map<string, (seconds: number, bytes: number) => void>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gomodproxy_process_' });
    this.requests = new HotCounter('gomodproxy_requests_total', 'Requests answered, by kind and HTTP status.', this.registry);
    this.duration = new HotHistogram(
      'gomodproxy_request_duration_seconds',
      'Time from request to the end of the response, by kind and cache result.',
      this.registry,
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    );
    this.cache = new HotCounter('gomodproxy_cache_results_total', 'Cache lookups by kind and result (hit, miss, stale, revalidating).', this.registry);
    this.bytes = new HotCounter('gomodproxy_bytes_served_total', 'Response body bytes sent, by kind.', this.registry);
    this.socketHits = new HotCounter<never>(
      'gomodproxy_socket_hits_total',
      'Cached hits answered straight off the socket, before node:http parsed them (counted in gomodproxy_requests_total too).',
      this.registry,
    ).bind({});
    this.upstreamRequests = new Counter({
      name: 'gomodproxy_upstream_requests_total',
      help: 'Requests to upstreams, by upstream, kind and outcome.',
      labelNames: ['upstream', 'kind', 'outcome'],
      registers,
    });
    this.upstreamDuration = new Histogram({
      name: 'gomodproxy_upstream_duration_seconds',
      help: 'Time an upstream took to answer (until headers for zips).',
      labelNames: ['upstream', 'kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'gomodproxy_upstream_errors_total',
      help: 'Upstream failures by upstream and reason.',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.upstreamHealthy = new Gauge({
      name: 'gomodproxy_upstream_healthy',
      help: '1 while an upstream takes requests, 0 during its cool-down.',
      labelNames: ['upstream'],
      registers,
    });
    this.invalidArtifacts = new Counter({
      name: 'gomodproxy_invalid_artifacts_total',
      help: 'Upstream answers refused by the checks (never stored), by kind and reason.',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.checksumMismatches = new Counter({
      name: 'gomodproxy_checksum_mismatches_total',
      help: 'Upstream artifacts refused because their h1 hash disagrees with the checksum database.',
      labelNames: ['kind'],
      registers,
    });
    this.sumdbForks = new Counter({
      name: 'gomodproxy_sumdb_forks_total',
      help: 'Times the checksum database presented a tree inconsistent with one verified before.',
      registers,
    });
    this.bugs = new Counter({
      name: 'gomodproxy_bugs_total',
      help: 'Errors no code path handled (unhandled rejections, uncaught exceptions), by kind: each is a bug to report.',
      labelNames: ['kind'],
      registers,
    });
    this.storageErrors = new Counter({
      name: 'gomodproxy_storage_errors_total',
      help: 'Reads and writes of the store that failed (or were refused for lack of space), by operation and reason: no-space, permission, io.',
      labelNames: ['op', 'reason'],
      registers,
    });
    this.storageFree = new Gauge({ name: 'gomodproxy_storage_free_bytes', help: 'Free bytes of the store at its last check (disk store only).', registers });
    const remembered: Gauge = new Gauge({
      name: 'gomodproxy_remembered_answers',
      help: 'Not-found and refused upstream answers this process remembers (summed over workers: each keeps its own copy).',
      registers,
      collect: () => remembered.set(this.rememberedAnswers()),
    });
    this.gcFreedBytes = new Counter({
      name: 'gomodproxy_gc_freed_bytes_total',
      help: 'Bytes garbage collection removed from the store (counted by the process that ran it).',
      registers,
    });
    this.gcEvicted = new Counter({
      name: 'gomodproxy_gc_evicted_total',
      help: 'Files garbage collection removed from the store, by kind: zip, ziphash, mod, info, origin.',
      labelNames: ['kind'],
      registers,
    });
    // Every worker reads the same report from the store: across workers the max is that value, not a sum.
    const lastRun: Gauge = new Gauge({
      name: 'gomodproxy_gc_last_run_timestamp_seconds',
      help: 'When the last garbage collection of the store finished (any process or instance, or the gc command); 0 before the first.',
      registers,
      aggregator: 'max',
      collect: async () => lastRun.set(Math.floor(((await this.gcLastRun().catch(() => null))?.finishedMs ?? 0) / 1000)),
    });
    const storeBytes: Gauge = new Gauge({
      name: 'gomodproxy_gc_store_bytes',
      help: 'Module data in the store (zips, hashes, .mod, .info, lists) as the last garbage collection left it.',
      registers,
      aggregator: 'max',
      collect: async () => storeBytes.set((await this.gcLastRun().catch(() => null))?.bytes ?? 0),
    });
    this.inflightFetches = new Gauge({ name: 'gomodproxy_inflight_fetches', help: 'Artifact fetches in progress in this process.', registers });
    this.jobRequestsTotal = new Counter({
      name: 'gomodproxy_job_requests_total',
      help: "Requests the server's own jobs (prefetch, sync) made of it, by kind, status and cache result; not counted in gomodproxy_requests_total.",
      labelNames: ['kind', 'status', 'cache'],
      registers,
    });
    this.jobRequests = { request: (kind, status, cache) => this.jobRequestsTotal.labels(kind, String(status), cache).inc() };
    // Timestamps are the newest over the workers (the one that ran it), not their sum.
    this.syncLastRun = new Gauge({
      name: 'gomodproxy_sync_last_run_timestamp_seconds',
      help: 'When the last run of a sync job ended (Unix time), whatever its result.',
      labelNames: ['job'],
      aggregator: 'max',
      registers,
    });
    this.syncLastSuccess = new Gauge({
      name: 'gomodproxy_sync_last_success_timestamp_seconds',
      help: 'When the last run of a sync job without a failure ended (Unix time).',
      labelNames: ['job'],
      aggregator: 'max',
      registers,
    });
    this.syncDuration = new Histogram({
      name: 'gomodproxy_sync_duration_seconds',
      help: 'How long runs of a sync job took.',
      labelNames: ['job'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600],
      registers,
    });
    this.syncVersionsAdded = new Counter({
      name: 'gomodproxy_sync_versions_added_total',
      help: 'Module versions a sync job brought into the cache.',
      labelNames: ['job'],
      registers,
    });
    this.syncFailures = new Counter({
      name: 'gomodproxy_sync_failures_total',
      help: 'Module versions (or list and @latest refreshes) a sync job could not fetch.',
      labelNames: ['job'],
      registers,
    });
    this.syncRuns = new Counter({
      name: 'gomodproxy_sync_runs_total',
      help: 'Runs of a sync job, by result: succeeded, failed, or skipped (a tick that found the previous run still going, here or on another instance).',
      labelNames: ['job', 'result'],
      registers,
    });
  }

  /** Counts one answered request. */
  request(kind: ServedKind, status: number, cache: CacheResult, seconds: number, bytes: number): void {
    const id = `${kind}\u0000${status}\u0000${cache}`;
    let inc = this.bound.get(id);
    if (!inc) {
      const r = this.requests.bind({ kind, status: String(status) });
      const d = this.duration.bind({ kind, cache });
      const c = cache === 'none' ? null : this.cache.bind({ kind, result: cache });
      const b = this.bytes.bind({ kind });
      inc = (s: number, n: number) => {
        r.value++;
        d.observe(s);
        if (c) c.value++;
        b.value += n;
      };
      this.bound.set(id, inc);
    }
    inc(seconds, bytes);
  }

  upstream(id: string, kind: RequestKind, outcome: UpstreamOutcome, ms: number, reason?: string): void {
    this.upstreamRequests.labels(id, kind, outcome).inc();
    if (outcome !== 'skipped') this.upstreamDuration.labels(id, kind).observe(ms / 1000);
    if (outcome === 'error') this.upstreamErrors.labels(id, reason ?? 'error').inc();
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
