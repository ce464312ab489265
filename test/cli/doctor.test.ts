// The decisions of `gomodproxy doctor`, one rule of the go command each: where the proxy stands
// in GOPROXY, which patterns send a module past it, which .netrc line the go command uses, when
// net/http goes through an HTTP proxy, and what each answer of the network means for the user.
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkGoAuth,
  checkGoFlags,
  checkGoInsecure,
  checkGoProxy,
  checkGoSumdb,
  checkHttpProxy,
  checkNetrc,
  checkNoProxy,
  credentialsFinding,
  entryFallthrough,
  firstHttpProxy,
  formatFinding,
  goErrorFix,
  healthzFinding,
  keysNetrcByPort,
  matchNetrc,
  moduleFinding,
  parseNetrc,
  readyzFinding,
  setHint,
  sumdbFinding,
  tcpFinding,
  tlsFinding,
  type GoSettings,
  type SettingSource,
} from '../../src/cli/doctor/checks.js';
import { goRoots } from '../../src/cli/doctor/net.js';
import { GO_SUMDB_KEY, GO_SUMDB_NAME } from '../../src/sumdb/index.js';
import { makeCa } from '../access/support/pki.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

afterAll(cleanupAll);

const FILE: SettingSource = { kind: 'file', file: '/home/u/.config/go/env' };
const ENV: SettingSource = { kind: 'env' };
const P = 'https://proxy.corp.example:8443';

function settings(over: Partial<GoSettings> = {}): GoSettings {
  return {
    GOPROXY: `${P},direct`,
    GOPRIVATE: '',
    GONOPROXY: '',
    GONOSUMDB: '',
    GOSUMDB: GO_SUMDB_NAME,
    GOINSECURE: '',
    GOFLAGS: '',
    GOAUTH: 'netrc',
    GOVERSION: 'go1.26.0',
    ...over,
  };
}

describe('formatFinding', () => {
  it('is status, check, what, and the fix after a dash', () => {
    expect(formatFinding({ status: 'fail', check: 'tcp', message: 'refused', fix: 'start it' })).toBe('fail tcp: refused — start it');
    expect(formatFinding({ status: 'ok', check: 'tcp', message: 'connected' })).toBe('ok tcp: connected');
  });
});

