// LDAP against a real OpenLDAP slapd started by this file: direct bind and search-then-bind,
// groups from memberOf and from a group search, refusals, injection attempts, and a directory
// that is down or silent answering 503 (never a 401 that would send users to reset passwords).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Authenticator, type Principal } from '../../src/access/index.js';
import { LdapAuthenticator, escapeDnValue, escapeFilter, firstRdnValue } from '../../src/access/ldap.js';
import type { LdapConfig } from '../../src/config/schema.js';
import { ProxyError } from '../../src/errors.js';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { SecretWatch } from './support/secrets.js';
import { issue, makeCa } from './support/pki.js';
import { ADMIN_DN, BASE_LDIF, SUFFIX, freePort, startSlapd, type Slapd } from './support/slapd.js';
import { makeTempDir } from '../helpers/tmp.js';

const watch = new SecretWatch();
const ADMIN_PW = watch.secret('admin-Secret-4711');
const ALICE_PW = watch.secret('alice-Secret-0815');
const BOB_PW = watch.secret('bob-Secret-2342');
const SVC_PW = watch.secret('svc-Secret-9999');

const ldif = `${BASE_LDIF}
dn: uid=alice,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: ${ALICE_PW}

dn: uid=bob,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: ${BOB_PW}

dn: uid=svc,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: svc
cn: Service
sn: S
userPassword: ${SVC_PW}

dn: cn=devs,ou=groups,${SUFFIX}
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,${SUFFIX}

dn: cn=readers,ou=groups,${SUFFIX}
objectClass: groupOfNames
cn: readers
member: uid=alice,ou=people,${SUFFIX}
member: uid=bob,ou=people,${SUFFIX}
`;

let slapd: Slapd;

function direct(extra: Partial<LdapConfig> = {}): LdapConfig {
  return {
    url: slapd.url,
    startTls: false,
    userDn: `uid={user},ou=people,${SUFFIX}`,
    groups: { from: 'memberOf', filter: '(member={dn})', nameAttribute: 'cn' },
    // Generous: a busy machine must not turn a slow answer from a healthy slapd into an outage.
    timeout: 30_000,
    ...extra,
  };
}

function searchThenBind(extra: Partial<LdapConfig> = {}): LdapConfig {
  return {
    url: slapd.url,
    startTls: false,
    search: { baseDn: `ou=people,${SUFFIX}`, filter: '(uid={user})', bindDn: `uid=svc,ou=people,${SUFFIX}`, bindPassword: SVC_PW },
    groups: { from: 'search', baseDn: `ou=groups,${SUFFIX}`, filter: '(member={dn})', nameAttribute: 'cn' },
    // Generous: a busy machine must not turn a slow answer from a healthy slapd into an outage.
    timeout: 30_000,
    ...extra,
  };
}

async function outageOf(p: Promise<unknown>): Promise<ProxyError> {
  try {
    await p;
  } catch (err) {
    watch.error('ldap outage', err);
    expect(err).toBeInstanceOf(ProxyError);
    return err as ProxyError;
  }
  throw new Error('expected a ProxyError');
}

beforeAll(async () => {
  slapd = await startSlapd(ldif, ADMIN_PW);
});
afterAll(cleanupAll);

