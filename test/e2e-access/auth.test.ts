// Sign-in as the go command does it, end to end: gomodproxy serves HTTPS with a certificate from
// a test CA (the go command trusts it through SSL_CERT_FILE, and sends .netrc credentials only
// over https), routes restricted to users, groups and token scopes, and every way in the go
// command can use: an htpasswd password, an API token and an OIDC JWT as the .netrc password, a
// token as a Bearer header. Then TLS itself (1.1 refused, the certificate reloaded on SIGHUP),
// the audit file, and a scan of everything written during the run for any secret.
import { readFile, writeFile, copyFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectOneLineError, waitFor } from '../e2e/util.js';
import { gomodproxy } from '../e2e-sumdb/util.js';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import {
  basic,
  fetchAs,
  findSecrets,
  fingerprint256,
  issue,
  makeServerPki,
  proxyOutput,
  readAudit,
  secretForms,
  startProxyWithConfig,
  writeHtpasswd,
  writeNetrc,
  type ServerPki,
} from './util.js';

const OPEN = 'github.com/gmp-acc/open';
const TEAM = 'github.com/gmp-acc/team';
const HIDDEN = 'github.com/gmp-acc/hidden';

const ALICE_PW = 'alice-Pa55word-7f3a9c';
const BOB_PW = 'bob-Pa55word-91bd0e';
const WRONG_PW = 'not-alices-Pa55word-11';

