// A real OpenLDAP server for a test: its own temp dir, a generated slapd.conf (mdb database,
// memberOf overlay), loopback on a free port, entries loaded with ldapadd. Debian packages:
// slapd and ldap-utils.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { run, scrubbedEnv } from '../../helpers/proc.js';
import { makeTempDir, registerCleanup } from '../../helpers/tmp.js';

export const SLAPD = '/usr/sbin/slapd';
export const SUFFIX = 'dc=example,dc=test';
export const ADMIN_DN = `cn=admin,${SUFFIX}`;

/** The directory's root with its people and groups folders; tests append their users and groups. */
export const BASE_LDIF = `
dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,${SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${SUFFIX}
objectClass: organizationalUnit
ou: groups
`;

export interface Slapd {
  url: string;
  port: number;
  /** ldaps:// URL when started with TLS. */
  ldapsUrl?: string;
  /** Stops the server (SIGTERM, then SIGKILL); idempotent. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Deadlines for a hung slapd or ldapadd, not for a slow one: well inside the 120 s hook timeout. */
const START_TIMEOUT_MS = 60_000;

async function waitForPort(port: number, child: ChildProcess, deadline: number, stderr: () => string): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`slapd exited with ${child.exitCode} before listening:\n${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`slapd did not listen on ${port} within ${START_TIMEOUT_MS / 1000} s:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface SlapdTls {
  certPath: string;
  keyPath: string;
  caPath: string;
}

/** Starts slapd and loads `ldif` as the admin; with `tls`, also serves ldaps:// and StartTLS. */
export async function startSlapd(ldif: string, adminPassword: string, tls?: SlapdTls): Promise<Slapd> {
  if (!existsSync(SLAPD) || !existsSync('/usr/bin/ldapadd')) {
    throw new Error('OpenLDAP is not installed: apt-get install -y slapd ldap-utils (Debian packages)');
  }
  const dir = await makeTempDir('slapd');
  const db = path.join(dir, 'db');
  await mkdir(db);
  const conf = path.join(dir, 'slapd.conf');
  await writeFile(
    conf,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      'include /etc/ldap/schema/nis.schema',
      ...(tls ? [`TLSCACertificateFile ${tls.caPath}`, `TLSCertificateFile ${tls.certPath}`, `TLSCertificateKeyFile ${tls.keyPath}`] : []),
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'moduleload memberof',
      `pidfile ${path.join(dir, 'slapd.pid')}`,
      'database mdb',
      'maxsize 10485760',
      `suffix "${SUFFIX}"`,
      `rootdn "${ADMIN_DN}"`,
      `rootpw ${adminPassword}`,
      `directory ${db}`,
      'overlay memberof',
      // Passwords are only ever compared by a bind; everything else is readable once bound.
      'access to attrs=userPassword by anonymous auth by * none',
      'access to * by users read by anonymous auth',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  const tlsPort = tls ? await freePort() : 0;
  const ldapsUrl = tls ? `ldaps://localhost:${tlsPort}` : undefined;
  let err = '';
  // -d 0: stay in the foreground (so the test owns the process) with no debug output.
  const listen = ldapsUrl ? `${url}/ ldaps://127.0.0.1:${tlsPort}/` : `${url}/`;
  const child = spawn(SLAPD, ['-f', conf, '-h', listen, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env: scrubbedEnv() });
  child.stderr?.on('data', (b: Buffer) => {
    err = (err + b.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  registerCleanup(stop);
  await waitForPort(port, child, Date.now() + START_TIMEOUT_MS, () => err);
  if (tls) await waitForPort(tlsPort, child, Date.now() + START_TIMEOUT_MS, () => err);
  const add = await run('/usr/bin/ldapadd', ['-x', '-H', url, '-D', ADMIN_DN, '-w', adminPassword], {
    env: scrubbedEnv(),
    input: ldif,
    timeoutMs: START_TIMEOUT_MS,
  });
  if (add.code !== 0) throw new Error(`ldapadd failed (${add.code}): ${add.stderr}`);
  return { url, port, ldapsUrl, stop };
}
