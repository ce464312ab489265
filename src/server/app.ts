// The HTTP application. `handle` is the hot path, top to bottom: parse, (access), route,
// memory hit -> answer. Everything slow lives behind a miss, in artifacts.ts and mutable.ts.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type ServerOptions as TlsOptions } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { credentialsOf, decide, type Access, type AccessDecision, type AuditLog } from '../access/index.js';
import type { BlobStore } from '../cache/blobstore.js';
import type { Coordination } from '../cluster/coordination.js';
import { artifactKey } from '../cache/keys.js';
import { BlobAnswers } from '../cache/answers.js';
import { MemoryCache } from '../cache/memory.js';
import { ServedRecorder } from '../catalog/index.js';
import type { Config } from '../config/index.js';
import { ProxyError } from '../errors.js';
import { MAX_VIA_HOPS, VIA_HEADER, type FetchContext, type ModuleRef } from '../sources/index.js';
import { ADMIN_PREFIX, AdminApi } from './admin.js';
import { modulesEndpoints } from './admin-modules.js';
import { Dependents, ModuleIndex, storeChange } from '../catalog/index.js';
import { History, sampleOf } from './history.js';
import { UI_PREFIX, WebUi } from './ui.js';
import type { StoreChange } from '../cluster/coordination.js';
import { Artifacts, type ArtifactEntry } from './artifacts.js';
import { Invalidations } from './invalidation.js';
import type { AccessLog } from './logging.js';
import type { Metrics } from './metrics.js';
import { MutableAnswers } from './mutable.js';
import { OfflineAnswers } from './offline.js';
import { notPublished, publishEndpoints } from './publish.js';
import { VulnService } from './vuln.js';
import { VulnMirror } from '../vulndb/index.js';
import { FastHits } from './fasthits.js';
import { RequestParser, parseRequest, type ParsedRequest } from './protocol.js';
import type { Route, RouteTable } from './routes.js';
import { ClientAddresses } from './clientip.js';
import { Exchange, TEXT, sendBody, sendError } from './respond.js';
import { StorageSpace } from './space.js';
import type { SumdbService } from './sumdb.js';

export interface AppOptions {
  config: Config;
  store: BlobStore;
  /** Who fetches what, across the processes sharing the store. */
  coordination: Coordination;
  routes: RouteTable;
  metrics: Metrics;
  log: Logger;
  /** Null when access logging is off. */
  accessLog: AccessLog | null;
  instanceId: string;
  /** Metrics text for /metrics; in a cluster, aggregated over all workers. */
  metricsText?: () => Promise<string>;
  /** Null when the checksum database is off. */
  sumdb?: SumdbService | null;
  /** Authentication, authorization, limits and audit; null when nothing is configured. */
  access?: Access | null;
}

type ModuleRequest = Exclude<ParsedRequest, { kind: 'sumdb' } | { kind: 'ops' }>;
type GateResult = true | Promise<true>;

/** Longer than common load balancers' idle timeouts, so they close first and never hit a closed socket. */
const KEEP_ALIVE_MS = 65_000;

export class ProxyApp {
  readonly artifacts: Artifacts;
  readonly mutable: MutableAnswers;
  readonly space: StorageSpace;
  /** Small immutable blobs with their headers, for the hot path. */
  readonly memory: MemoryCache<ArtifactEntry>;
  /** What this process served, written down now and then for garbage collection. */
  readonly served: ServedRecorder;
  private readonly prefix: string;
  private readonly parser: RequestParser;
  private fastHits: FastHits | undefined;
  /** How many requests the socket-level hit path answered (undefined when it is not in front). */
  get fastHitsAnswered(): number | undefined {
    return this.fastHits ? this.o.metrics.socketHits.value : undefined;
  }
  private readonly routes: RouteTable;
  private writable: { ok: boolean; at: number; reason?: string } = { ok: false, at: 0 };
  private draining = false;
  /** No access control counts or records requests (rate limits, fetch limits, audit): the gate may let one by unseen. */
  private readonly uncounted: boolean;
  private readonly addresses: ClientAddresses | null;
  private tlsServer: TlsServer | undefined;
  private readonly audit: AuditLog | null;
  private readonly apiPrefix: string;
  readonly admin: AdminApi;
  readonly invalidations: Invalidations;
  /** Set in offline mode: what would ask an upstream is computed from the cache instead. */
  private readonly offline: OfflineAnswers | null;
  /** Lists, @latest and queries of published modules: from the store, as offline mode answers everything. */
  private readonly published: OfflineAnswers;
  /** What the store holds, for the operator surfaces; kept as artifacts come and go. */
  readonly index: ModuleIndex;
  /** Parts of GET /-/api/stats that other concerns add (sync jobs, garbage collection). */
  readonly statusParts = new Map<string, () => unknown>();
  private readonly startedAt = new Date();
  /** The figures of the last hour and day, for the web UI's charts. */
  readonly history: History;
  private readonly ui: WebUi;
  private readonly uiPrefix: string;
  private readonly rootPath: string;
  /** /-/ui without its slash, where a typed address often ends. */
  private readonly uiRoot: string;
  /** The vulnerability database's mirror; null when vulndb.enabled is off. */
  readonly vulndb: VulnMirror | null;
  private readonly vulnService: VulnService | null;
  private readonly vulnPrefix: string | null;

