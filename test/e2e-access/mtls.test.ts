// TLS client certificates mapped to users: tls.clientCa + auth.mtls. A certificate from the
// client CA names a user (its CN) with groups from the config; that user reads a route
// restricted to a group. Without a certificate the route answers 401; a certificate from another
// CA proves nothing (anonymous, 401); a valid certificate of a user outside the group gets 403.
// With requireClientCert the TLS handshake itself refuses a client without one. The go command
// cannot present a certificate: undici and curl do.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { accessLines, expectOneLineError, waitFor } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { run, scrubbedEnv } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { fetchAs, issue, makeCa, makeServerPki, startProxyWithConfig, type CertFiles, type ServerPki } from './util.js';

const RESTRICTED = 'github.com/gmp-mtls/restricted';
const OPEN = 'github.com/gmp-mtls/open';

let world: World;
let upstream: TestUpstream;
let pki: ServerPki;
let clientCa: CertFiles;
let ciBot: CertFiles;
let laptop: CertFiles;
let rogue: CertFiles;
let optional: ProxyProcess;
let required: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: RESTRICTED, versions: [{ version: 'v1.0.0' }] },
      { path: OPEN, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  pki = await makeServerPki();
  const dir = await makeTempDir('client-pki');
  clientCa = await makeCa(dir, 'clients-ca');
  ciBot = await issue(clientCa, dir, { name: 'ci-bot', subject: '/CN=ci-bot/O=Builds', usage: 'clientAuth' });
  laptop = await issue(clientCa, dir, { name: 'laptop', subject: '/CN=dev-laptop', usage: 'clientAuth' });
  // Another CA issuing the same name: not to be believed.
  const rogueCa = await makeCa(dir, 'rogue-ca');
  rogue = await issue(rogueCa, dir, { name: 'rogue', subject: '/CN=ci-bot', usage: 'clientAuth' });

  const common = {
    routes: [{ match: RESTRICTED, read: ['group:builders'] }],
    auth: { mtls: { userFrom: 'cn', groups: { 'ci-bot': ['builders'] } } },
  };
  [optional, required] = await Promise.all([
    startProxyWithConfig({ ...common, tls: { cert: pki.server.certPath, key: pki.server.keyPath, clientCa: clientCa.certPath } }, { upstream: upstream.url }),
    startProxyWithConfig(
      { ...common, tls: { cert: pki.server.certPath, key: pki.server.keyPath, clientCa: clientCa.certPath, requireClientCert: true } },
      { upstream: upstream.url },
    ),
  ]);
});
afterAll(cleanupAll);

const as = (c?: CertFiles) => ({ ca: pki.ca.cert, cert: c?.cert, key: c?.key });

describe('client certificate optional', () => {
  test('a certificate from the client CA maps to a user whose group reads the restricted route', async () => {
    const base = `${optional.url}/${RESTRICTED}/@v`;
    const list = await fetchAs(`${base}/list`, as(ciBot));
    expect([list.status, list.text()]).toEqual([200, 'v1.0.0\n']);
    const mod = await fetchAs(`${base}/v1.0.0.mod`, as(ciBot));
    expect(mod.text()).toBe(world.get(`${RESTRICTED}@v1.0.0`).modText);
    const zip = await fetchAs(`${base}/v1.0.0.zip`, as(ciBot));
    expect(zip.status).toBe(200);
    expect(zip.body.length).toBeGreaterThan(100);
    // the access log names the user the certificate maps to
    await waitFor(() => accessLines(optional).some((l) => l.user === 'ci-bot' && l.kind === 'zip'), 'ci-bot in the access log');

    // curl presents a certificate the same way
    const r = await run(
      'curl',
      ['-sS', '--cacert', pki.ca.certPath, '--cert', ciBot.certPath, '--key', ciBot.keyPath, '-o', '-', '-w', '\n%{http_code}', `${base}/v1.0.0.info`],
      {
        env: scrubbedEnv(),
        timeoutMs: 30_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const [body, code] = [r.stdout.slice(0, r.stdout.lastIndexOf('\n')), r.stdout.slice(r.stdout.lastIndexOf('\n') + 1)];
    expect(code).toBe('200');
    expect(JSON.parse(body).Version).toBe('v1.0.0');
  });

  test('without a certificate: 401 on the restricted route, the open one still served (also to the go command)', async () => {
    const res = await fetchAs(`${optional.url}/${RESTRICTED}/@v/list`, as());
    expect(expectOneLineError(res, 401)).toMatch(/authentication required/);
    expect(res.headers['www-authenticate']).toMatch(/Basic realm=/);
    expect((await fetchAs(`${optional.url}/${OPEN}/@v/list`, as())).status).toBe(200);

    const env = await createGoEnv({ goproxy: optional.url, env: { SSL_CERT_FILE: pki.ca.certPath } });
    const [open] = await env.modDownloadJson([`${OPEN}@v1.0.0`]);
    expect(open?.Sum).toBe(world.get(`${OPEN}@v1.0.0`).Sum);
    const [restricted] = await env.modDownloadJson([`${RESTRICTED}@v1.0.0`], undefined, { allowErrors: true });
    expect(restricted?.Error).toMatch(/401 Unauthorized\n\tserver response: authentication required/);
  });

  test('a certificate from another CA with the same name proves nothing: 401', async () => {
    const res = await fetchAs(`${optional.url}/${RESTRICTED}/@v/list`, as(rogue));
    expectOneLineError(res, 401);
  });

  test('a valid certificate of a user outside the group: 403 naming the user', async () => {
    const line = expectOneLineError(await fetchAs(`${optional.url}/${RESTRICTED}/@v/list`, as(laptop)), 403);
    expect(line).toBe(`access to ${RESTRICTED} is denied for user dev-laptop (mtls); ask an administrator to grant it`);
    expect((await fetchAs(`${optional.url}/${OPEN}/@v/list`, as(laptop))).status).toBe(200);
  });
});

describe('client certificate required', () => {
  test('no certificate: the handshake is refused; a certificate from another CA too; a valid one is served', async () => {
    const none = await fetchAs(`${required.url}/${OPEN}/@v/list`, as()).then(
      (r) => `HTTP ${r.status}`,
      (err: Error) => `${err.message} ${String((err as { code?: string }).code ?? '')}`,
    );
    expect(none).not.toMatch(/^HTTP/);
    const bad = await fetchAs(`${required.url}/${OPEN}/@v/list`, as(rogue)).then(
      (r) => `HTTP ${r.status}`,
      (err: Error) => err.message,
    );
    expect(bad).not.toMatch(/^HTTP/);
    const ok = await fetchAs(`${required.url}/${RESTRICTED}/@v/list`, as(ciBot));
    expect(ok.status).toBe(200);
    // the go command, which has no certificate, cannot connect at all
    const env = await createGoEnv({ goproxy: required.url, env: { SSL_CERT_FILE: pki.ca.certPath } });
    const [r] = await env.modDownloadJson([`${OPEN}@v1.0.0`], undefined, { allowErrors: true });
    expect(r?.Error).toMatch(/certificate|tls|remote error/i);
    // and the server is still up
    expect(required.proc.exitCode).toBeNull();
  });
});
