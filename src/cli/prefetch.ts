// `gomodproxy prefetch`: fills the cache with the module versions a project needs, so that an
// offline gomodproxy (or one whose upstream is down) can serve them. Every version is fetched by
// the server itself: the real app, built from the same settings as `serve`, answers this process
// over a private socket, so each artifact takes the very path of a miss (the upstreams of its
// route, the checks, the checksum database, the single-flight locks a running server over the same
// store also takes) and a failure is the one line the server would send the go command.
//
// A version already complete in the store is skipped without a request. A query (@latest, @v1.2,
// a branch) is resolved first, as the go command would resolve it through a proxy. With --deps,
// each version's go.mod adds every version it requires, until the whole requirement graph is in.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Pool } from 'undici';
import { artifactKey } from '../cache/keys.js';
import { loadConfig, type Config, type LoadOptions } from '../config/index.js';
import { errorMessage } from '../errors.js';
import { escapePath, escapeVersion, isRetracted, isZeroPseudoVersion, parseGoMod, type GoModRetract } from '../module/index.js';
import { buildServer, type BuiltServer } from '../server/index.js';
import { formatBytes } from '../server/space.js';
import { MAX_GOMOD_BYTES } from '../sources/index.js';
import { InputError, isExact, parseInput, parseSpec, replaced, type Replacement, type Wanted } from './prefetch-input.js';
import { QueryError, candidates, choose, classifyQuery, incompatibleProbe, retractionSource, type ListQuery } from './prefetch-query.js';
import { progressPrinter, type ProgressPrinter } from './progress.js';

export interface PrefetchOptions extends LoadOptions {
  /** Also every version each fetched go.mod requires, transitively. */
  deps?: boolean;
  /** Versions fetched at once (default 8). */
  concurrency?: number;
  /** JSON lines on stdout (true) or a progress bar on stderr (false); default: a bar on a terminal. */
  json?: boolean;
}

type Ext = 'info' | 'mod' | 'zip';
type Result = 'fetched' | 'present' | 'failed';

interface Item {
  path: string;
  version: string;
  zip: boolean;
  from: string;
  /** The query it was resolved from, when it was one. */
  query?: string;
  result?: Result;
  bytes: number;
}

/** One line of JSON output per module version (or query that could not be resolved). */
interface VersionEvent {
  module: string;
  version?: string;
  query?: string;
  from: string;
  result: Result;
  bytes: number;
  error?: string;
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

/** An answer of the in-process server: its body, or the one line it gave instead. */
type Answer = { ok: true; body: Buffer; bytes: number } | { ok: false; status: number; line: string };

class Prefetch {
  private readonly items = new Map<string, Item>();
  /** Queries that resolved to nothing, reported as failures of their own. */
  private readonly unresolved: VersionEvent[] = [];
  private readonly progress: ProgressPrinter | null;
  private done = 0;
  private bytes = 0;
  private failed = 0;
  private fetched = 0;
  private present = 0;
  private active = 0;
  private readonly queue: (() => Promise<void>)[] = [];
  private idle: (() => void) | null = null;

  private constructor(
    private readonly config: Config,
    private readonly built: BuiltServer,
    private readonly server: Server,
    private readonly pool: Pool,
    private readonly socketDir: string,
    private readonly o: RunOptions,
  ) {
    this.progress = o.json ? null : progressPrinter({ command: 'prefetch', verb: 'done', bar: true });
  }

  static async start(config: Config, o: RunOptions): Promise<Prefetch> {
    // The server's own settings, less what concerns its clients: this process is the only one.
    const { tls: _tls, ...rest } = config;
    const own: Config = { ...rest, pathPrefix: '' };
    // What the server would log about a fetch (a store that fails, an internal error) still matters here.
    const log = pino({ level: 'error', base: null }, pino.destination({ dest: 2, sync: true }));
    const built = await buildServer(own, { log, accessLog: null, flush: () => undefined }, { withoutAccess: true });
    const socketDir = await mkdtemp(path.join(os.tmpdir(), 'gomodproxy-prefetch-'));
    const socketPath = path.join(socketDir, 'app.sock');
    const server = createServer({ keepAlive: true, requestTimeout: 0 }, built.app.handle);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
    } catch (e) {
      await built.close();
      await rm(socketDir, { recursive: true, force: true });
      throw e;
    }
    // The server bounds every upstream wait itself (timeouts.*); this side only reads what it sends.
    const pool = new Pool('http://gomodproxy.invalid', { socketPath, connections: o.concurrency, headersTimeout: 0, bodyTimeout: 0 });
    return new Prefetch(config, built, server, pool, socketDir, o);
  }

