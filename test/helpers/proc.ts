// Running child processes with an environment scrubbed of the developer's own settings.
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env: Record<string, string>;
  input?: string | Buffer;
  /** Kill the process (SIGKILL) after this long; default 120 s. */
  timeoutMs?: number;
}

// Variables whose inherited values would change what go, git or the proxy do. A git hook runs
// tests with GIT_DIR/GIT_INDEX_FILE set, which would aim every git command at the project's own repo.
const scrubbed = [/^GO/, /^GIT_/, /^CGO_/, /^(HTTP|HTTPS|ALL|NO|FTP)_PROXY$/i, /^GOMODPROXY_/, /^NETRC$/, /^SSL_CERT_(FILE|DIR)$/];
const kept = new Set(['GOROOT']);

/** The parent environment minus anything that configures go, git, HTTP proxies or gomodproxy. */
export function scrubbedEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (!kept.has(k) && scrubbed.some((re) => re.test(k))) continue;
    out[k] = v;
  }
  return out;
}

/** Runs a command to completion, never throwing on a non-zero exit (the caller decides). */
export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}\n[killed after ${timeoutMs} ms]` : stderr,
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export function describeRun(cmd: string, args: readonly string[], r: RunResult, cwd?: string): string {
  return `${cmd} ${args.join(' ')}${cwd ? ` (in ${cwd})` : ''} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}
