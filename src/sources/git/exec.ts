// Running the git (and go) binaries: every process gets a deadline, is started in its own process
// group so that a timeout also ends what it spawned (git-remote-https, ssh, credential helpers),
// and is always reaped. Output is bounded; arguments and stderr are redacted before they reach an
// error message or a log line.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

export interface RunOptions {
  cwd?: string;
  /** The complete environment of the child (callers build it from process.env). */
  env: NodeJS.ProcessEnv;
  /** Kill the whole process group after this long. */
  timeoutMs: number;
  /** Refuse to collect more stdout than this (the process is killed); default 64 MiB. */
  maxStdout?: number;
  /** Write stdout to this file instead of collecting it (stdout is then empty). */
  stdoutFile?: string;
  /** Stop writing stdoutFile beyond this many bytes (the process is killed and the run fails). */
  maxStdoutFile?: number;
  input?: string | Buffer;
  signal?: AbortSignal;
}

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
  /** Bytes written to stdoutFile. */
  written: number;
  timedOut: boolean;
  tooLarge: boolean;
}

/** A process that could not run to completion or exited non-zero. */
export class RunError extends Error {
  constructor(
    /** Redacted command line, for messages. */
    readonly command: string,
    readonly code: number,
    /** Redacted, trimmed standard error. */
    readonly stderr: string,
    readonly timedOut: boolean,
    readonly tooLarge = false,
  ) {
    const why = timedOut ? 'timed out' : tooLarge ? 'output too large' : `exit status ${code}`;
    super(`${command}: ${why}${stderr ? `: ${lastLines(stderr, 3)}` : ''}`);
    this.name = 'RunError';
  }
}

/** Observes every process started through this module (tests check that no secret is ever on a command line). */
export type SpawnObserver = (cmd: string, args: readonly string[], env: NodeJS.ProcessEnv) => void;
const observers = new Set<SpawnObserver>();
export function observeSpawns(fn: SpawnObserver): () => void {
  observers.add(fn);
  return () => observers.delete(fn);
}

/** Tells the observers about a process started elsewhere (the long-running cat-file readers). */
export function notifySpawn(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): void {
  for (const o of observers) o(cmd, args, env);
}

let running = 0;
/** Child processes alive right now (for tests and metrics). */
export function runningProcesses(): number {
  return running;
}

/** Runs cmd to completion. Never throws for a non-zero exit: the caller decides (see check()). */
export async function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  for (const o of observers) o(cmd, args, opts.env);
  const maxStdout = opts.maxStdout ?? 64 << 20;
  // detached: its own process group, so kill(-pid) reaches the helpers git starts.
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  running++;
  const out: Buffer[] = [];
  let outLen = 0;
  let errText = '';
  let timedOut = false;
  let tooLarge = false;
  let written = 0;

  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, opts.timeoutMs);
  const onAbort = (): void => {
    timedOut = true;
    killGroup();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  const file = opts.stdoutFile ? createWriteStream(opts.stdoutFile, { mode: 0o600 }) : undefined;
  const fileDone = file ? once(file, 'close') : undefined;
  const maxFile = opts.maxStdoutFile ?? Number.MAX_SAFE_INTEGER;
  child.stdout.on('data', (b: Buffer) => {
    if (file) {
      written += b.length;
      if (written > maxFile) {
        tooLarge = true;
        killGroup();
        return;
      }
      if (!file.write(b)) {
        child.stdout.pause();
        file.once('drain', () => child.stdout.resume());
      }
      return;
    }
    outLen += b.length;
    if (outLen > maxStdout) {
      tooLarge = true;
      killGroup();
      return;
    }
    out.push(b);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    // Only the end matters for messages; keep it bounded.
    errText = (errText + s).slice(-16_384);
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(opts.input ?? '');

  let code: number;
  try {
    code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, sig) => resolve(c ?? (sig ? 128 + 9 : 1)));
    });
  } catch (err) {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
    running--;
    file?.destroy();
    throw new RunError(`${cmd} ${redactArgs(args).join(' ')}`, -1, String((err as Error).message), false);
  }
  // After a timeout the group may still hold helpers that outlived the leader (a hung ssh).
  if (timedOut || tooLarge) killGroup();
  clearTimeout(timer);
  opts.signal?.removeEventListener('abort', onAbort);
  running--;
  if (file) {
    file.end();
    await fileDone;
  }
  return {
    code: timedOut || tooLarge ? (code === 0 ? 1 : code) : code,
    stdout: Buffer.concat(out, Math.min(outLen, maxStdout)),
    stderr: redact(errText).trim(),
    written,
    timedOut,
    tooLarge,
  };
}

/** Runs cmd and throws RunError unless it exits 0. */
export async function runChecked(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0 || r.timedOut || r.tooLarge) {
    throw new RunError(`${cmd} ${redactArgs(args).join(' ')}`, r.code, r.stderr, r.timedOut, r.tooLarge);
  }
  return r;
}

/** Removes credentials from URLs (user:password@) and from Authorization-like text. */
export function redact(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s'"]*@/gi, '$1***@')
    .replace(/(authorization:\s*)(\S+\s+)?\S+/gi, '$1***')
    .replace(/(password|token)=\S+/gi, '$1=***');
}

function redactArgs(args: readonly string[]): string[] {
  return args.map((a) => redact(a));
}

function lastLines(text: string, n: number): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^hint:/.test(l));
  return lines.slice(-n).join('; ');
}
