// The web UI under /-/ui/: server-rendered pages over the module index, the stats, the history
// of the proxy's figures and the audit log, with the same access rules as the modules (a user
// sees only the modules they may read; operator pages need auth.admin). Actions go through the
// admin API's own endpoints, after a confirmation page, with a CSRF token. Never on the hot
// path: only requests under /-/ui/ (and a browser's GET /) come here.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import { allows, credentialsOf, decide, type Access, type Principal } from '../access/index.js';
import type { BlobStore } from '../cache/blobstore.js';
import { STATE_PREFIX, artifactKey } from '../cache/keys.js';
import type { Dependents, IndexTotals, ModuleIndex } from '../catalog/index.js';
import { ProxyError } from '../errors.js';
import { escapeVersion, isRetracted, parseGoMod, retractionRationales, type GoModFile } from '../module/index.js';
import type { AdminApi } from './admin.js';
import { moduleOf } from './admin.js';
import { upstreams } from './admin-modules.js';
import { DAY_MS, HOUR_MS, type History } from './history.js';
import type { RouteTable } from './routes.js';
import type { SumdbService } from './sumdb.js';
import { sendBody, type Exchange } from './respond.js';
import { ASSETS } from '../ui/assets.js';
import type { Html } from '../ui/html.js';
import {
  auditPage,
  confirmPage,
  formatBytes,
  formatRatio,
  homePage,
  messagePage,
  modulePage,
  opsPage,
  resultPage,
  searchPage,
  searchResults,
  type AuditRow,
  type ConfirmView,
  type PageContext,
} from '../ui/pages.js';

export const UI_PREFIX = '/-/ui/';
const HTML_TYPE = 'text/html; charset=utf-8';
const MAX_FORM_BYTES = 16 << 10;
const AUDIT_TAIL_BYTES = 4 << 20;
const PAGE = 50;
const CSRF_BUCKET_MS = HOUR_MS;
const CSRF_BUCKETS = 12;
const HIT_FIGURES_MS = 5_000;

/**
 * Scripts and styles only from here, nothing framed, forms only to here: a module path or go.mod
 * that slipped past escaping still could not run or load anything.
 */
const SECURITY_HEADERS = [
  'Content-Security-Policy',
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options',
  'nosniff',
  'Referrer-Policy',
  'same-origin',
  'X-Frame-Options',
  'DENY',
];

export interface UiDeps {
  /** The path prefix of the server ("" or "/proxy"). */
  pathPrefix: string;
  access: Access | null;
  routes: RouteTable;
  index: ModuleIndex;
  dependents: Dependents;
  store: BlobStore;
  history: History;
  admin: AdminApi;
  sumdb: SumdbService | null;
  offline: boolean;
  tls: boolean;
  /** The audit log's file, when it is on and written to a file. */
  audit: { enabled: boolean; file: string | null };
  /** Parts of the stats other concerns add (sync, gc). */
  statusParts: ReadonlyMap<string, () => unknown>;
  hitsAndMisses(): Promise<{ hits: number; misses: number }>;
  log: Logger;
}

interface Viewer {
  principal: Principal;
  isAdmin: boolean;
  ctx: PageContext;
}

export class WebUi {
  readonly root: string;
  private secret: Promise<Buffer> | null = null;
  private dependentsAsked = false;
  private hitFigures: { at: number; p: Promise<{ hits: number; misses: number }> } | null = null;

  constructor(private readonly d: UiDeps) {
    this.root = `${d.pathPrefix}${UI_PREFIX}`;
  }