describe('direct bind (userDn template)', () => {
  it('accepts the right password and reads groups from memberOf', async () => {
    const ldap = new LdapAuthenticator(direct());
    const v = await ldap.verify('alice', ALICE_PW);
    expect(v).toEqual({ ok: true, user: { dn: `uid=alice,ou=people,${SUFFIX}`, groups: ['devs', 'readers'] } });
    const b = await ldap.verify('bob', BOB_PW);
    expect(b.ok && b.user.groups).toEqual(['readers']);
  });

  it('refuses a wrong password, an unknown user and an empty password', async () => {
    const ldap = new LdapAuthenticator(direct());
    expect(await ldap.verify('alice', BOB_PW)).toEqual({ ok: false, reason: 'bad-password' });
    // An unknown DN is a failed bind too: the directory does not say which users exist.
    expect(await ldap.verify('mallory', ALICE_PW)).toEqual({ ok: false, reason: 'bad-password' });
    // Empty password = unauthenticated bind, which slapd would accept: refused before any bind.
    expect(await ldap.verify('alice', '')).toEqual({ ok: false, reason: 'bad-password' });
  });

  it('escapes the user name into the DN, so it cannot address another entry', async () => {
    const ldap = new LdapAuthenticator(direct());
    // Without escaping this would bind as uid=alice,ou=people,... with alice's password.
    expect(await ldap.verify(`alice,ou=people,${SUFFIX}`, ALICE_PW)).toEqual({ ok: false, reason: 'bad-password' });
    expect(escapeDnValue('a,b+c"d\\e<f>g;h=i')).toBe('a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
    expect(escapeDnValue(' #x ')).toBe('\\ #x\\ ');
    expect(firstRdnValue('cn=dev\\2c ops,ou=groups,dc=x')).toBe('dev, ops');
    expect(firstRdnValue('CN=Team\\, A,OU=g')).toBe('Team, A');
  });

  it('can skip groups', async () => {
    const ldap = new LdapAuthenticator(direct({ groups: { from: 'none', filter: '', nameAttribute: 'cn' } }));
    const v = await ldap.verify('alice', ALICE_PW);
    expect(v.ok && v.user.groups).toEqual([]);
  });
});

describe('search-then-bind (service account)', () => {
  it('finds the user, binds as them, and reads groups by a group search', async () => {
    const ldap = new LdapAuthenticator(searchThenBind());
    expect(await ldap.verify('alice', ALICE_PW)).toEqual({ ok: true, user: { dn: `uid=alice,ou=people,${SUFFIX}`, groups: ['devs', 'readers'] } });
    expect(await ldap.verify('alice', 'not-alices-password')).toEqual({ ok: false, reason: 'bad-password' });
    expect(await ldap.verify('mallory', ALICE_PW)).toEqual({ ok: false, reason: 'unknown-user' });
  });

  it('escapes the user name into the filter: wildcards and filter syntax match nobody', async () => {
    const ldap = new LdapAuthenticator(searchThenBind());
    expect(await ldap.verify('*', ALICE_PW)).toEqual({ ok: false, reason: 'unknown-user' });
    expect(await ldap.verify('al*', ALICE_PW)).toEqual({ ok: false, reason: 'unknown-user' });
    expect(await ldap.verify('x)(uid=alice', ALICE_PW)).toEqual({ ok: false, reason: 'unknown-user' });
    expect(escapeFilter('a*b(c)d\\e\0')).toBe('a\\2ab\\28c\\29d\\5ce\\00');
  });

  it('a refused service account is an outage that names the setting, not a 401', async () => {
    const ldap = new LdapAuthenticator(
      searchThenBind({ search: { baseDn: `ou=people,${SUFFIX}`, filter: '(uid={user})', bindDn: ADMIN_DN, bindPassword: 'wrong-admin-password' } }),
    );
    watch.secret('wrong-admin-password');
    const err = await outageOf(ldap.verify('alice', ALICE_PW));
    expect(err.status).toBe(503);
    expect(err.message).toContain('service account');
    expect(err.message).toContain('bindPassword');
  });
});

describe('through the authenticator', () => {
  it('Basic credentials become an ldap principal with groups; the second request is a synchronous cache hit, with no second bind', async () => {
    const ldap = new LdapAuthenticator(direct());
    const binds = vi.spyOn(ldap, 'verify');
    const auth = new Authenticator({ ldap });
    const header = watch.basic('alice', ALICE_PW);
    const first = auth.authenticate({ authorization: header });
    expect(first).toBeInstanceOf(Promise);
    const p = await first;
    expect(p).toEqual({ name: 'alice', groups: ['devs', 'readers'], scopes: [], method: 'ldap' });
    const again = auth.authenticate({ authorization: header });
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as Principal).name).toBe('alice');
    expect(binds).toHaveBeenCalledTimes(1);
  });

  it('concurrent requests with one header cause one bind; a wrong password is a 401 naming the user only', async () => {
    const auth = new Authenticator({ ldap: new LdapAuthenticator(direct()) });
    const header = watch.basic('bob', BOB_PW);
    const all = Array.from({ length: 5 }, () => auth.authenticate({ authorization: header }));
    expect(new Set(all).size).toBe(1); // the same in-flight promise
    expect((await all[0])?.groups).toEqual(['readers']);
    const bad = watch.basic('bob', 'wrong-Password-1234');
    const err = await Promise.resolve()
      .then(() => auth.authenticate({ authorization: bad }))
      .catch((e: unknown) => e);
    watch.error('ldap 401', err);
    expect((err as { status: number }).status).toBe(401);
    expect((err as Error).message).toBe('wrong user name or password for user "bob"');
  });

  it('a directory that is down answers 503 naming the server, and the outage is not cached as a refusal', async () => {
    const port = await freePort();
    const auth = new Authenticator({ ldap: new LdapAuthenticator({ ...direct(), url: `ldap://127.0.0.1:${port}` }) });
    const header = watch.basic('alice', ALICE_PW);
    for (let i = 0; i < 2; i++) {
      const err = await outageOf(Promise.resolve().then(() => auth.authenticate({ authorization: header })));
      expect(err.status).toBe(503);
      expect(err.message).toContain(`ldap://127.0.0.1:${port}`);
      expect(err.message).toMatch(/ECONNREFUSED/);
    }
  });

  it('a directory that accepts connections but never answers times out as a 503 that says so, after the configured timeout', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    registerCleanup(
      () =>
        new Promise((resolve) => {
          for (const s of sockets) s.destroy();
          silent.close(resolve);
        }),
    );
    const port = (silent.address() as net.AddressInfo).port;
    const ldap = new LdapAuthenticator({ ...direct(), url: `ldap://127.0.0.1:${port}`, timeout: 300 });
    const t = Date.now();
    const err = await outageOf(ldap.verify('alice', ALICE_PW));
    // Ended by our timeout (the silent server never closes), reported as the directory's outage.
    expect(err.kind).toBe('unavailable');
    expect(err.status).toBe(503);
    expect(err.message).toContain(`LDAP server ldap://127.0.0.1:${port} failed`);
    expect(err.message).toMatch(/timed out/i);
    // A lower bound only: it waited for the configured 300 ms rather than giving up at once (with
    // room for a timer that fires early by the event loop's cached time, which load makes stale).
    expect(Date.now() - t).toBeGreaterThanOrEqual(150);
  });

  it('a directory stopped while the proxy runs: 503, not 401', async () => {
    const own = await startSlapd(ldif, ADMIN_PW);
    const ldap = new LdapAuthenticator({ ...direct(), url: own.url });
    expect((await ldap.verify('alice', ALICE_PW)).ok).toBe(true);
    await own.stop();
    const err = await outageOf(ldap.verify('alice', ALICE_PW));
    expect(err.status).toBe(503);
  });
});