describe('GOPROXY', () => {
  it('defaults to the first http(s) entry, skipping file:// ones, never past direct or off', () => {
    expect(firstHttpProxy(`file:///srv/mods,${P}|direct`)).toBe(P);
    expect(firstHttpProxy('proxy.corp.example,direct')).toBe('https://proxy.corp.example');
    expect(firstHttpProxy(`direct,${P}`)).toBeUndefined();
    expect(firstHttpProxy(`off`)).toBeUndefined();
  });

  it('first: ok, with what "," and "|" after it do to its errors', () => {
    const comma = checkGoProxy(`${P},direct`, P, FILE);
    expect(comma.status).toBe('ok');
    expect(comma.message).toContain(`GOPROXY=${P},direct (from the go env file /home/u/.config/go/env): ${P} is asked first`);
    expect(comma.message).toContain('only its 404/410 answers fall through to direct');
    const pipe = checkGoProxy(`${P}|direct`, P, FILE);
    expect(pipe.message).toContain('any error from it (even 401, 403, 5xx) falls through to direct');
    expect(checkGoProxy(P, P, FILE).message).toContain('nothing comes after it');
    expect(entryFallthrough(`${P}|direct`, P)).toBe('any');
    expect(entryFallthrough(`${P},direct`, P)).toBe('not-found');
    expect(entryFallthrough('direct', P)).toBeUndefined();
  });

  it('the same URL written differently (trailing slash, default port, spaces) is the same entry', () => {
    expect(checkGoProxy(' https://proxy.corp.example:443/ , direct', 'https://proxy.corp.example', FILE).status).toBe('ok');
    expect(checkGoProxy('https://proxy.corp.example/go/,direct', 'https://proxy.corp.example/go', FILE).status).toBe('ok');
  });

  it('second: a warning that the first one answers before it', () => {
    const f = checkGoProxy(`https://other.example,${P},direct`, P, FILE);
    expect(f.status).toBe('warn');
    expect(f.message).toContain(`https://other.example is asked before ${P}`);
    expect(f.fix).toBe(`to ask it first: go env -w GOPROXY=${P},direct`);
  });

  it('absent, behind direct or off, or off itself: fail, with the command that fixes it where it was set', () => {
    expect(checkGoProxy('https://other.example', P, FILE)).toMatchObject({ status: 'fail', message: expect.stringContaining(`does not name ${P}`) });
    expect(checkGoProxy(`direct,${P}`, P, FILE).message).toContain('direct: the go command fetches from version control itself');
    expect(checkGoProxy(`https://other.example,off,${P}`, P, FILE).message).toContain(`off comes before ${P}, which is never asked`);
    const off = checkGoProxy('off', P, ENV);
    expect(off).toMatchObject({ status: 'fail', fix: `export GOPROXY=${P},direct (GOPROXY is set in the environment, which overrides go env -w)` });
    expect(off.message).toContain('off: the go command fetches nothing');
  });

  it('an invalid entry makes the go command refuse everything', () => {
    const f = checkGoProxy(`ftp://x.example,${P}`, P, FILE);
    expect(f.status).toBe('fail');
    expect(f.message).toContain('scheme ftp is not supported');
  });

  it('a user and password over http:// is refused by the go command, and never printed', () => {
    const f = checkGoProxy('http://bob:s3cret-pw@proxy.corp.example,direct', 'http://proxy.corp.example', FILE);
    expect(f.status).toBe('fail');
    expect(f.message).toContain('refusing to pass credentials to insecure URL');
    expect(JSON.stringify(f)).not.toContain('s3cret-pw');
  });

  it('quotes values the shell would split', () => {
    expect(setHint('GOPROXY', 'https://a|direct', FILE)).toBe(`go env -w 'GOPROXY=https://a|direct'`);
  });
});

describe('GONOPROXY, GOPRIVATE', () => {
  const priv: SettingSource = { kind: 'goprivate', of: FILE };
  it('a GOPRIVATE match bypasses the proxy: warn, fixed by GONOPROXY=none', () => {
    const f = checkNoProxy(settings({ GOPRIVATE: 'corp.example/*', GONOPROXY: 'corp.example/*' }), 'corp.example/team/lib', priv);
    expect(f.status).toBe('warn');
    expect(f.message).toBe(
      'GOPRIVATE=corp.example/* (from the go env file /home/u/.config/go/env) matches corp.example/team/lib: the go command fetches it straight from its version control and bypasses the proxy',
    );
    expect(f.fix).toBe('if the proxy should serve it: go env -w GONOPROXY=none (GOPRIVATE still keeps it away from the checksum database)');
  });

  it('no match, none, or nothing set: ok; a pattern with spaces never matches: warn', () => {
    expect(checkNoProxy(settings({ GONOPROXY: 'corp.example' }), 'github.com/x/y', FILE).status).toBe('ok');
    expect(checkNoProxy(settings({ GONOPROXY: 'none' }), 'corp.example/x', FILE).message).toContain('GONOPROXY=none');
    expect(checkNoProxy(settings(), 'corp.example/x', { kind: 'default' }).message).toContain('are not set');
    const spaced = checkNoProxy(settings({ GONOPROXY: 'a.example, corp.example' }), 'corp.example/x', FILE);
    expect(spaced).toMatchObject({ status: 'warn', message: expect.stringContaining('" corp.example" has spaces') });
  });
});