  /** `rest` is what follows /-/ui/, query string included. */
  async handle(ex: Exchange, rest: string): Promise<void> {
    ex.kind = 'ui';
    const q = rest.indexOf('?');
    const path = q < 0 ? rest : rest.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
    const method = ex.req.method ?? 'GET';
    // Who depends on what is read from every cached go.mod: begun by the first visit, so that it
    // is usually done by the time someone opens a module page.
    if (!this.dependentsAsked) {
      this.dependentsAsked = true;
      this.d.dependents.ready().catch((err: unknown) => {
        this.dependentsAsked = false;
        this.d.log.warn({ err: (err as Error).message }, 'reading the cached go.mod files for the dependents failed; retried at the next page');
      });
    }
    try {
      if (path.startsWith('assets/')) return this.asset(ex, path.slice('assets/'.length));
      if (method === 'POST' && path === 'admin/actions') return await this.action(ex);
      if (method !== 'GET' && method !== 'HEAD') throw new ProxyError('method', `method ${method} is not allowed on this page`);
      const viewer = await this.viewer(ex, path.startsWith('admin'));
      if (path === '') return this.page(ex, await this.home(ex, viewer));
      if (path === 'signin') return this.signin(ex, viewer);
      if (path === 'stats.json') return this.statsJson(ex, viewer);
      if (path === 'search' || path === 'search/results') return await this.search(ex, viewer, query, path === 'search/results');
      if (path.startsWith('modules/')) return this.page(ex, await this.module(ex, viewer, decode(path.slice('modules/'.length))));
      if (path === 'admin') return this.page(ex, await this.ops(viewer, query));
      if (path === 'admin/audit') return this.page(ex, await this.auditLog(viewer, query));
      if (path === 'admin/confirm') return this.page(ex, await this.confirm(viewer, query));
      throw new ProxyError('not-found', 'no such page');
    } catch (err) {
      this.failed(ex, err);
    }
  }

  /** A browser asking for the server's root gets the UI; the go command never asks for it. */
  static wantsPage(accept: string | undefined): boolean {
    return accept !== undefined && accept.includes('text/html');
  }

  // ---- pages ----

  private async home(ex: Exchange, v: Viewer): Promise<Html> {
    await this.d.index.ready();
    const totals = this.totalsFor(v.principal);
    const { hits, misses } = await this.hitsAndMisses();
    const host = ex.req.headers.host ?? 'localhost';
    const visible = this.visibleTo(v.principal);
    // Only the private patterns this user may read: the others' names are nobody else's business.
    const privatePatterns = this.d.routes
      .privateRoutes()
      .filter((r) => !this.d.access || allows(r.read, v.principal))
      .flatMap((r) => r.patterns);
    const recent = this.d.index.recent(10, visible).map((m) => ({ path: m.path, version: m.latest ?? '', storedAt: new Date(m.storedMs).toISOString() }));
    return homePage(v.ctx, {
      proxyUrl: `${this.d.tls ? 'https' : 'http'}://${host}${this.d.pathPrefix}`,
      privatePatterns: privatePatterns.join(','),
      authOn: this.d.access !== null && this.d.routes.restricted,
      host,
      modules: totals.modules,
      versions: totals.versions,
      bytes: totals.bytes,
      hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
      upstreams: upstreams(this.d.routes),
      sumdb: this.d.sumdb?.name ?? null,
      offline: this.d.offline,
      jobs: jobsOf(await this.part('sync')).map((j) => ({ name: j.name, state: j.result, detail: j.lastRun === '–' ? '' : `last run ${j.lastRun}` })),
      recent,
    });
  }

  private async search(ex: Exchange, v: Viewer, query: URLSearchParams, fragment: boolean): Promise<void> {
    await this.d.index.ready();
    const q = (query.get('q') ?? '').slice(0, 300);
    const offset = Math.max(0, Math.min(Number.parseInt(query.get('offset') ?? '0', 10) || 0, 10_000_000));
    const found = this.d.index.search(q, { offset, limit: PAGE, visible: this.visibleTo(v.principal) });
    const view = { q, total: found.total, offset, limit: PAGE, modules: found.modules };
    this.page(ex, fragment ? searchResults(v.ctx, view) : searchPage(v.ctx, view));
  }

