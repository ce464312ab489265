// TLS client certificates from a test CA (openssl CLI) presented to a real HTTPS server: a
// verified certificate becomes a user (CN, SAN email or URI) with groups from the table; a
// certificate from another CA, or none, is anonymous; an Authorization header takes precedence.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import bcrypt from 'bcryptjs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, Authenticator, HtpasswdFile, MtlsMapper, credentialsOf, parseSubjectAltName } from '../../src/access/index.js';
import type { MtlsConfig } from '../../src/config/schema.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { issue, makeCa, type CertFiles } from './support/pki.js';
import { SecretWatch } from './support/secrets.js';

const watch = new SecretWatch();
let dir: string;
let ca: CertFiles;
let url: string;
let certs: Record<'cn' | 'email' | 'uri' | 'nocn' | 'stranger', CertFiles>;
let auth: Authenticator;

function mapper(cfg: Partial<MtlsConfig> = {}): MtlsMapper {
  return new MtlsMapper({ userFrom: 'cn', groups: { 'ci-bot': ['ci', 'readers'] }, ...cfg });
}

/** GET / with an optional client certificate; the server answers with the principal or the 401. */
function call(client?: CertFiles, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ca: ca.cert, key: client?.key, cert: client?.cert, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString('utf8')));
      res.on('end', () => {
        watch.output('mtls response', text);
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = await makeTempDir('mtls');
  ca = await makeCa(dir, 'test-ca');
  const otherCa = await makeCa(dir, 'other-ca');
  const server = await issue(ca, dir, { name: 'server', subject: '/CN=localhost', san: 'DNS:localhost,IP:127.0.0.1', usage: 'serverAuth' });
  const [cn, email, uri, nocn, stranger] = await Promise.all([
    issue(ca, dir, { name: 'cn', subject: '/O=Example/CN=ci-bot', usage: 'clientAuth' }),
    issue(ca, dir, { name: 'email', subject: '/CN=Alice Example', san: 'email:alice@example.test,DNS:ws1.example.test', usage: 'clientAuth' }),
    issue(ca, dir, { name: 'uri', subject: '/O=Example', san: 'URI:spiffe://example.test/ns/ci/sa/builder,email:x@example.test', usage: 'clientAuth' }),
    issue(ca, dir, { name: 'nocn', subject: '/O=Nobody', usage: 'clientAuth' }),
    issue(otherCa, dir, { name: 'stranger', subject: '/CN=ci-bot', usage: 'clientAuth' }),
  ]);
  certs = { cn, email, uri, nocn, stranger };
  const srv = https.createServer(
    // Ask for a certificate but let the request through without one: anonymous access stays possible,
    // and credentialsOf passes on only what the handshake verified.
    { key: server.key, cert: server.cert, ca: ca.cert, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    (req, res) => {
      Promise.resolve()
        .then(() => auth.authenticate(credentialsOf(req)))
        .then(
          (p) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify(p));
          },
          (err: unknown) => {
            res.statusCode = err instanceof AuthError ? 401 : 500;
            if (err instanceof AuthError) res.setHeader('www-authenticate', err.challenge);
            res.end(JSON.stringify({ error: (err as Error).message }));
          },
        );
    },
  );
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  registerCleanup(() => new Promise((resolve) => srv.close(resolve)));
  url = `https://localhost:${(srv.address() as AddressInfo).port}/`;
});
afterAll(cleanupAll);

describe('client certificates over real TLS', () => {
  it('maps a verified certificate by subject CN, with groups from the table', async () => {
    auth = new Authenticator({ mtls: mapper() });
    expect(await call(certs.cn)).toEqual({ status: 200, body: { name: 'ci-bot', groups: ['ci', 'readers'], scopes: [], method: 'mtls' } });
  });

  it('maps by SAN email or URI when configured', async () => {
    auth = new Authenticator({ mtls: mapper({ userFrom: 'email' }) });
    expect((await call(certs.email)).body).toEqual({ name: 'alice@example.test', groups: [], scopes: [], method: 'mtls' });
    auth = new Authenticator({ mtls: mapper({ userFrom: 'uri' }) });
    expect((await call(certs.uri)).body.name).toBe('spiffe://example.test/ns/ci/sa/builder');
  });

  it('a certificate from another CA, or none, is anonymous: only verified certificates count', async () => {
    auth = new Authenticator({ mtls: mapper() });
    expect((await call(certs.stranger)).body).toEqual({ name: 'anonymous', groups: [], scopes: [], method: 'anonymous' });
    expect((await call()).body.method).toBe('anonymous');
  });

  it('a verified certificate that names no user is a 401', async () => {
    auth = new Authenticator({ mtls: mapper() });
    const r = await call(certs.nocn);
    expect(r.status).toBe(401);
    expect(r.body.error).toContain('names no user');
  });

  it('an Authorization header takes precedence over the certificate', async () => {
    const pw = watch.secret('htpasswd-Over-mTLS-77');
    const f = path.join(dir, 'htpasswd');
    await writeFile(f, `bob:${bcrypt.hashSync(pw, 4)}\n`);
    const h = await HtpasswdFile.load(f, { pollMs: 0 });
    auth = new Authenticator({ mtls: mapper(), htpasswd: h });
    expect((await call(certs.cn, { authorization: watch.basic('bob', pw) })).body).toMatchObject({ name: 'bob', method: 'htpasswd' });
    const bad = await call(certs.cn, { authorization: watch.basic('bob', 'wrong-Password-here') });
    expect(bad.status).toBe(401);
    h.close();
  });
});

describe('subjectAltName parsing', () => {
  it("splits Node's string and decodes quoted values", () => {
    expect(parseSubjectAltName('DNS:a.example, email:x@y.test, URI:spiffe://t/w')).toEqual([
      ['DNS', 'a.example'],
      ['email', 'x@y.test'],
      ['URI', 'spiffe://t/w'],
    ]);
    expect(parseSubjectAltName('URI:"https://x.test/a,b", DNS:c')).toEqual([
      ['URI', 'https://x.test/a,b'],
      ['DNS', 'c'],
    ]);
    expect(parseSubjectAltName(undefined)).toEqual([]);
  });
});

it('leaks no secret into any output', () => {
  watch.assertClean();
});
