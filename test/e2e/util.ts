// Small helpers shared by the e2e test files (not a test file itself). Everything heavier
// lives in test/helpers/; these are the bits only the e2e suite needs.
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Agent, Client, request } from 'undici';
import { expect } from 'vitest';
import type { LogLine, ProxyProcess } from '../helpers/gomodproxy.js';
import type { HttpResponse } from '../helpers/http.js';

/**
 * `n` distinct ports that were free a moment ago (for servers that must know their own address
 * before they start). All are held open together, so the same port is never handed out twice.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * The error contract of the GOPROXY protocol (GO-MODULES.md §1.5): `status`, text/plain (utf-8),
 * a body of exactly one non-empty line ending in "\n", short enough for the go command to print.
 * Returns the line.
 */
export function expectOneLineError(res: HttpResponse, status: number): string {
  const text = res.text();
  expect({ status: res.status, body: text }).toMatchObject({ status });
  expect(res.headers['content-type'] ?? '').toMatch(/^text\/plain(;\s*charset=(utf-8|us-ascii))?$/i);
  expect(text.endsWith('\n'), `error body must end in a newline: ${JSON.stringify(text)}`).toBe(true);
  const lines = text.slice(0, -1).split('\n');
  expect(lines, `error body must be one line: ${JSON.stringify(text)}`).toHaveLength(1);
  expect(lines[0]!.trim().length).toBeGreaterThan(0);
  expect(Buffer.byteLength(text)).toBeLessThanOrEqual(648);
  return lines[0]!;
}

/** Every file below `dir`, as paths relative to it ('/'-separated), sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const ents = await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * How long a wait for something that will happen may take before it counts as never: long, since
 * on a busy machine "soon" can be seconds, and well inside the 120 s test timeout, so a hang still
 * fails with a message naming what never came.
 */
export const WAIT_MS = 60_000;

/** Polls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws with `what`). */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = WAIT_MS, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value ${String(last)})`);
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Access-log lines of a proxy (one per request). */
export function accessLines(proxy: ProxyProcess): LogLine[] {
  return proxy.logs().filter((l) => l.log === 'access' && l.msg === 'request');
}

/** Waits for the access-log line of a request to `pathSuffix` (pino writes asynchronously). */
export function waitForAccess(proxy: ProxyProcess, pathSuffix: string, n = 1, timeoutMs = WAIT_MS): Promise<LogLine[]> {
  return waitFor(
    () => {
      const hits = accessLines(proxy).filter((l) => typeof l.path === 'string' && l.path.endsWith(pathSuffix));
      return hits.length >= n ? hits : undefined;
    },
    `${n} access line(s) for ${pathSuffix}`,
    timeoutMs,
  );
}

/**
 * A request whose path goes out exactly as given: no URL parsing, so `..` and `%2e%2e` segments
 * are not resolved away by the client (as curl --path-as-is does).
 */
export async function rawRequest(origin: string, rawPath: string, method: 'GET' | 'HEAD' = 'GET'): Promise<HttpResponse> {
  const client = new Client(origin);
  try {
    const res = await client.request({ path: rawPath, method, headersTimeout: 30_000, bodyTimeout: 30_000 });
    const body = Buffer.from(await res.body.arrayBuffer());
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
    return { status: res.statusCode, headers, body, text: () => body.toString('utf8'), json: <T>() => JSON.parse(body.toString('utf8')) as T };
  } finally {
    await client.close();
  }
}

const streamAgent = new Agent({ keepAliveTimeout: 1_000, keepAliveMaxTimeout: 1_000, connections: 256 });

export interface StreamedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The body ended with an error (connection cut, short body) rather than cleanly. */
  error?: Error;
}

/**
 * GET that streams the body, calling `onChunk(chunk, receivedSoFar)` per chunk; returning `'abort'`
 * from it destroys the connection (a client walking away mid-download). Never throws for a body
 * error: the error is returned with what arrived before it.
 */
export async function streamGet(
  url: string,
  onChunk?: (chunk: Buffer, received: number) => void | 'abort' | Promise<void | 'abort'>,
  timeoutMs = 60_000,
  dispatcher: Agent = streamAgent,
): Promise<StreamedResponse> {
  const res = await request(url, { method: 'GET', dispatcher, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const c of res.body) {
      const chunk = c as Buffer;
      chunks.push(chunk);
      received += chunk.length;
      if (onChunk && (await onChunk(chunk, received)) === 'abort') {
        res.body.destroy();
        return { status: res.statusCode, headers, body: Buffer.concat(chunks), error: new Error('aborted by the test') };
      }
    }
  } catch (err) {
    return { status: res.statusCode, headers, body: Buffer.concat(chunks), error: err as Error };
  }
  const body = Buffer.concat(chunks);
  const len = headers['content-length'];
  if (len !== undefined && Number(len) !== body.length) {
    return { status: res.statusCode, headers, body, error: new Error(`short body: ${body.length} of ${len} bytes`) };
  }
  return { status: res.statusCode, headers, body };
}

/** Deterministic bytes that no compressor can shrink (xorshift stream seeded by `seed`). */
export function incompressible(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  return out;
}