  private async module(ex: Exchange, v: Viewer, raw: string): Promise<Html> {
    await this.d.index.ready();
    const mod = moduleOf(raw.replace(/\/+$/, ''));
    ex.module = mod.path;
    const summary = this.d.index.summary(mod.path);
    // Hidden and absent read the same, so the page tells nobody that a private module exists.
    if (!summary || !this.visibleTo(v.principal)(mod.path)) throw new ProxyError('not-found', `${mod.path} is not in this proxy's cache`);
    const versions = await this.d.index.details(mod.path);
    const latest = summary.latest;
    let goMod: { version: string; text: string; file: GoModFile } | null = null;
    if (latest) {
      const got = await this.d.store.getBuffer(artifactKey(mod.escaped, escapeVersion(latest), 'mod'), 16 << 20).catch(() => null);
      if (got) {
        const text = got.data.toString('utf8');
        try {
          goMod = { version: latest, text, file: parseGoMod(got.data, `${mod.path}@${latest}/go.mod`) };
        } catch {
          goMod = { version: latest, text, file: { godebug: [], require: [], exclude: [], replace: [], retract: [], tool: [], ignore: [] } };
        }
      }
    }
    const retracts = goMod?.file.retract ?? [];
    const route = this.d.routes.routeFor(mod.path);
    const visible = this.visibleTo(v.principal);
    return modulePage(v.ctx, {
      path: mod.path,
      latest,
      verification: route.private ? 'private' : route.sumdb && this.d.sumdb?.checks(mod.path) ? `checksum-database:${this.d.sumdb.name}` : 'unverified',
      deprecated: goMod?.file.module?.deprecated ?? null,
      versions: versions.map((x) => ({
        version: x.version,
        time: x.time ?? null,
        storedAt: x.storedMs > 0 ? new Date(x.storedMs).toISOString() : null,
        bytes: (x.info ?? 0) + (x.mod ?? 0) + (x.zip ?? 0),
        hasZip: x.zip !== undefined,
        source: x.origin?.source ?? null,
        retracted: isRetracted(x.version, retracts) ? retractionRationales(x.version, retracts) : null,
      })),
      goMod: goMod
        ? {
            version: goMod.version,
            text: goMod.text,
            requires: goMod.file.require.map((r) => ({ ...r, cached: this.d.index.module(r.path) !== undefined && visible(r.path) })),
          }
        : null,
      dependents: this.d.dependents.of(mod.path)?.filter((x) => visible(x.path)) ?? null,
      csrf: v.isAdmin ? await this.csrfToken(v.principal) : null,
    });
  }

  private async ops(v: Viewer, query: URLSearchParams): Promise<Html> {
    this.requireAdmin(v);
    const window = query.get('window') === 'day' ? 'day' : 'hour';
    const points = this.d.history.points(window);
    const ids = new Set<string>();
    for (const p of points) for (const id of Object.keys(p.upstreams)) ids.add(id);
    const gc = (await this.part('gc')) as GcView | undefined;
    return opsPage(v.ctx, {
      window,
      spanMs: window === 'day' ? DAY_MS : HOUR_MS,
      rps: points.map((p) => ({ t: p.t, v: p.rps })),
      hitRatio: points.map((p) => ({ t: p.t, v: p.hitRatio })),
      storeBytes: points.map((p) => ({ t: p.t, v: p.storeBytes })),
      upstreamMs: [...ids].map((id) => ({ id, points: points.map((p) => ({ t: p.t, v: p.upstreams[id]?.ms ?? null })) })),
      upstreams: upstreams(this.d.routes),
      gcLimit: gc?.maxBytes ?? null,
      gc: gc ? gcLine(gc) : null,
      sumdb: this.d.sumdb ? `${this.d.sumdb.name}: public modules are checked against it before they are stored` : null,
      jobs: jobsOf(await this.part('sync')),
    });
  }

