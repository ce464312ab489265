// Progress of a long operator command (import, verify) on stderr: on a terminal a bar redrawn in
// place, ten times a second at most; otherwise (a log file, CI) a plain line every few seconds,
// so that a log shows the run moving without being flooded. Both say versions, bytes, the rate
// and the time left; the clock is injectable so that what is printed can be tested exactly.
import { formatBytes } from '../server/space.js';

export interface ProgressState {
  /** Versions done, and known so far. */
  done: number;
  total: number;
  /** Bytes handled so far, and in all when known beforehand (it makes the time left exact). */
  bytes: number;
  totalBytes?: number;
  /** Versions that went wrong, said only when there are some. */
  bad?: number;
}

export interface ProgressOptions {
  /** The command's name, leading each plain line ("verify: ..."). */
  command: string;
  /** What was done to the versions ("checked", "imported"). */
  verb: string;
  /** Redraw a bar (a terminal) rather than print lines. */
  bar: boolean;
  out?: { write(text: string): unknown };
  now?: () => number;
  /** Least time between two plain lines. */
  lineEveryMs?: number;
}

export interface ProgressPrinter {
  update(state: ProgressState): void;
  /** Clears the bar (before other output, and at the end); lines need nothing. */
  end(): void;
}

const BAR_WIDTH = 30;
const BAR_EVERY_MS = 100;

export function progressPrinter(o: ProgressOptions): ProgressPrinter {
  const out = o.out ?? process.stderr;
  const now = o.now ?? Date.now;
  const lineEvery = o.lineEveryMs ?? 5_000;
  const started = now();
  let last: number | undefined;
  let drawn = false;
  return {
    update(s) {
      const t = now();
      const finished = s.done >= s.total;
      if (o.bar) {
        if (last !== undefined && t - last < BAR_EVERY_MS && !finished) return;
        last = t;
        const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 1;
        const fill = Math.round(frac * BAR_WIDTH);
        out.write(`\r[${'#'.repeat(fill)}${'-'.repeat(BAR_WIDTH - fill)}] ${describe(s, t - started, false)}\x1b[K`);
        drawn = true;
        return;
      }
      // Lines: none before anything is done, then one every lineEveryMs, and the last one.
      if (s.done === 0 || (last !== undefined && t - last < lineEvery && !finished)) return;
      last = t;
      out.write(`${o.command}: ${describe(s, t - started, true, o.verb)}\n`);
    },
    end() {
      if (!drawn) return;
      out.write('\r\x1b[K');
      drawn = false;
    },
  };
}

function describe(s: ProgressState, elapsedMs: number, long: boolean, verb = ''): string {
  const parts = [`${s.done}/${s.total} versions${long ? ` ${verb}` : ''}`];
  parts.push(s.totalBytes !== undefined ? `${formatBytes(s.bytes)} of ${formatBytes(s.totalBytes)}` : formatBytes(s.bytes));
  if (elapsedMs > 0 && s.done > 0) {
    parts.push(`${formatBytes(Math.round((s.bytes * 1000) / elapsedMs))}/s`);
    const left = timeLeft(s, elapsedMs);
    if (left !== undefined && left >= 1000 && s.done < s.total) parts.push(long ? `about ${formatEta(left)} left` : `ETA ${formatEta(left)}`);
  }
  if (s.bad) parts.push(`${s.bad} bad`);
  return parts.join(', ');
}

/** From the bytes when the total is known (versions differ wildly in size), else from the versions. */
function timeLeft(s: ProgressState, elapsedMs: number): number | undefined {
  if (s.totalBytes !== undefined && s.totalBytes > 0 && s.bytes > 0) return ((s.totalBytes - s.bytes) * elapsedMs) / s.bytes;
  if (s.done > 0) return ((s.total - s.done) * elapsedMs) / s.done;
  return undefined;
}

/** 42s, 3m05s, 2h03m. */
export function formatEta(ms: number): string {
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, '0')}s`;
  return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, '0')}m`;
}
