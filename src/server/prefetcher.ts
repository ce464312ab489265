// The prefetch engine: brings module versions into the store by asking an app for them, as a
// client's miss would (`gomodproxy prefetch` drives an app of its own; a server's jobs drive the
// server's). It never fetches anything itself: every artifact takes the app's path of a miss
// (the route's upstreams, the checks, the checksum database, the single-flight locks), and a
// failure is the one line the app would send the go command.
//
// A version already complete in the store is skipped without a request. A query (@latest, @v1.2,
// a branch) is resolved first, as the go command would resolve it through a proxy. With deps,
// each version's go.mod adds every version it requires, until the whole requirement graph is in.
// What happens is told as it happens (onEvent per version, onProgress with the counters); the
// caller decides how it is shown (a progress bar, JSON lines, a job's record).
import type { BlobStore } from '../cache/blobstore.js';
import { artifactKey } from '../cache/keys.js';
import { errorMessage } from '../errors.js';
import { escapePath, escapeVersion, isRetracted, isZeroPseudoVersion, parseGoMod, type GoModRetract } from '../module/index.js';
import { MAX_GOMOD_BYTES } from '../sources/index.js';
import type { AppRequester } from './appsocket.js';
import { isExact, replaced, type Replacement, type Wanted } from './prefetch-input.js';
import { QueryError, candidates, choose, classifyQuery, incompatibleProbe, retractionSource, type ListQuery } from './prefetch-query.js';

export type PrefetchResult = 'fetched' | 'present' | 'failed';

/** What became of one module version (or of a query that could not be resolved). */
export interface VersionEvent {
  module: string;
  version?: string;
  query?: string;
  /** Where it was asked for: "go.sum:12", "argument 2", "required by m@v1.0.0". */
  from: string;
  result: PrefetchResult;
  /** Bytes brought into the cache for it. */
  bytes: number;
  error?: string;
}

/** The counters of a run, as they stand. */
export interface PrefetchProgress {
  /** Versions finished (fetched, present or failed). */
  done: number;
  /** Versions known so far (grows while deps are followed). */
  total: number;
  bytes: number;
  fetched: number;
  present: number;
  /** Failures: versions, queries that resolved to nothing, go.mod files that could not be read. */
  failed: number;
}

export interface PrefetcherOptions {
  /** The app to ask (over its private socket). */
  app: AppRequester;
  /** The app's store: what is complete there is skipped without a request. */
  store: BlobStore;
  /** Also every version each fetched go.mod requires, transitively. */
  deps: boolean;
  /** Versions fetched at once. */
  concurrency: number;
  /** The main module's replacements, applied to the whole graph (deps), as for the go command. */
  replace?: readonly Replacement[];
  onEvent?: (e: VersionEvent) => void;
  onProgress?: (p: PrefetchProgress) => void;
  /** A failure of the engine itself (a bug): counted as a failure; the run goes on. */
  onBug?: (err: unknown) => void;
  /** Stops the run: nothing more is started, what is in flight is cut and counted as failed. */
  signal?: AbortSignal;
}

type Ext = 'info' | 'mod' | 'zip';

interface Item {
  path: string;
  version: string;
  zip: boolean;
  from: string;
  /** The query it was resolved from, when it was one. */
  query?: string;
  result?: PrefetchResult;
  bytes: number;
}

/** An answer of the app: its body, or the one line it gave instead. */
type Answer = { ok: true; body: Buffer; bytes: number } | { ok: false; status: number; line: string };

export class Prefetcher {
  private readonly items = new Map<string, Item>();
  private done = 0;
  private bytes = 0;
  private failed = 0;
  private fetched = 0;
  private present = 0;
  private active = 0;
  private readonly queue: (() => Promise<void>)[] = [];
  private idle: (() => void) | null = null;

  constructor(private readonly o: PrefetcherOptions) {}

  get progress(): PrefetchProgress {
    return { done: this.done, total: this.items.size, bytes: this.bytes, fetched: this.fetched, present: this.present, failed: this.failed };
  }

  /** Resolves every query, then fetches every version (and, with deps, what each requires). */
  async fetchAll(wanted: readonly Wanted[]): Promise<void> {
    const exact: Wanted[] = [];
    const queries: Wanted[] = [];
    for (const w of wanted) (isExact(w.path, w.query) ? exact : queries).push(w);
    const resolved: Item[] = [];
    const readToResolve: Item[] = [];
    const unresolved: VersionEvent[] = [];
    await this.each(queries, async (w) => {
      // A version whose go.mod decided the answer (its retractions, whether it opted into
      // modules) is one the go command reads too: offline, it must find its .info and .mod.
      const read = (version: string): void => {
        readToResolve.push({ path: w.path, version, zip: false, from: `its go.mod decides ${w.path}@${w.query}`, bytes: 0 });
      };
      const got = await this.resolve(w.path, w.query, read).catch((e: unknown) => ({ error: this.stopped() ?? errorMessage(e) }));
      if ('version' in got) resolved.push({ path: w.path, version: got.version, zip: w.zip, from: w.from, query: w.query, bytes: 0 });
      else unresolved.push({ module: w.path, query: w.query, from: w.from, result: 'failed', bytes: 0, error: got.error });
    });
    for (const e of unresolved) this.o.onEvent?.(e);
    this.failed += unresolved.length;
    // Every version known before any is fetched: one asked for twice is fetched once, whole if either asks so.
    for (const w of exact) this.add({ path: w.path, version: w.query, zip: w.zip || this.o.deps, from: w.from, bytes: 0 });
    for (const r of [...resolved, ...readToResolve]) this.add({ ...r, zip: r.zip || this.o.deps });
    this.updateProgress();
    for (const item of this.items.values()) this.schedule(() => this.ensure(item));
    await this.drained();
  }