  constructor(private readonly o: AppOptions) {
    const c = o.config;
    this.prefix = c.pathPrefix;
    this.parser = new RequestParser(this.prefix);
    this.routes = o.routes;
    this.addresses = c.trustedProxies.length > 0 ? new ClientAddresses(c.trustedProxies) : null;
    this.audit = o.access?.audit.enabled ? o.access.audit : null;
    const a = o.access;
    this.uncounted = !a || (!a.rateLimiter.enabled && !a.fetchLimiter.enabled && !a.audit.enabled);
    // The bound is the server's, not each worker's: memory must not grow with the number of workers.
    this.memory = new MemoryCache<ArtifactEntry>(Math.floor(c.cache.memory.maxBytes / Math.max(1, c.workers)), c.cache.memory.maxItemBytes);
    this.space = new StorageSpace(o.store, c.cache.minFree, o.metrics, o.log);
    o.metrics.rememberedAnswers = () => o.coordination.answers.size;
    this.index = new ModuleIndex({ store: o.store, log: o.log, rescanMs: c.cache.indexRescan });
    const dependents = new Dependents(o.store, this.index, o.log);
    o.coordination.onStoreChange((changes) => {
      this.index.apply(changes);
      dependents.apply(changes);
    });
    this.dependents = dependents;
    this.served = ServedRecorder.forProcess(o.store, o.instanceId, o.log);
    this.artifacts = new Artifacts({
      served: this.served,
      store: o.store,
      coordination: o.coordination,
      memory: this.memory,
      metrics: o.metrics,
      log: o.log,
      space: this.space,
      immutableMaxAgeMs: c.cache.immutableMaxAge,
      notFoundTtlMs: c.cache.notFoundTtl,
      refusedTtlMs: c.cache.refusedTtl,
      followTimeoutMs: c.cache.followTimeout,
      presignZipSeconds: c.store.type === 's3' && c.store.presignZips ? c.store.presignSeconds : null,
      sumdb: o.sumdb,
      offline: c.offline,
      onStore: (mod, version, kind, size, source) => this.storeChanged([storeChange(mod, version, kind, size, source)]),
    });
    this.offline = c.offline ? new OfflineAnswers({ store: o.store, policy: o.routes }) : null;
    this.published = new OfflineAnswers({
      store: o.store,
      policy: o.routes,
      miss: (subject) => notPublished(subject),
      queryNote: 'a published module has only its published versions',
    });
    const answers = o.coordination.mutable ?? new BlobAnswers(o.store);
    this.mutable = new MutableAnswers({
      answers,
      artifacts: this.artifacts,
      space: o.coordination.mutable ? null : this.space,
      policy: o.routes,
      metrics: o.metrics,
      log: o.log,
      staleWhileRevalidateMs: c.cache.staleWhileRevalidate,
      maxStaleMs: c.cache.maxStale,
    });
    this.invalidations = new Invalidations({
      coordination: o.coordination,
      answers,
      memories: [this.mutable.memory, this.memory],
      remembered: o.coordination.answers,
      log: o.log,
    });
    if (c.vulndb.enabled) {
      const mirror = new VulnMirror({
        store: o.store,
        coordination: o.coordination,
        log: o.log,
        url: c.vulndb.url,
        ttlMs: c.vulndb.ttl,
        offline: c.offline,
        concurrency: c.vulndb.concurrency,
        timeouts: c.timeouts,
        eager: c.vulndb.refuseVulnerable,
      });
      this.vulndb = mirror;
      this.vulnService = new VulnService({ mirror, store: o.store, offline: c.offline });
      this.vulnPrefix = `${this.prefix}${c.vulndb.path}`;
      // The mirror's index is replaced at each reload: ask whichever is current.
      if (c.vulndb.refuseVulnerable) o.routes.refuseVulnerable({ has: (p) => mirror.affected.has(p), findings: (p, v) => mirror.affected.findings(p, v) });
      this.statusParts.set('vulndb', () => mirror.status());
    } else {
      this.vulndb = null;
      this.vulnService = null;
      this.vulnPrefix = null;
    }
    this.apiPrefix = `${this.prefix}${ADMIN_PREFIX}`;
    this.admin = new AdminApi({ access: o.access ?? null, invalidations: this.invalidations, purge: (mod, v) => this.artifacts.purge(mod, v), log: o.log });
    this.admin.add(
      ...modulesEndpoints({
        index: this.index,
        routes: o.routes,
        sumdb: o.sumdb ?? null,
        instanceId: o.instanceId,
        storeDescription: o.store.description,
        startedAt: this.startedAt,
        offline: c.offline,
        metricsText: o.metricsText ?? (() => o.metrics.text()),
        degraded: () => o.coordination.degraded(),
        statusParts: this.statusParts,
        vulns: this.vulndb ? () => (this.vulndb as VulnMirror).affected : null,
      }),
    );
    this.admin.add(
      ...publishEndpoints({
        store: o.store,
        coordination: o.coordination,
        routes: o.routes,
        space: this.space,
        log: o.log,
        stored: (changes) => this.storeChanged(changes),
        rewriteLocalList: (mod) => this.artifacts.rewriteLocalList(mod),
        invalidate: async (mod) => {
          await this.invalidations.invalidate({ pattern: mod.path });
        },
      }),
    );
    const metricsText = o.metricsText ?? (() => o.metrics.text());
    this.history = new History(async () => sampleOf(await metricsText(), this.index.totals().bytes));
    this.uiPrefix = `${this.prefix}${UI_PREFIX}`;
    this.rootPath = `${this.prefix}/`;
    this.uiRoot = this.uiPrefix.slice(0, -1);
    this.ui = new WebUi({
      pathPrefix: this.prefix,
      access: o.access ?? null,
      routes: o.routes,
      index: this.index,
      dependents,
      store: o.store,
      history: this.history,
      admin: this.admin,
      sumdb: o.sumdb ?? null,
      offline: c.offline,
      tls: c.tls !== undefined && c.tls !== null,
      audit: { enabled: c.auth.audit.enabled, file: c.auth.audit.file ?? null },
      statusParts: this.statusParts,
      hitsAndMisses: async () => sampleOf(await metricsText(), 0),
      log: o.log,
    });
  }

