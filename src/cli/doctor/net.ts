// The network half of `gomodproxy doctor`: connect, shake hands and ask, the way the go command
// would. Its trust store is rebuilt here by Go's rules (crypto/x509 root_unix.go) rather than
// Node's, because the question is whether the go command trusts the certificate: Node ships its
// own roots, while Go on Linux and the BSDs reads SSL_CERT_FILE (instead of the system bundle) and
// SSL_CERT_DIR (instead of the system folders).
import { X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import net from 'node:net';
import tls, { type DetailedPeerCertificate } from 'node:tls';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import type { CertSummary, HttpOutcome, TcpOutcome, TlsOutcome } from './checks.js';

/** Go's system bundle files and folders per platform (crypto/x509 root_linux.go, root_bsd.go). */
const CERT_FILES: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: [
    '/etc/ssl/certs/ca-certificates.crt',
    '/etc/pki/tls/certs/ca-bundle.crt',
    '/etc/ssl/ca-bundle.pem',
    '/etc/pki/tls/cacert.pem',
    '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
    '/etc/ssl/cert.pem',
  ],
  freebsd: ['/usr/local/etc/ssl/cert.pem', '/etc/ssl/cert.pem', '/usr/local/share/certs/ca-root-nss.crt'],
  openbsd: ['/etc/ssl/cert.pem'],
  netbsd: ['/etc/openssl/certs/ca-certificates.crt'],
};
const CERT_DIRS: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['/etc/ssl/certs', '/etc/pki/tls/certs'],
  freebsd: ['/etc/ssl/certs', '/usr/local/share/certs', '/etc/openssl/certs'],
  openbsd: ['/etc/ssl/certs'],
  netbsd: ['/etc/openssl/certs'],
};

export interface Roots {
  /** PEM certificates, or undefined to use the platform's own verifier (macOS, Windows). */
  pems: string[] | undefined;
  /** Where they came from, for messages. */
  describe: string;
  /** Something wrong with SSL_CERT_FILE/SSL_CERT_DIR that explains a failure. */
  problem?: string;
}

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function pemsOf(text: string, into: Set<string>): void {
  for (const m of text.matchAll(PEM)) {
    try {
      // Go's AppendCertsFromPEM skips what does not parse; so do we, instead of failing the handshake.
      new X509Certificate(m[0]);
      into.add(m[0]);
    } catch {
      // not a certificate Go would load either
    }
  }
}

