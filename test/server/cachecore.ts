// Shared support for the unit tests of the cache core (Artifacts, MutableAnswers): the objects
// the app builds (ProxyApp's constructor, buildServer), built the same way from a Config, over a
// FAKE source that the test drives: each answer is a function the test controls (a value, an
// error, or a promise it settles when it chooses). Nothing here waits on the clock: every wait is
// for something the test or the code under test does.
import { readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import pino from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import { FsBlobStore } from '../../src/cache/fs.js';
import { artifactKey } from '../../src/cache/keys.js';
import type { MemoryCache } from '../../src/cache/memory.js';
import type { BlobReader, BlobStat, BlobWrite } from '../../src/cache/blobstore.js';
import { HostCoordination, type Coordination } from '../../src/cluster/coordination.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { ProxyError } from '../../src/errors.js';
import { writeModuleZip, type ZipSourceFile } from '../../src/modzip/index.js';
import { ProxyApp } from '../../src/server/app.js';
import type { Artifacts, ArtifactEntry } from '../../src/server/artifacts.js';
import { Metrics } from '../../src/server/metrics.js';
import type { MutableAnswers } from '../../src/server/mutable.js';
import { RouteTable } from '../../src/server/routes.js';
import type { StorageSpace } from '../../src/server/space.js';
import { SourceChain, type FetchContext, type ModuleRef, type ModuleSource, type VersionRef, type ZipBody } from '../../src/sources/index.js';
import { makeTempDir, registerCleanup } from '../helpers/tmp.js';

export const MOD = 'example.com/m';

// ---- promises the test settles ----

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** One turn of the event loop: every promise continuation queued so far has run. */
export function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

// ---- the fake source ----

export type Kind = 'list' | 'latest' | 'info' | 'mod' | 'zip';
type Value<K extends Kind> = K extends 'zip' ? ZipBody : Buffer;
/** What the fake answers a call with: the value, an error to throw, or a function run per call. */
export type Reply<K extends Kind> = Value<K> | ProxyError | (() => Promise<Value<K>>);

export interface Call {
  kind: Kind;
  module: string;
  version: string | undefined;
}

/** A ModuleSource whose every answer the test scripts; unscripted calls are "not found". */
export class FakeSource implements ModuleSource {
  readonly calls: Call[] = [];
  private readonly replies = new Map<string, Reply<Kind>>();

  constructor(readonly id = 'fake') {}

  /** Sets the reply to `kind` for MOD (and version, except for list and latest), replacing any before. */
  on<K extends Kind>(kind: K, version: string | undefined, reply: Reply<K>): this {
    this.replies.set(`${kind} ${version ?? ''}`, reply as Reply<Kind>);
    return this;
  }

  /** Calls of `kind` (for `version`, when given) so far. */
  count(kind?: Kind, version?: string): number {
    return this.calls.filter((c) => (kind === undefined || c.kind === kind) && (version === undefined || c.version === version)).length;
  }

  private answer<K extends Kind>(kind: K, mod: ModuleRef, version: VersionRef | undefined): Promise<Value<K>> {
    this.calls.push({ kind, module: mod.path, version: version?.version });
    const reply = this.replies.get(`${kind} ${version?.version ?? ''}`) as Reply<K> | undefined;
    if (reply === undefined) return Promise.reject(notFound(`${mod.path}${version ? `@${version.version}` : ''}`));
    if (reply instanceof ProxyError) return Promise.reject(reply);
    if (typeof reply === 'function') return reply();
    return Promise.resolve(reply);
  }

  list(mod: ModuleRef, _ctx: FetchContext): Promise<Buffer> {
    return this.answer('list', mod, undefined);
  }
  latest(mod: ModuleRef, _ctx: FetchContext): Promise<Buffer> {
    return this.answer('latest', mod, undefined);
  }
  info(mod: ModuleRef, version: VersionRef, _ctx: FetchContext): Promise<Buffer> {
    return this.answer('info', mod, version);
  }
  mod(mod: ModuleRef, version: VersionRef, _ctx: FetchContext): Promise<Buffer> {
    return this.answer('mod', mod, version);
  }
  zip(mod: ModuleRef, version: VersionRef, _ctx: FetchContext): Promise<ZipBody> {
    return this.answer('zip', mod, version);
  }
}

/** A source's 404, as ProxySource reports one. */
export function notFound(what: string, kind: 'not-found' | 'gone' = 'not-found'): ProxyError {
  return new ProxyError(kind, `not found: ${what}: upstream fake answered ${kind === 'gone' ? 410 : 404}`, { upstreamStatus: kind === 'gone' ? 410 : 404 });
}

/** A source in trouble (a 502 from it). */
export function broken(message = 'upstream fake answered 502 Bad Gateway'): ProxyError {
  return new ProxyError('upstream', message, { upstreamStatus: 502 });
}

/** A zip body whose bytes the test releases one write at a time. */
export class Feed {
  readonly stream = new PassThrough();
  constructor(readonly size: number | undefined) {}
  get body(): ZipBody {
    return { stream: this.stream, size: this.size };
  }
  write(...chunks: Buffer[]): void {
    for (const c of chunks) this.stream.write(c);
  }
  end(): void {
    this.stream.end();
  }
  /** The upstream connection breaks. */
  die(err = new Error('socket hang up')): void {
    this.stream.destroy(err);
  }
}

export function chunks(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += size) out.push(data.subarray(off, off + size));
  return out;
}