  /**
   * After the app has settled what it stores behind its answers: a version answered but not kept
   * (the app serves a miss it cannot store: too little free space, a failed write) is a failure.
   * `where` names the store in the message.
   */
  async recheck(where: string): Promise<void> {
    const store = this.o.store;
    for (const item of this.items.values()) {
      if (item.result !== 'fetched') continue;
      const exts: Ext[] = item.zip ? ['info', 'mod', 'zip'] : ['info', 'mod'];
      const lacking: Ext[] = [];
      for (const e of exts) if (!(await store.head(artifactKey(escapePath(item.path), escapeVersion(item.version), e)).catch(() => null))) lacking.push(e);
      if (lacking.length === 0) continue;
      this.fetched--;
      this.done--;
      this.finish(
        item,
        'failed',
        `its ${lacking.map((e) => `.${e}`).join(', ')} could not be kept in ${where} (too little free space under cache.minFree, or a failed write: see the errors above)`,
      );
    }
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
      while (next < list.length && !this.o.signal?.aborted) await fn(list[next++] as T);
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, list.length) }, worker));
  }

  private schedule(task: () => Promise<void>): void {
    this.queue.push(task);
    this.pump();
  }

  private pump(): void {
    // Stopped: what was not started never is.
    if (this.o.signal?.aborted) this.queue.length = 0;
    while (this.active < this.o.concurrency && this.queue.length > 0) {
      const task = this.queue.shift() as () => Promise<void>;
      this.active++;
      void task()
        .catch((e: unknown) => {
          // ensure() reports its own failures; anything else is a bug, and must not hang the run.
          this.o.onBug?.(e);
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

  /** Why the run was stopped, once it was. */
  private stopped(): string | undefined {
    const s = this.o.signal;
    if (!s?.aborted) return undefined;
    return `stopped before it was complete: ${typeof s.reason === 'string' ? s.reason : errorMessage(s.reason)}`;
  }

  /** Brings one version's files into the store (those it lacks), then follows its requirements. */
  private async ensure(item: Item): Promise<void> {
    const store = this.o.store;
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
      return this.finish(item, 'failed', this.stopped() ?? errorMessage(e));
    }
    if (this.o.deps && mod !== undefined) this.follow(item, mod);
  }

  /** deps: every version this go.mod requires, as the main module's replacements say. */
  private follow(item: Item, mod: Buffer): void {
    let requires;
    try {
      requires = parseGoMod(mod, `${item.path}@${item.version}/go.mod`).require;
    } catch (e) {
      this.o.onEvent?.({
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
      const to = replaced(this.o.replace ?? [], r.path, r.version);
      // A directory replacement, or the placeholder version that only a replacement makes usable.
      if (to === null || isZeroPseudoVersion(to.version)) continue;
      const from = `required by ${item.path}@${item.version}`;
      if (!isExact(to.path, to.version)) {
        this.o.onEvent?.({ module: to.path, version: to.version, from, result: 'failed', bytes: 0, error: 'not a canonical version of the module' });
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

  private finish(item: Item, result: PrefetchResult, error?: string): void {
    item.result = result;
    this.done++;
    if (result === 'fetched') this.fetched++;
    else if (result === 'present') this.present++;
    else this.failed++;
    const e: VersionEvent = { module: item.path, version: item.version, from: item.from, result, bytes: item.bytes };
    if (item.query !== undefined) e.query = item.query;
    if (error !== undefined) e.error = error;
    this.o.onEvent?.(e);
    this.updateProgress();
  }

  private updateProgress(): void {
    this.o.onProgress?.(this.progress);
  }

  /**
   * GETs a path of the app. A zip is read as it streams (counted, not kept); if its transfer
   * breaks off (the app refused it after the headers), it is asked once more, to learn the reason
   * the app remembered.
   */
  private async get(p: string, how: 'zip' | 'whole' | 'resolve', again = true): Promise<Answer> {
    const stream = how === 'zip';
    const res = await this.o.app.get(p, this.o.signal);
    if (res.status !== 200) {
      const text = (await readAll(res.body)).toString('utf8');
      // A stored zip answered with a redirect to the store (store.presignZips) is in the cache.
      if (res.status === 302) return { ok: true, body: Buffer.alloc(0), bytes: 0 };
      return { ok: false, status: res.status, line: text.split('\n')[0]?.trim() || `HTTP ${res.status}` };
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const c of res.body) {
        const buf = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        bytes += buf.length;
        // The bytes brought into the cache; what resolving a query read is not among them.
        if (how !== 'resolve') this.bytes += buf.length;
        if (stream) this.updateProgress();
        else chunks.push(buf);
      }
    } catch (e) {
      if (how !== 'resolve') this.bytes -= bytes;
      if (again && !this.o.signal?.aborted) return this.get(p, how, false);
      if (this.o.signal?.aborted) throw e;
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
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return Buffer.concat(chunks);
}
