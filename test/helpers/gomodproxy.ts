// Starts the proxy under test as a real process (`node dist/cli/main.js serve`), the way an
// operator would, and waits for its `listening` log line to learn the port it got.
// Contract with the server: pino JSON lines on stdout; one line with "msg":"listening" and
// "url":"http://127.0.0.1:<port>" once it accepts requests.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scrubbedEnv } from './proc.js';
import { makeTempDir, registerCleanup } from './tmp.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The built CLI (`npm run build` produces it). */
export const cliEntry = path.join(repoRoot, 'dist', 'cli', 'main.js');

/** One parsed stdout line; non-JSON lines come back as `{ msg, nonJson: true }`. */
export type LogLine = Record<string, unknown>;

export interface StartProxyOptions {
  /** Value for `--upstream` (GOPROXY syntax); omitted when undefined. */
  upstream?: string;
  /** Data folder; a fresh temp dir by default (kept across restarts if you pass the same one). */
  dataDir?: string;
  /** More CLI arguments after the standard ones. */
  args?: string[];
  /** Extra environment; `undefined` values remove a variable. */
  env?: Record<string, string | undefined>;
  /** `--workers`; 1 by default. */
  workers?: number;
  /** Script to run instead of dist/cli/main.js (the harness self-test uses a fake). */
  entry?: string;
  /**
   * Give the data folder a file system of its own of this many bytes: a tmpfs mounted in a mount
   * namespace private to the server (unshare), so it vanishes with the server. Read and fill it
   * from the test through `dataView` (the folder as the server sees it).
   */
  tmpfsBytes?: number;
  /**
   * Run the server under this host name (a UTS namespace of its own, through unshare): instances on
   * one machine then tell each other apart as instances on several hosts do (fetch locks name the
   * holder's host; only a holder on the same host has a staging file a follower can read).
   */
  hostname?: string;
  /** How long to wait for the listening line; 60 s by default (a hung start, not a slow one). */
  startTimeoutMs?: number;
  /** Log lines kept for `logs()`; 5000 by default. */
  maxLogLines?: number;
}

