// A stand-in for proxy.golang.org on loopback: serves a GOPROXY tree from disk (e.g. a world's
// downloadDir) with the headers a real proxy sends, records every request, and misbehaves on
// demand (error statuses, stalls, delays, dying mid-body, trickling, wrong bytes) so tests can
// prove how the proxy under test copes with a bad upstream.
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { registerCleanup } from './tmp.js';

export interface UpstreamRequest {
  method: string;
  /** Percent-decoded path below the base path (`/github.com/!azure/x/@v/list`). */
  path: string;
  /** The request target as sent, including any base path. */
  rawPath: string;
  headers: IncomingHttpHeaders;
  /** Date.now() on arrival. */
  time: number;
  /** Status sent, once the response started (undefined for stalled or still-delayed requests). */
  status?: number;
}

/**
 * A string matches a request whose decoded path (below the base path) equals it exactly; a RegExp
 * is tested against that path; a function sees the whole request.
 */
export type RequestMatcher = string | RegExp | ((req: UpstreamRequest) => boolean);

/**
 * What to do with a matching request. Fields combine: `delayMs` waits first, then `hold`; then `stall`, an
 * error `status`, a `replaceBody`, or the normal file is chosen; `gzip`, `dieAfterBytes` and
 * `slowBody` shape how that body is sent.
 */
export interface Behaviour {
  /** Wait this long before sending headers. */
  delayMs?: number;
  /**
   * Send nothing until this settles (then answer as the other fields say): the test lets the
   * answer go once it has seen what it needs, where a delay would only guess how long that takes.
   */
  hold?: Promise<unknown>;
  /** Accept the request and never answer (until the upstream is closed or killed). */
  stall?: boolean;
  /** Answer with this status; non-2xx without `replaceBody` sends `body` as a text/plain error line. */
  status?: number;
  /** Error body line (default names the injected status). */
  body?: string;
  /** Serve these bytes instead of the file (status 200 unless `status` says otherwise). */
  replaceBody?: string | Buffer;
  /** Content-Type to send instead of the usual one. */
  contentType?: string;
  /** Extra response headers. */
  headers?: Record<string, string>;
  /** Compress the body with Content-Encoding: gzip (the go command accepts it). */
  gzip?: boolean;
  /** Send headers with the full Content-Length, then only this many body bytes, then reset the connection. */
  dieAfterBytes?: number;
  /** Send the body `chunk` bytes at a time, `intervalMs` apart. */
  slowBody?: { chunk: number; intervalMs: number };
  /** Apply to this many matching requests, then stop matching (unlimited by default). */
  times?: number;
}

export interface UpstreamRule {
  /** Requests this rule has handled so far. */
  readonly hits: number;
  remove(): void;
}

export interface TestUpstreamOptions {
  /** Directory with the proxy layout (`<escaped module>/@v/...`). */
  root: string;
  /** Serve under this path prefix (`/proxy` -> url `http://127.0.0.1:N/proxy`). */
  basePath?: string;
  /** Port to listen on; 0 (any free port) by default. */
  port?: number;
  /** Serve every file below root, not only the proxy layout (a static site such as a vulnerability database). */
  anyFile?: boolean;
}

export interface TestUpstream {
  /** Base URL to put in GOPROXY (includes the base path, no trailing slash). */
  readonly url: string;
  readonly port: number;
  readonly root: string;
  /** Every request received since start or the last reset, oldest first. */
  readonly requests: UpstreamRequest[];
  /** Adds a rule; the newest matching rule wins. */
  on(matcher: RequestMatcher, behaviour: Behaviour): UpstreamRule;
  /** `on` for the next matching request only. */
  once(matcher: RequestMatcher, behaviour: Behaviour): UpstreamRule;
  /** Drops every rule and forgets recorded requests. */
  reset(): void;
  /** Number of recorded requests matching (all requests without a matcher). */
  count(matcher?: RequestMatcher): number;
  /** Resolves once `count(matcher) >= n` (default 1), with the latest matching request. */
  waitForRequest(matcher: RequestMatcher, opts?: { n?: number; timeoutMs?: number }): Promise<UpstreamRequest>;
  /** Stops listening and destroys every connection; later connections are refused. */
  kill(): Promise<void>;
  /** Listens again on the same port with the same rules (after kill). */
  restart(): Promise<void>;
  /** Final stop: kill and forget. Safe to call twice. */
  close(): Promise<void>;
}

interface Rule {
  matcher: RequestMatcher;
  behaviour: Behaviour;
  remaining: number;
  hits: number;
}

