// Small HTTP client helpers for tests. undici's request() is used rather than fetch() because it
// neither decompresses nor rewrites anything: tests compare the exact bytes the proxy sent.
import { Agent, request, type Dispatcher } from 'undici';

export interface HttpResponse {
  status: number;
  /** Lower-case header names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Give up (throw) after this long; 30 s by default. */
  timeoutMs?: number;
  /** Another pool than the shared one (a connection of the request's own, say). */
  dispatcher?: Dispatcher;
}

// Short keep-alive: a server killed by one test must not leave a long-pooled socket behind that
// makes a later request to a restarted server on the same port fail.
const agent = new Agent({ keepAliveTimeout: 1_000, keepAliveMaxTimeout: 1_000 });

/** Sends one request and reads the whole body. Never throws on HTTP status; throws on network errors. */
export async function http(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const res = await request(url, {
    method: opts.method ?? 'GET',
    headers: opts.headers,
    body: opts.body,
    dispatcher: opts.dispatcher ?? agent,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) {
    if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return {
    status: res.statusCode,
    headers,
    body,
    text: () => body.toString('utf8'),
    json: <T>() => JSON.parse(body.toString('utf8')) as T,
  };
}

/** GET `url` with optional headers. */
export function get(url: string, headers?: Record<string, string>, opts: Omit<RequestOptions, 'headers' | 'method'> = {}): Promise<HttpResponse> {
  return http(url, { ...opts, method: 'GET', headers });
}

/** HEAD `url` with optional headers. */
export function head(url: string, headers?: Record<string, string>): Promise<HttpResponse> {
  return http(url, { method: 'HEAD', headers });
}

/**
 * Starts `fn(0) … fn(n-1)` at the same moment and resolves with all results in order
 * (rejects with the first failure, after every call has settled, so nothing is left running).
 */
export async function concurrent<T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const settled = await Promise.allSettled(Array.from({ length: n }, (_v, i) => fn(i)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
