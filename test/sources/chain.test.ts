// SourceChain with fake sources: the GOPROXY ',' and '|' rules between priorities, failover and
// round-robin between replicas of one priority, the per-replica breaker (N failures, a cool-down,
// then one probe at a time), which error is reported when everything fails (GO-MODULES.md §1.4),
// and the hooks that feed metrics. The clock is faked (only Date), so cool-downs pass on command.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { UpstreamSpec } from '../../src/config/index.js';
import { ProxyError, type FailureKind } from '../../src/errors.js';
import {
  SourceChain,
  type HealthPolicy,
  type ModuleRef,
  type ModuleSource,
  type RequestKind,
  type UpstreamOutcome,
  type ZipBody,
} from '../../src/sources/index.js';

const MOD: ModuleRef = { path: 'example.com/m', escaped: 'example.com/m' };
const CTX = { via: 'test' };

/** What a fake answers: bytes, or an error of a kind (with the upstream status it relays). */
type Answer = string | { kind: FailureKind; status?: number; message?: string } | Error;

/** A source that answers `list` from a script, one entry per call (the last one repeats), and counts calls. */
class FakeSource implements ModuleSource {
  calls = 0;
  /** Calls not answered yet (see hold). */
  pending = 0;
  private held: (() => void)[] = [];
  private holding = false;

  constructor(
    readonly id: string,
    private readonly script: Answer[],
  ) {}

  /** From now on, answers wait for release(). */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const r of this.held.splice(0)) r();
  }

  async list(): Promise<Buffer> {
    const a = this.script[Math.min(this.calls, this.script.length - 1)] as Answer;
    this.calls++;
    if (this.holding) {
      this.pending++;
      await new Promise<void>((r) => this.held.push(r));
      this.pending--;
    }
    if (typeof a === 'string') return Buffer.from(a);
    if (a instanceof Error) throw a;
    throw new ProxyError(a.kind, a.message ?? `${this.id}: ${a.status ?? a.kind}`, a.status === undefined ? {} : { upstreamStatus: a.status });
  }

  latest = (): Promise<Buffer> => this.list();
  info = (): Promise<Buffer> => this.list();
  mod = (): Promise<Buffer> => this.list();
  zip(): Promise<ZipBody> {
    return Promise.reject(new Error('not used'));
  }
}

const OK = (s: string): Answer => s;
const NOT_FOUND: Answer = { kind: 'not-found', status: 404 };
const GONE: Answer = { kind: 'gone', status: 410 };
const S500: Answer = { kind: 'upstream', status: 500 };
const S503: Answer = { kind: 'upstream', status: 503 };
const S401: Answer = { kind: 'upstream', status: 401 };
const S403: Answer = { kind: 'upstream', status: 403 };
const S429: Answer = { kind: 'upstream', status: 429 };
const TIMEOUT: Answer = { kind: 'timeout' };
const UNREACHABLE: Answer = { kind: 'upstream', message: 'cannot reach upstream (ECONNREFUSED)' };

interface Entry {
  id: string;
  script: Answer[];
  priority?: number;
  fallthrough?: 'not-found' | 'any';
  balance?: 'failover' | 'round-robin';
  kind?: UpstreamSpec['kind'];
}

interface Built {
  chain: SourceChain;
  src: Map<string, FakeSource>;
  events: { id: string; outcome: UpstreamOutcome }[];
  health: { id: string; healthy: boolean }[];
}