  private async auditLog(v: Viewer, query: URLSearchParams): Promise<Html> {
    this.requireAdmin(v);
    const user = (query.get('user') ?? '').slice(0, 200);
    const module = (query.get('module') ?? '').slice(0, 300);
    const result = ['allowed', 'denied', 'error'].includes(query.get('result') ?? '') ? (query.get('result') as string) : '';
    const rows: AuditRow[] = [];
    let scanned = 0;
    if (this.d.audit.enabled && this.d.audit.file) {
      const lines = await tail(this.d.audit.file, AUDIT_TAIL_BYTES);
      for (let i = lines.length - 1; i >= 0 && rows.length < 500; i--) {
        let r: Record<string, unknown>;
        try {
          r = JSON.parse(lines[i] as string) as Record<string, unknown>;
        } catch {
          continue;
        }
        scanned++;
        const row: AuditRow = {
          time: str(r.time),
          user: str(r.user),
          kind: str(r.kind),
          module: str(r.module),
          version: str(r.version),
          status: typeof r.status === 'number' ? r.status : 0,
          allowed: r.allowed === true,
          reason: str(r.reason),
        };
        if (user && row.user !== user) continue;
        if (module && !row.module.includes(module)) continue;
        if (result === 'allowed' && !(row.allowed && row.status < 400)) continue;
        if (result === 'denied' && row.allowed) continue;
        if (result === 'error' && !(row.allowed && row.status >= 400)) continue;
        rows.push(row);
      }
    }
    return auditPage(v.ctx, { enabled: this.d.audit.enabled, file: this.d.audit.file, user, module, result, rows, scanned });
  }

  private async confirm(v: Viewer, query: URLSearchParams): Promise<Html> {
    this.requireAdmin(v);
    const action = query.get('action');
    if (action !== 'purge' && action !== 'invalidate' && action !== 'pin' && action !== 'prefetch') throw new ProxyError('bad-request', 'unknown action');
    const mod = moduleOf(query.get('module') ?? '');
    const version = action === 'purge' ? (query.get('version') ?? '') : null;
    if (action === 'purge' && !version) throw new ProxyError('bad-request', 'which version? add version=');
    return confirmPage(v.ctx, { action, module: mod.path, version, csrf: await this.csrfToken(v.principal) });
  }

  /** A confirmed action: CSRF-checked, then the admin API's own endpoint does it (and the access log records it). */
  private async action(ex: Exchange): Promise<void> {
    ex.kind = 'admin';
    const v = await this.viewer(ex, true);
    this.requireAdmin(v);
    this.checkSameOrigin(ex);
    const form = await readForm(ex);
    if (!(await this.csrfValid(v.principal, form.get('csrf') ?? ''))) {
      throw new ProxyError('forbidden', 'the form expired or did not come from this site; go back, reload the page and try again');
    }
    const action = form.get('action') as ConfirmView['action'];
    const mod = moduleOf(form.get('module') ?? '');
    const version = form.get('version') ?? '';
    let call: { method: 'POST' | 'DELETE'; path: string; body: Record<string, unknown> };
    switch (action) {
      case 'purge':
        call = { method: 'DELETE', path: `modules/${mod.path}/@v/${version}`, body: {} };
        break;
      case 'invalidate':
        call = { method: 'POST', path: 'invalidate', body: { pattern: mod.path } };
        break;
      case 'pin':
        call = { method: 'POST', path: 'pins', body: { pattern: mod.path, note: `pinned from the web UI by ${v.principal.name}` } };
        break;
      case 'prefetch':
        call = { method: 'POST', path: 'prefetch', body: { modules: [`${mod.path}@latest`] } };
        break;
      default:
        throw new ProxyError('bad-request', 'unknown action');
    }
    const out = await this.d.admin.invoke(ex, call.method, call.path, call.body);
    const ok = out.status < 400;
    const error = (out.value as { error?: unknown } | null)?.error;
    const message = ok ? done(action, mod.path, version, out.value) : typeof error === 'string' ? error : `the admin API answered ${out.status}`;
    this.d.log.info({ action, module: mod.path, version: version || undefined, user: v.principal.name, status: out.status }, 'web UI action');
    this.page(ex, resultPage(v.ctx, { title: ok ? 'Done' : 'Not done', ok, message, back: `${this.root}modules/${mod.path}` }), ok ? 200 : out.status);
  }