interface Body {
  status: number;
  contentType: string;
  /** Either bytes in memory or a file to stream. */
  data?: Buffer;
  file?: { path: string; size: number };
}

const textPlain = 'text/plain; charset=utf-8';

export function matches(matcher: RequestMatcher, req: UpstreamRequest): boolean {
  if (typeof matcher === 'string') return req.path === matcher || req.rawPath === matcher;
  if (matcher instanceof RegExp) {
    matcher.lastIndex = 0;
    return matcher.test(req.path);
  }
  return matcher(req);
}

export async function startTestUpstream(opts: TestUpstreamOptions): Promise<TestUpstream> {
  const root = path.resolve(opts.root);
  const basePath = (opts.basePath ?? '').replace(/\/+$/, '');
  if (basePath && !basePath.startsWith('/')) throw new Error(`basePath must start with /: ${basePath}`);
  let rules: Rule[] = [];
  const requests: UpstreamRequest[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const sleep = (ms: number, res: ServerResponse): Promise<boolean> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve(!res.destroyed);
      }, ms);
      timers.add(t);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rawPath = req.url ?? '/';
    const pathname = rawPath.split('?')[0]!;
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      decoded = pathname;
    }
    const below = basePath && (decoded === basePath || decoded.startsWith(`${basePath}/`)) ? decoded.slice(basePath.length) : decoded;
    const record: UpstreamRequest = { method: req.method ?? 'GET', path: below, rawPath, headers: req.headers, time: Date.now() };
    requests.push(record);
    for (const w of [...waiters]) w();

    const rule = rules.findLast((r) => r.remaining > 0 && matches(r.matcher, record));
    const b: Behaviour = rule?.behaviour ?? {};
    if (rule) {
      rule.remaining--;
      rule.hits++;
    }

    if (b.delayMs && !(await sleep(b.delayMs, res))) return;
    if (b.hold) {
      await b.hold.catch(() => undefined);
      if (res.destroyed) return;
    }
    if (b.stall) return; // the socket stays open until kill/close destroys it

    let body: Body;
    if (basePath && below === decoded && decoded !== basePath) {
      body = errorBody(404, `not found: ${decoded} is outside ${basePath}`);
    } else if (b.replaceBody !== undefined) {
      const data = Buffer.isBuffer(b.replaceBody) ? b.replaceBody : Buffer.from(b.replaceBody);
      body = { status: b.status ?? 200, contentType: contentTypeFor(below), data };
    } else if (b.status !== undefined && (b.status < 200 || b.status > 299)) {
      body = errorBody(b.status, b.body ?? `gmp test upstream: injected ${b.status} for ${below}`);
    } else if (record.method !== 'GET' && record.method !== 'HEAD') {
      body = errorBody(405, `method ${record.method} not allowed`);
    } else {
      body = await lookup(root, below, opts.anyFile ?? false);
      if (b.status !== undefined && body.status === 200) body.status = b.status;
    }
    if (b.contentType) body.contentType = b.contentType;
    await send(req, res, record, body, b);
  };

  const send = async (req: IncomingMessage, res: ServerResponse, record: UpstreamRequest, body: Body, b: Behaviour): Promise<void> => {
    let data = body.data;
    if ((b.gzip || b.dieAfterBytes !== undefined || b.slowBody) && !data && body.file) {
      data = await readFile(body.file.path);
    }
    const headers: Record<string, string | number> = { 'Content-Type': body.contentType, ...b.headers };
    if (b.gzip && data) {
      data = gzipSync(data);
      headers['Content-Encoding'] = 'gzip';
    }
    const length = data ? data.length : (body.file?.size ?? 0);
    headers['Content-Length'] = length;
    record.status = body.status;
    res.writeHead(body.status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (b.dieAfterBytes !== undefined) {
      const part = data!.subarray(0, Math.min(b.dieAfterBytes, data!.length));
      res.flushHeaders();
      // destroy only after the bytes were handed to the kernel, so the client really sees them
      res.write(part, () => res.socket?.destroy());
      if (part.length === 0) setImmediate(() => res.socket?.destroy());
      return;
    }
    if (b.slowBody && data) {
      const { chunk, intervalMs } = b.slowBody;
      for (let off = 0; off < data.length; off += Math.max(1, chunk)) {
        if (res.destroyed) return;
        res.write(data.subarray(off, off + Math.max(1, chunk)));
        if (off + chunk < data.length && !(await sleep(intervalMs, res))) return;
      }
      res.end();
      return;
    }
    if (data) {
      res.end(data);
      return;
    }
    if (body.file) {
      const stream = createReadStream(body.file.path);
      stream.on('error', () => res.destroy());
      stream.pipe(res);
      return;
    }
    res.end();
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': textPlain });
        res.end(`gmp test upstream bug: ${String(err)}\n`);
      } else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const listen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });

  const port = await listen(opts.port ?? 0);
  const stopListening = async (): Promise<void> => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    const done = server.listening ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const s of sockets) s.destroy();
    await done;
  };

  const up: TestUpstream = {
    url: `http://127.0.0.1:${port}${basePath}`,
    port,
    root,
    requests,
    on(matcher, behaviour) {
      const rule: Rule = { matcher, behaviour, remaining: behaviour.times ?? Infinity, hits: 0 };
      rules.push(rule);
      return {
        get hits() {
          return rule.hits;
        },
        remove() {
          rules = rules.filter((r) => r !== rule);
        },
      };
    },
    once(matcher, behaviour) {
      return up.on(matcher, { ...behaviour, times: 1 });
    },
    reset() {
      rules = [];
      requests.length = 0;
    },
    count(matcher) {
      return matcher === undefined ? requests.length : requests.filter((r) => matches(matcher, r)).length;
    },
    waitForRequest(matcher, wo = {}) {
      const n = wo.n ?? 1;
      // Long: the request will come; the bound only turns a hang into a message naming what was seen.
      const timeoutMs = wo.timeoutMs ?? 60_000;
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hits = requests.filter((r) => matches(matcher, r));
          if (hits.length < n) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hits[hits.length - 1]!);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${n} request(s) matching ${String(matcher)} within ${timeoutMs} ms; saw ${requests.map((r) => r.path).join(', ')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async kill() {
      await stopListening();
    },
    async restart() {
      if (closed) throw new Error('upstream was closed');
      if (!server.listening) await listen(port);
    },
    async close() {
      closed = true;
      await stopListening();
    },
  };
  registerCleanup(() => up.close());
  return up;
}

