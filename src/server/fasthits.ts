// Cached hits straight off the socket. node:http costs about 11 µs of CPU per request before our
// handler runs (the parser's callbacks, IncomingMessage, ServerResponse, header handling), more
// than answering a hit from memory does; nginx answers the same request in 8 µs. So a plain-HTTP
// connection starts here: while its requests are plain GET or HEAD requests for an artifact in
// this process's memory, they are answered directly, with the bytes node:http would send. At the
// first request this cannot answer as node:http would (a miss, anything but a plain GET or HEAD,
// a header that changes the meaning, HTTP/1.0, a malformed line), the connection is handed to
// node:http with that request's bytes put back, and stays there. Only servers without TLS,
// trusted proxies, rate limits or an audit log start here, and only requests without credentials
// for modules anonymous clients may read are answered: the request still goes through the same
// parser, read rules and policy, and is counted and logged as any request is.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { artifactKey } from '../cache/keys.js';
import type { MemoryCache } from '../cache/memory.js';
import type { ArtifactEntry } from './artifact.js';
import type { AccessLog } from './logging.js';
import type { RequestCounter } from './metrics.js';
import type { RequestParser } from './protocol.js';
import { accessLine, etagMatches } from './respond.js';
import type { RouteTable } from './routes.js';

export interface FastHitsDeps {
  parser: RequestParser;
  routes: RouteTable;
  memory: MemoryCache<ArtifactEntry>;
  /**
   * Whether node:http's path would let this module's request by without looking at it (see
   * ProxyApp's gate): no sign-in configured at all, or a route anonymous clients may read (the
   * request carries no credentials, or it would have been handed off already).
   */
  anonymousMayRead(modulePath: string): boolean;
  served: { record(key: string): void };
  metrics: RequestCounter;
  /** Counts the requests answered here. */
  answeredHere: { value: number };
  accessLog: AccessLog | null;
  /** As node:http's keepAliveTimeout: an idle connection is closed after this long. */
  keepAliveMs: number;
  /** True once the server is shutting down: answers say Connection: close. */
  draining(): boolean;
}