describe('TLS to the directory', () => {
  it("ldaps:// and StartTLS with the directory's CA; a certificate not signed by it is refused as an outage", async () => {
    const dir = await makeTempDir('ldap-tls');
    const ca = await makeCa(dir, 'ldap-ca');
    const cert = await issue(ca, dir, { name: 'ldap', subject: '/CN=localhost', san: 'DNS:localhost,IP:127.0.0.1', usage: 'serverAuth' });
    const tlsSlapd = await startSlapd(ldif, ADMIN_PW, { certPath: cert.certPath, keyPath: cert.keyPath, caPath: ca.certPath });
    const ldaps = new LdapAuthenticator({ ...direct(), url: tlsSlapd.ldapsUrl as string, caFile: ca.certPath });
    expect(await ldaps.verify('alice', ALICE_PW)).toMatchObject({ ok: true, user: { groups: ['devs', 'readers'] } });
    const startTls = new LdapAuthenticator({ ...direct(), url: tlsSlapd.url.replace('127.0.0.1', 'localhost'), startTls: true, caFile: ca.certPath });
    expect(await startTls.verify('bob', BOB_PW)).toMatchObject({ ok: true, user: { groups: ['readers'] } });
    // Without the CA (system roots only) the server is not trusted: no password is sent.
    const untrusted = new LdapAuthenticator({ ...direct(), url: tlsSlapd.ldapsUrl as string });
    const err = await outageOf(untrusted.verify('alice', ALICE_PW));
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/certificate/i);
    await tlsSlapd.stop();
  });
});

it('leaks no secret into any output', () => {
  expect(watch.outputCount).toBeGreaterThan(3);
  watch.assertClean();
});
