// pino loggers: one JSON line per event on stdout. Nothing logged may carry a credential:
// request headers are never logged, upstream URLs are redacted where they are built.
import pino, { type Logger } from 'pino';

/** Where access lines go: one JSON line per request, built by the caller (see respond.ts). */
export interface AccessLog {
  write(line: string): void;
}

export interface Loggers {
  log: Logger;
  /** Null when the access log is off. */
  accessLog: AccessLog | null;
  /** Writes out what is buffered (before exit, and after lines someone waits for). */
  flush(): void;
}

const FLUSH_EVERY_MS = 200;
/**
 * Access lines are joined into chunks of this many characters before the destination sees them:
 * sonic-boom measures the UTF-8 length of its pending chunk on every write, which per line cost
 * more than the rest of logging a cached hit.
 */
const ACCESS_CHUNK = 32 * 1024;

export function createLoggers(level: string, access: boolean): Loggers {
  // One buffered destination for both loggers: lines are written in batches of about 32 KiB (a
  // write per request line would cost more than answering a cached hit), at most 200 ms late,
  // and never interleaved, since a single writer owns the descriptor.
  const dest = pino.destination({ dest: 1, sync: false, minLength: ACCESS_CHUNK, maxWrite: 4 * ACCESS_CHUNK });
  let chunk = '';
  const handOver = (): void => {
    if (chunk === '') return;
    dest.write(chunk);
    chunk = '';
  };
  const timer = setInterval(() => {
    handOver();
    try {
      dest.flush();
    } catch {
      // A write is in progress; the next tick takes what is left.
    }
  }, FLUSH_EVERY_MS);
  timer.unref();
  const formatters = { level: (label: string) => ({ level: label }) };
  const log = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['authorization', 'headers.authorization', '*.password', '*.token'], censor: '[redacted]' },
      formatters,
    },
    dest,
  );
  // Access lines have fixed fields that never hold a credential; they are formatted by hand
  // (respond.ts) and written to the same buffered destination, so they interleave cleanly
  // with the log's lines and skip pino's generic serialization on the hot path.
  const accessLog: AccessLog | null = access
    ? {
        write: (line) => {
          chunk += line;
          if (chunk.length >= ACCESS_CHUNK) handOver();
        },
      }
    : null;
  return {
    log,
    accessLog,
    flush: () => {
      handOver();
      try {
        dest.flushSync();
      } catch {
        // Nothing buffered or stdout is gone; either way there is nothing left to save.
      }
    },
  };
}