describe('GOSUMDB, GONOSUMDB', () => {
  it('a database by name is asked for through the proxy; with a URL it is not', () => {
    const plan = checkGoSumdb(settings(), 'github.com/x/y', { kind: 'default' }, { kind: 'default' });
    expect(plan.probe).toBe(GO_SUMDB_NAME);
    expect(plan.finding.status).toBe('ok');
    const withUrl = checkGoSumdb(settings({ GOSUMDB: `${GO_SUMDB_KEY} https://sumdb.corp.example` }), 'x.example/y', FILE, FILE);
    expect(withUrl.probe).toBeUndefined();
    expect(withUrl.finding.message).toContain('at https://sumdb.corp.example itself, not through the proxy');
  });

  it('off: warn; invalid: fail; a GONOSUMDB match is said', () => {
    expect(checkGoSumdb(settings({ GOSUMDB: 'off' }), 'x.example/y', FILE, FILE).finding.status).toBe('warn');
    expect(checkGoSumdb(settings({ GOSUMDB: 'nosuchdb' }), 'x.example/y', FILE, FILE).finding.status).toBe('fail');
    const skipped = checkGoSumdb(settings({ GONOSUMDB: 'corp.example' }), 'corp.example/lib', { kind: 'default' }, FILE);
    expect(skipped.finding.message).toContain('corp.example/lib matches GONOSUMDB=corp.example');
  });
});

describe('GOINSECURE, GOFLAGS, GOAUTH', () => {
  it('GOINSECURE never concerns a proxy; an http:// proxy is allowed without it', () => {
    expect(checkGoInsecure(settings(), 'http://p.example', 'x.example/y').message).toContain('allows for a GOPROXY without GOINSECURE');
    expect(checkGoInsecure(settings({ GOINSECURE: 'x.example' }), P, 'x.example/y').message).toContain('(it matches x.example/y) affects only direct fetches');
  });

  it('-mod=vendor and -insecure are warned about', () => {
    expect(checkGoFlags(settings({ GOFLAGS: '-modcacherw -mod=vendor' })).status).toBe('warn');
    expect(checkGoFlags(settings({ GOFLAGS: '-insecure' })).status).toBe('warn');
    expect(checkGoFlags(settings({ GOFLAGS: '-mod=mod' })).status).toBe('ok');
  });

  it('GOAUTH: netrc by default, off alone, git needs an absolute folder, commands shown by name only', () => {
    expect(checkGoAuth(settings({ GOAUTH: undefined, GOVERSION: 'go1.23.4' }), FILE)).toMatchObject({ netrc: true, others: [] });
    expect(checkGoAuth(settings({ GOAUTH: 'off' }), FILE)).toMatchObject({ netrc: false, finding: { status: 'ok' } });
    expect(checkGoAuth(settings({ GOAUTH: 'off;netrc' }), FILE).finding.status).toBe('fail');
    expect(checkGoAuth(settings({ GOAUTH: 'git relative/dir' }), FILE).finding.status).toBe('fail');
    const cmd = checkGoAuth(settings({ GOAUTH: '/usr/bin/corp-auth --token=abc123; netrc' }), FILE);
    expect(cmd).toMatchObject({ netrc: true, others: ['the command /usr/bin/corp-auth'] });
    expect(cmd.finding.message).toContain('credentials come from .netrc, then the command /usr/bin/corp-auth');
  });
});

