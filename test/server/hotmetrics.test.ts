// The hand-counted request metrics read exactly as prom-client's own Counter and Histogram read
// for the same observations: in the exposition text, and summed across workers by the cluster's
// AggregatorRegistry as the primary sums them.
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../src/server/hotmetrics.js';

const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Observations on and around every bound, and past the last one. */
const OBSERVED = [0, 0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.01, 0.0100001, 0.2, 0.5, 0.9, 2.5, 7, 29.99, 60, 61, 1e6];

function ours(registry: Registry): { c: HotCounter<'kind' | 'status'>; h: HotHistogram<'kind' | 'cache'> } {
  return {
    c: new HotCounter('t_requests_total', 'Requests.', registry),
    h: new HotHistogram('t_duration_seconds', 'Durations.', registry, BOUNDS),
  };
}

function theirs(registry: Registry): { c: Counter<'kind' | 'status'>; h: Histogram<'kind' | 'cache'> } {
  return {
    c: new Counter({ name: 't_requests_total', help: 'Requests.', labelNames: ['kind', 'status'], registers: [registry] }),
    h: new Histogram({ name: 't_duration_seconds', help: 'Durations.', labelNames: ['kind', 'cache'], buckets: BOUNDS, registers: [registry] }),
  };
}

/** The same traffic into both: two label sets each, bound once as the request counter binds them. */
function feed(o: ReturnType<typeof ours>, t: ReturnType<typeof theirs>, scale: number): void {
  const hits = o.h.bind({ kind: 'info', cache: 'hit' });
  const misses = o.h.bind({ kind: 'zip', cache: 'miss' });
  const ok = o.c.bind({ kind: 'info', status: '200' });
  const bad = o.c.bind({ kind: 'zip', status: '502' });
  for (const v of OBSERVED) {
    hits.observe(v * scale);
    t.h.labels('info', 'hit').observe(v * scale);
    ok.value += 1;
    t.c.labels('info', '200').inc(1);
  }
  misses.observe(3 * scale);
  t.h.labels('zip', 'miss').observe(3 * scale);
  bad.value += 2;
  t.c.labels('zip', '502').inc(2);
}

describe('HotCounter and HotHistogram', () => {
  it('expose the text prom-client exposes for the same observations', async () => {
    const a = new Registry();
    const b = new Registry();
    feed(ours(a), theirs(b), 1);
    const text = await a.metrics();
    expect(text).toBe(await b.metrics());
    expect(text).toContain('t_duration_seconds_bucket{le="0.001",kind="info",cache="hit"} 5\n');
    expect(text).toContain('t_duration_seconds_bucket{le="+Inf",kind="info",cache="hit"} 17\n');
    expect(text).toContain('t_requests_total{kind="zip",status="502"} 2\n');
  });

  it('are summed across workers by the AggregatorRegistry as prom-client metrics are', async () => {
    const workers = [new Registry(), new Registry()];
    const refs = [new Registry(), new Registry()];
    workers.forEach((r, i) => feed(ours(r), theirs(refs[i]!), i + 1));
    const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    const expected = AggregatorRegistry.aggregate(await Promise.all(refs.map((r) => r.getMetricsAsJSON())));
    const text = await merged.metrics();
    expect(text).toBe(await expected.metrics());
    expect(text).toContain('t_requests_total{kind="info",status="200"} 34\n');
  });

  it('reset() zeroes every series, and what was bound before it goes on counting', async () => {
    const r = new Registry();
    const { c, h } = ours(r);
    const ok = c.bind({ kind: 'info', status: '200' });
    const hits = h.bind({ kind: 'info', cache: 'hit' });
    ok.value = 5;
    hits.observe(0.1);
    r.resetMetrics();
    const zeroed = await r.metrics();
    expect(zeroed).toContain('t_requests_total{kind="info",status="200"} 0\n');
    expect(zeroed).toContain('t_duration_seconds_count{kind="info",cache="hit"} 0\n');
    ok.value++;
    hits.observe(0.2);
    const after = await r.metrics();
    expect(after).toContain('t_requests_total{kind="info",status="200"} 1\n');
    expect(after).toContain('t_duration_seconds_bucket{le="0.25",kind="info",cache="hit"} 1\n');
    expect(after).toContain('t_duration_seconds_bucket{le="0.1",kind="info",cache="hit"} 0\n');
  });
});
