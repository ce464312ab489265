// Composition of the methods: which check a header gets, the synchronous paths (no header, a
// cached hit, a cached refusal), headers that are malformed or of a kind nobody checks, the
// access layer built from configuration, and that the cached hot path does no verifier work.
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ANONYMOUS,
  AccessConfigError,
  AuthError,
  Authenticator,
  HtpasswdFile,
  RateLimiter,
  TokenStore,
  allows,
  createAccess,
  decide,
  decodeBasic,
  tokensFile,
  type Principal,
} from '../../src/access/index.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { SecretWatch } from './support/secrets.js';

const watch = new SecretWatch();
const ALICE_PW = watch.secret('alice-Compose-3141');
let dir: string;
let htpasswd: HtpasswdFile;
let tokens: TokenStore;

/** The AuthError of an attempt, and whether it was thrown synchronously. */
function attempt(auth: Authenticator, authorization: string): { sync: boolean; result: Promise<Principal | AuthError> } {
  try {
    const r = auth.authenticate({ authorization });
    if (!(r instanceof Promise)) return { sync: true, result: Promise.resolve(r) };
    return { sync: false, result: r.catch((e: unknown) => e as AuthError) };
  } catch (e) {
    return { sync: true, result: Promise.resolve(e as AuthError) };
  }
}

beforeAll(async () => {
  dir = await makeTempDir('compose');
  const f = path.join(dir, 'htpasswd');
  await writeFile(f, `alice:${bcrypt.hashSync(ALICE_PW, 4)}\n`);
  htpasswd = await HtpasswdFile.load(f, { pollMs: 0 });
  tokens = await TokenStore.open(tokensFile(dir), { pollMs: 0 });
});
afterAll(async () => {
  htpasswd.close();
  tokens.close();
  await cleanupAll();
});

describe('which check a header gets', () => {
  it('no header is the anonymous principal, synchronously', () => {
    const auth = new Authenticator({ htpasswd });
    expect(auth.authenticate({})).toBe(ANONYMOUS);
    expect(auth.authenticate({ authorization: '' })).toBe(ANONYMOUS);
    expect(Object.isFrozen(ANONYMOUS)).toBe(true);
  });

  it('Basic goes to htpasswd; a token-shaped password goes to the token store, never to htpasswd', async () => {
    const auth = new Authenticator({ htpasswd, tokens });
    expect(await auth.authenticate({ authorization: watch.basic('alice', ALICE_PW) })).toEqual({ name: 'alice', groups: [], scopes: [], method: 'htpasswd' });
    const t = await tokens.create({ user: 'alice', scopes: ['s1'], expiresInMs: 60_000 });
    watch.secret(t.token);
    expect(await auth.authenticate({ authorization: watch.basic('alice', t.token) })).toEqual({ name: 'alice', groups: [], scopes: ['s1'], method: 'token' });
    expect(await auth.authenticate({ authorization: `bearer ${t.token}` })).toMatchObject({ method: 'token' });
  });

  it('a wrong password is a 401 that names the user and carries the challenge', async () => {
    const auth = new Authenticator({ htpasswd, tokens, realm: 'corp go' });
    const { result } = attempt(auth, watch.basic('alice', 'wrong-Password-2718'));
    const err = (await result) as AuthError;
    watch.error('compose 401', err);
    expect(err).toBeInstanceOf(AuthError);
    expect(err.status).toBe(401);
    expect(err.message).toBe('wrong user name or password for user "alice"');
    expect(err.challenge).toBe('Basic realm="corp go", Bearer realm="corp go"');
    expect(new Authenticator({ htpasswd }).challenge).toBe('Basic realm="gomodproxy"');
  });

  it('malformed credentials are a 401; credentials of a kind no method checks are ignored (anonymous)', async () => {
    const auth = new Authenticator({ htpasswd, tokens });
    for (const bad of ['Basic !!!', 'Basic ' + Buffer.from('no-colon').toString('base64'), 'Bearer not-a-token']) {
      const err = (await attempt(auth, bad).result) as AuthError;
      watch.error('malformed', err);
      expect(err).toBeInstanceOf(AuthError);
      expect(err.reason).toBe('malformed');
    }
    expect(await attempt(auth, 'Negotiate abc').result).toBe(ANONYMOUS);
    // A .netrc password sent to a proxy that checks no passwords grants nothing and breaks nothing.
    const bare = new Authenticator({ tokens });
    expect(await attempt(bare, watch.basic('someone', 'netrc-Password-1')).result).toBe(ANONYMOUS);
    const err = (await attempt(new Authenticator({ htpasswd }), 'Basic ' + 'A'.repeat(20_000)).result) as AuthError;
    expect(err.message).toBe('the Authorization header is too long');
  });

  it('decodes Basic strictly, keeping colons in the password', () => {
    expect(decodeBasic(Buffer.from('u:p:q').toString('base64'))).toEqual({ user: 'u', password: 'p:q' });
    expect(decodeBasic('***')).toBeNull();
  });
});

