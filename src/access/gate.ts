// One request through the access layer, in the order that keeps it cheap and fair:
// authenticate (synchronous for no header and for cached headers) -> rate limit (by user, else
// by address; failed sign-ins count against the address, so guessing passwords soon gets a 429)
// -> rules. The answer is a decision the server turns into a response; nothing here writes one.
import type { Authenticator } from './authenticate.js';
import { clientKey, type RateLimiter } from './ratelimit.js';
import { allows, type CompiledRules } from './rules.js';
import { ANONYMOUS, AuthError, type Principal, type RequestCredentials } from './types.js';

export type AccessDecision =
  | { allowed: true; principal: Principal; client: string }
  | {
      allowed: false;
      /** 401 sign in; 403 or 404 denied by the rules; 429 over the rate limit. */
      status: 401 | 403 | 404 | 429;
      /** One line for the go command. */
      message: string;
      /** Response headers to add: WWW-Authenticate for 401, Retry-After for 429. */
      headers: Record<string, string>;
      principal: Principal;
      client: string;
      /** Short reason for the audit log. */
      reason: string;
    };

export interface GateOptions {
  /**
   * What an authenticated principal denied by the rules is told: 403 says so, 404 hides that the
   * module exists. An anonymous principal always gets 401, so a user whose .netrc is missing
   * learns to sign in instead of chasing a "not found".
   */
  deniedStatus?: 403 | 404;
  /** The 404 line when deniedStatus is 404 (make it read like any other not-found answer). */
  notFoundMessage?: string;
  /** What is being asked for, in the 403 line (e.g. the module path). */
  subject?: string;
}

export interface Gate {
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
}

/**
 * Decides one request. Returns synchronously unless a credential must actually be checked.
 * Throws (or rejects with) a ProxyError 503 when a backend cannot answer: that is an outage,
 * not a refusal.
 */
export function decide(
  g: Gate,
  creds: RequestCredentials,
  rules: CompiledRules | readonly string[],
  opts: GateOptions = {},
): AccessDecision | Promise<AccessDecision> {
  let outcome: Principal | Promise<Principal>;
  try {
    outcome = g.authenticator.authenticate(creds);
  } catch (err) {
    return refused(g, creds, err);
  }
  if (outcome instanceof Promise) {
    return outcome.then(
      (p) => judge(g, creds, rules, p, opts),
      (err: unknown) => refused(g, creds, err),
    );
  }
  return judge(g, creds, rules, outcome, opts);
}

function judge(g: Gate, creds: RequestCredentials, rules: CompiledRules | readonly string[], principal: Principal, opts: GateOptions): AccessDecision {
  const client = clientKey(principal, creds.remoteAddress);
  const limited = limit(g, client, principal);
  if (limited) return limited;
  if (allows(rules, principal)) return { allowed: true, principal, client };
  if (principal.method === 'anonymous') {
    const e = g.authenticator.unauthorized();
    return { allowed: false, status: 401, message: e.message, headers: { 'WWW-Authenticate': e.challenge }, principal, client, reason: 'sign-in-required' };
  }
  if (opts.deniedStatus === 404) {
    return { allowed: false, status: 404, message: opts.notFoundMessage ?? 'not found', headers: {}, principal, client, reason: 'denied-hidden' };
  }
  const what = opts.subject ? ` to ${opts.subject}` : '';
  return {
    allowed: false,
    status: 403,
    message: `access${what} is denied for user ${principal.name} (${principal.method}); ask an administrator to grant it`,
    headers: {},
    principal,
    client,
    reason: 'denied',
  };
}

function refused(g: Gate, creds: RequestCredentials, err: unknown): AccessDecision {
  // Outages (ProxyError 503) and bugs go up unchanged: only a refusal is a decision.
  if (!(err instanceof AuthError)) throw err;
  // A failed sign-in spends the address's budget, so password guessing is rate limited too.
  const client = clientKey(ANONYMOUS, creds.remoteAddress);
  const limited = limit(g, client, ANONYMOUS);
  if (limited) return limited;
  return {
    allowed: false,
    status: 401,
    message: err.message,
    headers: { 'WWW-Authenticate': err.challenge },
    principal: ANONYMOUS,
    client,
    reason: err.reason,
  };
}

function limit(g: Gate, client: string, principal: Principal): AccessDecision | null {
  const r = g.rateLimiter.take(client);
  if (r.allowed) return null;
  return {
    allowed: false,
    status: 429,
    message: `too many requests; retry in ${r.retryAfterSeconds} s`,
    headers: { 'Retry-After': String(r.retryAfterSeconds) },
    principal,
    client,
    reason: 'rate-limited',
  };
}