describe('.netrc', () => {
  it('parses as cmd/go does: triples on one or several lines, macdef skipped, nothing after default', () => {
    const text = [
      'machine a.example login al password p1',
      'machine b.example',
      '  login bo',
      '  password p2',
      'macdef init',
      'machine hidden.example login x password y',
      '',
      'machine c.example login incomplete',
      'machine d.example login dl password p4',
      'default',
      'login any password anyp',
      'machine e.example login el password p5',
    ].join('\n');
    expect(parseNetrc(text)).toEqual([
      { machine: 'a.example', login: 'al', password: 'p1' },
      { machine: 'b.example', login: 'bo', password: 'p2' },
      { machine: 'd.example', login: 'dl', password: 'p4' },
    ]);
  });

  it('Go 1.24+: host:port for a non-default port, path prefixes, the first entry for a machine', () => {
    const entries = parseNetrc(
      'machine p.example:8443 login a password 1\nmachine p.example:8443 login b password 2\nmachine q.example/go login c password 3\n',
    );
    expect(matchNetrc(entries, 'https://p.example:8443', true).entry?.login).toBe('a');
    expect(matchNetrc(entries, 'https://q.example/go', true).entry?.login).toBe('c');
    expect(matchNetrc(entries, 'https://q.example', true).entry).toBeUndefined();
    const portless = matchNetrc(parseNetrc('machine p.example login a password 1'), 'https://p.example:8443', true);
    expect(portless).toMatchObject({ key: 'p.example:8443', near: { machine: 'p.example' } });
    expect(portless.entry).toBeUndefined();
    expect(matchNetrc(parseNetrc('machine p.example login a password 1'), 'https://p.example', true).entry?.login).toBe('a');
  });

  it('before Go 1.24: the host name alone', () => {
    expect(keysNetrcByPort('go1.23.4')).toBe(false);
    expect(keysNetrcByPort('go1.24.0')).toBe(true);
    expect(keysNetrcByPort('devel go1.27-abcdef')).toBe(true);
    const entries = parseNetrc('machine p.example:8443 login a password 1');
    expect(matchNetrc(entries, 'https://p.example:8443', false)).toMatchObject({ key: 'p.example', near: { machine: 'p.example:8443' } });
    expect(matchNetrc(entries, 'https://p.example:8443', false).entry).toBeUndefined();
    expect(matchNetrc(parseNetrc('machine p.example login a password 1'), 'https://p.example:8443', false).entry?.login).toBe('a');
  });

  it('the finding: a line without the port warns, and no password is ever in it', () => {
    const auth = checkGoAuth(settings(), FILE);
    const near = checkNetrc('/h/.netrc', { text: 'machine p.example login al password hunter22' }, P.replace('proxy.corp.example', 'p.example'), auth, true);
    expect(near.finding).toEqual({
      status: 'warn',
      check: 'netrc',
      message:
        '/h/.netrc has machine p.example but no machine p.example:8443: the go command looks credentials up by p.example:8443 (host with its port when the port is not 443) and will not use that line',
      fix: 'change the line to machine p.example:8443',
    });
    const ok = checkNetrc('/h/.netrc', { text: 'machine p.example:8443 login al password hunter22' }, 'https://p.example:8443', auth, true);
    expect(ok.finding.message).toBe('/h/.netrc has machine p.example:8443 (login al): the go command sends it to https://p.example:8443');
    expect(JSON.stringify([near, ok].map((x) => x.finding))).not.toContain('hunter22');
    expect(checkNetrc('/h/.netrc', { missing: true }, 'http://p.example', auth, true).finding.message).toContain('only over https://');
    expect(checkNetrc('/h/.netrc', { missing: true }, P, checkGoAuth(settings({ GOAUTH: 'off' }), FILE), true).finding.message).toContain('not read');
  });
});

