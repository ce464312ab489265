// pino loggers: one JSON line per event on stdout. Nothing logged may carry a credential:
// request headers are never logged, upstream URLs are redacted where they are built.
import pino, { type Logger } from 'pino';

export interface Loggers {
  log: Logger;
  /** Null when the access log is off. */
  accessLog: Logger | null;
  flush(): void;
}

export function createLoggers(level: string, access: boolean): Loggers {
  // Asynchronous writes keep logging off the hot path; flush() runs before exit.
  const dest = pino.destination({ dest: 1, sync: false, minLength: 0 });
  const log = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['authorization', 'headers.authorization', '*.password', '*.token'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  return {
    log,
    accessLog: access ? log.child({ log: 'access' }) : null,
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // Nothing buffered or stdout is gone; either way there is nothing left to save.
      }
    },
  };
}
