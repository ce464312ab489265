// Writing answers, and accounting for them once each (metrics and one access-log line).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AccessLog } from './logging.js';
import type { AuditLog, AuthMethod } from '../access/index.js';
import { ProxyError } from '../errors.js';
import type { CacheResult, RequestCounter, ServedKind } from './metrics.js';

export const TEXT = 'text/plain; charset=utf-8';
const PID = process.pid;

let isoMs = 0;
let iso = '';
/** The current time in ISO 8601, formatted once per millisecond however many lines share it. */
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}
export const CACHE_HEADER = 'X-Gomodproxy-Cache';
export const STALE_HEADER = 'X-Gomodproxy-Stale';

export const contentTypes = { info: 'application/json', mod: TEXT, zip: 'application/zip', list: TEXT } as const;

/** What an access line says of one request. */
export interface AccessFields {
  method: string;
  path: string;
  kind: ServedKind;
  module: string | undefined;
  version: string | undefined;
  status: number;
  cache: CacheResult;
  source: string | undefined;
  bytes: number;
  seconds: number;
  ip: string;
  user: string | undefined;
  error: string | undefined;
}

/**
 * The access line, the same JSON a pino line would be (level, time, pid, log, fields, msg),
 * built directly: it is written once per request, cached hits included.
 */
export function accessLine(f: AccessFields): string {
  let line = `{"level":"info","time":"${isoNow()}","pid":${PID},"log":"access","method":${quote(f.method)},"path":${quote(f.path)},"kind":"${f.kind}"`;
  if (f.module !== undefined) line += `,"module":${quote(f.module)}`;
  if (f.version !== undefined) line += `,"version":${quote(f.version)}`;
  line += `,"status":${f.status}`;
  if (f.cache !== 'none') line += `,"cache":"${f.cache}"`;
  if (f.source !== undefined) line += `,"source":${quote(f.source)}`;
  line += `,"bytes":${f.bytes},"ms":${Math.round(f.seconds * 10_000) / 10},"ip":${quote(f.ip)}`;
  if (f.user !== undefined) line += `,"user":${quote(f.user)}`;
  if (f.error !== undefined) line += `,"error":${quote(f.error)}`;
  return `${line},"msg":"request"}\n`;
}

// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A string as JSON.stringify writes it. Paths, module paths, versions and addresses almost never
 * hold a character JSON escapes, and testing for one costs less than serializing.
 */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** One request's bookkeeping, filled in as it is answered. */
export class Exchange {
  kind: ServedKind = 'other';
  module: string | undefined;
  version: string | undefined;
  cache: CacheResult = 'none';
  source: string | undefined;
  user: string | undefined;
  errorLine: string | undefined;
  /** Set when reverse proxies are trusted; else the socket's address is the client's. */
  clientIp: string | undefined;
  /** How the user signed in, when they did. */
  authMethod: AuthMethod | undefined;
  /** Set when access control refused the request (for the audit log). */
  deniedReason: string | undefined;
  /** Key of the client for per-client limits (user, else address). */
  fetchClient: string | undefined;
  private done = false;
  private readonly t0 = performance.now();

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly metrics: RequestCounter,
    private readonly log: AccessLog | null,
    private readonly audit: AuditLog | null = null,
  ) {}

  get isHead(): boolean {
    return this.req.method === 'HEAD';
  }

  /** Records the answer; safe to call more than once (the first call counts). */
  finish(status: number, bytes: number): void {
    if (this.done) return;
    this.done = true;
    const seconds = (performance.now() - this.t0) / 1000;
    this.metrics.request(this.kind, status, this.cache, seconds, bytes);
    if (this.audit && this.kind !== 'ops') {
      this.audit.write({
        user: this.user ?? 'anonymous',
        method: this.authMethod ?? 'anonymous',
        address: this.clientIp ?? this.req.socket.remoteAddress,
        kind: this.kind,
        module: this.module,
        version: this.version,
        status,
        allowed: this.deniedReason === undefined,
        reason: this.deniedReason,
        bytes,
        durationMs: Math.round(seconds * 10_000) / 10,
      });
    }
    if (this.log) {
      this.log.write(
        accessLine({
          method: this.req.method ?? '',
          path: this.req.url ?? '',
          kind: this.kind,
          module: this.module,
          version: this.version,
          status,
          cache: this.cache,
          source: this.source,
          bytes,
          seconds,
          ip: this.clientIp ?? this.req.socket.remoteAddress ?? '',
          user: this.user,
          error: this.errorLine,
        }),
      );
    }
  }
}

/** Sends a whole body with headers given as a flat [name, value, ...] list. */
export function sendBody(ex: Exchange, status: number, headers: string[], body: Buffer): void {
  ex.res.writeHead(status, headers);
  if (ex.isHead) {
    ex.res.end();
    ex.finish(status, 0);
  } else {
    ex.res.end(body);
    ex.finish(status, body.length);
  }
}

/** The go command prints the first line of a text/plain body: one line, what happened and what to do. */
export function sendError(ex: Exchange, err: unknown, log: Logger, bytesSent = 0): void {
  let pe: ProxyError;
  if (err instanceof ProxyError) {
    pe = err;
  } else {
    log.error({ err, path: ex.req.url }, 'internal error');
    pe = new ProxyError('internal', 'gomodproxy failed unexpectedly; retry, and report it to its operator if it persists');
  }
  ex.errorLine = pe.message;
  if (ex.res.headersSent) {
    // Too late for a status: cut the connection so the client sees a failed transfer, never a short "success".
    ex.res.destroy();
    ex.finish(ex.res.statusCode, bytesSent);
    return;
  }
  const body = Buffer.from(`${pe.message}\n`);
  // An error's own headers (a remembered not-found's Cache-Control) replace the defaults.
  const own = pe.headers ?? {};
  const headers = ['Content-Type', TEXT, 'Content-Length', String(body.length)];
  if (!('Cache-Control' in own)) headers.push('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(own)) headers.push(k, v);
  sendBody(ex, pe.status, headers, body);
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** If-None-Match against a strong ETag (also in a list, or `*`). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header === etag || header === '*') return true;
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === etag || v === `W/${etag}`;
  });
}
