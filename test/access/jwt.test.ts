// OIDC JWTs against a local issuer (node:http serving discovery and a JWKS made with jose;
// tokens signed here): valid, expired, wrong audience or issuer, unknown key id, forged
// signature, key rotation, discovery, and an issuer that is down answering 503.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, Authenticator, looksLikeJwt, type Principal } from '../../src/access/index.js';
import { JwtVerifier } from '../../src/access/jwt.js';
import type { OidcConfig } from '../../src/config/schema.js';
import { ProxyError } from '../../src/errors.js';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { SecretWatch } from './support/secrets.js';

const watch = new SecretWatch();
const AUD = 'gomodproxy';

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function newKey(kid: string, alg: 'ES256' | 'RS256' = 'ES256'): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

let issuer: string;
let published: JWK[] = [];
let jwksHits = 0;
let k1: Key;
let k2: Key;

beforeAll(async () => {
  k1 = await newKey('k1');
  k2 = await newKey('k2', 'RS256');
  published = [k1.jwk];
  const server = http.createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/keys` }));
    } else if (req.url === '/keys') {
      jwksHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: published }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registerCleanup(() => new Promise((resolve) => server.close(resolve)));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(cleanupAll);

function cfg(extra: Partial<OidcConfig> = {}): OidcConfig {
  return { issuer, jwksUrl: `${issuer}/keys`, audience: AUD, groupsClaim: 'groups', clockTolerance: 0, jwksCooldown: 0, timeout: 30_000, ...extra };
}

async function sign(
  key: Key,
  claims: Record<string, unknown>,
  opts: { exp?: number | string; iss?: string; aud?: string; alg?: string } = {},
): Promise<string> {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? (key.jwk.alg as string), kid: key.kid, typ: 'JWT' })
    .setIssuer(opts.iss ?? issuer)
    .setAudience(opts.aud ?? AUD)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m');
  return watch.secret(await jwt.sign(key.privateKey));
}

async function refusal(v: JwtVerifier, token: string): Promise<string> {
  const r = await v.verify(token);
  if (r.ok) throw new Error('expected a refusal');
  watch.output('jwt refusal', r.detail);
  return r.reason;
}

describe('verification', () => {
  it('accepts a valid token and maps user, groups and scopes', async () => {
    const v = new JwtVerifier(cfg());
    const t = await sign(k1, { sub: 'u-123', preferred_username: 'alice', groups: ['devs', 'ops'], scope: 'modules:read openid', scp: ['extra'] });
    expect(looksLikeJwt(t)).toBe(true);
    const r = await v.verify(t);
    expect(r).toMatchObject({ ok: true, name: 'alice', groups: ['devs', 'ops'], scopes: ['modules:read', 'openid', 'extra'] });
    const sub = await v.verify(await sign(k1, { sub: 'u-123' }));
    expect(sub).toMatchObject({ ok: true, name: 'u-123', groups: [], scopes: [] });
  });

  it('uses a configured user claim and a nested groups claim', async () => {
    const v = new JwtVerifier(cfg({ userClaim: 'email', groupsClaim: 'realm_access.roles' }));
    const r = await v.verify(await sign(k1, { sub: 'x', email: 'a@example.test', realm_access: { roles: ['readers'] } }));
    expect(r).toMatchObject({ ok: true, name: 'a@example.test', groups: ['readers'] });
    expect(await refusal(v, await sign(k1, { sub: 'x' }))).toBe('no-user');
  });

  it('refuses expired tokens, other audiences, other issuers', async () => {
    const v = new JwtVerifier(cfg());
    expect(await refusal(v, await sign(k1, { sub: 'a' }, { exp: Math.floor(Date.now() / 1000) - 60 }))).toBe('expired');
    expect(await refusal(v, await sign(k1, { sub: 'a' }, { aud: 'another-app' }))).toBe('wrong-audience');
    expect(await refusal(v, await sign(k1, { sub: 'a' }, { iss: 'https://evil.example' }))).toBe('wrong-issuer');
  });

  it('refuses an unknown key id, a forged signature under a known kid, and alg none', async () => {
    const v = new JwtVerifier(cfg());
    const stranger = await newKey('k-unknown');
    expect(await refusal(v, await sign(stranger, { sub: 'a' }))).toBe('unknown-key');
    const forger = await newKey('k1'); // claims k1's id, signs with another key
    expect(await refusal(v, await sign(forger, { sub: 'a' }))).toBe('bad-signature');
    const none = watch.secret(new UnsecuredJWT({ sub: 'a' }).setIssuer(issuer).setAudience(AUD).setExpirationTime('5m').encode());
    expect(looksLikeJwt(none)).toBe(false); // no signature part: not even tried as a JWT
    expect(await refusal(v, none)).toBe('malformed');
  });

  it('follows key rotation: a token with a new kid makes it fetch the JWKS again', async () => {
    const v = new JwtVerifier(cfg());
    expect((await v.verify(await sign(k1, { sub: 'a' }))).ok).toBe(true);
    const before = jwksHits;
    published = [k2.jwk];
    try {
      expect(await v.verify(await sign(k2, { sub: 'b' }))).toMatchObject({ ok: true, name: 'b' });
      expect(jwksHits).toBe(before + 1);
      // The retired key is gone from the set now.
      expect(await refusal(v, await sign(k1, { sub: 'a' }))).toBe('unknown-key');
    } finally {
      published = [k1.jwk];
    }
  });

  it('discovers the JWKS from the issuer when jwksUrl is not set', async () => {
    const v = new JwtVerifier(cfg({ jwksUrl: undefined }));
    expect(await v.verify(await sign(k1, { preferred_username: 'disco' }))).toMatchObject({ ok: true, name: 'disco' });
  });

  it('an issuer that is down is a 503 naming it, not a 401', async () => {
    const down = 'http://127.0.0.1:9'; // discard port: nothing listens
    const v = new JwtVerifier(cfg({ issuer: down, jwksUrl: `${down}/keys` }));
    const t = await sign(k1, { sub: 'a' }, { iss: down });
    const err = await v.verify(t).catch((e: unknown) => e);
    watch.error('jwks down', err);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).status).toBe(503);
    expect((err as Error).message).toContain(down);
    const noDiscovery = new JwtVerifier(cfg({ issuer: down, jwksUrl: undefined }));
    const err2 = await noDiscovery.verify(t).catch((e: unknown) => e);
    watch.error('discovery down', err2);
    expect((err2 as ProxyError).status).toBe(503);
  });
});

describe('through the authenticator', () => {
  it('accepts the JWT as Bearer and as the Basic password (how .netrc carries it)', async () => {
    const auth = new Authenticator({ jwt: new JwtVerifier(cfg()) });
    const t = await sign(k1, { preferred_username: 'carol', groups: ['devs'] });
    const bearer = await auth.authenticate({ authorization: `Bearer ${t}` });
    expect(bearer).toEqual({ name: 'carol', groups: ['devs'], scopes: [], method: 'jwt' });
    const basic = await auth.authenticate({ authorization: watch.basic('carol', t) });
    expect(basic.method).toBe('jwt');
    expect(auth.challenge).toBe('Basic realm="gomodproxy", Bearer realm="gomodproxy"');
  });

  it('never trusts a cached token past its exp', async () => {
    let offset = 0;
    const auth = new Authenticator({ jwt: new JwtVerifier(cfg()), cacheTtlMs: 600_000, now: () => Date.now() + offset });
    const t = await sign(k1, { sub: 'short' }, { exp: Math.floor(Date.now() / 1000) + 120 });
    expect((await auth.authenticate({ authorization: `Bearer ${t}` })).name).toBe('short');
    expect((auth.authenticate({ authorization: `Bearer ${t}` }) as Principal).name).toBe('short'); // cached
    offset = 121_000; // past exp, well inside the cache TTL: checked again, not answered from the cache
    const again = auth.authenticate({ authorization: `Bearer ${t}` });
    expect(again).toBeInstanceOf(Promise);
    await again;
  });

  it('an expired token is a 401 with the reason, cached briefly as a refusal', async () => {
    const auth = new Authenticator({ jwt: new JwtVerifier(cfg()) });
    const t = await sign(k1, { sub: 'old' }, { exp: Math.floor(Date.now() / 1000) - 5 });
    const err = await Promise.resolve()
      .then(() => auth.authenticate({ authorization: `Bearer ${t}` }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).reason).toBe('jwt-expired');
    expect((err as AuthError).message).toBe('the OIDC token was refused: the token has expired');
    watch.error('jwt expired', err);
    // The refusal is answered from the cache, synchronously.
    expect(() => auth.authenticate({ authorization: `Bearer ${t}` })).toThrow(AuthError);
  });
});

it('leaks no secret into any output', () => {
  watch.assertClean();
});