  private statsJson(ex: Exchange, v: Viewer): void {
    const t = this.totalsFor(v.principal);
    this.hitsAndMisses().then(
      ({ hits, misses }) => {
        const body = JSON.stringify({
          modules: String(t.modules),
          versions: String(t.versions),
          bytes: formatBytes(t.bytes),
          hitRatio: formatRatio(hits + misses > 0 ? hits / (hits + misses) : null),
        });
        sendBody(ex, 200, ['Content-Type', 'application/json; charset=utf-8', 'Cache-Control', 'no-store', ...SECURITY_HEADERS], Buffer.from(body));
      },
      (err: unknown) => this.failed(ex, err),
    );
  }

  private signin(ex: Exchange, v: Viewer): void {
    if (v.principal.method !== 'anonymous' || !this.d.access) {
      ex.res.writeHead(303, ['Location', this.root, 'Cache-Control', 'no-store']);
      ex.res.end();
      ex.finish(303, 0);
      return;
    }
    const body = Buffer.from(messagePage(v.ctx, 'Sign in', 'Sign in with your user name and password or API token (as the password).').text);
    const challenge = this.d.access.authenticator.challenge || 'Basic realm="gomodproxy"';
    sendBody(ex, 401, ['Content-Type', HTML_TYPE, 'Cache-Control', 'no-store', 'WWW-Authenticate', challenge, ...SECURITY_HEADERS], body);
  }

  private asset(ex: Exchange, name: string): void {
    const a = ASSETS.get(name);
    if (!a) throw new ProxyError('not-found', 'no such file');
    sendBody(ex, 200, ['Content-Type', a.type, 'Cache-Control', 'public, max-age=31536000, immutable', 'X-Content-Type-Options', 'nosniff'], a.body);
  }

  // ---- who is asking ----

  private async viewer(ex: Exchange, forAdmin: boolean): Promise<Viewer> {
    const access = this.d.access;
    let principal: Principal = { name: 'anonymous', groups: [], scopes: [], method: 'anonymous' };
    let isAdmin = false;
    if (access) {
      const d = await decide(access, credentialsOf(ex.req, ex.clientIp ?? ex.req.socket.remoteAddress), access.adminRules, { subject: '/-/ui' });
      if (!d.allowed && d.status === 429) throw new ProxyError('rate-limited', d.message, { headers: d.headers });
      // A failed sign-in browses as anonymous; an operator page then asks to sign in again.
      if (d.allowed || d.status !== 401 || d.principal.method !== 'anonymous') principal = d.principal;
      isAdmin = d.allowed;
      if (principal.method !== 'anonymous') {
        ex.user = principal.name;
        ex.authMethod = principal.method;
      }
      if (forAdmin && !d.allowed) {
        ex.deniedReason = d.reason;
        throw new ProxyError(d.status === 401 ? 'unauthorized' : 'forbidden', d.status === 401 ? 'sign in as an administrator to see this page' : d.message, {
          headers: d.status === 401 ? d.headers : {},
        });
      }
    } else if (forAdmin) {
      throw new ProxyError('unauthorized', 'operator pages need a signed-in administrator, and this server has no sign-in method configured (auth)');
    }
    const ctx: PageContext = {
      root: this.root,
      user: principal.method === 'anonymous' ? null : principal.name,
      isAdmin,
      canSignIn: access !== null && access.authenticator.methods.length > 0,
    };
    return { principal, isAdmin, ctx };
  }

  private requireAdmin(v: Viewer): void {
    if (!v.isAdmin) throw new ProxyError('forbidden', 'this page is for administrators');
  }

  private visibleTo(p: Principal): (path: string) => boolean {
    if (!this.d.access) return () => true;
    return (path) => allows(this.d.routes.routeFor(path).read, p);
  }