/** The roots the go command verifies servers against, read as Go reads them. */
export function goRoots(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): Roots {
  const files = CERT_FILES[platform];
  const dirs = CERT_DIRS[platform];
  if (!files || !dirs) return { pems: undefined, describe: `the ${platform} system roots (the go command does not read SSL_CERT_FILE there)` };
  const pems = new Set<string>();
  const fileList = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : files;
  let fileUsed: string | undefined;
  let problem: string | undefined;
  for (const f of fileList) {
    try {
      pemsOf(readFileSync(f, 'utf8'), pems);
      fileUsed = f;
      break;
    } catch (err) {
      if (env.SSL_CERT_FILE) problem = `SSL_CERT_FILE=${f} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }
  const dirList = env.SSL_CERT_DIR ? env.SSL_CERT_DIR.split(':') : dirs;
  for (const dir of dirList) {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const file = `${dir}/${e.name}`;
      // Go skips a symlink to a file in the same folder (the hash links beside each certificate).
      if (e.isSymbolicLink()) {
        try {
          if (!readlinkSync(file).includes('/')) continue;
        } catch {
          continue;
        }
      }
      try {
        pemsOf(readFileSync(file, 'utf8'), pems);
      } catch {
        // a folder or unreadable file: Go skips it too
      }
    }
  }
  const fileText = env.SSL_CERT_FILE ? `SSL_CERT_FILE=${env.SSL_CERT_FILE}` : fileUsed ? `the system bundle ${fileUsed}` : 'no system bundle';
  const dirText = env.SSL_CERT_DIR ? `SSL_CERT_DIR=${env.SSL_CERT_DIR}` : dirs.join(', ');
  return { pems: [...pems], describe: `${fileText} and the certificates in ${dirText}`, problem };
}

function withTimeout<T>(
  ms: number,
  what: string,
  run: (done: (v: T) => void, fail: (e: Error) => void, onTimeout: (f: () => void) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: () => void = () => undefined;
    const timer = setTimeout(() => {
      cleanup();
      reject(Object.assign(new Error(`no answer within ${ms / 1000}s ${what}`), { code: 'ETIMEDOUT' }));
    }, ms);
    run(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        cleanup();
        reject(e);
      },
      (f) => (cleanup = f),
    );
  });
}

function connectSocket(host: string, port: number, ms: number): Promise<net.Socket> {
  return withTimeout(ms, `from ${host}:${port}`, (done, fail, onTimeout) => {
    const s = net.connect({ host, port });
    onTimeout(() => s.destroy());
    s.once('connect', () => done(s));
    s.once('error', fail);
  });
}

/** A tunnel to host:port through an HTTP proxy (CONNECT), as net/http opens one for https. */
function tunnel(via: URL, host: string, port: number, ms: number): Promise<net.Socket> {
  return withTimeout(ms, `from the proxy ${via.host}`, (done, fail, onTimeout) => {
    const headers: Record<string, string> = { host: `${host}:${port}` };
    if (via.username)
      headers['proxy-authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(via.username)}:${decodeURIComponent(via.password)}`).toString('base64')}`;
    const req = httpRequest({ host: via.hostname, port: Number(via.port || 80), method: 'CONNECT', path: `${host}:${port}`, headers });
    onTimeout(() => req.destroy());
    req.once('connect', (res, socket) => {
      if (res.statusCode === 200) {
        done(socket);
      } else {
        socket.destroy();
        fail(Object.assign(new Error(`the proxy ${via.host} answered CONNECT ${host}:${port} with ${res.statusCode}`), { code: 'EPROXY' }));
      }
    });
    req.once('error', (e) => fail(Object.assign(e, { proxy: true })));
    req.end();
  });
}

/** Resolve and connect (or open a tunnel through `via`): the network step of the troubleshooting chart. */
export async function probeTcp(host: string, port: number, ms: number, via?: URL): Promise<TcpOutcome> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (via) {
    if (via.protocol !== 'http:')
      return { ok: false, stage: 'proxy', code: 'EUNSUPPORTED', message: `doctor cannot tunnel through a ${via.protocol.slice(0, -1)} proxy` };
    try {
      const s = await tunnel(via, bare, port, ms);
      s.destroy();
      return { ok: true, address: `${bare}:${port} through ${via.host}` };
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { proxy?: boolean };
      return { ok: false, stage: 'proxy', code: e.code ?? 'ERROR', message: e.message };
    }
  }
  let address = bare;
  if (net.isIP(bare) === 0) {
    try {
      // A resolver with no way out can take far longer than the user's patience: bound it too.
      address = await withTimeout<string>(ms, `from the resolver for ${bare}`, (done, fail) => {
        lookup(bare).then((r) => done(r.address), fail);
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, stage: 'dns', code: e.code ?? 'ERROR', message: `cannot resolve ${bare} (${e.code ?? e.message})` };
    }
  }
  try {
    const s = await connectSocket(address, port, ms);
    s.destroy();
    return { ok: true, address: `${address}:${port}` };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, stage: 'connect', code: e.code ?? 'ERROR', message: e.message };
  }
}

function nameOf(n: Record<string, string | string[] | undefined> | undefined): string {
  if (!n) return '?';
  const pick = (k: string): string | undefined => {
    const v = n[k];
    return Array.isArray(v) ? v[0] : v;
  };
  return (
    pick('CN') ??
    pick('O') ??
    (Object.entries(n)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ') ||
      '?')
  );
}

function summary(c: DetailedPeerCertificate): CertSummary {
  const subject = nameOf(c.subject as unknown as Record<string, string>);
  const issuer = nameOf(c.issuer as unknown as Record<string, string>);
  return {
    subject,
    issuer,
    selfSigned: c.fingerprint256 === c.issuerCertificate?.fingerprint256 || JSON.stringify(c.subject) === JSON.stringify(c.issuer),
    validTo: c.valid_to,
  };
}

/** A TLS handshake verified against `roots`, as the go command's would be. */
export async function probeTls(host: string, port: number, roots: Roots, ms: number, via?: URL): Promise<TlsOutcome> {
  const bare = host.replace(/^\[|\]$/g, '');
  let socket: net.Socket | undefined;
  if (via) {
    try {
      socket = await tunnel(via, bare, port, ms);
    } catch (err) {
      return { authorized: false, code: (err as NodeJS.ErrnoException).code, error: (err as Error).message };
    }
  }
  const options: tls.ConnectionOptions = {
    host: bare,
    port,
    socket,
    // SNI carries host names only; an IP address is checked against the certificate's IP SANs.
    servername: net.isIP(bare) === 0 ? bare : undefined,
    ca: roots.pems,
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
  };
  try {
    return await withTimeout<TlsOutcome>(ms, `to the TLS handshake with ${bare}:${port}`, (done, fail, onTimeout) => {
      const s = tls.connect(options);
      onTimeout(() => s.destroy());
      s.once('secureConnect', () => {
        const cert = s.getPeerCertificate(true);
        let top = cert;
        for (let i = 0; i < 10 && top.issuerCertificate && top.issuerCertificate !== top && top.issuerCertificate.fingerprint256 !== top.fingerprint256; i++) {
          top = top.issuerCertificate;
        }
        const out: TlsOutcome = {
          authorized: s.authorized,
          code: s.authorized ? undefined : String(s.authorizationError),
          leaf: cert.subject ? { ...summary(cert), altNames: cert.subjectaltname ?? '' } : undefined,
          top: top.subject ? summary(top) : undefined,
        };
        s.destroy();
        done(out);
      });
      s.once('error', fail);
    });
  } catch (err) {
    socket?.destroy();
    const e = err as NodeJS.ErrnoException;
    return { authorized: false, code: e.code, error: e.message };
  }
}

/** One dispatcher for every request of a run: the go command's roots, through its HTTP proxy if it uses one. */
export function dispatcherFor(roots: Roots, ms: number, via?: URL): Dispatcher {
  const tlsOptions = { ca: roots.pems };
  if (via) return new ProxyAgent({ uri: via.href, requestTls: tlsOptions, proxyTls: tlsOptions, connect: { timeout: ms } });
  return new Agent({ connect: { ...tlsOptions, timeout: ms } });
}

const MAX_BODY = 64 * 1024;

/** GET with the go command's headers; the status and, for text/plain, the first line (what the go command prints). */
export async function httpGet(url: string, dispatcher: Dispatcher, ms: number, headers: Record<string, string> = {}): Promise<HttpOutcome> {
  try {
    const res = await request(url, {
      dispatcher,
      headers: { 'user-agent': 'Go-http-client/1.1', 'accept-encoding': 'identity', ...headers },
      headersTimeout: ms,
      bodyTimeout: ms,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      chunks.push(b);
      size += b.length;
      if (size >= MAX_BODY) {
        res.body.destroy();
        break;
      }
    }
    const type = String(res.headers['content-type'] ?? '');
    const text = Buffer.concat(chunks).toString('utf8');
    // Like the go command, show only plain text: an HTML error page says nothing on one line.
    const line = /^text\/plain\b/i.test(type) || type === '' ? (text.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 300) : '';
    return { status: res.statusCode, line, body: text };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: Error & { code?: string } };
    const code = e.cause?.code ?? e.code;
    const message = e.cause?.message && e.cause.message !== e.message ? `${e.message} (${e.cause.message})` : e.message;
    return { error: message, code };
  }
}