describe('the cache', () => {
  it('answers a repeated header synchronously, success and refusal alike, and expires both', async () => {
    let now = 1_000_000;
    const auth = new Authenticator({ htpasswd, cacheTtlMs: 1000, failureTtlMs: 500, now: () => now });
    const good = watch.basic('alice', ALICE_PW);
    const bad = watch.basic('alice', 'wrong-Password-1618');
    expect(attempt(auth, good).sync).toBe(false);
    await attempt(auth, good).result;
    const hit = attempt(auth, good);
    expect(hit.sync).toBe(true);
    expect(((await hit.result) as Principal).name).toBe('alice');
    await attempt(auth, bad).result;
    const refused = attempt(auth, bad);
    expect(refused.sync).toBe(true); // the brute-force retry costs no bcrypt round
    expect(await refused.result).toBeInstanceOf(AuthError);
    now += 600;
    expect(attempt(auth, bad).sync).toBe(false);
    expect(attempt(auth, good).sync).toBe(true);
    now += 500;
    expect(attempt(auth, good).sync).toBe(false);
  });

  it('is bounded', async () => {
    const auth = new Authenticator({ tokens, maxEntries: 3 });
    for (let i = 0; i < 10; i++) await attempt(auth, `Bearer gmp_${String(i).padStart(12, '0')}_${'x'.repeat(43)}`).result;
    expect((auth as unknown as { cache: { size: number } }).cache.size).toBe(3);
  });

  it('answers a cached hit from memory: no bcrypt compare and no token lookup again, synchronously, the same frozen principal', async () => {
    const auth = new Authenticator({ htpasswd, tokens });
    const bcryptRounds = vi.spyOn(htpasswd, 'verify');
    const tokenLookups = vi.spyOn(tokens, 'verify');
    try {
      const header = watch.basic('alice', ALICE_PW);
      const first = await auth.authenticate({ authorization: header });
      expect(bcryptRounds).toHaveBeenCalledTimes(1);
      const rules = ['group:devs', 'user:alice'];
      const n = 50_000;
      for (let i = 0; i < n; i++) {
        const p = auth.authenticate({ authorization: header });
        // A Promise here would cost every request at least a microtask turn, and mean a check ran.
        if (p instanceof Promise) throw new Error(`hit ${i} was not answered synchronously`);
        if (p !== first) throw new Error(`hit ${i} answered another principal object`);
        if (!allows(rules, p)) throw new Error('denied');
      }
      expect(Object.isFrozen(first)).toBe(true);
      expect(bcryptRounds).toHaveBeenCalledTimes(1);
      expect(tokenLookups).not.toHaveBeenCalled();
    } finally {
      bcryptRounds.mockRestore();
      tokenLookups.mockRestore();
    }
  });
});

