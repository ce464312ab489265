// The one error type that reaches a Go user. The go command prints the first line of a
// text/plain error body, so `message` must be a single line that says what happened and
// what to do. Anything that is not a ProxyError is a bug: it is logged with its stack and
// answered with a generic 500.

/** Why a request failed; decides the HTTP status and whether the go command falls through to its next GOPROXY entry. */
export type FailureKind =
  | 'not-found' // 404: this module or version does not exist here; the go command tries its next entry
  | 'gone' // 410: same meaning as not-found for the go command
  | 'bad-request' // 400: malformed path, version or request
  | 'unauthorized' // 401: sign in (WWW-Authenticate says how)
  | 'forbidden' // 403
  | 'rate-limited' // 429 (Retry-After says when)
  | 'method' // 405
  | 'conflict' // 409: the request contradicts what is stored, or the admin API cannot do it in this state (offline, a job already running, a pin the configuration sets)
  | 'too-large' // 413: the request body is over the limit
  | 'loop' // 508: we are our own upstream
  | 'upstream' // 502: an upstream answered with an error, or its answer was invalid
  | 'timeout' // 504: an upstream did not answer in time
  | 'unavailable' // 503: we cannot serve right now (storage, shutdown)
  | 'insufficient-storage' // 507: the answer cannot be stored (the disk is too full), decided before any byte is sent
  | 'internal'; // 500

const statusOf: Record<FailureKind, number> = {
  'not-found': 404,
  gone: 410,
  'bad-request': 400,
  unauthorized: 401,
  forbidden: 403,
  'rate-limited': 429,
  method: 405,
  conflict: 409,
  'too-large': 413,
  loop: 508,
  upstream: 502,
  timeout: 504,
  unavailable: 503,
  'insufficient-storage': 507,
  internal: 500,
};

export class ProxyError extends Error {
  readonly kind: FailureKind;
  readonly status: number;
  /** The HTTP status an upstream answered with, when this error relays one. */
  readonly upstreamStatus: number | undefined;
  /** Extra response headers (WWW-Authenticate, Retry-After). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(kind: FailureKind, message: string, options?: { cause?: unknown; upstreamStatus?: number; headers?: Record<string, string> }) {
    super(oneLine(message), options);
    this.name = 'ProxyError';
    this.kind = kind;
    this.status = statusOf[kind];
    this.upstreamStatus = options?.upstreamStatus;
    this.headers = options?.headers;
  }

  /**
   * Whether this failure says the upstream itself is in trouble (and should be rested): 5xx,
   * 429, timeouts, broken connections. A 401/403 is an answer about this request, not an outage.
   */
  get isOutage(): boolean {
    if (this.isNotFound) return false;
    const s = this.upstreamStatus;
    return s === undefined || s >= 500 || s === 429;
  }

  /** True for the answers the go command treats as "not here, try the next GOPROXY entry". */
  get isNotFound(): boolean {
    return this.kind === 'not-found' || this.kind === 'gone';
  }
}

export function notFound(message: string): ProxyError {
  return new ProxyError('not-found', message);
}

export function badRequest(message: string): ProxyError {
  return new ProxyError('bad-request', message);
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ProxyError && err.isNotFound;
}

/** Collapses whitespace runs (newlines included) so a message is always one printable line of bounded length. */
export function oneLine(text: string, max = 600): string {
  const flat = text
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
