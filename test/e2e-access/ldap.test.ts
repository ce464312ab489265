// LDAP end to end: a real OpenLDAP slapd (Debian's package) started by the test, gomodproxy on
// HTTPS checking .netrc passwords by search-then-bind, groups from memberOf. A go command user in
// the LDAP group reads a group: route; a user outside it gets 403; a wrong password 401; with the
// directory down a new sign-in is 503 (an outage, never a "wrong password"), while a credential
// checked a moment ago still works from the cache. No password appears in any output.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv, parseJsonStream, type GoEnv, type GoModDownload } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { BASE_LDIF, SUFFIX, startSlapd, type Slapd } from '../access/support/slapd.js';
import { findSecrets, makeServerPki, proxyOutput, secretForms, startProxyWithConfig, writeNetrc, type ServerPki } from './util.js';

const TEAM = 'github.com/gmp-ldap/team';
const ADMIN_PW = 'ldap-Admin-Secret-31337';
const SVC_PW = 'ldap-Svc-Secret-80211';
const DAVE_PW = 'dave-Ldap-Secret-4c2f';
const ERIN_PW = 'erin-Ldap-Secret-9a1d';
const FRANK_PW = 'frank-Ldap-Secret-77e0';

const ldif = `${BASE_LDIF}
${['dave', 'erin', 'frank', 'svc']
  .map(
    (u) => `dn: uid=${u},ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: ${u}
cn: ${u}
sn: ${u}
userPassword: ${{ dave: DAVE_PW, erin: ERIN_PW, frank: FRANK_PW, svc: SVC_PW }[u]}
`,
  )
  .join('\n')}
dn: cn=gophers,ou=groups,${SUFFIX}
objectClass: groupOfNames
cn: gophers
member: uid=dave,ou=people,${SUFFIX}
member: uid=frank,ou=people,${SUFFIX}

dn: cn=others,ou=groups,${SUFFIX}
objectClass: groupOfNames
cn: others
member: uid=erin,ou=people,${SUFFIX}
`;

let world: World;
let upstream: TestUpstream;
let slapd: Slapd;
let pki: ServerPki;
let proxy: ProxyProcess & { configFile: string };
const goOutputs: Array<[string, string]> = [];

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: TEAM, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] }] });
  upstream = await startTestUpstream({ root: world.downloadDir });
  [slapd, pki] = await Promise.all([startSlapd(ldif, ADMIN_PW), makeServerPki()]);
  proxy = await startProxyWithConfig(
    {
      tls: { cert: pki.server.certPath, key: pki.server.keyPath },
      routes: [{ match: 'github.com/gmp-ldap', read: ['group:gophers'] }],
      auth: {
        ldap: {
          url: slapd.url,
          search: { baseDn: `ou=people,${SUFFIX}`, filter: '(uid={user})', bindDn: `uid=svc,ou=people,${SUFFIX}`, bindPassword: SVC_PW },
          groups: { from: 'memberOf' },
          // Generous: a busy machine must not turn a slow answer from a healthy slapd into an outage.
          timeout: '30s',
        },
      },
    },
    { upstream: upstream.url },
  );
});
afterAll(cleanupAll);

async function goUser(login: string, password: string): Promise<GoEnv> {
  const env = await createGoEnv({ goproxy: proxy.url, env: { SSL_CERT_FILE: pki.ca.certPath } });
  await writeNetrc(path.join(env.home, '.netrc'), [{ machine: new URL(proxy.url).host, login, password }]);
  return env;
}

async function download(env: GoEnv, mods: string[]): Promise<GoModDownload[]> {
  const r = await env.go(['mod', 'download', '-json', ...mods], { allowFail: true });
  goOutputs.push([`go mod download ${mods.join(' ')}`, r.stdout + r.stderr]);
  return parseJsonStream(r.stdout) as GoModDownload[];
}

describe('LDAP users and groups', () => {
  test('a user in the LDAP group reads the group: route through the go command', async () => {
    const env = await goUser('dave', DAVE_PW);
    const mods = [`${TEAM}@v1.0.0`, `${TEAM}@v1.1.0`];
    const got = await download(env, mods);
    expect(got.map((r) => [r.Error ?? null, r.Sum, r.GoModSum])).toEqual(mods.map((m) => [null, world.get(m).Sum, world.get(m).GoModSum]));
    const list = await env.go(['list', '-m', '-versions', TEAM]);
    expect(list.stdout.trim()).toBe(`${TEAM} v1.0.0 v1.1.0`);
  });

  test('a user outside the group: 403 naming the user', async () => {
    const env = await goUser('erin', ERIN_PW);
    const [r] = await download(env, [`${TEAM}@v1.0.0`]);
    expect(r?.Error).toMatch(/403 Forbidden\n\tserver response: access to github\.com\/gmp-ldap\/team is denied for user erin \(ldap\)/);
  });

  test('a wrong password: 401 with the reason; an unknown user the same (the directory does not say who exists)', async () => {
    const env = await goUser('dave', ERIN_PW);
    const [r] = await download(env, [`${TEAM}@v1.0.0`]);
    expect(r?.Error).toMatch(/401 Unauthorized\n\tserver response: wrong user name or password for user "dave"/);
    const env2 = await goUser('nobody', DAVE_PW);
    const [r2] = await download(env2, [`${TEAM}@v1.0.0`]);
    expect(r2?.Error).toMatch(/401 Unauthorized\n\tserver response: wrong user name or password for user "nobody"/);
  });

  test('directory down: a new sign-in is 503 (an outage, not a wrong password); a recently checked one still works', async () => {
    await slapd.stop();
    const env = await goUser('frank', FRANK_PW);
    const [r] = await download(env, [`${TEAM}@v1.1.0`]);
    expect(r?.Error).toMatch(/503 Service Unavailable\n\tserver response: .*(LDAP|directory)/i);
    expect(r?.Error).not.toMatch(/wrong user name or password/);
    const dave = await goUser('dave', DAVE_PW);
    await dave.go(['clean', '-modcache']);
    const [d] = await download(dave, [`${TEAM}@v1.1.0`]);
    expect(d?.Sum).toBe(world.get(`${TEAM}@v1.1.0`).Sum);
  });

  test("no LDAP password (users' or the service account's) appears in any output", async () => {
    const secrets = secretForms([
      { user: 'dave', password: DAVE_PW },
      { user: 'erin', password: ERIN_PW },
      { user: 'frank', password: FRANK_PW },
      { user: 'dave', password: ERIN_PW },
      { user: 'nobody', password: DAVE_PW },
      SVC_PW,
      ADMIN_PW,
    ]);
    const texts: Array<[string, string]> = [...proxyOutput(proxy, 'proxy'), ...goOutputs];
    expect(findSecrets(texts, secrets)).toEqual([]);
    // the config file does hold the service password (the operator's file, not a log)
    expect(await readFile(proxy.configFile, 'utf8')).toContain(SVC_PW);
  });
});