  /** The totals of what this user may read: counting modules they may not would tell of them. */
  private totalsFor(p: Principal): IndexTotals {
    return this.d.access && this.d.routes.restricted ? this.d.index.totals(this.visibleTo(p)) : this.d.index.totals();
  }

  /**
   * The cache's hits and misses, asked for at most once per HIT_FIGURES_MS whoever is looking:
   * with workers they are gathered from every process, and open home pages poll them.
   */
  private hitsAndMisses(): Promise<{ hits: number; misses: number }> {
    const now = Date.now();
    if (!this.hitFigures || now - this.hitFigures.at > HIT_FIGURES_MS) {
      const p = this.d.hitsAndMisses();
      this.hitFigures = { at: now, p };
      // A failure is not kept: the next page asks again.
      p.catch(() => {
        if (this.hitFigures?.p === p) this.hitFigures = null;
      });
    }
    return this.hitFigures.p;
  }

  private async part(name: string): Promise<unknown> {
    return this.d.statusParts.get(name)?.();
  }

  // ---- CSRF: an HMAC of the user and the hour, with a secret shared by every instance ----

  private async key(): Promise<Buffer> {
    this.secret ??= (async () => {
      const k = `${STATE_PREFIX}ui-secret`;
      const got = await this.d.store.getBuffer(k, 1024);
      if (got && got.data.length >= 32) return got.data;
      await this.d.store.put(k, randomBytes(32));
      // Two instances creating it at once: both take whichever landed.
      return (await this.d.store.getBuffer(k, 1024))?.data ?? randomBytes(32);
    })();
    return this.secret;
  }

  private tokenFor(key: Buffer, p: Principal, bucket: number): string {
    return createHmac('sha256', key).update(`${p.method}\n${p.name}\n${bucket}`).digest('base64url');
  }

  private async csrfToken(p: Principal): Promise<string> {
    return this.tokenFor(await this.key(), p, Math.floor(Date.now() / CSRF_BUCKET_MS));
  }

  private async csrfValid(p: Principal, token: string): Promise<boolean> {
    const key = await this.key();
    const now = Math.floor(Date.now() / CSRF_BUCKET_MS);
    const given = Buffer.from(token);
    for (let b = now; b > now - CSRF_BUCKETS; b--) {
      const want = Buffer.from(this.tokenFor(key, p, b));
      if (want.length === given.length && timingSafeEqual(want, given)) return true;
    }
    return false;
  }

  /** Browsers say where a form came from; one from another site is refused whatever its token. */
  private checkSameOrigin(ex: Exchange): void {
    const site = ex.req.headers['sec-fetch-site'];
    if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') throw new ProxyError('forbidden', 'this form must be sent from this site');
    const origin = ex.req.headers.origin;
    if (typeof origin === 'string' && origin !== 'null') {
      let host: string;
      try {
        host = new URL(origin).host;
      } catch {
        throw new ProxyError('forbidden', 'this form must be sent from this site');
      }
      if (host !== ex.req.headers.host) throw new ProxyError('forbidden', 'this form must be sent from this site');
    }
  }

  // ---- answering ----

  private page(ex: Exchange, page: Html, status = 200): void {
    sendBody(ex, status, ['Content-Type', HTML_TYPE, 'Cache-Control', 'no-store', ...SECURITY_HEADERS], Buffer.from(page.text));
  }

  private failed(ex: Exchange, err: unknown): void {
    const pe = err instanceof ProxyError ? err : new ProxyError('internal', 'the page failed; retry, and tell the operator if it persists');
    if (!(err instanceof ProxyError)) this.d.log.error({ err, path: ex.req.url }, 'web UI page failed');
    ex.errorLine = pe.message;
    if (ex.res.headersSent) {
      ex.res.destroy();
      return;
    }
    const ctx: PageContext = { root: this.root, user: ex.user ?? null, isAdmin: false, canSignIn: this.d.access !== null };
    const title = pe.status === 404 ? 'Not found' : pe.status === 401 ? 'Sign in' : pe.status === 403 ? 'Not allowed' : 'Something went wrong';
    const headers = ['Content-Type', HTML_TYPE, 'Cache-Control', 'no-store', ...SECURITY_HEADERS];
    for (const [k, v] of Object.entries(pe.headers ?? {})) headers.push(k, v);
    sendBody(ex, pe.status, headers, Buffer.from(messagePage(ctx, title, pe.message).text));
  }
}