describe('HTTP proxies (net/http rules)', () => {
  it('loopback is never proxied', () => {
    expect(checkHttpProxy('https://127.0.0.1:8443', { HTTPS_PROXY: 'http://squid.corp:3128' }).via).toBeUndefined();
    expect(checkHttpProxy('http://localhost:3000', { HTTP_PROXY: 'http://squid.corp:3128' }).finding.message).toContain('loopback');
  });

  it('https uses HTTPS_PROXY (upper case first), http uses HTTP_PROXY; a value without a scheme is http://', () => {
    const r = checkHttpProxy(P, { HTTPS_PROXY: 'squid.corp:3128', https_proxy: 'http://other:1', HTTP_PROXY: 'http://wrong:2' });
    expect(r.via?.href).toBe('http://squid.corp:3128/');
    expect(r.finding.message).toContain('through HTTPS_PROXY=squid.corp:3128');
    expect(checkHttpProxy('http://proxy.corp.example', { HTTPS_PROXY: 'http://squid.corp:3128' }).via).toBeUndefined();
    expect(checkHttpProxy('http://proxy.corp.example', { http_proxy: 'http://squid.corp:3128' }).via?.host).toBe('squid.corp:3128');
  });

  it('NO_PROXY: domains and their subdomains, leading dot, *., ports, CIDR, *', () => {
    const via = (target: string, noProxy: string) => checkHttpProxy(target, { HTTPS_PROXY: 'http://squid.corp:3128', NO_PROXY: noProxy }).via;
    expect(via(P, 'corp.example')).toBeUndefined();
    expect(via(P, '.corp.example')).toBeUndefined();
    expect(via('https://corp.example', '.corp.example')).toBeDefined();
    expect(via('https://corp.example', 'corp.example')).toBeUndefined();
    expect(via(P, '*.corp.example')).toBeUndefined();
    expect(via(P, 'proxy.corp.example:8443')).toBeUndefined();
    expect(via(P, 'proxy.corp.example:443')).toBeDefined();
    expect(via('https://10.1.2.3', '10.0.0.0/8')).toBeUndefined();
    expect(via('https://11.1.2.3', '10.0.0.0/8')).toBeDefined();
    expect(via(P, '*')).toBeUndefined();
    expect(via(P, 'other.example')).toBeDefined();
  });

  it('proxy credentials are never printed; HTTP_PROXY in a CGI environment is refused', () => {
    const r = checkHttpProxy(P, { HTTPS_PROXY: 'http://u:pr0xy-pw@squid.corp:3128' });
    expect(JSON.stringify(r.finding)).not.toContain('pr0xy-pw');
    expect(checkHttpProxy('http://p.example', { HTTP_PROXY: 'http://squid.corp:3128', REQUEST_METHOD: 'GET' }).finding.status).toBe('fail');
  });
});