export interface ProxyProcess {
  /** `http://127.0.0.1:<port>` from the listening line. */
  readonly url: string;
  readonly dataDir: string;
  /** The data folder as the server sees it (differs from dataDir only with tmpfsBytes). */
  readonly dataView: string;
  readonly proc: ChildProcess;
  /** The most recent stdout lines, parsed. */
  logs(): LogLine[];
  /** The most recent stderr text. */
  stderr(): string;
  /** Resolves with the first log line (past or future) satisfying `pred`. */
  waitForLog(pred: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves when the process has exited: its code, or null with the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` to the server and waits for it to exit (SIGKILL to the group after `timeoutMs`); resolves to the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** SIGKILLs the server and its workers at once (a crash), and waits for the exit. */
  kill(): Promise<void>;
}

export async function startProxy(opts: StartProxyOptions = {}): Promise<ProxyProcess> {
  const dataDir = opts.dataDir ?? (await makeTempDir('proxy-data'));
  const home = await makeTempDir('proxy-home');
  const gitConfig = path.join(home, 'gitconfig');
  await writeFile(gitConfig, '');
  const args = [
    opts.entry ?? cliEntry,
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--data',
    dataDir,
    ...(opts.upstream !== undefined ? ['--upstream', opts.upstream] : []),
    '--workers',
    String(opts.workers ?? 1),
    ...(opts.args ?? []),
  ];
  const env: Record<string, string> = {
    ...scrubbedEnv(),
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    GIT_CONFIG_GLOBAL: gitConfig,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    // Tests have no network: the real checksum database is unreachable. Tests of the checksum
    // database pass their own GOSUMDB (a local test database) through opts.env.
    GOSUMDB: 'off',
  };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }

  const maxLines = opts.maxLogLines ?? 5000;
  const lines: LogLine[] = [];
  let stderrText = '';
  const lineWaiters = new Set<(l: LogLine) => void>();

  // Own process group, so kill() also reaches cluster workers and nothing outlives the test.
  let command = process.execPath;
  let argv = args;
  if (opts.tmpfsBytes !== undefined || opts.hostname !== undefined) {
    if (opts.hostname !== undefined && !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(opts.hostname)) throw new Error(`not a host name: ${opts.hostname}`);
    // Without root, a user namespace (-r) lets the server mount its own tmpfs and name its own
    // host. unshare and sh exec, so the server keeps the pid, and /proc/<pid>/root shows its view
    // of the folder.
    const steps = [
      ...(opts.tmpfsBytes !== undefined ? [`mount -t tmpfs -o size=${opts.tmpfsBytes} gmp-test "$0"`] : []),
      ...(opts.hostname !== undefined ? [`hostname ${opts.hostname}`] : []),
    ];
    command = 'unshare';
    argv = [
      ...(process.getuid?.() === 0 ? [] : ['-r']),
      ...(opts.tmpfsBytes !== undefined ? ['-m', '--propagation', 'private'] : []),
      ...(opts.hostname !== undefined ? ['-u'] : []),
      'sh',
      '-c',
      `${steps.join(' && ')} && exec "$@"`,
      dataDir,
      process.execPath,
      ...args,
    ];
  }
  const proc = spawn(command, argv, { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
    proc.once('error', () => resolve({ code: null, signal: null }));
  });
  // 'exit' can come before the last output has been read; 'close' comes after.
  const outputDone = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
  });

  let partial = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl).trim();
      partial = partial.slice(nl + 1);
      if (!text) continue;
      const line = parseLine(text);
      lines.push(line);
      if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
      for (const w of [...lineWaiters]) w(line);
    }
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    stderrText += chunk;
    if (stderrText.length > 256_000) stderrText = stderrText.slice(-128_000);
  });

  // After the leader is reaped and its group emptied, the id could in principle be reused: stop
  // signalling the group once a full kill has gone through.
  let groupDone = false;
  const signalGroup = (sig: NodeJS.Signals): void => {
    if (groupDone || proc.pid === undefined) return;
    try {
      process.kill(-proc.pid, sig);
    } catch {
      // already gone
    }
  };

  // Waits are for lines that will come; the defaults only turn a hang into a message, so they are long.
  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const past = lines.find(pred);
      if (past) return resolve(past);
      const timer = setTimeout(() => {
        lineWaiters.delete(w);
        reject(new Error(`no matching log line within ${timeoutMs} ms\n${describe()}`));
      }, timeoutMs);
      const w = (l: LogLine): void => {
        if (!pred(l)) return;
        lineWaiters.delete(w);
        clearTimeout(timer);
        resolve(l);
      };
      lineWaiters.add(w);
    });

  const describe = (): string =>
    `command (pid ${proc.pid}): ${command === process.execPath ? 'node' : command} ${argv.join(' ')}\nstdout (last lines):\n${lines
      .slice(-40)
      .map((l) => JSON.stringify(l))
      .join('\n')}\n${partial}\nstderr:\n${stderrText.slice(-8000)}`;

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> => {
    if (running) {
      try {
        proc.kill(signal);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => signalGroup('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    // Workers of a primary that exited must not linger.
    signalGroup('SIGKILL');
    groupDone = true;
    return (await exited).code;
  };
  const kill = async (): Promise<void> => {
    signalGroup('SIGKILL');
    await exited;
    groupDone = true;
  };
  registerCleanup(kill);

  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  let url: string;
  try {
    // Every worker must be listening: a test that starts while one still boots would have all its
    // connections handed to the other.
    const workers = opts.entry ? 1 : (opts.workers ?? 1);
    const listeners = new Set<unknown>();
    const listening = await Promise.race([
      waitForLog((l) => {
        if (l.msg !== 'listening' || typeof l.url !== 'string') return false;
        listeners.add(l.pid);
        return listeners.size >= workers;
      }, startTimeoutMs),
      exited.then(({ code, signal }) => {
        throw new Error(`proxy exited (code ${code}, signal ${signal}) before listening`);
      }),
    ]);
    url = String(listening.url).replace(/\/+$/, '');
  } catch (err) {
    await kill();
    // The whole group is dead, so its pipes close; the bound is only against a surprise.
    await Promise.race([outputDone, new Promise((r) => setTimeout(r, 10_000).unref())]);
    throw new Error(`${(err as Error).message.split('\n')[0]}\n${describe()}`, { cause: err });
  }

  return {
    url,
    dataDir,
    dataView: opts.tmpfsBytes !== undefined ? `/proc/${proc.pid}/root${dataDir}` : dataDir,
    proc,
    logs: () => [...lines],
    stderr: () => stderrText,
    waitForLog,
    exited,
    stop,
    kill,
  };
}

function parseLine(text: string): LogLine {
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as LogLine;
  } catch {
    // not JSON: keep it readable
  }
  return { msg: text, nonJson: true };
}
