// The upstream chain: groups of equal priority tried in order. Inside a group the members are
// replicas (failover: in order; round-robin: rotating start), an error moves to the next
// replica, and "not found" is the group's answer. Between groups the GOPROXY rules apply:
// ',' falls through only on not-found, '|' on any failure. Replicas that fail N times in a
// row are skipped for a cool-down, then probed with one request.
import type { Balance, Fallthrough, UpstreamSpec } from '../config/index.js';
import { ProxyError, errorMessage } from '../errors.js';
import type { ModuleSource, RequestKind } from './types.js';

export interface HealthPolicy {
  failures: number;
  cooldownMs: number;
}

export type UpstreamOutcome = 'ok' | 'not-found' | 'error' | 'skipped';

export interface ChainHooks {
  onUpstream?(sourceId: string, kind: RequestKind, outcome: UpstreamOutcome, ms: number, err?: ProxyError): void;
  onHealthChange?(sourceId: string, healthy: boolean): void;
}

const NEVER_REST: HealthPolicy = { failures: Number.POSITIVE_INFINITY, cooldownMs: 0 };

/** Per-replica circuit breaker. */
export class Health {
  private consecutiveFailures = 0;
  private downUntil = 0;
  private probing = false;

  constructor(private readonly policy: HealthPolicy) {}