describe('the network', () => {
  it('tcp: refused, timeout and DNS each get their fix', () => {
    expect(tcpFinding(P, { ok: false, stage: 'connect', code: 'ECONNREFUSED', message: '' }, 10_000)).toMatchObject({
      message: 'nothing listens on proxy.corp.example:8443 (connection refused)',
      fix: expect.stringContaining('gomodproxy serve'),
    });
    expect(tcpFinding(P, { ok: false, stage: 'connect', code: 'ETIMEDOUT', message: '' }, 10_000).message).toBe(
      'no answer from proxy.corp.example:8443 within 10s',
    );
    expect(
      tcpFinding('https://x.example', { ok: false, stage: 'dns', code: 'ENOTFOUND', message: 'cannot resolve x.example (ENOTFOUND)' }, 1000).fix,
    ).toContain('DNS');
  });

  it('tls: the missing CA is named, SSL_CERT_FILE is the fix; a wrong name, an expired one and plain HTTP too', () => {
    const leaf = { subject: 'proxy.corp.example', issuer: 'Corp Issuing CA', selfSigned: false, validTo: 'Jan 1 2030', altNames: 'DNS:proxy.corp.example' };
    const roots = { describe: 'the system bundle /etc/ssl/certs/ca-certificates.crt' };
    const unknown = tlsFinding(
      P,
      { authorized: false, code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', leaf, top: { ...leaf, subject: 'Corp Issuing CA', issuer: 'Corp Root CA' } },
      roots,
      {},
    );
    expect(unknown.message).toContain('it is issued by "Corp Root CA", which is not among the roots the go command trusts: the system bundle');
    expect(unknown.fix).toMatch(/^export SSL_CERT_FILE=<a PEM file holding the CA "Corp Root CA"> \(to keep the system roots too/);
    const selfSigned = tlsFinding(
      P,
      { authorized: false, code: 'SELF_SIGNED_CERT_IN_CHAIN', leaf, top: { ...leaf, subject: 'Corp Root CA', issuer: 'Corp Root CA', selfSigned: true } },
      roots,
      {
        SSL_CERT_FILE: '/x.pem',
      },
    );
    expect(selfSigned.message).toContain('the server sends its root "Corp Root CA"');
    expect(selfSigned.fix).not.toContain('to keep the system roots');
    expect(tlsFinding(P, { authorized: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID', leaf }, roots, {}).message).toBe(
      'the certificate is for DNS:proxy.corp.example, not proxy.corp.example',
    );
    expect(tlsFinding(P, { authorized: false, code: 'CERT_HAS_EXPIRED', leaf }, roots, {}).message).toContain('expired');
    expect(tlsFinding(P, { authorized: false, code: 'ERR_SSL_WRONG_VERSION_NUMBER', error: 'wrong version number' }, roots, {}).fix).toContain('use http://');
    expect(tlsFinding(P, { authorized: true, leaf }, roots, {}).status).toBe('ok');
  });

  it('healthz and readyz: degraded is a warning, not ready a failure', () => {
    expect(healthzFinding(P, { status: 200, line: 'ok', body: 'ok\n' }).status).toBe('ok');
    expect(healthzFinding(P, { status: 404, line: '', body: '' }).fix).toContain('path prefix');
    expect(readyzFinding(P, { status: 200, line: 'ready, degraded: redis down', body: '' })).toMatchObject({
      status: 'warn',
      message: `GET ${P}/readyz: 200 ready, degraded: redis down`,
    });
    expect(readyzFinding(P, { status: 503, line: 'not ready: every upstream is failing', body: '' })).toMatchObject({
      status: 'fail',
      message: `GET ${P}/readyz: 503: not ready: every upstream is failing`,
    });
    expect(readyzFinding('http://p.example', { error: 'other side closed', code: 'UND_ERR_SOCKET' }).fix).toContain('use https://');
  });
});

describe('credentials', () => {
  const ctx = { netrcFile: '/h/.netrc', key: 'proxy.corp.example:8443', others: [], goauth: true };
  const r401 = { status: 401, line: 'authentication required', body: '' };
  it('401 without credentials: add the host:port line, or fix the portless one', () => {
    expect(credentialsFinding(P, 'x.example/m', r401, undefined, ctx).fix).toBe(
      'add a machine proxy.corp.example:8443 line with login and password (an API token from gomodproxy token create) to /h/.netrc',
    );
    expect(credentialsFinding(P, 'x.example/m', r401, undefined, { ...ctx, near: { machine: 'proxy.corp.example', login: 'a', password: 'b' } }).fix).toBe(
      'change "machine proxy.corp.example" in /h/.netrc to "machine proxy.corp.example:8443"',
    );
  });

  it('401 with them, 403, http://, GOAUTH commands and acceptance', () => {
    const creds = { from: 'machine proxy.corp.example:8443 in /h/.netrc (login al)', header: 'Basic x' };
    expect(credentialsFinding(P, 'x.example/m', r401, creds, ctx).fix).toContain('the proxy rejects them');
    expect(credentialsFinding(P, 'x.example/m', { status: 403, line: 'denied', body: '' }, creds, ctx).fix).toContain('ask the proxy');
    expect(credentialsFinding('http://p.example', 'x.example/m', r401, undefined, ctx).message).toContain('never sends credentials over http://');
    expect(credentialsFinding(P, 'x.example/m', r401, undefined, { ...ctx, others: ['the command corp-auth'] }).status).toBe('warn');
    expect(credentialsFinding(P, 'x.example/m', r401, undefined, { ...ctx, goauth: false }).message).toContain('GOAUTH=off');
    expect(credentialsFinding(P, 'x.example/m', { status: 200, line: '', body: '' }, creds, ctx)).toMatchObject({
      status: 'ok',
      message: expect.stringContaining('accepts the credentials'),
    });
  });
});

describe('checksum database and module answers', () => {
  it('supported: 200 ok, 404 the go command goes direct, other errors fail after "," only', () => {
    expect(sumdbFinding(P, GO_SUMDB_NAME, { status: 200, line: '', body: '' }, 'not-found').status).toBe('ok');
    expect(sumdbFinding(P, GO_SUMDB_NAME, { status: 404, line: 'not found', body: '' }, 'not-found')).toMatchObject({
      status: 'warn',
      fix: expect.stringContaining('GOMODPROXY_SUMDB'),
    });
    expect(sumdbFinding(P, GO_SUMDB_NAME, { status: 502, line: 'bad', body: '' }, 'not-found').status).toBe('fail');
    expect(sumdbFinding(P, GO_SUMDB_NAME, { status: 502, line: 'bad', body: '' }, 'any').status).toBe('warn');
  });

  it('a missing default module is a warning, a missing named one a failure', () => {
    const r404 = { status: 404, line: 'not found', body: '' };
    expect(moduleFinding(P, 'golang.org/x/text', 'latest', 'golang.org/x/text/@v/list', r404, true).status).toBe('warn');
    expect(moduleFinding(P, 'corp.example/m', 'v1.0.0', 'corp.example/m/@v/v1.0.0.info', r404, false).status).toBe('fail');
  });

  it("the go command's errors get the fix of the check that explains them", () => {
    const ctx = { target: P, module: 'x.example/m@v1.0.0', netrcKey: 'proxy.corp.example:8443' };
    expect(goErrorFix('tls: failed to verify certificate: x509: certificate signed by unknown authority', ctx)).toContain('SSL_CERT_FILE');
    expect(goErrorFix('reading https://p/x/@v/v1.0.0.info: 401 Unauthorized', ctx)).toContain('machine proxy.corp.example:8443');
    expect(goErrorFix('verifying x.example/m@v1.0.0: checksum mismatch', ctx)).toContain('gomodproxy verify');
    expect(goErrorFix('reading https://p/x/@v/list: 404 Not Found', { ...ctx, isDefault: true })).toContain('--module');
    expect(goErrorFix('dial tcp 10.0.0.1:8443: connect: connection refused', ctx)).toContain('see http-proxy and tcp');
  });
});

describe("Go's roots", () => {
  it('SSL_CERT_FILE replaces the system bundle and SSL_CERT_DIR the folders; same-folder links are skipped', async () => {
    const dir = await makeTempDir('doctor-roots');
    const a = await makeCa(dir, 'root-a');
    const b = await makeCa(dir, 'root-b');
    const certDir = path.join(dir, 'certs');
    await mkdir(certDir);
    await writeFile(path.join(certDir, 'b.pem'), b.cert);
    await writeFile(path.join(certDir, 'junk.txt'), 'not a certificate');
    await symlink('b.pem', path.join(certDir, 'abcd1234.0'));
    const roots = goRoots({ SSL_CERT_FILE: a.certPath, SSL_CERT_DIR: certDir }, 'linux');
    expect(roots.pems?.map((p) => p.trim())).toEqual([a.cert.toString().trim(), b.cert.toString().trim()]);
    expect(roots.describe).toBe(`SSL_CERT_FILE=${a.certPath} and the certificates in SSL_CERT_DIR=${certDir}`);
    const missing = goRoots({ SSL_CERT_FILE: path.join(dir, 'nope.pem'), SSL_CERT_DIR: certDir }, 'linux');
    expect(missing.problem).toContain('cannot be read (ENOENT)');
    expect(missing.pems).toHaveLength(1);
    expect(goRoots({}, 'darwin').pems).toBeUndefined();
  });
});
