// `gomodproxy doctor` as a developer runs it: a real go env file written by `go env -w` in a
// temporary HOME, a real gomodproxy (over a test upstream, with a test checksum database) and the
// real go command, which doctor asks for its settings and then uses for the download. Each case is
// one way the go command fails to use the proxy, and doctor must name the failing check and its fix.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { addToDb } from '../e2e-sumdb/util.js';
import { freePort } from './util.js';
import { findSecrets, issue, makeServerPki, startProxyWithConfig, writeHtpasswd, writeNetrc, type ServerPki } from '../e2e-access/util.js';
import { createGoEnv, type GoEnv, type GoVars } from '../helpers/goenv.js';
import { cliEntry, startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { run, type RunResult } from '../helpers/proc.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';

const LIB = 'github.com/gmp-doctor/lib';
const PASSWORD = 'doctor-Pa55word-5e1f07';

let world: World;
let upstream: TestUpstream;
let db: GoSumdbServer;
let proxy: ProxyProcess;
let pki: ServerPki;

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: LIB, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] }] });
  upstream = await startTestUpstream({ root: world.downloadDir });
  db = await startGoSumdb();
  await addToDb(db, world, [`${LIB}@v1.0.0`, `${LIB}@v1.1.0`]);
  proxy = await startProxy({ upstream: upstream.url, env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` } });
  pki = await makeServerPki();
});
afterAll(cleanupAll);

interface Line {
  status: 'ok' | 'warn' | 'fail';
  check: string;
  message: string;
  fix?: string;
}

interface DoctorRun extends RunResult {
  lines: Line[];
  /** The finding of one check (the test fails if there is none). */
  get(check: string): Line;
  has(check: string): boolean;
}

/**
 * A developer's machine: an isolated go env whose settings live in the go env file under its HOME
 * (written by `go env -w`, as a developer would), not in the environment.
 */
async function machine(settings: Record<string, string>): Promise<GoEnv> {
  const env = await createGoEnv();
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  if (args.length > 0) await env.go(['env', '-w', ...args], { env: fileOnly() });
  return env;
}

/** The createGoEnv defaults that would hide the go env file, removed. */
function fileOnly(extra: GoVars = {}): GoVars {
  return { GOENV: undefined, GOPROXY: undefined, GOSUMDB: undefined, ...extra };
}

const LINE = /^(ok|warn|fail) ([a-z-]+): (.*?)(?: — (.*))?$/;

async function doctor(env: GoEnv, args: string[], extra: GoVars = {}): Promise<DoctorRun> {
  const r = await run(process.execPath, [cliEntry, 'doctor', ...args], { env: env.vars(fileOnly(extra)), cwd: env.workDir, timeoutMs: 180_000 });
  const lines = r.stdout
    .split('\n')
    .map((l) => LINE.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ status: m[1] as Line['status'], check: m[2]!, message: m[3]!, ...(m[4] !== undefined ? { fix: m[4] } : {}) }));
  const describe = () => `doctor exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  return {
    ...r,
    lines,
    has: (check) => lines.some((l) => l.check === check),
    get(check) {
      const l = lines.find((x) => x.check === check);
      if (!l) throw new Error(`no ${check} finding\n${describe()}`);
      return l;
    },
  };
}

/**
 * A forward HTTP proxy like a corporate one: CONNECT tunnels (what https and undici use) and
 * absolute-form requests (what net/http sends for http:// targets). Every host it is asked for
 * is answered from 127.0.0.1, so a name that resolves nowhere is reachable only through it.
 */
async function startForwardProxy(): Promise<{ url: string; asked: string[] }> {
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/');
    asked.push(`GET ${u.host}`);
    const out = http.request({ host: '127.0.0.1', port: Number(u.port), path: u.pathname + u.search, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    asked.push(`CONNECT ${req.url}`);
    const port = Number((req.url ?? '').split(':').at(-1));
    const up = net.connect({ host: '127.0.0.1', port }, () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registerCleanup(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked };
}

const explain = (r: RunResult) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

describe('gomodproxy doctor', () => {
  test('all good: every check passes, the module is fetched, exit 0; --json prints the same findings', async () => {
    const env = await machine({ GOPROXY: `${proxy.url},direct`, GOSUMDB: db.vkey });
    const envFile = path.join(env.home, '.config', 'go', 'env');
    // An HTTP proxy the go command never uses for loopback: doctor must not use it either.
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`], { HTTP_PROXY: 'http://127.0.0.1:9' });
    expect(r.code, explain(r)).toBe(0);
    expect(
      r.lines.filter((l) => l.status !== 'ok'),
      explain(r),
    ).toEqual([]);
    expect(r.lines.map((l) => l.check)).toEqual([
      'go',
      'goenv',
      'goproxy',
      'gonoproxy',
      'gosumdb',
      'goinsecure',
      'goflags',
      'goauth',
      'netrc',
      'http-proxy',
      'tcp',
      'healthz',
      'readyz',
      'credentials',
      'sumdb',
      'module',
      'go-fetch',
    ]);
    expect(r.get('goenv').message).toBe(`the go env file ${envFile} sets GOPROXY, GOSUMDB`);
    expect(r.get('goproxy').message).toContain(`GOPROXY=${proxy.url},direct (from the go env file ${envFile}): ${proxy.url} is asked first`);
    expect(r.get('http-proxy').message).toBe('127.0.0.1 is loopback: the go command never uses HTTP_PROXY=http://127.0.0.1:9 for it');
    expect(r.get('readyz').message).toBe(`GET ${proxy.url}/readyz: 200 ready`);
    expect(r.get('sumdb').message).toContain(`/sumdb/${db.name}/supported: 200`);
    expect(r.get('module').message).toBe(`GET ${proxy.url}/${LIB}/@v/v1.0.0.info: 200: v1.0.0 (${world.get(`${LIB}@v1.0.0`).Info.Time})`);
    expect(r.get('go-fetch').message).toBe(`the go command downloaded ${LIB}@v1.0.0 through ${proxy.url} (${world.get(`${LIB}@v1.0.0`).Sum})`);
    expect(r.stdout).toMatch(/\ndoctor: all checks passed \(17 ok, 0 warn, 0 fail\)\n$/);

    // The URL as an argument, latest by default, JSON lines for CI.
    const j = await doctor(env, [proxy.url, '--module', LIB, '--json']);
    expect(j.code, explain(j)).toBe(0);
    const objs = j.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(objs.map((o) => o.status)).toEqual(objs.map(() => 'ok'));
    expect(objs.find((o) => o.check === 'module')?.message).toBe(`GET ${proxy.url}/${LIB}/@v/list: 200: 2 versions, the newest v1.1.0`);
    expect(objs.find((o) => o.check === 'go-fetch')?.message).toContain(`downloaded ${LIB}@v1.1.0 through ${proxy.url}`);
  });

  test('no --module, and the proxy lacks the default one: a warning that says to name a module, not a failure', async () => {
    const env = await machine({ GOPROXY: proxy.url, GOSUMDB: db.vkey });
    const r = await doctor(env, []);
    expect(r.code, explain(r)).toBe(0);
    expect(r.get('module')).toMatchObject({ status: 'warn', fix: 'name a module it should serve: gomodproxy doctor --module <path>@<version>' });
    expect(r.get('go-fetch').status).toBe('warn');
  });

  test('the proxy is down: fail at tcp with the fix, and nothing after it is tried', async () => {
    const gone = await startProxy({ upstream: upstream.url });
    await gone.stop();
    const port = new URL(gone.url).port;
    const env = await machine({ GOPROXY: `${gone.url},direct`, GOSUMDB: 'off' });
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`]);
    expect(r.code, explain(r)).toBe(1);
    expect(r.get('tcp')).toEqual({
      status: 'fail',
      check: 'tcp',
      message: `nothing listens on 127.0.0.1:${port} (connection refused)`,
      fix: 'start the server (gomodproxy serve), or correct the host and port in GOPROXY',
    });
    expect(r.lines.at(-1)?.check).toBe('tcp');
    expect(r.stdout).toContain('stopped after tcp: fix that first');
  });

  test('no go command on PATH: fail at go; the go env file is still read and the proxy still checked', async () => {
    const env = await machine({ GOPROXY: `${proxy.url},direct`, GOSUMDB: db.vkey });
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`], { PATH: path.join(env.root, 'no-bin') });
    expect(r.code, explain(r)).toBe(1);
    expect(r.get('go')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining('cannot run the go command (ENOENT)'),
      fix: 'install Go, or put its bin folder on PATH',
    });
    expect(r.get('goproxy').message).toContain(`(from the go env file ${path.join(env.home, '.config', 'go', 'env')}): ${proxy.url} is asked first`);
    expect(r.get('module').status).toBe('ok');
    expect(r.has('go-fetch')).toBe(false);
  });

  test('GOPROXY=off in the go env file, then in the environment over a good file: fail with the fix for each', async () => {
    const off = await machine({ GOPROXY: 'off', GOSUMDB: db.vkey });
    const r = await doctor(off, [proxy.url, '--module', `${LIB}@v1.0.0`]);
    expect(r.code, explain(r)).toBe(1);
    const envFile = path.join(off.home, '.config', 'go', 'env');
    expect(r.get('goproxy')).toEqual({
      status: 'fail',
      check: 'goproxy',
      message: `GOPROXY=off (from the go env file ${envFile}): off: the go command fetches nothing (only GONOPROXY modules, straight from version control)`,
      fix: `go env -w GOPROXY=${proxy.url},direct`,
    });
    // The proxy itself is fine: the download through it works.
    expect(r.get('go-fetch').status).toBe('ok');
    expect(r.lines.filter((l) => l.status === 'fail').map((l) => l.check)).toEqual(['goproxy']);

    // `go env -w` set it right, but an exported GOPROXY=off wins; `go env -w` would not help.
    const good = await machine({ GOPROXY: `${proxy.url},direct`, GOSUMDB: db.vkey });
    const e = await doctor(good, [proxy.url, '--module', `${LIB}@v1.0.0`], { GOPROXY: 'off' });
    expect(e.code, explain(e)).toBe(1);
    expect(e.get('goenv').message).toContain('; the environment overrides GOPROXY');
    expect(e.get('goproxy')).toMatchObject({
      status: 'fail',
      message: expect.stringMatching(/^GOPROXY=off \(from the environment\): off:/),
      fix: `export GOPROXY=${proxy.url},direct (GOPROXY is set in the environment, which overrides go env -w)`,
    });
  });

  test('through an HTTP proxy (HTTP_PROXY): doctor and the go command both go through it; a dead one fails at tcp', async () => {
    const fwd = await startForwardProxy();
    // A name only the HTTP proxy can reach, as for a proxy host outside the developer's network.
    const target = `http://gmp-doctor.test:${new URL(proxy.url).port}`;
    const env = await machine({ GOPROXY: `${target},direct`, GOSUMDB: db.vkey });
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`], { HTTP_PROXY: fwd.url, NO_PROXY: 'corp.example' });
    expect(r.code, explain(r)).toBe(0);
    expect(r.get('http-proxy').message).toBe(
      `the go command reaches gmp-doctor.test:${new URL(proxy.url).port} through HTTP_PROXY=${fwd.url} (NO_PROXY=corp.example does not cover it); the checks below go the same way`,
    );
    expect(r.get('tcp').message).toBe(`connected to gmp-doctor.test:${new URL(proxy.url).port} through ${new URL(fwd.url).host}`);
    expect(r.get('go-fetch').message).toContain(`downloaded ${LIB}@v1.0.0 through ${target}`);
    // doctor tunnelled; the go command sent absolute-form requests.
    expect(fwd.asked).toContain(`CONNECT gmp-doctor.test:${new URL(proxy.url).port}`);
    expect(fwd.asked).toContain(`GET gmp-doctor.test:${new URL(proxy.url).port}`);

    // Nothing listens there: the HTTP proxy is down.
    const dead = `http://127.0.0.1:${await freePort()}`;
    const d = await doctor(env, ['--module', `${LIB}@v1.0.0`], { HTTP_PROXY: dead });
    expect(d.code, explain(d)).toBe(1);
    expect(d.get('tcp')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining(`through the HTTP proxy ${dead}`),
      fix: 'fix HTTPS_PROXY/HTTP_PROXY, or add gmp-doctor.test to NO_PROXY if it is reachable directly',
    });
  });

  test('GOPRIVATE on the client matches the module: a warning that it bypasses the proxy; the proxy still serves it', async () => {
    const env = await machine({ GOPROXY: `${proxy.url},direct`, GOPRIVATE: 'github.com/gmp-doctor/*' });
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`]);
    expect(r.code, explain(r)).toBe(0);
    expect(r.get('gonoproxy').status).toBe('warn');
    expect(r.get('gonoproxy').message).toContain(
      `GOPRIVATE=github.com/gmp-doctor/* (from the go env file ${path.join(env.home, '.config', 'go', 'env')}) matches ${LIB}: the go command fetches it straight from its version control and bypasses the proxy`,
    );
    expect(r.get('gonoproxy').fix).toContain('go env -w GONOPROXY=none');
    expect(r.get('gosumdb').message).toContain(`${LIB} matches GONOSUMDB=github.com/gmp-doctor/*`);
    expect(r.get('go-fetch')).toMatchObject({
      status: 'ok',
      message: `the go command downloaded ${LIB}@v1.0.0 through ${proxy.url} (${world.get(`${LIB}@v1.0.0`).Sum}) (with your GONOPROXY the go command would fetch it directly instead)`,
    });
  });
});

describe('gomodproxy doctor over https', () => {
  let tlsProxy: ProxyProcess;
  let authProxy: ProxyProcess;

  beforeAll(async () => {
    tlsProxy = await startProxyWithConfig({ tls: { cert: pki.server.certPath, key: pki.server.keyPath } }, { upstream: upstream.url });
    const htpasswd = path.join(await makeTempDir('doctor-auth'), 'htpasswd');
    await writeHtpasswd(htpasswd, { alice: PASSWORD });
    authProxy = await startProxyWithConfig(
      { tls: { cert: pki.server.certPath, key: pki.server.keyPath }, read: ['authenticated'], auth: { htpasswd } },
      { upstream: upstream.url },
    );
  });

  test('a CA the go command does not trust: fail at tls naming the CA and SSL_CERT_FILE; with it, all good', async () => {
    const env = await machine({ GOPROXY: tlsProxy.url, GOSUMDB: 'off' });
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`]);
    expect(r.code, explain(r)).toBe(1);
    const t = r.get('tls');
    expect(t.status).toBe('fail');
    expect(t.message).toContain('the certificate of 127.0.0.1 is not trusted');
    expect(t.message).toContain('"gmp-test-ca"');
    expect(t.message).toContain('the system bundle');
    expect(t.fix).toMatch(/^export SSL_CERT_FILE=<a PEM file holding the CA "gmp-test-ca">/);
    expect(r.lines.at(-1)?.check).toBe('tls');

    // SSL_CERT_FILE names another CA: the go command reads it instead of the system bundle.
    const other = await makeServerPki('gmp-other-ca');
    const o = await doctor(env, ['--module', `${LIB}@v1.0.0`], { SSL_CERT_FILE: other.ca.certPath });
    expect(o.code, explain(o)).toBe(1);
    expect(o.get('tls').message).toContain(`SSL_CERT_FILE=${other.ca.certPath}`);
    expect(o.get('tls').message).toContain('"gmp-test-ca"');

    const ok = await doctor(env, ['--module', `${LIB}@v1.0.0`], { SSL_CERT_FILE: pki.ca.certPath });
    expect(ok.code, explain(ok)).toBe(0);
    expect(ok.get('tls')).toMatchObject({ status: 'ok', message: expect.stringContaining(`issued by gmp-test-ca`) });
    expect(ok.get('go-fetch').message).toContain(`downloaded ${LIB}@v1.0.0 through ${tlsProxy.url}`);
  });

  test('through HTTPS_PROXY: TLS is verified through the tunnel, and a certificate for another name fails', async () => {
    const fwd = await startForwardProxy();
    const cert = await issue(pki.ca, pki.dir, { name: 'named', subject: '/CN=gmp-doctor.test', san: 'DNS:gmp-doctor.test', usage: 'serverAuth' });
    const named = await startProxyWithConfig({ tls: { cert: cert.certPath, key: cert.keyPath } }, { upstream: upstream.url });
    const target = `https://gmp-doctor.test:${new URL(named.url).port}`;
    const env = await machine({ GOPROXY: target, GOSUMDB: 'off' });
    const vars = { HTTPS_PROXY: fwd.url, SSL_CERT_FILE: pki.ca.certPath };
    const r = await doctor(env, ['--module', `${LIB}@v1.0.0`], vars);
    expect(r.code, explain(r)).toBe(0);
    expect(r.get('tls').message).toContain('the certificate of gmp-doctor.test (issued by gmp-test-ca');
    expect(r.get('go-fetch').message).toContain(`downloaded ${LIB}@v1.0.0 through ${target}`);
    expect(fwd.asked.every((a) => a === `CONNECT gmp-doctor.test:${new URL(named.url).port}`)).toBe(true);

    // The same name in front of a server whose certificate names 127.0.0.1 and localhost only.
    const wrong = `https://gmp-doctor.test:${new URL(tlsProxy.url).port}`;
    const w = await doctor(env, [wrong, '--module', `${LIB}@v1.0.0`], vars);
    expect(w.code, explain(w)).toBe(1);
    expect(w.get('tls')).toMatchObject({
      status: 'fail',
      message: 'the certificate is for IP Address:127.0.0.1, DNS:localhost, not gmp-doctor.test',
      fix: 'use one of its names in GOPROXY, or issue a certificate that names this host',
    });
  });

  test('a proxy that needs a user: no .netrc, a line without the port, a wrong password, then the right line', async () => {
    const host = new URL(authProxy.url).host;
    const env = await machine({ GOPROXY: authProxy.url, GOSUMDB: 'off' });
    const trust = { SSL_CERT_FILE: pki.ca.certPath };
    const netrc = path.join(env.home, '.netrc');
    const outputs: Array<[string, string]> = [];

    const none = await doctor(env, ['--module', `${LIB}@v1.0.0`], trust);
    outputs.push(['no netrc', none.stdout + none.stderr]);
    expect(none.code, explain(none)).toBe(1);
    expect(none.get('netrc').message).toBe(`${netrc} does not exist: no credentials for ${host} (needed only if the proxy asks)`);
    expect(none.get('credentials')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining('without credentials: 401: authentication required'),
      fix: `add a machine ${host} line with login and password (an API token from gomodproxy token create) to ${netrc}`,
    });
    expect(none.get('go-fetch')).toMatchObject({ status: 'fail', message: expect.stringContaining('401 Unauthorized') });
    // /healthz and /readyz stay open.
    expect(none.get('healthz').status).toBe('ok');

    await writeNetrc(netrc, [{ machine: '127.0.0.1', login: 'alice', password: PASSWORD }]);
    const portless = await doctor(env, ['--module', `${LIB}@v1.0.0`], trust);
    outputs.push(['portless', portless.stdout + portless.stderr]);
    expect(portless.code, explain(portless)).toBe(1);
    expect(portless.get('netrc')).toEqual({
      status: 'warn',
      check: 'netrc',
      message: `${netrc} has machine 127.0.0.1 but no machine ${host}: the go command looks credentials up by ${host} (host with its port when the port is not 443) and will not use that line`,
      fix: `change the line to machine ${host}`,
    });
    expect(portless.get('credentials')).toMatchObject({ status: 'fail', fix: `change "machine 127.0.0.1" in ${netrc} to "machine ${host}"` });
    // The real go command agrees: it sent nothing.
    expect(portless.get('go-fetch').message).toContain('401 Unauthorized');

    await writeNetrc(netrc, [{ machine: host, login: 'alice', password: 'not-the-Pa55word-0000' }]);
    const wrong = await doctor(env, ['--module', `${LIB}@v1.0.0`], trust);
    outputs.push(['wrong', wrong.stdout + wrong.stderr]);
    expect(wrong.code, explain(wrong)).toBe(1);
    expect(wrong.get('credentials')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining(`with the credentials of machine ${host} in ${netrc} (login alice): 401`),
    });
    expect(wrong.stdout).not.toContain('not-the-Pa55word-0000');

    await writeFile(netrc, `machine ${host}\n  login alice\n  password ${PASSWORD}\n`, { mode: 0o600 });
    const good = await doctor(env, ['--module', `${LIB}@v1.0.0`], trust);
    outputs.push(['good', good.stdout + good.stderr]);
    expect(good.code, explain(good)).toBe(0);
    expect(good.get('netrc').message).toBe(`${netrc} has machine ${host} (login alice): the go command sends it to ${authProxy.url}`);
    expect(good.get('credentials').message).toBe(
      `the proxy accepts the credentials of machine ${host} in ${netrc} (login alice) (GET ${authProxy.url}/${LIB}/@v/list: 200)`,
    );
    expect(good.get('go-fetch').message).toContain(`downloaded ${LIB}@v1.0.0 through ${authProxy.url} (${world.get(`${LIB}@v1.0.0`).Sum})`);

    expect(findSecrets(outputs, [PASSWORD, Buffer.from(`alice:${PASSWORD}`).toString('base64')])).toEqual([]);
  });
});