/** One entry a priority unless told otherwise, as a GOPROXY list would make them. */
function build(entries: Entry[], policy: HealthPolicy = { failures: 1000, cooldownMs: 0 }): Built {
  const src = new Map<string, FakeSource>();
  const events: Built['events'] = [];
  const health: Built['health'] = [];
  const specs: UpstreamSpec[] = entries.map((e, i) => {
    src.set(e.id, new FakeSource(e.id, e.script));
    return {
      kind: e.kind ?? 'proxy',
      url: e.id,
      priority: e.priority ?? i,
      balance: e.balance ?? 'failover',
      fallthrough: e.fallthrough ?? 'not-found',
      timeouts: { connect: 1000, firstByte: 1000, idle: 1000 },
    };
  });
  const chain = new SourceChain(specs, (spec) => src.get(spec.url) as FakeSource, policy, {
    onUpstream: (id, _kind: RequestKind, outcome) => events.push({ id, outcome }),
    onHealthChange: (id, healthy) => health.push({ id, healthy }),
  });
  return { chain, src, events, health };
}

/** The answer of one run: the bytes and who gave them, or the error's kind, status and message. */
async function answer(chain: SourceChain): Promise<{ from: string; body: string } | { kind: FailureKind; status: number; message: string }> {
  try {
    const r = await chain.run('list', (s) => s.list(MOD, CTX));
    return { from: r.source.id, body: r.value.toString() };
  } catch (err) {
    if (!(err instanceof ProxyError)) throw err;
    return { kind: err.kind, status: err.status, message: err.message };
  }
}

const calls = (b: Built): Record<string, number> => Object.fromEntries([...b.src].map(([id, s]) => [id, s.calls]));

