// Who is asking: the configured methods, composed. The hot path is synchronous: no
// Authorization header is the anonymous principal at once, and a header seen recently is
// answered from a cache keyed by a keyed hash of the header (bcrypt costs ~50-100 ms of CPU
// and an LDAP bind a network round trip; neither may run per request). Failures are cached
// too, briefly, so a client retrying a wrong password (a CI job with a stale secret) costs
// one check per window and cannot lock the LDAP account. Concurrent requests with the same
// header share one check. Nothing here stores or logs a secret: the cache holds only hashes.
//
// Which check a credential gets:
//   Bearer <t>                     t shaped like gmp_<id>_<secret> -> API token; a JWT -> OIDC
//   Basic user:password            password shaped like a token or a JWT -> that check (the go
//                                  command sends .netrc credentials as Basic, so this is how
//                                  a token travels); else htpasswd if it lists the user,
//                                  else LDAP. A token in the user field works too.
//                                  htpasswd is authoritative for its users: their
//                                  passwords are never sent on to the directory.
//   no header, verified client certificate  -> mTLS mapping
//   no header                      -> anonymous
// A credential of a kind no configured method checks (a .netrc password sent to a proxy with
// no password methods) is ignored: the request is anonymous, which grants least.
import { hash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { HtpasswdFile } from './htpasswd.js';
import { looksLikeJwt } from './credentials.js';
import type { JwtVerifier } from './jwt.js';
import type { LdapAuthenticator } from './ldap.js';
import type { MtlsMapper } from './mtls.js';
import { looksLikeToken, type TokenStore } from './tokens.js';
import { ANONYMOUS, AuthError, type AuthMethod, type Principal, type RequestCredentials } from './types.js';

export interface AuthenticatorOptions {
  htpasswd?: HtpasswdFile;
  ldap?: LdapAuthenticator;
  tokens?: TokenStore;
  jwt?: JwtVerifier;
  mtls?: MtlsMapper;
  /** Named in WWW-Authenticate. */
  realm?: string;
  /** How long a verified credential is trusted (default 60 s); never past the credential's own expiry. */
  cacheTtlMs?: number;
  /** How long a refused credential is refused without checking (default 10 s). */
  failureTtlMs?: number;
  /** Bound on cached credentials (default 10 000). */
  maxEntries?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** Longest Authorization header considered; the go command's are well under 8 KiB, JWTs included. */
const MAX_HEADER = 16_384;

type Cached = { expiresAt: number; principal: Principal; error?: undefined } | { expiresAt: number; principal?: undefined; error: AuthError };

export class Authenticator {
  /** The WWW-Authenticate value for a 401. */
  readonly challenge: string;
  private readonly cache: LRUCache<string, Cached>;
  private readonly inflight = new Map<string, Promise<Principal>>();
  // Salted per process: the cache keys in a heap dump cannot be matched against precomputed
  // hashes of likely headers. crypto.hash is the cheapest one-shot digest Node has (~1-3 µs).
  private readonly salt = randomBytes(16).toString('hex');
  private readonly ttl: number;
  private readonly failureTtl: number;
  private readonly now: () => number;
  private readonly passwords: boolean;

  constructor(private readonly o: AuthenticatorOptions = {}) {
    const realm = o.realm ?? 'gomodproxy';
    const schemes = [`Basic realm="${realm}"`];
    if (o.tokens || o.jwt) schemes.push(`Bearer realm="${realm}"`);
    this.challenge = schemes.join(', ');
    this.ttl = o.cacheTtlMs ?? 60_000;
    this.failureTtl = o.failureTtlMs ?? 10_000;
    this.now = o.now ?? Date.now;
    this.cache = new LRUCache({ max: o.maxEntries ?? 10_000 });
    this.passwords = Boolean(o.htpasswd || o.ldap);
  }

  /** The methods this authenticator checks, for the startup log. */
  get methods(): AuthMethod[] {
    const m: AuthMethod[] = ['anonymous'];
    if (this.o.htpasswd) m.push('htpasswd');
    if (this.o.ldap) m.push('ldap');
    if (this.o.tokens) m.push('token');
    if (this.o.jwt) m.push('jwt');
    if (this.o.mtls) m.push('mtls');
    return m;
  }

  /**
   * The principal of a request. Synchronous (a plain value, or a synchronous throw of AuthError)
   * when there is no header, for a client certificate, and for a header answered from the cache;
   * a Promise only when a credential must actually be checked. Throws/rejects AuthError (401)
   * for bad credentials and ProxyError (503) when a backend (LDAP, the JWKS) cannot answer.
   */
  authenticate(creds: RequestCredentials): Principal | Promise<Principal> {
    const header = creds.authorization;
    if (header === undefined || header === '') {
      if (this.o.mtls && creds.peerCertificate) {
        const p = this.o.mtls.principalOf(creds.peerCertificate);
        if (!p) throw new AuthError('the client certificate names no user (check auth.mtls.userFrom)', this.challenge, 'certificate-without-user');
        return p;
      }
      return ANONYMOUS;
    }
    if (header.length > MAX_HEADER) throw new AuthError('the Authorization header is too long', this.challenge, 'malformed');
    const key = hash('sha256', this.salt + header, 'base64');
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > this.now()) {
      if (hit.error) throw hit.error;
      return hit.principal;
    }
    const running = this.inflight.get(key);
    if (running) return running;
    const check = this.check(header)
      .then(
        (r) => {
          // Frozen: one cached principal answers many requests, none of which may change it.
          const principal = freeze(r.principal);
          // Backends decide from data read in the same run of microtasks as this line (htpasswd
          // re-reads its entry after the slow compare), so a reload cannot slip in between and
          // leave a verdict on replaced data in the cache.
          this.cache.set(key, { principal, expiresAt: Math.min(this.now() + this.ttl, r.expiresAt ?? Infinity) });
          return principal;
        },
        (err: unknown) => {
          // Only definite refusals are remembered; an outage must not outlive itself in the cache.
          if (err instanceof AuthError) this.cache.set(key, { error: err, expiresAt: this.now() + this.failureTtl });
          throw err;
        },
      )
      .finally(() => {
        if (this.inflight.get(key) === check) this.inflight.delete(key);
      });
    this.inflight.set(key, check);
    return check;
  }

  /** The 401 to answer when an anonymous request is denied: it asks the client to sign in. */
  unauthorized(message = 'authentication required: configure credentials for this proxy (a .netrc entry or GOAUTH)'): AuthError {
    return new AuthError(message, this.challenge, 'anonymous-denied');
  }

  /** Forgets cached verdicts (all, or those of one method and every refusal) after users or tokens change. */
  clearCache(method?: AuthMethod): void {
    if (method === undefined) {
      this.cache.clear();
      return;
    }
    for (const [k, v] of this.cache.entries()) {
      if (v.error || v.principal.method === method) this.cache.delete(k);
    }
  }

  private async check(header: string): Promise<{ principal: Principal; expiresAt?: number | null }> {
    const sp = header.indexOf(' ');
    const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
    const value = sp < 0 ? '' : header.slice(sp + 1).trim();
    if (scheme === 'bearer') {
      if (this.o.tokens && looksLikeToken(value)) return this.checkToken(value);
      if (this.o.jwt && looksLikeJwt(value)) return this.checkJwt(value);
      if (this.o.tokens || this.o.jwt) throw this.fail('the bearer token is neither an API token (gmp_...) nor a JWT', 'malformed');
      return { principal: ANONYMOUS };
    }
    if (scheme !== 'basic') return { principal: ANONYMOUS };
    const basic = decodeBasic(value);
    if (!basic) throw this.fail('the Basic credentials are malformed (expected base64 of user:password)', 'malformed');
    const { user, password } = basic;
    if (this.o.tokens && looksLikeToken(password)) return this.checkToken(password);
    if (this.o.jwt && looksLikeJwt(password)) return this.checkJwt(password);
    // Some clients put the token in the user field (login TOKEN, any password), as GitHub accepts.
    if (this.o.tokens && looksLikeToken(user)) return this.checkToken(user);
    if (this.o.jwt && looksLikeJwt(user)) return this.checkJwt(user);
    if (!this.passwords) return { principal: ANONYMOUS };
    if (this.o.htpasswd?.has(user) || !this.o.ldap) {
      if (this.o.htpasswd && (await this.o.htpasswd.verify(user, password))) {
        return { principal: { name: user, groups: [], scopes: [], method: 'htpasswd' } };
      }
      throw this.fail(`wrong user name or password for user "${printable(user)}"`, 'bad-password');
    }
    const verdict = await this.o.ldap.verify(user, password);
    if (!verdict.ok) throw this.fail(`wrong user name or password for user "${printable(user)}"`, verdict.reason);
    return { principal: { name: user, groups: verdict.user.groups, scopes: [], method: 'ldap' } };
  }

  private async checkToken(token: string): Promise<{ principal: Principal; expiresAt: number | null }> {
    const v = await (this.o.tokens as TokenStore).verify(token, this.now());
    if (v.ok) {
      const r = v.record;
      return { principal: { name: r.user, groups: [], scopes: [...r.scopes], method: 'token' }, expiresAt: v.expiresAt };
    }
    const id = v.id ? ` ${v.id}` : '';
    switch (v.reason) {
      case 'expired':
        throw this.fail(`API token${id} has expired; create a new one with gomodproxy token create`, 'token-expired');
      case 'revoked':
        throw this.fail(`API token${id} was revoked; create a new one with gomodproxy token create`, 'token-revoked');
      default:
        throw this.fail('unknown or invalid API token; check the token, or create one with gomodproxy token create', `token-${v.reason}`);
    }
  }

  private async checkJwt(token: string): Promise<{ principal: Principal; expiresAt: number | null }> {
    const v = await (this.o.jwt as JwtVerifier).verify(token);
    if (!v.ok) throw this.fail(`the OIDC token was refused: ${v.detail}`, `jwt-${v.reason}`);
    return { principal: { name: v.name, groups: v.groups, scopes: v.scopes, method: 'jwt' }, expiresAt: v.expiresAt };
  }

  private fail(message: string, reason: string): AuthError {
    return new AuthError(message, this.challenge, reason);
  }

  /** Stops the file watchers of the backends. */
  close(): void {
    this.o.htpasswd?.close();
    this.o.tokens?.close();
  }
}

function freeze(p: Principal): Principal {
  if (Object.isFrozen(p)) return p;
  Object.freeze(p.groups);
  Object.freeze(p.scopes);
  return Object.freeze(p);
}

/** Decodes `Basic` credentials; null when they are not base64 of user:password. */
export function decodeBasic(value: string): { user: string; password: string } | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return null;
  const text = Buffer.from(value, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** A user name as it may appear in a one-line message: bounded, no control characters. */
function printable(user: string): string {
  if (looksLikeToken(user) || looksLikeJwt(user)) return '(hidden)';
  // eslint-disable-next-line no-control-regex
  const clean = user.replace(/[\u0000-\u001f\u007f"]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}