  /** Resolves every query, then fetches every version (and, with --deps, what each requires). */
  async fetchAll(wanted: readonly Wanted[]): Promise<void> {
    const exact: Wanted[] = [];
    const queries: Wanted[] = [];
    for (const w of wanted) (isExact(w.path, w.query) ? exact : queries).push(w);
    const resolved: Item[] = [];
    const readToResolve: Item[] = [];
    await this.each(queries, async (w) => {
      // A version whose go.mod decided the answer (its retractions, whether it opted into
      // modules) is one the go command reads too: offline, it must find its .info and .mod.
      const read = (version: string): void => {
        readToResolve.push({ path: w.path, version, zip: false, from: `its go.mod decides ${w.path}@${w.query}`, bytes: 0 });
      };
      const got = await this.resolve(w.path, w.query, read).catch((e: unknown) => ({ error: errorMessage(e) }));
      if ('version' in got) resolved.push({ path: w.path, version: got.version, zip: w.zip, from: w.from, query: w.query, bytes: 0 });
      else this.unresolved.push({ module: w.path, query: w.query, from: w.from, result: 'failed', bytes: 0, error: got.error });
    });
    for (const e of this.unresolved) this.report(e);
    this.failed += this.unresolved.length;
    // Every version known before any is fetched: one asked for twice is fetched once, whole if either asks so.
    for (const w of exact) this.add({ path: w.path, version: w.query, zip: w.zip || this.o.deps, from: w.from, bytes: 0 });
    for (const r of [...resolved, ...readToResolve]) this.add({ ...r, zip: r.zip || this.o.deps });
    this.updateProgress();
    for (const item of this.items.values()) this.schedule(() => this.ensure(item));
    await this.drained();
  }

  /** Records a version to fetch, once: asked for again, it is fetched whole if either asks so. */
  private add(item: Item): Item {
    const key = `${item.path}@${item.version}`;
    const had = this.items.get(key);
    if (had) {
      had.zip ||= item.zip;
      if (!had.query && item.query) had.query = item.query;
      return had;
    }
    this.items.set(key, item);
    return item;
  }