export function info(version: string, time = '2024-01-02T03:04:05Z'): Buffer {
  return Buffer.from(JSON.stringify({ Version: version, Time: time }));
}

/** A module zip as the go command makes it, with its h1. */
export async function moduleZip(version: string, files: Record<string, Buffer | string>, modulePath = MOD): Promise<{ data: Buffer; h1: string }> {
  const list: ZipSourceFile[] = Object.entries(files).map(([name, content]) => {
    const buf = Buffer.from(content);
    return { name, mode: 'file', size: buf.length, open: () => Readable.from([buf]) };
  });
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise((r) => out.on('end', r));
  const { h1 } = await writeModuleZip(list, { modulePath, version }, out);
  await ended;
  return { data: Buffer.concat(parts), h1 };
}

// ---- the store, with what the tests need to see and control ----

/**
 * The real disk store, plus: a free-space figure the test sets (the disk of the machine running
 * the tests must not decide what is stored), and a count of reads that found nothing, per key
 * (a request that found nothing goes on into its miss synchronously).
 */
export class ProbeStore extends FsBlobStore {
  free = 2 ** 40;
  /** While set, freeBytes() waits for it (a file system slow to answer). */
  hold: Promise<void> | undefined;
  /** While set, aborting a write waits for it after the test is told (a staging file slow to remove). */
  abortHold: { reached: () => void; until: Promise<void> } | undefined;
  private readonly empty = new Map<string, number>();
  private readonly waiters: { key: string; n: number; resolve: () => void }[] = [];
  private freeAsked: (() => void)[] = [];

  override async freeBytes(): Promise<number> {
    const asked = this.freeAsked;
    this.freeAsked = [];
    for (const f of asked) f();
    if (this.hold) await this.hold;
    return this.free;
  }

  override async beginWrite(key: string): Promise<BlobWrite> {
    const w = await super.beginWrite(key);
    const abort = w.abort.bind(w);
    w.abort = async () => {
      const h = this.abortHold;
      if (h) {
        h.reached();
        await h.until;
      }
      await abort();
    };
    return w;
  }

  /** Resolves at the next call of freeBytes() (someone claims room for a write). */
  nextFreeBytes(): Promise<void> {
    return new Promise((resolve) => this.freeAsked.push(resolve));
  }

  override async getBuffer(key: string, maxBytes: number): Promise<{ stat: BlobStat; data: Buffer } | null> {
    const got = await super.getBuffer(key, maxBytes);
    if (!got) this.foundNothing(key);
    return got;
  }

  override async get(key: string): Promise<BlobReader | null> {
    const got = await super.get(key);
    if (!got) this.foundNothing(key);
    return got;
  }

  /** Reads of key that have found nothing so far. */
  emptyReadCount(key: string): number {
    return this.empty.get(key) ?? 0;
  }

  /** Resolves once `n` reads of key have found nothing. */
  emptyReads(key: string, n: number): Promise<void> {
    if ((this.empty.get(key) ?? 0) >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ key, n, resolve }));
  }

  private foundNothing(key: string): void {
    const n = (this.empty.get(key) ?? 0) + 1;
    this.empty.set(key, n);
    for (const w of this.waiters.filter((x) => x.key === key && x.n <= n)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  }
}

/** Every file and folder under dir, relative and sorted. */
export async function walk(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        dirs.push(p);
        await visit(p);
      } else {
        files.push(p);
      }
    }
  };
  await visit('');
  return { files: files.sort(), dirs: dirs.sort() };
}

// ---- the core under test, behind a real HTTP server ----

export interface Response {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  text: string;
}

export interface CoreOptions {
  /** Settings as `serve` flags take them ("cache.ttl": "1h"). */
  flags?: Record<string, unknown>;
  /** Reuse this data folder (another process, or a restart, over the same store). */
  data?: string;
  /** One fake per upstream of the `upstream` setting, in order (default: one). */
  sources?: FakeSource[];
  /** Coordination other than the host's lock files (another instance's view, say); given the data folder. */
  coordination?: (data: string) => Coordination;
}

export class Core {
  readonly log = pino({ level: 'silent' });
  readonly metrics = new Metrics();
  readonly store: ProbeStore;
  readonly coordination: Coordination;
  readonly routes: RouteTable;
  /** The real app over fakes: requests take the same path as in `serve`. */
  readonly app: ProxyApp;
  readonly server: Server;
  readonly agent = new Agent({ pipelining: 0 });
  url = '';