  /** Starts what runs beside the serving: the module index's walk, the figures' sampling. */
  startBackground(): void {
    this.index.start();
    this.history.start();
    void this.vulndb?.start();
  }

  /** The store gained or lost artifacts here: this process's index, then the others', hear it. */
  storeChanged(changes: readonly StoreChange[]): void {
    this.index.apply(changes);
    this.dependents.apply(changes);
    this.o.coordination.announce(changes);
  }

  private readonly dependents: Dependents;

  /** Where the bytes live (for an operator command driving this app in-process). */
  get store(): BlobStore {
    return this.o.store;
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = new Exchange(req, res, this.o.metrics, this.o.accessLog, this.audit);
    if (this.addresses) ex.clientIp = this.addresses.of(req);
    // Operator surfaces first (they take other methods); a startsWith, so the hot path barely notices.
    if (req.url?.startsWith(this.apiPrefix)) {
      this.admin.handle(ex, req.url.slice(this.apiPrefix.length)).catch((err: unknown) => sendError(ex, err, this.o.log));
      return;
    }
    if (req.url?.startsWith(this.uiPrefix)) {
      this.ui.handle(ex, req.url.slice(this.uiPrefix.length)).catch((err: unknown) => sendError(ex, err, this.o.log));
      return;
    }
    // The configured path's first segment has no dot: no module request can start with it.
    if (this.vulnPrefix !== null && req.url?.startsWith(this.vulnPrefix)) {
      this.vuln(ex, req.url.slice(this.vulnPrefix.length));
      return;
    }
    // A browser at the server's address gets the UI; the go command never asks for "/".
    if ((req.url === this.rootPath || req.url === this.uiRoot) && WebUi.wantsPage(req.headers.accept)) {
      res.writeHead(302, ['Location', this.uiPrefix, 'Cache-Control', 'no-store', 'Content-Length', '0']);
      res.end();
      ex.finish(302, 0);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      sendError(ex, new ProxyError('method', `method ${req.method} is not allowed; a Go module proxy answers GET and HEAD`), this.o.log);
      return;
    }
    let p: ModuleRequest;
    let route: Route;
    let gate: GateResult;
    try {
      const parsed = this.parser.parse(req.url ?? '/');
      if (parsed.kind === 'sumdb' || parsed.kind === 'ops') {
        this.other(ex, parsed);
        return;
      }
      p = parsed;
      ex.kind = p.kind;
      ex.module = p.mod.path;
      if (p.kind !== 'list' && p.kind !== 'latest') ex.version = p.version.version;
      route = this.routes.routeFor(p.mod.path);
      gate = this.gate(ex, route, p.mod.path);
    } catch (err) {
      sendError(ex, err, this.o.log);
      return;
    }
    if (gate === true) {
      this.dispatch(ex, p, route);
      return;
    }
    gate.then(
      () => this.dispatch(ex, p, route),
      (err: unknown) => sendError(ex, err, this.o.log),
    );
  };