  /** Runs fn for every element, o.concurrency at a time. */
  private async each<T>(list: readonly T[], fn: (x: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < list.length) await fn(list[next++] as T);
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, list.length) }, worker));
  }

  private schedule(task: () => Promise<void>): void {
    this.queue.push(task);
    this.pump();
  }

  private pump(): void {
    while (this.active < this.o.concurrency && this.queue.length > 0) {
      const task = this.queue.shift() as () => Promise<void>;
      this.active++;
      void task()
        .catch((e: unknown) => {
          // ensure() reports its own failures; anything else is a bug, and must not hang the run.
          process.stderr.write(`gomodproxy prefetch: ${(e as Error)?.stack ?? String(e)}\n`);
          this.failed++;
        })
        .finally(() => {
          this.active--;
          this.pump();
          if (this.active === 0 && this.queue.length === 0) this.idle?.();
        });
    }
  }

  private drained(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = resolve;
    });
  }

  /** Brings one version's files into the store (those it lacks), then follows its requirements. */
  private async ensure(item: Item): Promise<void> {
    const store = this.built.app.store;
    const ev = (e: Ext): string => artifactKey(escapePath(item.path), escapeVersion(item.version), e);
    const wanted: Ext[] = item.zip ? ['mod', 'zip', 'info'] : ['mod', 'info'];
    let mod: Buffer | undefined;
    try {
      const missing: Ext[] = [];
      for (const e of wanted) if (!(await store.head(ev(e)))) missing.push(e);
      // The .info last: it is what marks a version present.
      for (const e of missing) {
        const a = await this.get(`/${escapePath(item.path)}/@v/${escapeVersion(item.version)}.${e}`, e === 'zip' ? 'zip' : 'whole');
        if (!a.ok) return this.finish(item, 'failed', `.${e}: ${a.line}`);
        item.bytes += a.bytes;
        if (e === 'mod') mod = a.body;
      }
      if (this.o.deps) {
        mod ??= (await store.getBuffer(ev('mod'), MAX_GOMOD_BYTES))?.data;
        if (mod === undefined) {
          const a = await this.get(`/${escapePath(item.path)}/@v/${escapeVersion(item.version)}.mod`, 'whole');
          if (!a.ok) return this.finish(item, 'failed', `.mod: ${a.line}`);
          mod = a.body;
        }
      }
      this.finish(item, missing.length === 0 ? 'present' : 'fetched');
    } catch (e) {
      return this.finish(item, 'failed', errorMessage(e));
    }
    if (this.o.deps && mod !== undefined) this.follow(item, mod);
  }

  /** --deps: every version this go.mod requires, as the main module's replacements say. */
  private follow(item: Item, mod: Buffer): void {
    let requires;
    try {
      requires = parseGoMod(mod, `${item.path}@${item.version}/go.mod`).require;
    } catch (e) {
      this.report({
        module: item.path,
        version: item.version,
        from: item.from,
        result: 'failed',
        bytes: 0,
        error: `its go.mod cannot be read: ${errorMessage(e)}`,
      });
      this.failed++;
      return;
    }
    for (const r of requires) {
      const to = replaced(this.o.replace, r.path, r.version);
      // A directory replacement, or the placeholder version that only a replacement makes usable.
      if (to === null || isZeroPseudoVersion(to.version)) continue;
      const from = `required by ${item.path}@${item.version}`;
      if (!isExact(to.path, to.version)) {
        this.report({ module: to.path, version: to.version, from, result: 'failed', bytes: 0, error: 'not a canonical version of the module' });
        this.failed++;
        continue;
      }
      const key = `${to.path}@${to.version}`;
      if (this.items.has(key)) continue;
      const dep = this.add({ path: to.path, version: to.version, zip: true, from, bytes: 0 });
      this.updateProgress();
      this.schedule(() => this.ensure(dep));
    }
  }

  private finish(item: Item, result: Result, error?: string): void {
    item.result = result;
    this.done++;
    if (result === 'fetched') this.fetched++;
    else if (result === 'present') this.present++;
    else this.failed++;
    const e: VersionEvent = { module: item.path, version: item.version, from: item.from, result, bytes: item.bytes };
    if (item.query !== undefined) e.query = item.query;
    if (error !== undefined) e.error = error;
    this.report(e);
    this.updateProgress();
  }

  private report(e: VersionEvent): void {
    if (this.o.json) process.stdout.write(`${JSON.stringify(e)}\n`);
    if (e.error !== undefined) {
      this.progress?.end();
      const what = e.version !== undefined ? `${e.module}@${e.version}${e.query !== undefined ? ` (${e.query})` : ''}` : `${e.module}@${e.query ?? ''}`;
      process.stderr.write(`gomodproxy prefetch: ${what}: ${e.error}\n`);
    }
  }

  private updateProgress(): void {
    this.progress?.update({ done: this.done, total: this.items.size, bytes: this.bytes, bad: this.failed });
  }

  /**
   * GETs a path of the in-process server. A zip is read as it streams (counted, not kept); if
   * its transfer breaks off (the server refused it after the headers), it is asked once more, to
   * learn the reason the server remembered.
   */
  private async get(p: string, how: 'zip' | 'whole' | 'resolve', again = true): Promise<Answer> {
    const stream = how === 'zip';
    const res = await this.pool.request({ path: p, method: 'GET' });
    if (res.statusCode !== 200) {
      const text = Buffer.from(await res.body.arrayBuffer()).toString('utf8');
      // A stored zip answered with a redirect to the store (store.presignZips) is in the cache.
      if (res.statusCode === 302) return { ok: true, body: Buffer.alloc(0), bytes: 0 };
      return { ok: false, status: res.statusCode, line: text.split('\n')[0]?.trim() || `HTTP ${res.statusCode}` };
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const c of res.body) {
        const buf = c as Buffer;
        bytes += buf.length;
        // The bytes brought into the cache; what resolving a query read is not among them.
        if (how !== 'resolve') this.bytes += buf.length;
        if (stream) this.updateProgress();
        else chunks.push(buf);
      }
    } catch (e) {
      if (how !== 'resolve') this.bytes -= bytes;
      if (again) return this.get(p, how, false);
      return { ok: false, status: 200, line: `the transfer broke off twice after ${bytes} bytes (${errorMessage(e)})` };
    }
    return { ok: true, body: Buffer.concat(chunks), bytes };
  }

  /** What a query names, as the go command would resolve it through this proxy, or why nothing. */
  private async resolve(modPath: string, query: string, read: (version: string) => void): Promise<{ version: string } | { error: string }> {
    let q;
    try {
      q = classifyQuery(modPath, query);
    } catch (e) {
      if (e instanceof QueryError) return { error: e.message };
      throw e;
    }
    const base = `/${escapePath(modPath)}/@`;
    const info = async (p: string): Promise<{ version: string } | { error: string }> => {
      const a = await this.get(p, 'resolve');
      if (!a.ok) return { error: a.line };
      const v = (JSON.parse(a.body.toString('utf8')) as { Version?: unknown }).Version;
      return typeof v === 'string' ? { version: v } : { error: `the .info answer for ${modPath}@${query} names no Version` };
    };
    switch (q.kind) {
      case 'exact':
        return { version: q.version };
      case 'revision': {
        let escaped: string;
        try {
          escaped = escapeVersion(q.rev);
        } catch (e) {
          return { error: errorMessage(e) };
        }
        return info(`${base}v/${escaped}.info`);
      }
      default: {
        const chosen = await this.fromList(modPath, q, read);
        if (typeof chosen === 'string') return { version: chosen };
        if ('error' in chosen) return chosen;
        // Nothing tagged: as the go command, `latest` falls back to the proxy's @latest.
        if (q.kind === 'latest') return info(`${base}latest`);
        return { error: `no matching versions for query ${JSON.stringify(query)}` };
      }
    }
  }

  /** A list query's choice among the proxy's list, retractions and the +incompatible rule applied. */
  private async fromList(modPath: string, q: ListQuery, read: (version: string) => void): Promise<string | { error: string } | { none: true }> {
    const base = `/${escapePath(modPath)}/@v/`;
    const list = await this.get(`${base}list`, 'resolve');
    if (!list.ok && list.status !== 404 && list.status !== 410) return { error: list.line };
    const versions = list.ok
      ? list.body
          .toString('utf8')
          .split('\n')
          .map((l) => l.trim().split(/\s+/)[0] ?? '')
          .filter(Boolean)
      : [];
    const goMod = async (v: string): Promise<Buffer | null> => {
      const a = await this.get(`${base}${escapeVersion(v)}.mod`, 'resolve');
      if (!a.ok) return null;
      read(v);
      return a.body;
    };
    // Retractions are what the go.mod of the latest version (before retractions) says.
    let retract: GoModRetract[] = [];
    const newest = retractionSource(versions);
    if (newest !== undefined) {
      const data = await goMod(newest);
      try {
        if (data) retract = parseGoMod(data, `${modPath}@${newest}/go.mod`).retract;
      } catch {
        // A go.mod the go command would refuse says nothing it could act on.
      }
    }
    let cands = candidates(q, versions, (v) => isRetracted(v, retract));
    const probe = incompatibleProbe(q, cands);
    if (probe !== undefined) {
      const data = await goMod(probe);
      // A .mod of exactly "module <path>\n" is what a proxy sends for a version without a go.mod.
      if (data && !data.equals(Buffer.from(`module ${modPath}\n`))) cands = cands.filter((v) => !v.endsWith('+incompatible'));
    }
    return choose(q, cands) ?? { none: true };
  }

  /** Waits for what the server stores behind its answers, checks it is there, and lets go of everything. */
  async close(): Promise<void> {
    const app = this.built.app;
    await Promise.allSettled([app.artifacts.drain(), app.mutable.drain()]);
    const store = app.store;
    for (const item of this.items.values()) {
      if (item.result !== 'fetched') continue;
      const exts: Ext[] = item.zip ? ['info', 'mod', 'zip'] : ['info', 'mod'];
      const lacking: Ext[] = [];
      for (const e of exts) if (!(await store.head(artifactKey(escapePath(item.path), escapeVersion(item.version), e)).catch(() => null))) lacking.push(e);
      if (lacking.length === 0) continue;
      // Served but not kept: the server answers so when its disk is too full (cache.minFree) or a write failed.
      this.fetched--;
      this.done--;
      this.finish(
        item,
        'failed',
        `its ${lacking.map((e) => `.${e}`).join(', ')} could not be kept in ${this.built.storage.store} (too little free space under cache.minFree, or a failed write: see the errors above)`,
      );
    }
    this.progress?.end();
    await this.pool.close();
    await app.shutdown(this.server, this.config.shutdownTimeout);
    await rm(this.socketDir, { recursive: true, force: true });
  }

  /** Prints the summary; resolves with the exit code. */
  summary(): number {
    const failed = this.failed;
    const where = this.config.store.type === 'fs' ? this.config.data : this.built.storage.store;
    const counts = { fetched: this.fetched, present: this.present, failed, bytes: this.bytes };
    const line = `prefetched ${this.fetched} module versions into ${where} (${formatBytes(this.bytes)}), ${this.present} already complete, ${failed} failed`;
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