  /** May a request go to this replica now? In half-open state only one probe at a time may. */
  admit(now: number): boolean {
    if (this.consecutiveFailures < this.policy.failures) return true;
    if (now < this.downUntil || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** How long until a resting replica takes its probe (0 when it is not resting). */
  restingFor(now: number): number {
    return this.consecutiveFailures < this.policy.failures ? 0 : Math.max(0, this.downUntil - now);
  }

  get healthy(): boolean {
    return this.consecutiveFailures < this.policy.failures || Date.now() >= this.downUntil;
  }

  /** Returns true when this success ended an outage. */
  succeed(): boolean {
    const wasDown = this.consecutiveFailures >= this.policy.failures;
    this.consecutiveFailures = 0;
    this.probing = false;
    return wasDown;
  }

  /** Returns true when this failure started an outage. */
  fail(now: number): boolean {
    this.consecutiveFailures++;
    this.probing = false;
    if (this.consecutiveFailures >= this.policy.failures) {
      this.downUntil = now + this.policy.cooldownMs;
      return this.consecutiveFailures === this.policy.failures;
    }
    return false;
  }
}

export interface ChainMember {
  source: ModuleSource;
  health: Health;
  /** Why its last request failed: repeated when it is skipped, so the go user still learns the cause. */
  lastFailure?: string;
}

interface Group {
  priority: number;
  balance: Balance;
  fallthrough: Fallthrough;
  members: ChainMember[];
  next: number;
}

export interface ChainResult<T> {
  value: T;
  source: ModuleSource;
  /** For failures the caller sees after the op returned (a zip body that breaks mid-stream). */
  reportFailure(err: ProxyError): void;
}

export class SourceChain {
  private readonly groups: Group[];
  readonly members: ChainMember[];

  constructor(
    specs: UpstreamSpec[],
    makeSource: (spec: UpstreamSpec) => ModuleSource,
    policy: HealthPolicy,
    private readonly hooks: ChainHooks = {},
  ) {
    const groups = new Map<number, Group>();
    this.members = [];
    for (const spec of specs) {
      let g = groups.get(spec.priority);
      if (!g) {
        g = { priority: spec.priority, balance: spec.balance, fallthrough: spec.fallthrough, members: [], next: 0 };
        groups.set(spec.priority, g);
      }
      // Only an upstream proxy is one service that can be down as a whole. `direct` fails per
      // repository (one private repo's bad credentials must not rest every other one), `off` never.
      const m = { source: makeSource(spec), health: new Health(spec.kind === 'proxy' ? policy : NEVER_REST) };
      g.members.push(m);
      this.members.push(m);
    }
    this.groups = [...groups.values()].sort((a, b) => a.priority - b.priority);
  }

  /** At least one member can take a request now (for /readyz). */
  healthy(): boolean {
    return this.members.some((m) => m.health.healthy);
  }

  /**
   * Runs `op` against the chain. The error thrown when everything fails follows the go
   * command's reporting: the last failure that was not "not found", else the last not-found.
   */
  async run<T>(kind: RequestKind, op: (s: ModuleSource) => Promise<T>): Promise<ChainResult<T>> {
    let lastNotFound: ProxyError | undefined;
    let lastError: ProxyError | undefined;
    for (const group of this.groups) {
      const outcome = await this.runGroup(group, kind, op);
      if ('value' in outcome) return outcome;
      if (outcome.error.isNotFound) lastNotFound = outcome.error;
      else lastError = outcome.error;
      if (!outcome.error.isNotFound && group.fallthrough === 'not-found') break;
    }
    throw lastError ?? lastNotFound ?? new ProxyError('not-found', 'not found: no upstream is configured');
  }

  private async runGroup<T>(group: Group, kind: RequestKind, op: (s: ModuleSource) => Promise<T>): Promise<ChainResult<T> | { error: ProxyError }> {
    const n = group.members.length;
    let start = 0;
    if (group.balance === 'round-robin' && n > 1) {
      start = group.next;
      group.next = (group.next + 1) % n;
    }
    let lastError: ProxyError | undefined;
    for (let i = 0; i < n; i++) {
      const member = group.members[(start + i) % n] as ChainMember;
      const now = Date.now();
      if (!member.health.admit(now)) {
        this.hooks.onUpstream?.(member.source.id, kind, 'skipped', 0);
        continue;
      }
      const t0 = performance.now();
      try {
        const value = await op(member.source);
        if (member.health.succeed()) this.hooks.onHealthChange?.(member.source.id, true);
        this.hooks.onUpstream?.(member.source.id, kind, 'ok', performance.now() - t0);
        return { value, source: member.source, reportFailure: (err) => this.recordFailure(member, kind, err, 0) };
      } catch (err) {
        const pe = asProxyError(err, member.source.id);
        if (pe.isNotFound) {
          // An answer, not a failure: the replica is healthy and the group's replicas agree.
          if (member.health.succeed()) this.hooks.onHealthChange?.(member.source.id, true);
          this.hooks.onUpstream?.(member.source.id, kind, 'not-found', performance.now() - t0);
          return { error: pe };
        }
        this.recordFailure(member, kind, pe, performance.now() - t0);
        lastError = pe;
      }
    }
    if (lastError) return { error: lastError };
    const ids = group.members.map((m) => m.source.id).join(', ');
    const now = Date.now();
    const wait = Math.ceil(Math.min(...group.members.map((m) => m.health.restingFor(now))) / 1000);
    const last = group.members.find((m) => m.lastFailure)?.lastFailure;
    return {
      error: new ProxyError(
        'upstream',
        `every upstream of priority ${group.priority} (${ids}) failed health.failures times in a row and is in its cool-down (health.cooldown)${last ? ` (last failure: ${last})` : ''}; it is tried again in ${Math.max(1, wait)}s: retry then, or ask the gomodproxy operator to check them`,
      ),
    };
  }

  private recordFailure(member: ChainMember, kind: RequestKind, err: ProxyError, ms: number): void {
    member.lastFailure = err.message;
    if (!err.isOutage) member.health.succeed();
    else if (member.health.fail(Date.now())) this.hooks.onHealthChange?.(member.source.id, false);
    this.hooks.onUpstream?.(member.source.id, kind, 'error', ms, err);
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map(async (m) => m.source.close?.()));
  }
}

function asProxyError(err: unknown, sourceId: string): ProxyError {
  if (err instanceof ProxyError) return err;
  return new ProxyError('internal', `source ${sourceId} failed unexpectedly: ${errorMessage(err)}`, { cause: err });
}
