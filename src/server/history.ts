// The last hour and the last day of the proxy's own figures, for the web UI's charts: sampled
// from the (cluster-wide) metrics every 10 seconds, kept in memory (a restart starts them
// afresh), never touched by a request but the UI's. Requests per second, the hit ratio, each
// upstream's mean latency and health, and the bytes the store holds.

export interface MetricsSample {
  t: number;
  requests: number;
  hits: number;
  misses: number;
  /** Per upstream: answers counted and their summed duration (s). */
  upstreams: Map<string, { count: number; sum: number; healthy: boolean }>;
  storeBytes: number;
}

export interface HistoryPoint {
  t: number;
  rps: number | null;
  hitRatio: number | null;
  storeBytes: number;
  /** Per upstream: mean latency over the interval (ms; null when it answered nothing), health at its end. */
  upstreams: Record<string, { ms: number | null; healthy: boolean }>;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

class Ring<T> {
  private readonly items: T[] = [];
  constructor(private readonly max: number) {}
  push(x: T): void {
    this.items.push(x);
    if (this.items.length > this.max) this.items.shift();
  }
  all(): readonly T[] {
    return this.items;
  }
}

export class History {
  private readonly hour: Ring<HistoryPoint>;
  private readonly day: Ring<HistoryPoint>;
  private last: MetricsSample | null = null;
  private lastDaily: MetricsSample | null = null;
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(
    private readonly sample: () => Promise<MetricsSample>,
    private readonly everyMs = 10_000,
    private readonly dailyEveryMs = 5 * 60_000,
  ) {
    this.hour = new Ring(Math.ceil(HOUR_MS / everyMs));
    this.day = new Ring(Math.ceil(DAY_MS / dailyEveryMs));
  }

  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  points(window: 'hour' | 'day'): readonly HistoryPoint[] {
    return (window === 'hour' ? this.hour : this.day).all();
  }

  /** Takes one sample now (the timer does it every everyMs). */
  async tick(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const s = await this.sample();
      if (this.last) this.hour.push(between(this.last, s));
      this.last = s;
      if (!this.lastDaily) this.lastDaily = s;
      else if (s.t - this.lastDaily.t >= this.dailyEveryMs) {
        this.day.push(between(this.lastDaily, s));
        this.lastDaily = s;
      }
    } catch {
      // A sample that failed (the primary busy answering) is a gap in the chart, nothing more.
    } finally {
      this.sampling = false;
    }
  }
}

function between(a: MetricsSample, b: MetricsSample): HistoryPoint {
  const seconds = (b.t - a.t) / 1000;
  // Counters go back to zero when a worker restarts: that interval is a gap, not a negative rate.
  const dr = b.requests - a.requests;
  const dh = b.hits - a.hits;
  const dm = b.misses - a.misses;
  const upstreams: HistoryPoint['upstreams'] = {};
  for (const [id, u] of b.upstreams) {
    const before = a.upstreams.get(id);
    const dc = u.count - (before?.count ?? 0);
    const ds = u.sum - (before?.sum ?? 0);
    upstreams[id] = { ms: dc > 0 && ds >= 0 ? (ds / dc) * 1000 : null, healthy: u.healthy };
  }
  return {
    t: b.t,
    rps: seconds > 0 && dr >= 0 ? dr / seconds : null,
    hitRatio: dh >= 0 && dm >= 0 && dh + dm > 0 ? dh / (dh + dm) : null,
    storeBytes: b.storeBytes,
    upstreams,
  };
}

/** The figures History needs, read from Prometheus text. */
export function sampleOf(metricsText: string, storeBytes: number, t = Date.now()): MetricsSample {
  let requests = 0;
  let hits = 0;
  let misses = 0;
  const upstreams = new Map<string, { count: number; sum: number; healthy: boolean }>();
  const up = (id: string): { count: number; sum: number; healthy: boolean } => {
    let u = upstreams.get(id);
    if (!u) upstreams.set(id, (u = { count: 0, sum: 0, healthy: true }));
    return u;
  };
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('gomodproxy_')) continue;
    const m = /^(\w+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const [, name, labels = '', raw] = m;
    const value = Number(raw);
    if (!Number.isFinite(value)) continue;
    const label = (k: string): string | undefined => new RegExp(`(?:^|,)${k}="((?:[^"\\\\]|\\\\.)*)"`).exec(labels)?.[1]?.replace(/\\(.)/g, '$1');
    switch (name) {
      case 'gomodproxy_requests_total':
        requests += value;
        break;
      case 'gomodproxy_cache_results_total': {
        const kind = label('kind');
        if (kind !== 'info' && kind !== 'mod' && kind !== 'zip') break;
        const result = label('result');
        if (result === 'hit') hits += value;
        else if (result === 'miss') misses += value;
        break;
      }
      case 'gomodproxy_upstream_duration_seconds_sum':
      case 'gomodproxy_upstream_duration_seconds_count': {
        const id = label('upstream');
        if (id === undefined) break;
        if (name.endsWith('_sum')) up(id).sum += value;
        else up(id).count += value;
        break;
      }
      case 'gomodproxy_upstream_healthy': {
        const id = label('upstream');
        // Summed over workers: healthy while any worker's breaker lets requests through.
        if (id !== undefined) up(id).healthy = value > 0;
        break;
      }
    }
  }
  return { t, requests, hits, misses, upstreams, storeBytes };
}