  constructor(
    readonly config: Config,
    readonly sources: FakeSource[],
    coordination?: (data: string) => Coordination,
  ) {
    const c = config;
    this.store = new ProbeStore(c.data);
    this.coordination = coordination?.(c.data) ?? new HostCoordination(c.data);
    let i = 0;
    const chain = new SourceChain(c.upstreams, () => sources[i++] ?? new FakeSource(`extra${i}`), {
      failures: c.health.failures,
      cooldownMs: c.health.cooldown,
    });
    this.routes = new RouteTable(c, () => chain);
    this.app = new ProxyApp({
      config: c,
      store: this.store,
      coordination: this.coordination,
      routes: this.routes,
      metrics: this.metrics,
      log: this.log,
      accessLog: null,
      instanceId: 'gmp-unit-test',
      sumdb: null,
      access: null,
    });
    this.server = createServer({ keepAlive: true }, this.app.handle);
  }

  get memory(): MemoryCache<ArtifactEntry> {
    return this.app.memory;
  }

  get artifacts(): Artifacts {
    return this.app.artifacts;
  }

  get mutable(): MutableAnswers {
    return this.app.mutable;
  }

  get space(): StorageSpace {
    return this.app.space;
  }

  get source(): FakeSource {
    return this.sources[0] as FakeSource;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Everything in flight has settled: fetches, background stores, revalidations. */
  async drain(): Promise<void> {
    await this.mutable.drain();
    await this.artifacts.drain();
  }

  async close(): Promise<void> {
    await this.drain();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.agent.close();
  }

  /** The store key of MOD's artifact. */
  key(version: string, kind: 'info' | 'mod' | 'zip'): string {
    return artifactKey(MOD, version, kind);
  }

  /** GET (or HEAD) a path and read the whole answer. Throws when the transfer fails. */
  async get(p: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Response> {
    const res = await request(`${this.url}${p}`, { method, headers, dispatcher: this.agent });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: flat(res.headers), body, text: body.toString('utf8') };
  }

  /** Starts a download that the test can watch as its bytes arrive. */
  download(p: string): Download {
    return new Download(request(`${this.url}${p}`, { dispatcher: this.agent }));
  }

  /** Every file and folder in the data folder. */
  tree(): Promise<{ files: string[]; dirs: string[] }> {
    return walk(this.config.data);
  }
}

/** A response read as it arrives. */
export class Download {
  received = 0;
  readonly head: Promise<{ status: number; headers: Record<string, string> }>;
  /** All bytes, or the error that cut the transfer. */
  readonly body: Promise<Buffer>;
  private readonly parts: Buffer[] = [];
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(res: Promise<Dispatcher.ResponseData>) {
    this.head = res.then((r) => ({ status: r.statusCode, headers: flat(r.headers) }));
    this.body = res.then(async (r) => {
      for await (const c of r.body) {
        const buf = c as Buffer;
        this.parts.push(buf);
        this.received += buf.length;
        for (const w of this.waiters.filter((x) => x.n <= this.received)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
      return Buffer.concat(this.parts);
    });
    // A test that never looks at one of them must not leave an unhandled rejection behind.
    this.head.catch(() => undefined);
    this.body.catch(() => undefined);
  }

  /** Resolves once at least n bytes have arrived; rejects if the transfer ends first. */
  reached(n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve();
    const got = new Promise<void>((resolve) => this.waiters.push({ n, resolve }));
    return Promise.race([
      got,
      this.body.then(() => {
        if (this.received < n) throw new Error(`the transfer ended after ${this.received} bytes, before ${n}`);
      }),
    ]);
  }
}

function flat(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/**
 * Builds the core over a fresh (or given) data folder, from settings as `serve` takes them, and
 * starts its HTTP server on a free port. Stopped and removed by cleanupAll.
 */
export async function startCore(opts: CoreOptions = {}): Promise<Core> {
  const data = opts.data ?? (await makeTempDir('cachecore'));
  const sources = opts.sources ?? [new FakeSource()];
  const upstream = sources.map((s) => `https://${s.id}.example`).join('|');
  const config = loadConfig({
    env: {},
    cwd: '/nonexistent-dir-for-test',
    flags: {
      data,
      upstream,
      sumdb: 'off',
      // Every failure is counted against the fake, never rested: calls to it are what tests count.
      'health.failures': 1_000_000,
      ...opts.flags,
    },
  });
  const core = new Core(config, sources, opts.coordination);
  // As buildServer does before anything else.
  await core.store.checkWritable();
  await core.listen();
  registerCleanup(() => core.close());
  return core;
}

/** The first line of an error answer, and that it is the only one. */
export function oneLine(r: Response): string {
  expect_(r.headers['content-type'] === 'text/plain; charset=utf-8', `error answer is text/plain, got ${r.headers['content-type']}`);
  expect_(r.text.endsWith('\n') && r.text.indexOf('\n') === r.text.length - 1, `error answer is one line, got ${JSON.stringify(r.text)}`);
  return r.text.slice(0, -1);
}

function expect_(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}
