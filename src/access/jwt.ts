// OIDC / OAuth2 access tokens (JWTs) verified against the issuer's JWKS: signature, issuer,
// audience, expiry. jose's remote key set caches the keys and fetches again when a token names
// a key id it has not seen (rotation), at most once per cool-down.
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import type { OidcConfig } from '../config/schema.js';
import { ProxyError, errorMessage } from '../errors.js';
import { looksLikeJwt } from './credentials.js';

export type JwtVerdict =
  | { ok: true; name: string; groups: string[]; scopes: string[]; expiresAt: number | null }
  | {
      ok: false;
      reason: 'expired' | 'bad-signature' | 'unknown-key' | 'wrong-issuer' | 'wrong-audience' | 'malformed' | 'no-user' | 'rejected';
      detail: string;
    };

/** A claim by dotted path (realm_access.roles); undefined when any step is missing. */
function claimAt(payload: JWTPayload, dotted: string): unknown {
  if (Object.hasOwn(payload, dotted)) return payload[dotted];
  let cur: unknown = payload;
  for (const part of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** An array of strings, or one space-separated string (the `scope` claim's form). */
function stringList(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/\s+/).filter((s) => s !== '');
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '');
  return [];
}

export class JwtVerifier {
  private jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private discovering: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  constructor(private readonly cfg: OidcConfig) {
    if (cfg.jwksUrl) this.jwks = this.keySet(new URL(cfg.jwksUrl));
  }

  get issuer(): string {
    return this.cfg.issuer;
  }

  /** Verifies a compact JWT. Resolves a verdict for a bad token; rejects with a 503 when the keys cannot be had. */
  async verify(token: string): Promise<JwtVerdict> {
    if (!looksLikeJwt(token)) return { ok: false, reason: 'malformed', detail: 'not a JWT' };
    const jwks = this.jwks ?? (await this.discover());
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        algorithms: this.cfg.algorithms,
        clockTolerance: Math.round(this.cfg.clockTolerance / 1000),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return this.verdictOf(err);
    }
    const name = this.userOf(payload);
    if (!name) {
      return { ok: false, reason: 'no-user', detail: `the token has no ${this.cfg.userClaim ?? 'preferred_username or sub'} claim naming the user` };
    }
    const scopes = [...new Set([...stringList(payload.scope), ...stringList(payload.scp)])];
    return {
      ok: true,
      name,
      groups: [...new Set(stringList(claimAt(payload, this.cfg.groupsClaim)))],
      scopes,
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
    };
  }

  private userOf(payload: JWTPayload): string | null {
    const candidates = this.cfg.userClaim ? [this.cfg.userClaim] : ['preferred_username', 'sub'];
    for (const c of candidates) {
      const v = claimAt(payload, c);
      if (typeof v === 'string' && v !== '') return v;
    }
    return null;
  }

  private verdictOf(err: unknown): JwtVerdict {
    if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', detail: 'the token has expired' };
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === 'iss') return { ok: false, reason: 'wrong-issuer', detail: `the token was not issued by ${this.cfg.issuer}` };
      if (err.claim === 'aud') return { ok: false, reason: 'wrong-audience', detail: 'the token is meant for another audience' };
      return { ok: false, reason: 'rejected', detail: `claim ${err.claim}: ${err.reason}` };
    }
    if (err instanceof errors.JWKSNoMatchingKey)
      return { ok: false, reason: 'unknown-key', detail: 'the token is signed with a key the issuer does not publish' };
    if (err instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: 'bad-signature', detail: 'the token signature does not verify' };
    if (err instanceof errors.JOSEAlgNotAllowed) return { ok: false, reason: 'rejected', detail: 'the token uses a signature algorithm that is not allowed' };
    if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JOSENotSupported) {
      return { ok: false, reason: 'malformed', detail: 'the token is not a valid signed JWT' };
    }
    // Timeouts, refused connections, a JWKS that is not JSON: the issuer is not answering properly.
    throw new ProxyError(
      'unavailable',
      `cannot check the token: the key set of ${this.cfg.issuer} could not be fetched (${err instanceof errors.JOSEError ? err.code : errorCode(err)}); the identity provider may be down`,
      { cause: err },
    );
  }

  private keySet(url: URL): ReturnType<typeof createRemoteJWKSet> {
    return createRemoteJWKSet(url, {
      timeoutDuration: this.cfg.timeout,
      cooldownDuration: this.cfg.jwksCooldown,
      cacheMaxAge: 10 * 60_000,
    });
  }

  /** OIDC discovery: the issuer's /.well-known/openid-configuration names its jwks_uri. */
  private discover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    this.discovering ??= (async () => {
      const url = `${this.cfg.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      let doc: { jwks_uri?: unknown; issuer?: unknown };
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(this.cfg.timeout), redirect: 'error' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        doc = (await res.json()) as typeof doc;
      } catch (err) {
        throw new ProxyError(
          'unavailable',
          `cannot check the token: OIDC discovery at ${url} failed (${errorCode(err)}); set auth.oidc.jwksUrl or check the issuer`,
          { cause: err },
        );
      }
      if (typeof doc.jwks_uri !== 'string') {
        throw new ProxyError('unavailable', `cannot check the token: ${url} names no jwks_uri; set auth.oidc.jwksUrl`);
      }
      this.jwks = this.keySet(new URL(doc.jwks_uri));
      return this.jwks;
    })();
    // A failed discovery is tried again by the next request rather than remembered forever.
    this.discovering.catch(() => {
      this.discovering = undefined;
    });
    return this.discovering;
  }
}

function errorCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code ?? (err as NodeJS.ErrnoException).code ?? errorMessage(err);
}