describe("between priorities: the GOPROXY ',' and '|' rules", () => {
  // [name, entries (id, answer, separator after it), the answer, the calls each entry got]
  const cases: [string, [string, Answer, ',' | '|'][], Awaited<ReturnType<typeof answer>>, Record<string, number>][] = [
    [
      'the first entry answers',
      [
        ['a', OK('A'), ','],
        ['b', OK('B'), ','],
      ],
      { from: 'a', body: 'A' },
      { a: 1, b: 0 },
    ],
    [
      "404 falls through ','",
      [
        ['a', NOT_FOUND, ','],
        ['b', OK('B'), ','],
      ],
      { from: 'b', body: 'B' },
      { a: 1, b: 1 },
    ],
    [
      "410 falls through ','",
      [
        ['a', GONE, ','],
        ['b', OK('B'), ','],
      ],
      { from: 'b', body: 'B' },
      { a: 1, b: 1 },
    ],
    [
      "404 falls through '|' too",
      [
        ['a', NOT_FOUND, '|'],
        ['b', OK('B'), ','],
      ],
      { from: 'b', body: 'B' },
      { a: 1, b: 1 },
    ],
    [
      "500 stops ','",
      [
        ['a', S500, ','],
        ['b', OK('B'), ','],
      ],
      { kind: 'upstream', status: 502, message: 'a: 500' },
      { a: 1, b: 0 },
    ],
    [
      "401 stops ','",
      [
        ['a', S401, ','],
        ['b', OK('B'), ','],
      ],
      { kind: 'upstream', status: 502, message: 'a: 401' },
      { a: 1, b: 0 },
    ],
    [
      "403 stops ','",
      [
        ['a', S403, ','],
        ['b', OK('B'), ','],
      ],
      { kind: 'upstream', status: 502, message: 'a: 403' },
      { a: 1, b: 0 },
    ],
    [
      "429 stops ','",
      [
        ['a', S429, ','],
        ['b', OK('B'), ','],
      ],
      { kind: 'upstream', status: 502, message: 'a: 429' },
      { a: 1, b: 0 },
    ],
    [
      "a timeout stops ','",
      [
        ['a', TIMEOUT, ','],
        ['b', OK('B'), ','],
      ],
      { kind: 'timeout', status: 504, message: 'a: timeout' },
      { a: 1, b: 0 },
    ],
    [
      "an unreachable upstream stops ','",
      [
        ['a', UNREACHABLE, ','],
        ['b', OK('B'), ','],
      ],
      { kind: 'upstream', status: 502, message: 'cannot reach upstream (ECONNREFUSED)' },
      { a: 1, b: 0 },
    ],
    [
      "500 falls through '|'",
      [
        ['a', S500, '|'],
        ['b', OK('B'), ','],
      ],
      { from: 'b', body: 'B' },
      { a: 1, b: 1 },
    ],
    [
      "a timeout falls through '|'",
      [
        ['a', TIMEOUT, '|'],
        ['b', OK('B'), ','],
      ],
      { from: 'b', body: 'B' },
      { a: 1, b: 1 },
    ],
    [
      "'|' then ',': 500, 404, then the third answers",
      [
        ['a', S500, '|'],
        ['b', NOT_FOUND, ','],
        ['c', OK('C'), ','],
      ],
      { from: 'c', body: 'C' },
      { a: 1, b: 1, c: 1 },
    ],
    [
      "'|' then ',': the second's 500 stops before the third",
      [
        ['a', S500, '|'],
        ['b', S503, ','],
        ['c', OK('C'), ','],
      ],
      { kind: 'upstream', status: 502, message: 'b: 503' },
      { a: 1, b: 1, c: 0 },
    ],
    // What is reported when all fail (GO-MODULES.md §1.4): the last error that is not a not-found,
    // else the last not-found. (The go command also prefers direct's error when direct was reached,
    // even a not-found after a proxy's 500; the chain does not special-case direct: a known divergence.)
    [
      'all not found: the last not-found',
      [
        ['a', NOT_FOUND, ','],
        ['b', GONE, ','],
      ],
      { kind: 'gone', status: 410, message: 'b: 410' },
      { a: 1, b: 1 },
    ],
    [
      "a 500 then a 404 ('|'): the 500, not the later 404",
      [
        ['a', S500, '|'],
        ['b', NOT_FOUND, ','],
      ],
      { kind: 'upstream', status: 502, message: 'a: 500' },
      { a: 1, b: 1 },
    ],
    [
      "two failures ('|'): the last one",
      [
        ['a', S500, '|'],
        ['b', TIMEOUT, '|'],
      ],
      { kind: 'timeout', status: 504, message: 'b: timeout' },
      { a: 1, b: 1 },
    ],
    [
      "a 404 then a 500 ('|' after the 500, nothing after): the 500",
      [
        ['a', NOT_FOUND, ','],
        ['b', S500, '|'],
      ],
      { kind: 'upstream', status: 502, message: 'b: 500' },
      { a: 1, b: 1 },
    ],
    [
      '<404 proxy>,off reports the off text (as the go command does)',
      [
        ['a', NOT_FOUND, ','],
        ['off', { kind: 'not-found', message: 'module lookup disabled by upstream=off' }, ','],
      ],
      { kind: 'not-found', status: 404, message: 'module lookup disabled by upstream=off' },
      { a: 1, off: 1 },
    ],
  ];
  it.each(cases)('%s', async (_name, list, want, wantCalls) => {
    const b = build(list.map(([id, a, sep]) => ({ id, script: [a], fallthrough: sep === '|' ? 'any' : 'not-found', kind: id === 'off' ? 'off' : 'proxy' })));
    expect(await answer(b.chain)).toEqual(want);
    expect(calls(b)).toEqual(wantCalls);
  });

  it('no upstream at all is a not-found that says so', async () => {
    expect(await answer(build([]).chain)).toEqual({ kind: 'not-found', status: 404, message: 'not found: no upstream is configured' });
  });

  it('a source that throws something other than a ProxyError is an internal error naming it, and stops the list', async () => {
    const b = build([
      { id: 'a', script: [new TypeError('x is undefined')] },
      { id: 'b', script: [OK('B')] },
    ]);
    expect(await answer(b.chain)).toEqual({ kind: 'internal', status: 500, message: 'source a failed unexpectedly: x is undefined' });
    expect(calls(b)).toEqual({ a: 1, b: 0 });
  });

  it('each request walks the list afresh', async () => {
    const b = build([
      { id: 'a', script: [NOT_FOUND, OK('A'), NOT_FOUND] },
      { id: 'b', script: [OK('B')] },
    ]);
    expect(await answer(b.chain)).toEqual({ from: 'b', body: 'B' });
    expect(await answer(b.chain)).toEqual({ from: 'a', body: 'A' });
    expect(await answer(b.chain)).toEqual({ from: 'b', body: 'B' });
    expect(calls(b)).toEqual({ a: 3, b: 2 });
  });
});