describe('built from configuration', () => {
  it('with nothing configured: anonymous and allowed, nothing limited, nothing audited', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'gmp-auth-cfg-'));
    const config = loadConfig({ env: {}, cwd });
    expect(config.auth.tokens.enabled).toBe(true);
    const access = await createAccess(config.auth, { dataDir: config.data });
    try {
      const p = access.authenticator.authenticate({ remoteAddress: '127.0.0.1' });
      expect(p).toBe(ANONYMOUS);
      expect(access.authenticator.methods).toEqual(['anonymous', 'token']);
      expect(allows(access.metricsRules, ANONYMOUS)).toBe(true);
      expect(allows(access.adminRules, ANONYMOUS)).toBe(false);
      expect(access.rateLimiter.enabled).toBe(false);
      expect(access.fetchLimiter.enabled).toBe(false);
      expect(access.audit.enabled).toBe(false);
    } finally {
      await access.close();
    }
  });

  it('reads the auth block from YAML and the environment', async () => {
    const cwd = await makeTempDir('auth-yaml');
    const file = path.join(cwd, 'gomodproxy.yaml');
    await writeFile(
      file,
      [
        'auth:',
        `  htpasswd: ${path.join(dir, 'htpasswd')}`,
        '  ldap:',
        '    url: ldap://ldap.example.test',
        '    userDn: uid={user},ou=people,dc=example,dc=test',
        '  oidc:',
        '    issuer: https://idp.example.test',
        '    audience: [gomodproxy, go]',
        '  mtls:',
        '    userFrom: email',
        '    groups: { ci@example.test: [ci] }',
        '  cache: { ttl: 2m }',
        '  rateLimit: { requestsPerSecond: 20 }',
        '  fetchConcurrencyPerClient: 8',
        `  audit: { enabled: true, file: ${path.join(cwd, 'audit.log')} }`,
        '  metrics: [group:ops]',
      ].join('\n'),
    );
    const config = loadConfig({ file, cwd, env: { GOMODPROXY_AUTH_RATE_LIMIT_BURST: '50', GOMODPROXY_AUTH_REALM: 'corp' } });
    expect(config.auth.cache.ttl).toBe(120_000);
    expect(config.auth.rateLimit).toEqual({ requestsPerSecond: 20, burst: 50 });
    expect(config.auth.ldap?.groups.from).toBe('memberOf');
    expect(config.auth.realm).toBe('corp');
    const access = await createAccess(config.auth, { dataDir: path.join(cwd, 'data') });
    try {
      expect(access.authenticator.methods).toEqual(['anonymous', 'htpasswd', 'ldap', 'token', 'jwt', 'mtls']);
      expect(access.rateLimiter.burst).toBe(50);
      expect(access.fetchLimiter.perClient).toBe(8);
      expect(access.audit.enabled).toBe(true);
      expect(allows(access.metricsRules, ANONYMOUS)).toBe(false);
    } finally {
      await access.close();
    }
  });

  it('names the setting and the fix when the auth block is wrong', async () => {
    const cwd = await makeTempDir('auth-bad');
    const bad = (env: Record<string, string>): string => {
      try {
        loadConfig({ env, cwd });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(bad({ GOMODPROXY_AUTH_LDAP_URL: 'ldap://x' })).toMatch(/auth\.ldap.*set exactly one of userDn/);
    expect(bad({ GOMODPROXY_AUTH_METRICS: '[admins]' })).toMatch(/auth\.metrics\[0\].*expected anonymous, authenticated, user:<name>/);
    expect(bad({ GOMODPROXY_AUTH_OIDC_ISSUER: 'https://idp.example.test' })).toMatch(/auth\.oidc\.audience/);
    const weak = path.join(cwd, 'weak');
    await writeFile(weak, 'eve:{SHA}abc\n');
    const config = loadConfig({ env: { GOMODPROXY_AUTH_HTPASSWD: weak }, cwd });
    const err = await createAccess(config.auth, { dataDir: cwd }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessConfigError);
    expect((err as Error).message).toMatch(/^invalid setting auth\.htpasswd: htpasswd file .*weak: user "eve" \(line 1\) has a SHA-1/);
  });
});

describe('decide: authenticate, rate limit, rules in one call', () => {
  it('allows, asks anonymous to sign in (401), denies with 403 or hides with 404', async () => {
    const g = { authenticator: new Authenticator({ htpasswd }), rateLimiter: new RateLimiter({ requestsPerSecond: 0 }) };
    const anon = decide(g, { remoteAddress: '10.0.0.1' }, ['anonymous']);
    expect(anon).toEqual({ allowed: true, principal: ANONYMOUS, client: 'addr:10.0.0.1' });
    const signIn = decide(g, { remoteAddress: '10.0.0.1' }, ['group:devs']);
    expect(signIn).toMatchObject({ allowed: false, status: 401, headers: { 'WWW-Authenticate': 'Basic realm="gomodproxy"' }, reason: 'sign-in-required' });
    const header = watch.basic('alice', ALICE_PW);
    const ok = await decide(g, { authorization: header, remoteAddress: '10.0.0.1' }, ['user:alice']);
    expect(ok).toMatchObject({ allowed: true, client: 'user:alice' });
    // Cached now: the decision is synchronous.
    const denied = decide(g, { authorization: header }, ['group:devs'], { subject: 'corp.example/secret' });
    expect(denied).toMatchObject({
      allowed: false,
      status: 403,
      message: 'access to corp.example/secret is denied for user alice (htpasswd); ask an administrator to grant it',
    });
    const hidden = decide(g, { authorization: header }, ['group:devs'], { deniedStatus: 404, notFoundMessage: 'corp.example/secret: not found' });
    expect(hidden).toMatchObject({ allowed: false, status: 404, message: 'corp.example/secret: not found', reason: 'denied-hidden' });
  });

  it('a bad password is a 401 with the challenge; repeated guessing from one address soon gets 429 with Retry-After', async () => {
    const g = { authenticator: new Authenticator({ htpasswd }), rateLimiter: new RateLimiter({ requestsPerSecond: 1, burst: 3 }) };
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const d = await decide(g, { authorization: watch.basic('alice', `guess-Number-${i}000`), remoteAddress: '10.6.6.6' }, ['authenticated']);
      if (d.allowed) throw new Error('a guess got in');
      watch.output('decision', d.message);
      statuses.push(d.status);
      if (d.status === 429) expect(d.headers['Retry-After']).toBe('1');
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // Another address is not affected.
    const other = await decide(g, { authorization: watch.basic('alice', ALICE_PW), remoteAddress: '10.7.7.7' }, ['authenticated']);
    expect(other.allowed).toBe(true);
  });
});

it('leaks no secret into any output', () => {
  watch.assertClean();
});