function errorBody(status: number, line: string): Body {
  return { status, contentType: textPlain, data: Buffer.from(`${line}\n`) };
}

function contentTypeFor(p: string): string {
  if (p.endsWith('/@v/list') || p.endsWith('.mod')) return textPlain;
  if (p.endsWith('.info') || p.endsWith('/@latest')) return 'application/json';
  if (p.endsWith('.zip')) return 'application/zip';
  return 'application/octet-stream';
}

/** Finds what a real proxy would answer for `p` in the on-disk tree. */
async function lookup(root: string, p: string, anyFile: boolean): Promise<Body> {
  const segs = p.split('/').filter(Boolean);
  if (segs.some((s) => s === '..' || s === '.' || s.includes('\0'))) return errorBody(400, `bad request path ${p}`);
  const at = p.lastIndexOf('/@v/');
  const isVersionFile = at >= 0 && /^[^/]+\.(info|mod|zip)$/.test(p.slice(at + 4));
  const isList = p.endsWith('/@v/list');
  const isLatest = p.endsWith('/@latest');
  const isSumdb = segs[0] === 'sumdb';
  const modulePath = at >= 0 ? p.slice(1, at) : isLatest ? p.slice(1, -'/@latest'.length) : p.slice(1);
  const what = isVersionFile ? `${modulePath}@${unescapeSeg(p.slice(at + 4).replace(/\.(info|mod|zip)$/, ''))}` : modulePath;
  if (!isVersionFile && !isList && !isLatest && !isSumdb && !anyFile) return errorBody(404, `not found: ${p}`);

  const file = path.join(root, ...segs);
  const st = await stat(file).catch(() => null);
  if (st?.isFile()) return { status: 200, contentType: contentTypeFor(p), file: { path: file, size: st.size } };
  if (isList) {
    // go's own cache always has a list file; a hand-made tree may only have .info files
    const dir = path.dirname(file);
    const names = await readdir(dir).catch(() => null);
    if (names) {
      const versions = names.filter((n) => n.endsWith('.info')).map((n) => unescapeSeg(n.slice(0, -5)));
      return { status: 200, contentType: textPlain, data: Buffer.from(versions.map((v) => `${v}\n`).join('')) };
    }
  }
  return errorBody(404, `not found: ${what}`);
}

/** Undoes Go's case-encoding (`!a` -> `A`) of one path element. */
function unescapeSeg(s: string): string {
  return s.replace(/!([a-z])/g, (_m, c: string) => c.toUpperCase());
}