  /**
   * The app as the server's own jobs (prefetch, sync) ask it, over a private socket: the same
   * parse, route, policy and miss path as a client's request, so a job's fetch is verified,
   * single-flighted and stored as any miss is. No access control, limits or audit (an
   * administrator started the job, or the operator's configuration did), no path prefix, and
   * counted apart from clients (gomodproxy_job_requests_total). Jobs ask only for what the
   * store lacks, so this is never the hot path.
   */
  readonly handleForJobs = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = new Exchange(req, res, this.o.metrics.jobRequests, this.o.accessLog, null);
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new ProxyError('method', `method ${req.method} is not allowed; jobs only GET module files`);
      const p = parseRequest(req.url ?? '/', '');
      if (p.kind === 'sumdb' || p.kind === 'ops') throw new ProxyError('bad-request', `jobs ask only for module files, not ${req.url ?? '/'}`);
      ex.kind = p.kind;
      ex.module = p.mod.path;
      if (p.kind !== 'list' && p.kind !== 'latest') ex.version = p.version.version;
      this.dispatch(ex, p, this.routes.routeFor(p.mod.path));
    } catch (err) {
      sendError(ex, err, this.o.log);
    }
  };

  /**
   * A module's list or @latest asked of its upstreams now, whatever the age of the cached answer
   * (a sync job refreshing what it watches), and kept for every process as a miss keeps it.
   * The previous answer is replaced only by a fresh one: while upstreams fail, clients still get
   * it (stale), which dropping it first (an invalidation) would lose.
   */
  async revalidate(mod: ModuleRef, kind: 'list' | 'latest'): Promise<Buffer> {
    if (this.offline) throw new ProxyError('conflict', `gomodproxy is offline: the ${kind === 'list' ? 'list' : '@latest'} of ${mod.path} cannot be refreshed`);
    if (this.routes.hasPolicy) this.routes.checkPolicy(mod.path);
    return this.mutable.revalidate({ kind, mod, route: this.routes.routeFor(mod.path) }, { via: this.o.instanceId });
  }

  /**
   * After parse, route and access (so that only those who may read a module learn why it is
   * blocked): the operator's policy, then a memory hit answers at once; everything else is a miss.
   */
  private dispatch(ex: Exchange, p: ModuleRequest, route: Route): void {
    if (this.routes.hasPolicy) {
      try {
        this.routes.checkPolicy(p.mod.path, p.kind === 'info' || p.kind === 'mod' || p.kind === 'zip' ? p.version.version : undefined);
      } catch (err) {
        sendError(ex, err, this.o.log);
        return;
      }
    }
    switch (p.kind) {
      case 'info':
      case 'mod':
      case 'zip': {
        const key = artifactKey(p.mod.escaped, p.version.escaped, p.kind);
        const hit = this.memory.get(key);
        if (hit) {
          ex.cache = 'hit';
          this.served.record(key);
          this.artifacts.sendEntry(ex, hit);
          return;
        }
        const r = { kind: p.kind, mod: p.mod, version: p.version, route };
        this.miss(ex, (ctx) => this.artifacts.serve(ex, r, ctx));
        return;
      }
      case 'query': {
        const r = { kind: p.kind, mod: p.mod, version: p.version, route };
        const offline = this.offline ?? (route.publish ? this.published : null);
        this.miss(ex, (ctx) => (offline ? offline.serve(ex, r) : this.mutable.serve(ex, r, ctx)));
        return;
      }
      case 'list':
      case 'latest': {
        const r = { kind: p.kind, mod: p.mod, route };
        const offline = this.offline ?? (route.publish ? this.published : null);
        this.miss(ex, (ctx) => (offline ? offline.serve(ex, r) : this.mutable.serve(ex, r, ctx)));
        return;
      }
    }
  }

  /**
   * Access control: true to go on at once (the common case: no credentials needed or a cached
   * one), a promise while a credential is checked; throws the refusal as a ProxyError.
   */
  private gate(ex: Exchange, route: Route, subject: string): GateResult {
    const access = this.o.access;
    if (!access) return true;
    const anonymousOk = route.read.includes('anonymous');
    const creds = credentialsOf(ex.req, ex.clientIp ?? ex.req.socket.remoteAddress);
    if (anonymousOk && this.uncounted && !creds.authorization && !creds.peerCertificate) return true;
    const d = decide(access, creds, route.read, {
      deniedStatus: route.deniedAs === 'not-found' ? 404 : 403,
      notFoundMessage: `not found: ${subject}: no such module here, or you may not read it`,
      subject,
    });
    return d instanceof Promise ? d.then((x) => this.judge(ex, anonymousOk, x)) : this.judge(ex, anonymousOk, d);
  }

  private judge(ex: Exchange, anonymousOk: boolean, d: AccessDecision): true {
    ex.fetchClient = d.client;
    // Who it was, allowed or not: the audit log must name a signed-in user who was refused.
    if (d.principal.method !== 'anonymous') {
      ex.user = d.principal.name;
      ex.authMethod = d.principal.method;
    }
    if (d.allowed) return true;
    // Stale or foreign credentials (a .netrc line for another service) must not lock anyone out of
    // what anonymous users may read: on such routes a failed sign-in just counts as anonymous.
    if (d.status === 401 && anonymousOk) return true;
    ex.deniedReason = d.reason;
    const kind = d.status === 401 ? 'unauthorized' : d.status === 404 ? 'not-found' : d.status === 429 ? 'rate-limited' : 'forbidden';
    throw new ProxyError(kind, d.message, { headers: d.headers });
  }

  /** The checksum database and operations endpoints: no module, no route. */
  private other(ex: Exchange, p: ParsedRequest & { kind: 'sumdb' | 'ops' }): void {
    switch (p.kind) {
      case 'sumdb': {
        ex.kind = 'sumdb';
        const sumdb = this.o.sumdb;
        if (!sumdb) {
          sendError(
            ex,
            new ProxyError('not-found', 'not found: this gomodproxy has no checksum database configured; the go command will contact the database directly'),
            this.o.log,
          );
          return;
        }
        // The database proxy is for the same readers as modules no route covers.
        let gate: GateResult;
        try {
          gate = this.gate(ex, this.routes.defaultRoute, `/sumdb/${p.path}`);
        } catch (err) {
          sendError(ex, err, this.o.log);
          return;
        }
        Promise.resolve(gate)
          .then(() => sumdb.serve(ex, p.path))
          .catch((err: unknown) => sendError(ex, err, this.o.log));
        return;
      }
      case 'ops':
        ex.kind = 'ops';
        this.ops(ex, p.name).catch((err: unknown) => sendError(ex, err, this.o.log));
        return;
    }
  }

  /** The vulnerability database, for the same readers as modules no route covers (as the checksum database). */
  private vuln(ex: Exchange, rest: string): void {
    ex.kind = 'vuln';
    const service = this.vulnService as VulnService;
    let gate: GateResult;
    try {
      gate = this.gate(ex, this.routes.defaultRoute, 'the vulnerability database');
    } catch (err) {
      sendError(ex, err, this.o.log);
      return;
    }
    Promise.resolve(gate)
      .then(() => service.serve(ex, rest))
      .catch((err: unknown) => sendError(ex, err, this.o.log));
  }

  /** Everything that may need an upstream: loop check, then the slow path, errors answered as one line. */
  private miss(ex: Exchange, run: (ctx: FetchContext) => Promise<void>): void {
    let ctx: FetchContext;
    try {
      ctx = this.context(ex.req);
    } catch (err) {
      sendError(ex, err, this.o.log);
      return;
    }
    const limiter = this.o.access?.fetchLimiter;
    const client = ex.fetchClient;
    if (limiter?.enabled && client !== undefined) {
      // One client may hold only so many upstream fetches at once: the slot is taken when a fetch
      // really starts and given back when the upstream is done, not when the client is.
      ctx.fetchSlot = () => limiter.acquire(client);
    }
    run(ctx).catch((err: unknown) => sendError(ex, err, this.o.log));
  }

  private context(req: IncomingMessage): FetchContext {
    const id = this.o.instanceId;
    const incoming = req.headers[VIA_HEADER];
    const chain = typeof incoming === 'string' && incoming !== '' ? incoming.split(',').map((s) => s.trim()) : [];
    if (chain.includes(id)) {
      throw new ProxyError(
        'loop',
        `request loop: this gomodproxy (${id}) received its own upstream request back; its upstream list must not lead back to itself`,
      );
    }
    if (chain.length >= MAX_VIA_HOPS) {
      throw new ProxyError('loop', `request passed ${chain.length} gomodproxy instances; the upstream settings probably form a loop`);
    }
    return { via: [...chain, id].join(', ') };
  }

  private async ops(ex: Exchange, name: 'healthz' | 'readyz' | 'metrics'): Promise<void> {
    if (name === 'healthz') {
      sendBody(ex, 200, ['Content-Type', TEXT, 'Cache-Control', 'no-store'], Buffer.from('ok\n'));
      return;
    }
    if (name === 'metrics') {
      const access = this.o.access;
      if (access) {
        const d = await decide(access, credentialsOf(ex.req, ex.clientIp ?? ex.req.socket.remoteAddress), access.metricsRules, { subject: '/metrics' });
        this.judge(ex, false, d);
      }
      const text = await (this.o.metricsText ?? (() => this.o.metrics.text()))();
      sendBody(ex, 200, ['Content-Type', this.o.metrics.registry.contentType, 'Cache-Control', 'no-store'], Buffer.from(text));
      return;
    }
    const problems = await this.readiness();
    // Degraded is still ready: hits are served and misses fetched per instance; a load balancer
    // that took every instance out because Redis is down would turn a slowdown into an outage.
    const degraded = this.o.coordination.degraded();
    if (problems.length === 0) {
      sendBody(ex, 200, ['Content-Type', TEXT, 'Cache-Control', 'no-store'], Buffer.from(degraded ? `ready, degraded: ${degraded}\n` : 'ready\n'));
    } else {
      sendBody(ex, 503, ['Content-Type', TEXT, 'Cache-Control', 'no-store'], Buffer.from(`not ready: ${problems.join('; ')}\n`));
    }
  }

  /** What keeps this instance from serving well: storage not writable, no upstream healthy, shutting down. */
  async readiness(): Promise<string[]> {
    const problems: string[] = [];
    if (this.draining) problems.push('shutting down');
    // Refusing vulnerable versions means nothing until the stored database is read (moments after start).
    if (this.o.config.vulndb.refuseVulnerable && this.vulndb && !this.vulndb.started) problems.push('the vulnerability database is still being loaded');
    const now = Date.now();
    if (now - this.writable.at > 2000) {
      try {
        await this.o.store.checkWritable();
        this.writable = { ok: true, at: now };
      } catch (err) {
        this.writable = { ok: false, at: now, reason: (err as Error).message };
      }
    }
    if (!this.writable.ok) problems.push(`storage ${this.o.store.description} is not writable (${this.writable.reason ?? 'unknown'})`);
    const low = await this.space.low().catch((err: unknown) => `cannot read the free space of ${this.o.store.description} (${(err as Error).message})`);
    if (low) problems.push(low);
    // Offline, no upstream is asked, so none can be failing.
    if (!this.offline && !this.routes.chains().some((c) => c.healthy())) problems.push('every upstream is failing');
    return problems;
  }

  /**
   * Starts serving (HTTPS when a certificate is configured); resolves with the bound server.
   * fastHits: false leaves every request to node:http (the reference the hit path is held to).
   */
  listen(host: string, port: number, { fastHits = true }: { fastHits?: boolean } = {}): Promise<Server> {
    const base = { keepAlive: true, noDelay: true, requestTimeout: 0 };
    let server: Server;
    if (this.o.config.tls) {
      this.tlsServer = createTlsServer({ ...base, ...this.tlsOptions() }, this.handle);
      server = this.tlsServer;
    } else {
      server = createServer(base, this.handle);
      // Cached hits off the socket, for requests that would take the same path through handle
      // (no credentials to check, no limits to count, no proxy headers to read): see fasthits.ts.
      // The gate's rule for a request without credentials (a socket-level request carries none).
      const access = this.o.access;
      if (fastHits && this.uncounted && !this.addresses) {
        this.fastHits = new FastHits({
          anonymousMayRead: (mod) => !access || this.routes.routeFor(mod).read.includes('anonymous'),
          parser: this.parser,
          routes: this.routes,
          memory: this.memory,
          served: this.served,
          metrics: this.o.metrics,
          answeredHere: this.o.metrics.socketHits,
          accessLog: this.o.accessLog,
          keepAliveMs: KEEP_ALIVE_MS,
          draining: () => this.draining,
        });
        this.fastHits.install(server);
      }
    }
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    server.headersTimeout = 70_000;
    // Requests too malformed for Node to parse (bad request line, oversized headers) still get one text line.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      const body = `${tooLarge ? 'request headers too large' : 'malformed HTTP request'}; a Go module proxy answers GET /<module>/@v/<version>.info and the like\n`;
      const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  private tlsOptions(): TlsOptions {
    const t = this.o.config.tls;
    if (!t) return {};
    const opts: TlsOptions = { cert: readFileSync(t.cert), key: readFileSync(t.key), minVersion: 'TLSv1.2' };
    if (t.clientCa) {
      opts.ca = readFileSync(t.clientCa);
      opts.requestCert = true;
      opts.rejectUnauthorized = t.requireClientCert;
    }
    return opts;
  }

  /** Throws if the certificate, key or client CA cannot be read or do not form a TLS context. */
  checkTls(): void {
    if (this.o.config.tls) createSecureContext(this.tlsOptions());
  }

  /** Re-reads the certificate, key and client CA (SIGHUP): renewed certificates need no restart. */
  reloadTls(): void {
    if (!this.tlsServer) return;
    this.tlsServer.setSecureContext(this.tlsOptions());
    this.o.log.info('TLS certificate reloaded');
  }

  /** Graceful stop: no new connections, in-flight responses finish (up to timeoutMs), fetches settle. */
  async shutdown(server: Server, timeoutMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Keep-alive connections go idle as their last response ends; close them as they do, so
    // shutdown waits for responses, not for clients' idle timeouts.
    const closeIdle = (): void => {
      server.closeIdleConnections();
      this.fastHits?.closeIdle();
    };
    closeIdle();
    const sweep = setInterval(closeIdle, 50);
    const timer = setTimeout(() => {
      server.closeAllConnections();
      this.fastHits?.closeAll();
    }, timeoutMs);
    timer.unref();
    await closed;
    clearInterval(sweep);
    clearTimeout(timer);
    await Promise.race([Promise.all([this.artifacts.drain(), this.mutable.drain()]), new Promise((r) => setTimeout(r, Math.min(timeoutMs, 5000)).unref())]);
    await this.close();
  }

  /** Lets go of upstream pools, the checksum database and access files (an app that never listened, too). */
  async close(): Promise<void> {
    this.index.close();
    this.history.close();
    this.vulndb?.close();
    await this.served.stop().catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'could not write down which artifacts were served'));
    await Promise.all(this.routes.chains().map((c) => c.close()));
    await this.o.sumdb?.close();
    await this.o.access?.close();
    await this.o.coordination.close();
    await this.o.store.close?.();
  }
}