function done(action: string, module: string, version: string, value: unknown): string {
  switch (action) {
    case 'purge':
      return `${module}@${version} was purged from the store and from every instance's memory.`;
    case 'invalidate':
      return `The cached list and @latest of ${module} were dropped everywhere.`;
    case 'pin':
      return `${module} is pinned: garbage collection keeps every version of it.`;
    default: {
      const url = (value as { url?: unknown } | null)?.url;
      return `Prefetching ${module}@latest as a job${typeof url === 'string' ? ` (${url})` : ''}.`;
    }
  }
}

interface JobRow {
  name: string;
  schedule: string;
  lastRun: string;
  result: string;
  next: string;
}

/** The sync jobs' status, in whatever shape the scheduler reports it, as table rows. */
function jobsOf(status: unknown): JobRow[] {
  const list = Array.isArray(status) ? status : Array.isArray((status as { jobs?: unknown } | null)?.jobs) ? (status as { jobs: unknown[] }).jobs : [];
  return list.map((j) => {
    const r = (j ?? {}) as Record<string, unknown>;
    const last = (r.lastRun ?? {}) as Record<string, unknown>;
    return {
      name: str(r.name),
      schedule: str(r.schedule),
      lastRun: str(last.started) || '–',
      result:
        r.running === true
          ? 'running'
          : last.result
            ? `${str(last.result)}: ${str(last.versionsAdded)} added, ${str(last.failures)} failed`
            : str(r.disabled) || 'not run yet',
      next: str(r.nextRun) || '–',
    };
  });
}

/** What the server's gc status part says (see gcSummary in index.ts). */
interface GcView {
  maxBytes: number | null;
  maxAgeMs: number | null;
  schedule: { cron: string } | null;
  lastRun: { finishedAt: string; freedBytes: number; bytesAfter: number; underLimit: boolean } | null;
}

function gcLine(g: GcView): string {
  if (g.maxBytes === null && g.maxAgeMs === null) return 'no limit set (gc.maxBytes, gc.maxAge)';
  const limits = [
    g.maxBytes !== null ? `at most ${formatBytes(g.maxBytes)}` : '',
    g.maxAgeMs !== null ? `evicted after ${Math.round(g.maxAgeMs / 86_400_000)} days unserved` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const when = g.schedule ? `, on schedule ${g.schedule.cron}` : ', only when gomodproxy gc runs';
  const last = g.lastRun
    ? `; last run ${g.lastRun.finishedAt}: freed ${formatBytes(g.lastRun.freedBytes)}, ${formatBytes(g.lastRun.bytesAfter)} left${g.lastRun.underLimit ? '' : ' (still over the limit)'}`
    : '; not run yet';
  return `Module data ${limits}${when}${last}.`;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ProxyError('bad-request', 'malformed percent-encoding in the address');
  }
}

async function readForm(ex: Exchange): Promise<URLSearchParams> {
  const type = ex.req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) throw new ProxyError('bad-request', 'send the form as application/x-www-form-urlencoded');
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of ex.req) {
    n += (c as Buffer).length;
    if (n > MAX_FORM_BYTES) throw new ProxyError('bad-request', 'the form is too large');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The whole lines in the last `bytes` of a file. */
async function tail(file: string, bytes: number): Promise<string[]> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return [];
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const lines = buf.toString('utf8').split('\n');
    if (start > 0) lines.shift();
    return lines.filter((l) => l !== '');
  } finally {
    await fh.close();
  }
}