describe('within a priority: replicas', () => {
  const replicas = (
    balance: 'failover' | 'round-robin',
    scripts: Record<string, Answer[]>,
    fallthrough: 'not-found' | 'any' = 'not-found',
    after?: Entry,
  ): Built =>
    build([
      ...Object.entries(scripts).map(([id, script]) => ({ id, script, priority: 0, balance, fallthrough })),
      ...(after ? [{ ...after, priority: 1 }] : []),
    ]);

  it('failover: always the first replica first; an error moves to the next one', async () => {
    const b = replicas('failover', { r1: [OK('1'), S500, OK('1')], r2: [OK('2')], r3: [OK('3')] });
    const from = [];
    for (let i = 0; i < 3; i++) from.push(((await answer(b.chain)) as { from: string }).from);
    expect(from).toEqual(['r1', 'r2', 'r1']);
    expect(calls(b)).toEqual({ r1: 3, r2: 1, r3: 0 });
  });

  it('round-robin: the first replica asked rotates; an error still moves on to the next', async () => {
    const b = replicas('round-robin', { r1: [OK('1')], r2: [OK('2'), S500, OK('2')], r3: [OK('3')] });
    const from = [];
    for (let i = 0; i < 6; i++) from.push(((await answer(b.chain)) as { from: string }).from);
    // Starts r1, r2, r3, r1, r2 (fails: r3 answers), r3.
    expect(from).toEqual(['r1', 'r2', 'r3', 'r1', 'r3', 'r3']);
    expect(calls(b)).toEqual({ r1: 2, r2: 2, r3: 3 });
  });

  it('a not-found from one replica is the answer of the group: its replicas agree, the others are not asked', async () => {
    const b = replicas('failover', { r1: [NOT_FOUND], r2: [OK('2')] }, 'not-found', { id: 'next', script: [OK('N')] });
    expect(await answer(b.chain)).toEqual({ from: 'next', body: 'N' });
    expect(calls(b)).toEqual({ r1: 1, r2: 0, next: 1 });
  });

  it("every replica failing is the group's failure (the last replica's error), and ',' stops there", async () => {
    const b = replicas('failover', { r1: [S500], r2: [TIMEOUT] }, 'not-found', { id: 'next', script: [OK('N')] });
    expect(await answer(b.chain)).toEqual({ kind: 'timeout', status: 504, message: 'r2: timeout' });
    expect(calls(b)).toEqual({ r1: 1, r2: 1, next: 0 });
    const any = replicas('failover', { r1: [S500], r2: [TIMEOUT] }, 'any', { id: 'next', script: [OK('N')] });
    expect(await answer(any.chain)).toEqual({ from: 'next', body: 'N' });
  });
});

