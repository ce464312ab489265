// The audit log: who fetched what, and what they were told. One JSON line per event, to its
// own file (appended; reopen() after rotation, e.g. on SIGHUP) or to standard output, apart
// from the debug log. Lines are built from a fixed list of fields, never from a request or an
// error object, and every string goes through redactSecrets: no password, token, JWT or
// Authorization value can reach the file even if a caller passes one by mistake.
import { once } from 'node:events';
import pino from 'pino';
import type { AuthMethod } from './types.js';

export interface AuditEvent {
  /** ISO 8601; default now. */
  time?: string;
  /** The principal's name ("anonymous" when nobody signed in). */
  user: string;
  /** How they signed in. */
  method: AuthMethod;
  /** Client address. */
  address?: string;
  /** What was asked: info, mod, zip, list, latest, query, sumdb, metrics, admin, auth... */
  kind?: string;
  module?: string;
  version?: string;
  /** HTTP status answered. */
  status: number;
  /** Whether access control let the request through (false for 401/403/429 decided by access). */
  allowed: boolean;
  /** Why it was denied, or a short note (e.g. "token-expired", "rate-limited", "rule"). */
  reason?: string;
  /** Body bytes sent. */
  bytes?: number;
  durationMs?: number;
  requestId?: string;
}

const MAX_STRING = 512;

// Each pattern finds a credential shape anywhere in a string; the replacement keeps what helps
// an operator (the scheme, a token's public id) and drops the secret.
const REDACTIONS: Array<[RegExp, string]> = [
  [/\bgmp_([0-9a-z]{1,32})_[0-9A-Za-z]+/g, 'gmp_$1_[redacted]'],
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?/g, '[redacted-jwt]'],
  // Case-sensitive: every client writes the scheme capitalized, and "basic" is an ordinary word.
  [/\b(Basic|Bearer|Digest|Negotiate|BASIC|BEARER)(\s+)[^\s,;"]+/g, '$1$2[redacted]'],
  [/([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/\s@]*@/g, '$1[redacted]@'],
  [/\b(password|passwd|pwd|secret|token|authorization|api[_-]?key)(["']?\s*[=:]\s*["']?)[^\s&"',;]+/gi, '$1$2[redacted]'],
];

/** Removes anything shaped like a credential from a string. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [re, replacement] of REDACTIONS) out = out.replace(re, replacement);
  return out;
}

function clean(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  const flat = redactSecrets(value).replace(/[\u0000-\u001f\u007f]/g, ' ');
  return flat.length > MAX_STRING ? `${flat.slice(0, MAX_STRING - 3)}...` : flat;
}

function count(value: number | undefined): number | undefined {
  return value === undefined || !Number.isFinite(value) ? undefined : Math.max(0, Math.round(value));
}

/** The audit record of an event: only the known fields, each cleaned. */
export function auditRecord(event: AuditEvent): Record<string, string | number | boolean> {
  const r: Record<string, string | number | boolean | undefined> = {
    time: clean(event.time) ?? new Date().toISOString(),
    log: 'audit',
    user: clean(event.user) ?? 'anonymous',
    method: clean(event.method),
    address: clean(event.address),
    kind: clean(event.kind),
    module: clean(event.module),
    version: clean(event.version),
    status: count(event.status),
    allowed: event.allowed === true,
    reason: clean(event.reason),
    bytes: count(event.bytes),
    durationMs: count(event.durationMs),
    requestId: clean(event.requestId),
  };
  for (const k of Object.keys(r)) if (r[k] === undefined) delete r[k];
  return r as Record<string, string | number | boolean>;
}

/** One line of the audit log, newline included. */
export function auditLine(event: AuditEvent): string {
  return `${JSON.stringify(auditRecord(event))}\n`;
}

export interface AuditLogOptions {
  /** Off: write() does nothing. */
  enabled: boolean;
  /** Append to this file; unset: standard output. */
  file?: string;
  /** Write each line before write() returns (tests, tools); default asynchronous. */
  sync?: boolean;
}

type Destination = ReturnType<typeof pino.destination>;

export class AuditLog {
  readonly enabled: boolean;
  readonly file: string | undefined;
  private dest: Destination | undefined;

  constructor(o: AuditLogOptions) {
    this.enabled = o.enabled;
    this.file = o.file;
    if (!o.enabled) return;
    this.dest = pino.destination({
      dest: o.file ?? 1,
      append: true,
      mkdir: true,
      // Readable by the operator's group, not the world: it names users and what they fetched.
      mode: 0o640,
      sync: o.sync ?? false,
      minLength: 0,
    });
  }

  write(event: AuditEvent): void {
    this.dest?.write(auditLine(event));
  }

  /** After log rotation (SIGHUP): continue in a new file at the configured path. */
  reopen(): void {
    if (this.dest && this.file) this.dest.reopen();
  }

  /** Writes what is buffered before the process exits. */
  flush(): void {
    try {
      this.dest?.flushSync();
    } catch {
      // Nothing buffered, or the destination is not ready yet: nothing to lose.
    }
  }

  async close(): Promise<void> {
    const d = this.dest;
    if (!d) return;
    this.dest = undefined;
    if (this.file === undefined) {
      this.flushQuietly(d);
      return; // standard output stays open for everyone else
    }
    const closed = once(d, 'close');
    d.end();
    await closed;
  }

  private flushQuietly(d: Destination): void {
    try {
      d.flushSync();
    } catch {
      // see flush()
    }
  }
}
