// `gomodproxy prefetch`: fills the cache with the module versions a project needs, so that an
// offline gomodproxy (or one whose upstream is down) can serve them. Every version is fetched by
// the server itself: the real app, built from the same settings as `serve`, answers this process
// over a private socket, so each artifact takes the very path of a miss (the upstreams of its
// route, the checks, the checksum database, the single-flight locks a running server over the same
// store also takes) and a failure is the one line the server would send the go command. The
// fetching is the prefetch engine's (src/server/prefetcher.ts), which a server's jobs drive too;
// this file reads the inputs and shows what the engine reports.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import pino from 'pino';
import { loadConfig, type Config, type LoadOptions } from '../config/index.js';
import { errorMessage } from '../errors.js';
import { AppSocket } from '../server/appsocket.js';
import { buildServer, type BuiltServer } from '../server/index.js';
import { Prefetcher, type VersionEvent } from '../server/prefetcher.js';
import { formatBytes } from '../server/space.js';
import { InputError, parseInput, parseSpec, type Replacement, type Wanted } from './prefetch-input.js';
import { progressPrinter, type ProgressPrinter } from './progress.js';

export interface PrefetchOptions extends LoadOptions {
  /** Also every version each fetched go.mod requires, transitively. */
  deps?: boolean;
  /** Versions fetched at once (default 8). */
  concurrency?: number;
  /** JSON lines on stdout (true) or a progress bar on stderr (false); default: a bar on a terminal. */
  json?: boolean;
}

const DEFAULT_CONCURRENCY = 8;
const USAGE =
  'give module@version (or @latest, @<branch>) arguments, or files: a go.mod, a go.sum, the output of go list -m all or go list -m -json all, or lines of module@version; - reads standard input';

/** Resolves with the exit code: 0 every version is in the cache, 1 some could not be fetched, 2 the input could not be read. */
export async function runPrefetch(args: readonly string[], opts: PrefetchOptions): Promise<number> {
  const err = process.stderr;
  let wanted: Wanted[];
  let replace: Replacement[];
  try {
    ({ wanted, replace } = await readInputs(args));
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    err.write(`gomodproxy prefetch: ${e.message}\n`);
    return 2;
  }
  const config = loadConfig(opts);
  if (config.offline) {
    err.write(
      'gomodproxy prefetch: the configuration is offline (offline: true, or upstream: off), so nothing can be fetched; run prefetch with upstreams, on a connected machine\n',
    );
    return 2;
  }
  const json = opts.json ?? !(process.stdout.isTTY && err.isTTY);
  const run = await Prefetch.start(config, { deps: opts.deps ?? false, concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY, json, replace });
  try {
    await run.fetchAll(wanted);
  } finally {
    await run.close();
  }
  return run.summary();
}

/** Every input: files (or - for standard input) in any known format, and module@query arguments. */
async function readInputs(args: readonly string[]): Promise<{ wanted: Wanted[]; replace: Replacement[] }> {
  if (args.length === 0) throw new InputError(`nothing to fetch: ${USAGE}`);
  const wanted: Wanted[] = [];
  const replace: Replacement[] = [];
  for (const [i, arg] of args.entries()) {
    // A module@query, unless a file of that name is there (a file name may hold an @ too).
    if (arg !== '-' && arg.includes('@') && !existsSync(arg)) {
      wanted.push(parseSpec(arg, `argument ${i + 1}`));
      continue;
    }
    let text: string;
    try {
      text = arg === '-' ? await readStdin() : await readFile(arg, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new InputError(`cannot read ${arg} (${code ?? errorMessage(e)}); ${USAGE}`);
    }
    const input = parseInput(text, arg === '-' ? 'standard input' : arg);
    wanted.push(...input.wanted);
    replace.push(...input.replace);
  }
  return { wanted, replace };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface RunOptions {
  deps: boolean;
  concurrency: number;
  json: boolean;
  replace: Replacement[];
}

/** One run: the app built in-process, its socket, and the engine that drives it. */
class Prefetch {
  private readonly progress: ProgressPrinter | null;
  private readonly engine: Prefetcher;

  private constructor(
    private readonly config: Config,
    private readonly built: BuiltServer,
    private readonly socket: AppSocket,
    private readonly o: RunOptions,
  ) {
    this.progress = o.json ? null : progressPrinter({ command: 'prefetch', verb: 'done', bar: true });
    this.engine = new Prefetcher({
      app: socket,
      store: built.app.store,
      deps: o.deps,
      concurrency: o.concurrency,
      replace: o.replace,
      // One line of JSON output per module version (or query that could not be resolved).
      onEvent: (e) => this.report(e),
      onProgress: (p) => this.progress?.update({ done: p.done, total: p.total, bytes: p.bytes, bad: p.failed }),
      onBug: (e) => process.stderr.write(`gomodproxy prefetch: ${(e as Error)?.stack ?? String(e)}\n`),
    });
  }

  static async start(config: Config, o: RunOptions): Promise<Prefetch> {
    // The server's own settings, less what concerns its clients: this process is the only one.
    const { tls: _tls, ...rest } = config;
    const own: Config = { ...rest, pathPrefix: '' };
    // What the server would log about a fetch (a store that fails, an internal error) still matters here.
    const log = pino({ level: 'error', base: null }, pino.destination({ dest: 2, sync: true }));
    const built = await buildServer(own, { log, accessLog: null, flush: () => undefined }, { withoutAccess: true });
    let socket: AppSocket;
    try {
      socket = await AppSocket.open(built.app.handle, o.concurrency, 'gomodproxy-prefetch-');
    } catch (e) {
      await built.close();
      throw e;
    }
    return new Prefetch(config, built, socket, o);
  }

  fetchAll(wanted: readonly Wanted[]): Promise<void> {
    return this.engine.fetchAll(wanted);
  }

  private report(e: VersionEvent): void {
    if (this.o.json) process.stdout.write(`${JSON.stringify(e)}\n`);
    if (e.error !== undefined) {
      this.progress?.end();
      const what = e.version !== undefined ? `${e.module}@${e.version}${e.query !== undefined ? ` (${e.query})` : ''}` : `${e.module}@${e.query ?? ''}`;
      process.stderr.write(`gomodproxy prefetch: ${what}: ${e.error}\n`);
    }
  }

  /** Waits for what the server stores behind its answers, checks it is there, and lets go of everything. */
  async close(): Promise<void> {
    const app = this.built.app;
    await Promise.allSettled([app.artifacts.drain(), app.mutable.drain()]);
    await this.engine.recheck(this.built.storage.store);
    this.progress?.end();
    await this.socket.closeClient();
    await app.shutdown(this.socket.server, this.config.shutdownTimeout);
    await this.socket.removeFolder();
  }

  /** Prints the summary; resolves with the exit code. */
  summary(): number {
    const { fetched, present, failed, bytes } = this.engine.progress;
    const where = this.config.store.type === 'fs' ? this.config.data : this.built.storage.store;
    const counts = { fetched, present, failed, bytes };
    const line = `prefetched ${fetched} module versions into ${where} (${formatBytes(bytes)}), ${present} already complete, ${failed} failed`;
    if (this.o.json) {
      process.stdout.write(`${JSON.stringify({ summary: counts })}\n`);
      process.stderr.write(`${line}\n`);
    } else {
      process.stdout.write(`${line}\n`);
    }
    if (failed > 0) process.stderr.write(`gomodproxy prefetch: ${failed} failed (each named above with the reason); run it again to retry them\n`);
    return failed > 0 ? 1 : 0;
  }
}
