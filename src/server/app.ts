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
import { MAX_VIA_HOPS, VIA_HEADER, type FetchContext } from '../sources/index.js';
import { ADMIN_PREFIX, AdminApi } from './admin.js';
import { Artifacts, type ArtifactEntry } from './artifacts.js';
import { Invalidations } from './invalidation.js';
import type { AccessLog } from './logging.js';
import type { Metrics } from './metrics.js';
import { MutableAnswers } from './mutable.js';
import { OfflineAnswers } from './offline.js';
import { parseRequest, type ParsedRequest } from './protocol.js';
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

export class ProxyApp {
  readonly artifacts: Artifacts;
  readonly mutable: MutableAnswers;
  readonly space: StorageSpace;
  /** Small immutable blobs with their headers, for the hot path. */
  readonly memory: MemoryCache<ArtifactEntry>;
  /** What this process served, written down now and then for garbage collection. */
  readonly served: ServedRecorder;
  private readonly prefix: string;
  private readonly routes: RouteTable;
  private writable: { ok: boolean; at: number; reason?: string } = { ok: false, at: 0 };
  private draining = false;
  private readonly addresses: ClientAddresses | null;
  private tlsServer: TlsServer | undefined;
  private readonly audit: AuditLog | null;
  private readonly apiPrefix: string;
  readonly admin: AdminApi;
  readonly invalidations: Invalidations;
  /** Set in offline mode: what would ask an upstream is computed from the cache instead. */
  private readonly offline: OfflineAnswers | null;

  constructor(private readonly o: AppOptions) {
    const c = o.config;
    this.prefix = c.pathPrefix;
    this.routes = o.routes;
    this.addresses = c.trustedProxies.length > 0 ? new ClientAddresses(c.trustedProxies) : null;
    this.audit = o.access?.audit.enabled ? o.access.audit : null;
    this.memory = new MemoryCache<ArtifactEntry>(c.cache.memory.maxBytes, c.cache.memory.maxItemBytes);
    this.space = new StorageSpace(o.store, c.cache.minFree, o.metrics, o.log);
    o.metrics.rememberedAnswers = () => o.coordination.answers.size;
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
    });
    this.offline = c.offline ? new OfflineAnswers({ store: o.store, policy: o.routes }) : null;
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
    this.apiPrefix = `${this.prefix}${ADMIN_PREFIX}`;
    this.admin = new AdminApi({ access: o.access ?? null, invalidations: this.invalidations, purge: (mod, v) => this.artifacts.purge(mod, v), log: o.log });
  }

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
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      sendError(ex, new ProxyError('method', `method ${req.method} is not allowed; a Go module proxy answers GET and HEAD`), this.o.log);
      return;
    }
    let p: ModuleRequest;
    let route: Route;
    let gate: GateResult;
    try {
      const parsed = parseRequest(req.url ?? '/', this.prefix);
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
        const offline = this.offline;
        this.miss(ex, (ctx) => (offline ? offline.serve(ex, r) : this.mutable.serve(ex, r, ctx)));
        return;
      }
      case 'list':
      case 'latest': {
        const r = { kind: p.kind, mod: p.mod, route };
        const offline = this.offline;
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
    if (anonymousOk && !access.rateLimiter.enabled && !access.fetchLimiter.enabled && !access.audit.enabled && !creds.authorization && !creds.peerCertificate) {
      return true;
    }
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

  /** Starts serving (HTTPS when a certificate is configured); resolves with the bound server. */
  listen(host: string, port: number): Promise<Server> {
    const base = { keepAlive: true, noDelay: true, requestTimeout: 0 };
    let server: Server;
    if (this.o.config.tls) {
      this.tlsServer = createTlsServer({ ...base, ...this.tlsOptions() }, this.handle);
      server = this.tlsServer;
    } else {
      server = createServer(base, this.handle);
    }
    // Longer than common load balancers' idle timeouts, so they close first and never hit a closed socket.
    server.keepAliveTimeout = 65_000;
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
    server.closeIdleConnections();
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
    timer.unref();
    await closed;
    clearInterval(sweep);
    clearTimeout(timer);
    await Promise.race([Promise.all([this.artifacts.drain(), this.mutable.drain()]), new Promise((r) => setTimeout(r, Math.min(timeoutMs, 5000)).unref())]);
    await this.close();
  }

  /** Lets go of upstream pools, the checksum database and access files (an app that never listened, too). */
  async close(): Promise<void> {
    await this.served.stop().catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'could not write down which artifacts were served'));
    await Promise.all(this.routes.chains().map((c) => c.close()));
    await this.o.sumdb?.close();
    await this.o.access?.close();
    await this.o.coordination.close();
    await this.o.store.close?.();
  }
}
