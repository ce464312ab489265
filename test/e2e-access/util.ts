// Shared pieces of the access-control end-to-end tests (not a test file itself): a test CA and
// server certificate made with openssl, htpasswd files, .netrc files, YAML configs, HTTPS
// requests with undici (optionally presenting a client certificate), log and secret scanning.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { issue, makeCa, type CertFiles } from '../access/support/pki.js';
import { startProxy, type ProxyProcess, type StartProxyOptions } from '../helpers/gomodproxy.js';
import type { HttpResponse } from '../helpers/http.js';
import { makeTempDir, registerCleanup } from '../helpers/tmp.js';

export { issue, makeCa, type CertFiles };

export interface ServerPki {
  dir: string;
  ca: CertFiles;
  /** Server certificate for 127.0.0.1 and localhost. */
  server: CertFiles;
}

/** A CA and a server certificate for 127.0.0.1 (what the go command trusts through SSL_CERT_FILE). */
export async function makeServerPki(name = 'gmp-test-ca'): Promise<ServerPki> {
  const dir = await makeTempDir('pki');
  const ca = await makeCa(dir, name);
  const server = await issue(ca, dir, { name: 'server', subject: '/CN=127.0.0.1', san: 'IP:127.0.0.1,DNS:localhost', usage: 'serverAuth' });
  return { dir, ca, server };
}

/** SHA-256 fingerprint of a PEM certificate, as Node's TLS peer certificate reports it (fingerprint256). */
export function fingerprint256(pem: Buffer | string): string {
  const text = pem.toString();
  const b64 = text.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const hex = createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex').toUpperCase();
  return hex.match(/../g)!.join(':');
}

/** An htpasswd file of bcrypt hashes (cost 4: the cheapest the server accepts, so tests stay quick). */
export async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  const lines = Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}`);
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

/** A .netrc file; `machine` must carry the port for a non-default one (the go command keys on host:port). */
export async function writeNetrc(file: string, entries: Array<{ machine: string; login: string; password: string }>): Promise<void> {
  const text = entries.map((e) => `machine ${e.machine}\n  login ${e.login}\n  password ${e.password}\n`).join('');
  await writeFile(file, text, { mode: 0o600 });
}

/** Writes `config` as YAML into a new temp dir and returns the file. */
export async function writeConfig(config: Record<string, unknown>, name = 'gomodproxy.yaml'): Promise<string> {
  const dir = await makeTempDir('config');
  const file = path.join(dir, name);
  await writeFile(file, stringify(config));
  return file;
}

/** startProxy with `--config file` written from `config`. */
export async function startProxyWithConfig(config: Record<string, unknown>, opts: StartProxyOptions = {}): Promise<ProxyProcess & { configFile: string }> {
  const configFile = await writeConfig(config);
  const p = await startProxy({ ...opts, args: ['--config', configFile, ...(opts.args ?? [])] });
  return Object.assign(p, { configFile });
}

export interface TlsClient {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Local address to connect from (127.0.0.2 is loopback too on Linux: a second client address). */
  localAddress?: string;
}

const agents = new Map<string, Agent>();

/** One pooled agent per client identity, closed by cleanupAll. */
export function agentFor(c: TlsClient = {}): Agent {
  // The whole bytes: PEM files end alike (the END line), so a tail would let two identities share a pool.
  const digest = (b: Buffer | undefined): string | undefined => b && createHash('sha256').update(b).digest('hex');
  const key = JSON.stringify([digest(c.ca), digest(c.cert), digest(c.key), c.localAddress]);
  let a = agents.get(key);
  if (!a) {
    a = new Agent({
      keepAliveTimeout: 1_000,
      keepAliveMaxTimeout: 1_000,
      connections: 64,
      // undici takes the local address as a client option (a connect option would be overridden)
      localAddress: c.localAddress,
      connect: { ca: c.ca, cert: c.cert, key: c.key },
    });
    const made = a;
    agents.set(key, made);
    registerCleanup(async () => {
      agents.delete(key);
      await made.close().catch(() => undefined);
    });
  }
  return a;
}

/** GET (or HEAD) over http or https with a given client identity; never throws on a status. */
export async function fetchAs(
  url: string,
  client: TlsClient = {},
  headers: Record<string, string> = {},
  method: 'GET' | 'HEAD' = 'GET',
): Promise<HttpResponse> {
  const res = await request(url, { method, headers, dispatcher: agentFor(client), headersTimeout: 30_000, bodyTimeout: 30_000 });
  const body = Buffer.from(await res.body.arrayBuffer());
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return { status: res.statusCode, headers: h, body, text: () => body.toString('utf8'), json: <T>() => JSON.parse(body.toString('utf8')) as T };
}

/** The Basic header value for user:password. */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Secret forms to look for: the value itself and, for user:password pairs, the Basic header value. */
export function secretForms(secrets: Array<string | { user: string; password: string }>): string[] {
  const out: string[] = [];
  for (const s of secrets) {
    if (typeof s === 'string') out.push(s);
    else out.push(s.password, Buffer.from(`${s.user}:${s.password}`).toString('base64'));
  }
  return out;
}

/** Every (label, text) whose text contains one of `secrets`; empty means clean. */
export function findSecrets(texts: Array<[string, string]>, secrets: string[]): string[] {
  const leaks: string[] = [];
  for (const [label, text] of texts) {
    for (const s of secrets) if (s.length >= 8 && text.includes(s)) leaks.push(`${label} contains ${s.slice(0, 6)}...`);
  }
  return leaks;
}

/** Everything a proxy process wrote: its stdout lines (as JSON text) and its stderr. */
export function proxyOutput(p: ProxyProcess, label: string): Array<[string, string]> {
  return [
    [
      `${label} stdout`,
      p
        .logs()
        .map((l) => JSON.stringify(l))
        .join('\n'),
    ],
    [`${label} stderr`, p.stderr()],
  ];
}

/** The JSON lines of an audit file. */
export async function readAudit(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