describe('health: a breaker per replica', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const later = (ms: number): void => {
    vi.setSystemTime(Date.now() + ms);
  };
  const policy = { failures: 2, cooldownMs: 30_000 };

  it('after N failures in a row a replica is skipped for the cool-down, then one probe decides', async () => {
    const b = build(
      [
        { id: 'flaky', script: [S500, S500, S500, OK('F')], priority: 0 },
        { id: 'steady', script: [OK('S')], priority: 0 },
      ],
      policy,
    );
    expect(await answer(b.chain)).toEqual({ from: 'steady', body: 'S' });
    expect(b.health).toEqual([]);
    expect(await answer(b.chain)).toEqual({ from: 'steady', body: 'S' });
    expect(b.health).toEqual([{ id: 'flaky', healthy: false }]);
    // Resting: not asked at all, the request goes straight to the next replica.
    b.events.length = 0;
    expect(await answer(b.chain)).toEqual({ from: 'steady', body: 'S' });
    expect(b.events).toEqual([
      { id: 'flaky', outcome: 'skipped' },
      { id: 'steady', outcome: 'ok' },
    ]);
    later(29_999);
    await answer(b.chain);
    expect(b.src.get('flaky')?.calls).toBe(2);
    // Cool-down over: one probe. It fails: resting again for a whole cool-down (no second "down" event).
    later(1);
    await answer(b.chain);
    expect(b.src.get('flaky')?.calls).toBe(3);
    expect(b.health).toEqual([{ id: 'flaky', healthy: false }]);
    later(29_999);
    await answer(b.chain);
    expect(b.src.get('flaky')?.calls).toBe(3);
    // The next probe succeeds: healthy again, and asked first again (failover).
    later(1);
    expect(await answer(b.chain)).toEqual({ from: 'flaky', body: 'F' });
    expect(b.health).toEqual([
      { id: 'flaky', healthy: false },
      { id: 'flaky', healthy: true },
    ]);
    expect(await answer(b.chain)).toEqual({ from: 'flaky', body: 'F' });
    expect(b.src.get('flaky')?.calls).toBe(5);
  });

  it('in half-open state only one request probes; the others go elsewhere until it has answered', async () => {
    const b = build(
      [
        { id: 'flaky', script: [S500, S500, OK('F')], priority: 0 },
        { id: 'steady', script: [OK('S')], priority: 0 },
      ],
      policy,
    );
    await answer(b.chain);
    await answer(b.chain);
    later(30_000);
    const flaky = b.src.get('flaky') as FakeSource;
    flaky.hold();
    const probe = answer(b.chain);
    await vi.waitFor(() => expect(flaky.pending).toBe(1));
    const others = await Promise.all([answer(b.chain), answer(b.chain), answer(b.chain)]);
    expect(others).toEqual([0, 1, 2].map(() => ({ from: 'steady', body: 'S' })));
    expect(flaky.calls).toBe(3);
    flaky.release();
    expect(await probe).toEqual({ from: 'flaky', body: 'F' });
    expect(b.health.at(-1)).toEqual({ id: 'flaky', healthy: true });
  });

  it('only outages count: 5xx, 429, timeouts, unreachable do; 401, 403, 404 and an oversized answer do not', async () => {
    const rested = async (a: Answer): Promise<boolean> => {
      const b = build(
        [
          { id: 'x', script: [a], priority: 0 },
          { id: 'y', script: [OK('Y')], priority: 0 },
        ],
        policy,
      );
      for (let i = 0; i < 5; i++) await answer(b.chain);
      return b.health.some((h) => h.id === 'x' && !h.healthy);
    };
    const table: [string, Answer, boolean][] = [
      ['500', S500, true],
      ['503', S503, true],
      ['429', S429, true],
      ['a timeout', TIMEOUT, true],
      ['unreachable', UNREACHABLE, true],
      ['401', S401, false],
      ['403', S403, false],
      ['404', NOT_FOUND, false],
      ['410', GONE, false],
      // An answer about one file (too big), not about the upstream.
      ['a 200 over the size limit', { kind: 'upstream', status: 200 }, false],
    ];
    const got = [];
    for (const [name, a] of table) got.push([name, await rested(a)]);
    expect(got).toEqual(table.map(([name, , want]) => [name, want]));
  });

  it('a success or a non-outage answer resets the count: only failures in a row rest a replica', async () => {
    const b = build([{ id: 'x', script: [S500, OK('X'), S500, S403, S500, NOT_FOUND, S500], priority: 0 }], policy);
    for (let i = 0; i < 7; i++) await answer(b.chain);
    expect(b.health).toEqual([]);
    expect(b.src.get('x')?.calls).toBe(7);
  });

  it('every replica resting: an error that says so, the chain unhealthy until a cool-down ends', async () => {
    const b = build(
      [
        { id: 'r1', script: [S500], priority: 0 },
        { id: 'r2', script: [S500, S500, OK('2')], priority: 0 },
      ],
      policy,
    );
    expect(b.chain.healthy()).toBe(true);
    await answer(b.chain);
    await answer(b.chain);
    expect(b.chain.healthy()).toBe(false);
    const resting = await answer(b.chain);
    expect(resting).toMatchObject({ kind: 'upstream', status: 502 });
    expect((resting as { message: string }).message).toBe(
      'every upstream of priority 0 (r1, r2) failed health.failures times in a row and is in its cool-down (health.cooldown) (last failure: r1: 500); it is tried again in 30s: retry then, or ask the gomodproxy operator to check them',
    );
    expect(calls(b)).toEqual({ r1: 2, r2: 2 });
    later(30_000);
    expect(b.chain.healthy()).toBe(true);
    expect(await answer(b.chain)).toEqual({ from: 'r2', body: '2' });
  });

  it('direct and off are never rested: one repository failing says nothing about the others', async () => {
    const b = build([{ id: 'direct', script: [S500], kind: 'direct', priority: 0 }], policy);
    for (let i = 0; i < 5; i++) await answer(b.chain);
    expect(b.src.get('direct')?.calls).toBe(5);
    expect(b.health).toEqual([]);
    expect(b.chain.healthy()).toBe(true);
  });

  it('a failure reported after the answer (a zip body that breaks) counts against the replica that gave it', async () => {
    // One failure rests a replica here: with more, the answer's own success (its headers) resets
    // the count before the body breaks, so such failures never add up (a known gap in chain.ts).
    const b = build(
      [
        { id: 'r1', script: [OK('1')], priority: 0 },
        { id: 'r2', script: [OK('2')], priority: 0 },
      ],
      { failures: 1, cooldownMs: 30_000 },
    );
    const r = await b.chain.run('zip', (s) => s.list(MOD, CTX));
    expect(r.source.id).toBe('r1');
    r.reportFailure(new ProxyError('upstream', 'upstream r1 broke off mid-body'));
    expect(b.health).toEqual([{ id: 'r1', healthy: false }]);
    expect(await answer(b.chain)).toEqual({ from: 'r2', body: '2' });
    expect(b.events.filter((e) => e.id === 'r1').map((e) => e.outcome)).toEqual(['ok', 'error', 'skipped']);
    // A break that is not an outage (the zip was refused for its size) rests nothing.
    const c = build([{ id: 'r1', script: [OK('1')], priority: 0 }], { failures: 1, cooldownMs: 30_000 });
    (await c.chain.run('zip', (s) => s.list(MOD, CTX))).reportFailure(new ProxyError('upstream', 'too big', { upstreamStatus: 200 }));
    expect(c.health).toEqual([]);
  });
});

describe('hooks', () => {
  it('report every attempt with its outcome, in order', async () => {
    const b = build([
      { id: 'a', script: [NOT_FOUND], fallthrough: 'not-found' },
      { id: 'b', script: [S500], fallthrough: 'any' },
      { id: 'c', script: [OK('C')] },
    ]);
    await answer(b.chain);
    expect(b.events).toEqual([
      { id: 'a', outcome: 'not-found' },
      { id: 'b', outcome: 'error' },
      { id: 'c', outcome: 'ok' },
    ]);
  });

  it('close() closes every source that can be closed', async () => {
    const closed: string[] = [];
    const specs: UpstreamSpec[] = ['a', 'b'].map((id, i) => ({
      kind: 'proxy',
      url: id,
      priority: i,
      balance: 'failover',
      fallthrough: 'not-found',
      timeouts: { connect: 1, firstByte: 1, idle: 1 },
    }));
    const chain = new SourceChain(
      specs,
      (spec) => Object.assign(new FakeSource(spec.url, [OK('x')]), spec.url === 'a' ? { close: async () => void closed.push(spec.url) } : {}),
      { failures: 1, cooldownMs: 1 },
    );
    await chain.close();
    expect(closed).toEqual(['a']);
  });
});
