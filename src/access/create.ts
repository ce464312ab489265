// Builds the access layer from the `auth:` configuration block: the authenticator with its
// methods, the limiters, the audit log and the rule lists for /metrics and the admin API.
// With nothing configured every request is anonymous and allowed, nothing is limited, and
// nothing is audited: `npm start` works as before.
import type { AuthConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { AuditLog } from './audit.js';
import { Authenticator } from './authenticate.js';
import { HtpasswdFile } from './htpasswd.js';
import type { JwtVerifier } from './jwt.js';
import type { LdapAuthenticator } from './ldap.js';
import { MtlsMapper } from './mtls.js';
import { ConcurrencyLimiter, RateLimiter } from './ratelimit.js';
import { compileRules, type CompiledRules } from './rules.js';
import { TokenStore, tokensFile } from './tokens.js';

export interface Access {
  authenticator: Authenticator;
  /** Requests per client; `enabled` is false when auth.rateLimit.requestsPerSecond is 0. */
  rateLimiter: RateLimiter;
  /** Upstream fetches per client; `enabled` is false when auth.fetchConcurrencyPerClient is 0. */
  fetchLimiter: ConcurrencyLimiter;
  audit: AuditLog;
  /** Who may read /metrics. */
  metricsRules: CompiledRules;
  /** Who may use the admin API. */
  adminRules: CompiledRules;
  /** Who may publish modules (routes with publish: true). */
  publishRules: CompiledRules;
  /** Null unless API tokens are enabled. */
  tokens: TokenStore | null;
  close(): Promise<void>;
}

export interface CreateAccessOptions {
  /** The data folder; tokens live in <data>/state/tokens.json. */
  dataDir: string;
  /** A file reload failed (the previous contents stay in force): log it. Never given a secret. */
  onReloadError?: (what: 'htpasswd' | 'tokens', err: unknown) => void;
  /** How often htpasswd and tokens.json are polled for changes (default 2 s). */
  pollMs?: number;
  /** Write audit lines synchronously (tests). */
  auditSync?: boolean;
}

/** A setting under auth: that cannot be used; the message names the setting and the fix. */
export class AccessConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccessConfigError';
  }
}

export async function createAccess(auth: AuthConfig, opts: CreateAccessOptions): Promise<Access> {
  // The authenticator is made last but must hear of reloads: reach it through this cell.
  const made: { authenticator?: Authenticator } = {};
  const pollMs = opts.pollMs ?? 2000;

  let htpasswd: HtpasswdFile | undefined;
  if (auth.htpasswd !== undefined) {
    try {
      htpasswd = await HtpasswdFile.load(auth.htpasswd, {
        pollMs,
        onReload: () => made.authenticator?.clearCache('htpasswd'),
        onError: (err) => opts.onReloadError?.('htpasswd', err),
      });
    } catch (err) {
      throw new AccessConfigError(`invalid setting auth.htpasswd: ${errorMessage(err)}`);
    }
  }

  let tokens: TokenStore | undefined;
  if (auth.tokens.enabled) {
    try {
      tokens = await TokenStore.open(tokensFile(opts.dataDir), {
        pollMs,
        onReload: () => made.authenticator?.clearCache('token'),
        onError: (err) => opts.onReloadError?.('tokens', err),
      });
    } catch (err) {
      htpasswd?.close();
      throw new AccessConfigError(`invalid setting auth.tokens: ${errorMessage(err)}`);
    }
  }

  // The LDAP and OIDC clients (ldapts, jose) load only where they are configured.
  let ldap: LdapAuthenticator | undefined;
  let jwt: JwtVerifier | undefined;
  try {
    if (auth.ldap) ldap = new (await import('./ldap.js')).LdapAuthenticator(auth.ldap);
    if (auth.oidc) jwt = new (await import('./jwt.js')).JwtVerifier(auth.oidc);
  } catch (err) {
    htpasswd?.close();
    tokens?.close();
    throw new AccessConfigError(`invalid setting ${errorMessage(err)}`);
  }

  const authenticator = new Authenticator({
    htpasswd,
    ldap,
    tokens,
    jwt,
    mtls: auth.mtls ? new MtlsMapper(auth.mtls) : undefined,
    realm: auth.realm,
    cacheTtlMs: auth.cache.ttl,
    failureTtlMs: auth.cache.failureTtl,
    maxEntries: auth.cache.maxEntries,
  });
  made.authenticator = authenticator;
  const audit = new AuditLog({ enabled: auth.audit.enabled, file: auth.audit.file, sync: opts.auditSync });
  const a = authenticator;
  return {
    authenticator: a,
    rateLimiter: new RateLimiter({ requestsPerSecond: auth.rateLimit.requestsPerSecond, burst: auth.rateLimit.burst }),
    fetchLimiter: new ConcurrencyLimiter({ perClient: auth.fetchConcurrencyPerClient }),
    audit,
    metricsRules: compileRules(auth.metrics),
    adminRules: compileRules(auth.admin),
    publishRules: compileRules(auth.publish),
    tokens: tokens ?? null,
    close: async () => {
      a.close();
      await audit.close();
    },
  };
}