let world: World;
let upstream: TestUpstream;
let pki: ServerPki;
let proxy: ProxyProcess;
let origin: string;
let auditFile: string;
let dataDir: string;
let ciToken: string;
let bobToken: string;
let jwtCarol: string;
let jwtMallory: string;
let lateToken = '';
/** Everything the go command printed in this file, for the secret scan. */
const goOutputs: Array<[string, string]> = [];

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: OPEN, versions: [{ version: 'v1.0.0' }] },
      { path: TEAM, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      { path: HIDDEN, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  pki = await makeServerPki();
  const dir = await makeTempDir('auth');
  const htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, { alice: ALICE_PW, bob: BOB_PW });
  dataDir = path.join(dir, 'data');
  auditFile = path.join(dir, 'audit', 'audit.jsonl');

  // API tokens, made the way an operator makes them, before the server starts (it also picks up later ones).
  const created = await gomodproxy(['token', 'create', '--user', 'ci', '--scope', 'builds', '--expires', '30d', '--data', dataDir]);
  expect(created.code, created.stderr).toBe(0);
  ciToken = created.stdout.trim();
  expect(created.stderr).not.toContain(ciToken);
  const bobs = await gomodproxy(['token', 'create', '--user', 'bob', '--data', dataDir]);
  bobToken = bobs.stdout.trim();

  // A local OIDC issuer: discovery and a JWKS, tokens signed here.
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const issuerServer = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/keys` }));
    else if (req.url === '/keys') res.end(JSON.stringify({ keys: [jwk] }));
    else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => issuerServer.listen(0, '127.0.0.1', resolve));
  registerCleanup(() => new Promise((resolve) => issuerServer.close(resolve)));
  const issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;
  const sign = (claims: Record<string, unknown>): Promise<string> =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience('gomodproxy')
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
  jwtCarol = await sign({ sub: 'u-1001', preferred_username: 'carol', groups: ['devs'] });
  jwtMallory = await sign({ sub: 'u-1002', preferred_username: 'mallory', groups: ['guests'] });

  proxy = await startProxyWithConfig(
    {
      tls: { cert: pki.server.certPath, key: pki.server.keyPath },
      read: ['anonymous'],
      routes: [
        { match: 'github.com/gmp-acc/team', read: ['user:alice', 'scope:builds', 'group:devs'] },
        { match: 'github.com/gmp-acc/hidden', read: ['user:alice', 'group:devs'], deniedAs: 'not-found' },
      ],
      auth: {
        htpasswd,
        oidc: { issuer, jwksUrl: `${issuer}/keys`, audience: 'gomodproxy' },
        audit: { enabled: true, file: auditFile },
        metrics: ['user:alice'],
      },
    },
    { upstream: upstream.url, dataDir },
  );
  expect(proxy.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  origin = proxy.url;
});
afterAll(cleanupAll);

/** A go env that trusts the test CA and talks to the proxy, with `.netrc` lines for it (if any). */
async function goUser(netrc?: { login: string; password: string }): Promise<GoEnv> {
  const env = await createGoEnv({ goproxy: origin, env: { SSL_CERT_FILE: pki.ca.certPath } });
  if (netrc) {
    const file = path.join(env.home, '.netrc');
    // The go command looks credentials up by host:port (no scheme) for a non-default port.
    await writeNetrc(file, [{ machine: new URL(origin).host, ...netrc }]);
  }
  return env;
}

async function download(env: GoEnv, mods: string[]): Promise<Array<{ Path: string; Version: string; Sum?: string; GoModSum?: string; Error?: string }>> {
  const r = await env.go(['mod', 'download', '-json', ...mods], { allowFail: true });
  goOutputs.push([`go mod download ${mods.join(' ')}`, r.stdout + r.stderr]);
  const { parseJsonStream } = await import('../helpers/goenv.js');
  return parseJsonStream(r.stdout) as Array<{ Path: string; Version: string; Sum?: string; GoModSum?: string; Error?: string }>;
}

const sums = (mods: string[]) => mods.map((m) => [world.get(m).Sum, world.get(m).GoModSum]);

describe('the go command signs in from .netrc over HTTPS', () => {
  test('an htpasswd user reads the restricted and the hidden route; sums equal direct', async () => {
    const env = await goUser({ login: 'alice', password: ALICE_PW });
    const mods = [`${TEAM}@v1.1.0`, `${HIDDEN}@v1.0.0`, `${OPEN}@v1.0.0`];
    const got = await download(env, mods);
    expect(got.map((r) => r.Error ?? null)).toEqual([null, null, null]);
    expect(got.map((r) => [r.Sum, r.GoModSum])).toEqual(sums(mods));
    // go list resolves @latest through the protected list
    const r = await env.go(['list', '-m', '-json', `${TEAM}@latest`]);
    expect(JSON.parse(r.stdout).Version).toBe('v1.1.0');
  });

  test('no credentials: 401 with WWW-Authenticate; the go command prints the one-line reason; open modules still work', async () => {
    const env = await goUser();
    const [team] = await download(env, [`${TEAM}@v1.0.0`]);
    expect(team?.Error).toMatch(
      /401 Unauthorized\n\tserver response: authentication required: configure credentials for this proxy \(a \.netrc entry or GOAUTH\)/,
    );
    // hidden routes also ask an anonymous user to sign in (a missing .netrc must not look like "not found")
    const [hidden] = await download(env, [`${HIDDEN}@v1.0.0`]);
    expect(hidden?.Error).toMatch(/401 Unauthorized/);
    const [open] = await download(env, [`${OPEN}@v1.0.0`]);
    expect(open?.Sum).toBe(world.get(`${OPEN}@v1.0.0`).Sum);

    const res = await fetchAs(`${origin}/${TEAM}/@v/list`, { ca: pki.ca.cert });
    expectOneLineError(res, 401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm="gomodproxy"/);
    expect(res.headers['www-authenticate']).toContain('Bearer realm="gomodproxy"');
  });

  test('a signed-in user the route does not name: 403 saying so; on the hidden route 404', async () => {
    const env = await goUser({ login: 'bob', password: BOB_PW });
    const [team] = await download(env, [`${TEAM}@v1.0.0`]);
    expect(team?.Error).toMatch(
      /403 Forbidden\n\tserver response: access to github\.com\/gmp-acc\/team is denied for user bob \(htpasswd\); ask an administrator to grant it/,
    );
    const [hidden] = await download(env, [`${HIDDEN}@v1.0.0`]);
    expect(hidden?.Error).toMatch(/404 Not Found\n\tserver response: not found: github\.com\/gmp-acc\/hidden: no such module here, or you may not read it/);
    // every kind of request on the hidden route reads like any other not-found
    for (const p of ['@v/list', '@latest', '@v/v1.0.0.info', '@v/main.info', '@v/v1.0.0.mod', '@v/v1.0.0.zip']) {
      const line = expectOneLineError(await fetchAs(`${origin}/${HIDDEN}/${p}`, { ca: pki.ca.cert }, { authorization: basic('bob', BOB_PW) }), 404);
      expect(line).toMatch(/^not found: /);
    }
  });

  test('a wrong password: 401 on the restricted route; on an open route it counts as anonymous', async () => {
    const env = await goUser({ login: 'alice', password: WRONG_PW });
    const [team] = await download(env, [`${TEAM}@v1.0.0`]);
    expect(team?.Error).toMatch(/401 Unauthorized\n\tserver response: wrong user name or password for user "alice"/);
    const [open] = await download(env, [`${OPEN}@v1.0.0`]);
    expect(open?.Sum).toBe(world.get(`${OPEN}@v1.0.0`).Sum);
  });

  test('an API token as the .netrc password (scope:builds); as a Bearer header; a wrong or unscoped token refused', async () => {
    const env = await goUser({ login: 'ci', password: ciToken });
    const mods = [`${TEAM}@v1.0.0`];
    const got = await download(env, mods);
    expect(got.map((r) => [r.Sum, r.GoModSum])).toEqual(sums(mods));

    const ok = await fetchAs(`${origin}/${TEAM}/@v/v1.1.0.mod`, { ca: pki.ca.cert }, { authorization: `Bearer ${ciToken}` });
    expect(ok.status).toBe(200);
    expect(ok.text()).toBe(world.get(`${TEAM}@v1.1.0`).modText);
    // bob's token carries no scope, and bob is not named: 403 for the token's user
    expectOneLineError(await fetchAs(`${origin}/${TEAM}/@v/v1.1.0.mod`, { ca: pki.ca.cert }, { authorization: `Bearer ${bobToken}` }), 403);
    // a token that was never issued (right shape, wrong secret)
    const forged = ciToken.replace(/.{4}$/, (s) => (s === 'AAAA' ? 'BBBB' : 'AAAA'));
    const bad = expectOneLineError(await fetchAs(`${origin}/${TEAM}/@v/v1.1.0.mod`, { ca: pki.ca.cert }, { authorization: `Bearer ${forged}` }), 401);
    expect(bad).toMatch(/unknown or invalid API token/);
    expect(bad).not.toContain(forged);
  });

  test('a token created while the server runs is accepted without a restart', async () => {
    const later = await gomodproxy(['token', 'create', '--user', 'late', '--scope', 'builds', '--data', dataDir]);
    expect(later.code, later.stderr).toBe(0);
    const token = later.stdout.trim();
    lateToken = token;
    const res = await waitFor(
      async () => {
        const r = await fetchAs(`${origin}/${TEAM}/@v/v1.0.0.info`, { ca: pki.ca.cert }, { authorization: basic('late', token) });
        return r.status === 200 ? r : undefined;
      },
      'the new token to be accepted',
      10_000,
      250,
    );
    expect(res.json<{ Version: string }>().Version).toBe('v1.0.0');
  });

  test('an OIDC JWT as the .netrc password: group devs reads both routes; another group is refused', async () => {
    const env = await goUser({ login: 'carol', password: jwtCarol });
    const mods = [`${TEAM}@v1.0.0`, `${HIDDEN}@v1.0.0`];
    expect((await download(env, mods)).map((r) => [r.Sum, r.GoModSum])).toEqual(sums(mods));

    const envM = await goUser({ login: 'mallory', password: jwtMallory });
    const [team] = await download(envM, [`${TEAM}@v1.1.0`]);
    expect(team?.Error).toMatch(/403 Forbidden\n\tserver response: access to github\.com\/gmp-acc\/team is denied for user mallory \(jwt\)/);
    // as a Bearer header too
    const r = await fetchAs(`${origin}/${HIDDEN}/@v/list`, { ca: pki.ca.cert }, { authorization: `Bearer ${jwtCarol}` });
    expect(r.status).toBe(200);
    expect(r.text()).toContain('v1.0.0');
  });
});

describe('operations endpoints', () => {
  test('/metrics needs the role auth.metrics names; /healthz and /readyz stay open', async () => {
    const m = (h: Record<string, string> = {}) => fetchAs(`${origin}/metrics`, { ca: pki.ca.cert }, h);
    const anon = await m();
    expect(expectOneLineError(anon, 401)).toMatch(/authentication required/);
    expect(anon.headers['www-authenticate']).toMatch(/Basic/);
    expect(expectOneLineError(await m({ authorization: basic('bob', BOB_PW) }), 403)).toMatch(/denied for user bob/);
    const ok = await m({ authorization: basic('alice', ALICE_PW) });
    expect(ok.status).toBe(200);
    expect(ok.text()).toMatch(/^gomodproxy_requests_total/m);
    for (const p of ['/healthz', '/readyz']) expect((await fetchAs(`${origin}${p}`, { ca: pki.ca.cert })).status, p).toBe(200);
  });
});

describe('TLS', () => {
  test('TLS 1.2 and 1.3 are accepted; TLS 1.1 is refused (a control server shows the client can speak it)', async () => {
    const connect = (port: number, opts: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: pki.ca.cert, servername: 'localhost', ...opts }, () => {
          const v = s.getProtocol() ?? '?';
          s.end();
          resolve(v);
        });
        s.once('error', reject);
      });
    const port = Number(new URL(origin).port);
    expect(await connect(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).toBe('TLSv1.2');
    expect(await connect(port, { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' })).toBe('TLSv1.3');
    const old: tls.ConnectionOptions = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' };
    // The same client settings against a server that still allows TLS 1.1 do connect with it.
    const control = tls.createServer({ cert: pki.server.cert, key: pki.server.key, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    registerCleanup(() => new Promise((resolve) => control.close(resolve)));
    expect(await connect((control.address() as AddressInfo).port, old)).toBe('TLSv1.1');
    const refused = await connect(port, old).then(
      (v) => `connected with ${v}`,
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/protocol version|unsupported protocol|alert/i);
    // The proxy is still up and serving.
    expect((await fetchAs(`${origin}/healthz`, { ca: pki.ca.cert })).status).toBe(200);
  });

  test('SIGHUP reloads the certificate: new connections get the new one, no restart', async () => {
    const peer = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: Number(new URL(origin).port), ca: pki.ca.cert, servername: 'localhost' }, () => {
          const fp = s.getPeerCertificate().fingerprint256;
          s.end();
          resolve(fp);
        });
        s.once('error', reject);
      });
    const before = await peer();
    expect(before).toBe(fingerprint256(pki.server.cert));
    const pid = proxy.proc.pid;
    // A renewed certificate, written over the configured files (as certbot or an operator would).
    const renewedDir = await makeTempDir('renewed');
    const renewed = await issue(pki.ca, renewedDir, {
      name: 'server2',
      subject: '/CN=127.0.0.1 renewed',
      san: 'IP:127.0.0.1,DNS:localhost',
      usage: 'serverAuth',
    });
    await copyFile(renewed.keyPath, pki.server.keyPath);
    await copyFile(renewed.certPath, pki.server.certPath);
    proxy.proc.kill('SIGHUP');
    await proxy.waitForLog((l) => l.msg === 'TLS certificate reloaded');
    expect(await peer()).toBe(fingerprint256(renewed.cert));
    expect(proxy.proc.pid).toBe(pid);
    expect(proxy.proc.exitCode).toBeNull();
    // and the go command still trusts and uses it
    const env = await goUser({ login: 'alice', password: ALICE_PW });
    const [r] = await download(env, [`${TEAM}@v1.0.0`]);
    expect(r?.Sum).toBe(world.get(`${TEAM}@v1.0.0`).Sum);
    // A broken certificate file on the next SIGHUP keeps the current one in force.
    await writeFile(pki.server.certPath, 'not a certificate\n');
    proxy.proc.kill('SIGHUP');
    await proxy.waitForLog((l) => String(l.msg).startsWith('TLS reload failed'));
    expect(await peer()).toBe(fingerprint256(renewed.cert));
    await writeFile(pki.server.certPath, renewed.cert);
  });
});

describe('audit and secrets', () => {
  test('the audit file has one JSON line per request: user, address, module, version, kind, status, bytes', async () => {
    // Lines are written asynchronously: wait for the last requests of the tests above.
    const lines = await waitFor(
      async () => {
        const l = await readAudit(auditFile);
        return l.some((x) => x.module === HIDDEN && x.kind === 'list' && x.status === 200) &&
          l.some((x) => x.status === 403 && x.kind === 'info' && x.version === 'v1.1.0')
          ? l
          : undefined;
      },
      'audit lines',
      10_000,
      100,
    );
    for (const l of lines) {
      expect(l.log).toBe('audit');
      expect(typeof l.time).toBe('string');
      expect(typeof l.status).toBe('number');
      expect(typeof l.allowed).toBe('boolean');
      expect(l.address).toMatch(/127\.0\.0\.1/);
      expect(l.kind).not.toBe('ops');
    }
    const aliceZip = lines.find((l) => l.user === 'alice' && l.kind === 'zip' && l.module === TEAM && l.version === 'v1.1.0');
    expect(aliceZip).toMatchObject({ method: 'htpasswd', status: 200, allowed: true });
    expect(Number(aliceZip!.bytes)).toBeGreaterThan(400);
    expect(lines.find((l) => l.user === 'anonymous' && l.module === TEAM && l.status === 401)).toMatchObject({ allowed: false, reason: 'sign-in-required' });
    expect(lines.find((l) => l.module === TEAM && l.status === 401 && l.reason === 'bad-password')).toMatchObject({ allowed: false });
    expect(lines.find((l) => l.user === 'ci' && l.module === TEAM && l.status === 200)).toMatchObject({ method: 'token' });
    expect(lines.find((l) => l.user === 'carol' && l.module === HIDDEN && l.status === 200)).toMatchObject({ method: 'jwt' });
    expect(lines.find((l) => l.user === 'anonymous' && l.module === OPEN && l.status === 200 && l.kind === 'zip')).toBeTruthy();
    // Who was refused matters as much as who was served: a signed-in user denied by a route is
    // named in the audit line, not recorded as anonymous.
    const denied = lines.filter((l) => l.status === 403 || (l.status === 404 && l.module === HIDDEN));
    expect(denied.length).toBeGreaterThan(0);
    expect(denied.map((l) => `${String(l.user)}/${String(l.method)} ${String(l.status)} ${String(l.reason)}`).sort()).toEqual(
      expect.arrayContaining(['bob/htpasswd 403 denied', 'bob/htpasswd 404 denied-hidden', 'mallory/jwt 403 denied', 'bob/token 403 denied']),
    );
    expect(denied.filter((l) => l.user === 'anonymous')).toEqual([]);
    // the audit log is not the debug log: no audit line on stdout
    expect(proxy.logs().filter((l) => l.log === 'audit')).toEqual([]);
  });

  test('no password, token, JWT or Authorization value appears in any log, audit line, error line or go output', async () => {
    const secrets = secretForms([
      { user: 'alice', password: ALICE_PW },
      { user: 'bob', password: BOB_PW },
      { user: 'alice', password: WRONG_PW },
      { user: 'ci', password: ciToken },
      { user: 'late', password: lateToken },
      { user: 'carol', password: jwtCarol },
      { user: 'mallory', password: jwtMallory },
      ciToken,
      bobToken,
      lateToken,
      jwtCarol,
      jwtMallory,
      // the secret part of a token alone
      ciToken.split('_').pop()!,
    ]);
    const texts: Array<[string, string]> = [...proxyOutput(proxy, 'proxy'), ['audit file', await readFile(auditFile, 'utf8')], ...goOutputs];
    // The data folder holds the tokens file: hashes only.
    texts.push(['tokens.json', await readFile(path.join(dataDir, 'state', 'tokens.json'), 'utf8')]);
    expect(texts.length).toBeGreaterThan(5);
    expect(findSecrets(texts, secrets)).toEqual([]);
  });
});