/** A request head larger than this is left to node:http (which applies its own limits). */
const MAX_HEAD = 8 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');
/** Header names whose presence means this is not a plain request for a file. */
const HAND_OFF = new Set([
  'transfer-encoding',
  'expect',
  'upgrade',
  'authorization',
  'range',
  'if-range',
  'if-match',
  'if-modified-since',
  'if-unmodified-since',
  'x-forwarded-for',
  'forwarded',
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const TARGET = /^\/[\x21-\x7e]*$/;

interface Heads {
  ok: string;
  notModified: string;
  /** The whole keep-alive head of a 200, encoded, for the second it was made in (its Date). */
  okBytes: Buffer | null;
  okSecond: number;
}

let dateSecond = -1;
let dateLine = '';
/** The Date header node:http would send now (it formats it once a second too). */
function date(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateLine = `Date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

function headBlock(status: string, headers: readonly string[]): string {
  let h = `HTTP/1.1 ${status}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) h += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return h;
}

interface Request {
  method: 'GET' | 'HEAD';
  target: string;
  ifNoneMatch: string | undefined;
  close: boolean;
  /** Bytes of the head, CRLFCRLF included. */
  length: number;
}

export class FastHits {
  private readonly heads = new WeakMap<ArtifactEntry, Heads>();
  private readonly open = new Set<Socket>();
  private readonly idle = new Set<Socket>();
  private readonly keepAlive: string;

  constructor(private readonly d: FastHitsDeps) {
    this.keepAlive = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(d.keepAliveMs / 1000)}\r\n\r\n`;
  }

  /** Puts this in front of server's own connection handling (a plain node:http server). */
  install(server: Server): void {
    const node = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => this.take(socket, (s) => node.forEach((l) => l.call(server, s))));
  }

  /** Shutting down: idle connections close now, busy ones after their answer. */
  closeIdle(): void {
    for (const s of this.idle) s.destroy();
  }

  /** Every connection still here closes (the shutdown's time is up). */
  closeAll(): void {
    for (const s of this.open) s.destroy();
  }

  private take(socket: Socket, handOff: (s: Socket) => void): void {
    let pending: Buffer | null = null;
    let waiting = false;
    this.open.add(socket);
    this.idle.add(socket);
    const forget = (): void => {
      this.open.delete(socket);
      this.idle.delete(socket);
    };
    const onTimeout = (): void => {
      socket.destroy();
    };
    // node:http listens for errors once it has the socket; until then a reset must not throw.
    const onError = (): void => {
      socket.destroy();
    };
    // node:http's servers are half-open: a client's end is ours to answer with our own.
    const onEnd = (): void => {
      socket.end();
    };
    const leave = (rest: Buffer | null): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('timeout', onTimeout);
      socket.off('close', forget);
      socket.off('error', onError);
      socket.setTimeout(0);
      forget();
      socket.pause();
      if (rest !== null && rest.length > 0) socket.unshift(rest);
      handOff(socket);
      process.nextTick(() => socket.resume());
    };
    const work = (): void => {
      while (pending !== null && !waiting) {
        const req = parseHead(pending);
        if (req === 'more') {
          if (pending.length > MAX_HEAD) leave(pending);
          return;
        }
        if (req === null || !this.answer(socket, req)) {
          leave(pending);
          return;
        }
        pending = req.length === pending.length ? null : pending.subarray(req.length);
        if (req.close || this.d.draining()) {
          socket.end();
          socket.off('data', onData);
          return;
        }
        if (socket.writableNeedDrain) {
          // A slow reader: take its next request once this answer has gone out.
          waiting = true;
          socket.pause();
          socket.once('drain', () => {
            waiting = false;
            socket.resume();
            work();
          });
        }
      }
      if (pending === null) this.idle.add(socket);
    };
    const onData = (chunk: Buffer): void => {
      this.idle.delete(socket);
      pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
      work();
    };
    socket.setNoDelay(true);
    socket.setTimeout(this.d.keepAliveMs);
    socket.on('timeout', onTimeout);
    socket.on('data', onData);
    socket.on('close', forget);
    socket.on('error', onError);
    socket.on('end', onEnd);
  }

  /** Answers req from memory if node:http would answer it with that entry; false to hand it off. */
  private answer(socket: Socket, req: Request): boolean {
    const t0 = performance.now();
    let p;
    try {
      p = this.d.parser.parse(req.target);
    } catch {
      return false;
    }
    if (p.kind !== 'info' && p.kind !== 'mod' && p.kind !== 'zip') return false;
    if (!this.d.anonymousMayRead(p.mod.path)) return false;
    const routes = this.d.routes;
    if (routes.hasPolicy) {
      try {
        routes.checkPolicy(p.mod.path, p.version.version);
      } catch {
        return false;
      }
    }
    const key = artifactKey(p.mod.escaped, p.version.escaped, p.kind);
    const entry = this.d.memory.get(key);
    if (!entry) return false;
    this.d.served.record(key);
    const heads = this.headsOf(entry);
    const closing = req.close || this.d.draining();
    const tail = closing ? 'Connection: close\r\n\r\n' : this.keepAlive;
    let status: number;
    let bytes = 0;
    socket.cork();
    if (etagMatches(req.ifNoneMatch, entry.etag)) {
      status = 304;
      socket.write(heads.notModified + date() + tail, 'latin1');
    } else {
      status = 200;
      if (closing) {
        socket.write(heads.ok + date() + tail, 'latin1');
      } else {
        // The same head for every hit of this entry within a second: encoded once.
        const line = date();
        if (heads.okSecond !== dateSecond || heads.okBytes === null) {
          heads.okBytes = Buffer.from(heads.ok + line + tail, 'latin1');
          heads.okSecond = dateSecond;
        }
        socket.write(heads.okBytes);
      }
      if (req.method === 'GET') {
        socket.write(entry.data);
        bytes = entry.data.length;
      }
    }
    socket.uncork();
    this.d.answeredHere.value++;
    const seconds = (performance.now() - t0) / 1000;
    this.d.metrics.request(p.kind, status, 'hit', seconds, bytes);
    this.d.accessLog?.write(
      accessLine({
        method: req.method,
        path: req.target,
        kind: p.kind,
        module: p.mod.path,
        version: p.version.version,
        status,
        cache: 'hit',
        source: undefined,
        bytes,
        seconds,
        ip: socket.remoteAddress ?? '',
        user: undefined,
        error: undefined,
      }),
    );
    return true;
  }

  private headsOf(entry: ArtifactEntry): Heads {
    let h = this.heads.get(entry);
    if (!h) {
      h = { ok: headBlock('200 OK', entry.headers), notModified: headBlock('304 Not Modified', entry.notModified), okBytes: null, okSecond: -1 };
      this.heads.set(entry, h);
    }
    return h;
  }
}

/**
 * The head at the start of buf, if it is a request this path may answer: 'more' when the head
 * has not all arrived, null when node:http must have it. Strict on purpose: anything it does not
 * recognise is left to node:http, which then answers exactly as it always has.
 */
export function parseHead(buf: Buffer): Request | 'more' | null {
  const end = buf.indexOf(CRLF2);
  if (end < 0) return 'more';
  if (end > MAX_HEAD) return null;
  const text = buf.toString('latin1', 0, end);
  const lines = text.split('\r\n');
  const first = (lines[0] as string).split(' ');
  if (first.length !== 3 || first[2] !== 'HTTP/1.1') return null;
  const method = first[0];
  if (method !== 'GET' && method !== 'HEAD') return null;
  const target = first[1] as string;
  if (!TARGET.test(target)) return null;
  let host = 0;
  let lengths = 0;
  let ifNoneMatch: string | undefined;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) return null;
    const lower = name.toLowerCase();
    if (HAND_OFF.has(lower)) return null;
    switch (lower) {
      case 'host':
        host++;
        break;
      case 'content-length':
        if (value !== '0' || ++lengths > 1) return null;
        break;
      case 'connection': {
        const v = value.toLowerCase();
        if (v === 'close') close = true;
        else if (v !== 'keep-alive') return null;
        break;
      }
      case 'if-none-match':
        if (ifNoneMatch !== undefined) return null;
        ifNoneMatch = value;
        break;
    }
  }
  if (host !== 1) return null;
  return { method, target, ifNoneMatch, close, length: end + 4 };
}
