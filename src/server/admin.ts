// The admin API under /-/api/ (a path no module can have): JSON in and out, for operators and
// their scripts. Every call is authenticated against auth.admin, audited (the access log and
// audit log see it as kind "admin"), and refused with a JSON error otherwise. Nothing here is
// on the hot path. Each concern adds its endpoints (admin-*.ts); this file only routes them.
import type { Logger } from 'pino';
import { credentialsOf, decide, type Access, type AccessDecision } from '../access/index.js';
import { ProxyError, errorMessage } from '../errors.js';
import { ModuleError, checkPath, escapePath, isCanonical, unescapePath, type ModuleRef } from '../module/index.js';
import type { Invalidations } from './invalidation.js';
import { parseInvalidation } from './invalidation.js';
import { sendBody, type Exchange } from './respond.js';

export const ADMIN_PREFIX = '/-/api/';
const MAX_BODY_BYTES = 64 << 10;
const JSON_TYPE = 'application/json; charset=utf-8';

/** One call of an endpoint: its match, the query string, and the JSON body on demand. */
export interface AdminCall {
  ex: Exchange;
  method: string;
  /** The groups of the endpoint's path pattern, URI-decoded. */
  params: string[];
  query: URLSearchParams;
  /** The JSON object the request carries; refused when larger than maxBytes (default 64 KiB). */
  body(maxBytes?: number): Promise<Record<string, unknown>>;
}

export interface AdminEndpoint {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Matched against what follows /-/api/ (no query string). */
  path: RegExp;
  /** For the 405 line: how to call it. */
  usage: string;
  /**
   * Whose rules the caller must pass: auth.admin (default), or auth.publish for uploads, which CI
   * does with a token that may publish and nothing else. Also the kind the logs give the call.
   */
  role?: 'admin' | 'publish';
  /** What the call is about, named in the access and audit lines even when it is refused. */
  subject?(params: string[]): { module?: string; version?: string };
  run(call: AdminCall): Promise<void>;
}

export interface AdminDeps {
  access: Access | null;
  invalidations: Invalidations;
  /** Removes a version from the store; resolves with the keys that were there. */
  purge(mod: ModuleRef, version: string): Promise<string[]>;
  log: Logger;
}

export class AdminApi {
  private readonly endpoints: AdminEndpoint[] = [];

  constructor(private readonly d: AdminDeps) {
    this.add(...this.builtins());
  }

  add(...endpoints: AdminEndpoint[]): void {
    this.endpoints.push(...endpoints);
  }

  /** `rest` is what follows /-/api/, query string included. */
  async handle(ex: Exchange, rest: string): Promise<void> {
    ex.kind = 'admin';
    try {
      const q = rest.indexOf('?');
      const path = q < 0 ? rest : rest.slice(0, q);
      const query = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
      const method = ex.req.method ?? 'GET';
      let wrongMethod: AdminEndpoint | undefined;
      for (const e of this.endpoints) {
        const m = e.path.exec(path);
        if (!m) continue;
        if (e.method !== method && !(method === 'HEAD' && e.method === 'GET')) {
          wrongMethod ??= e;
          continue;
        }
        const role = e.role ?? 'admin';
        ex.kind = role;
        const params = m.slice(1).map((s) => decode(s ?? ''));
        const about = e.subject?.(params);
        if (about) {
          ex.module = about.module;
          ex.version = about.version;
        }
        await this.authorize(ex, role);
        await e.run({ ex, method, params, query, body: (maxBytes = MAX_BODY_BYTES) => readJson(ex, maxBytes) });
        return;
      }
      // Only administrators learn which endpoints exist.
      await this.authorize(ex, 'admin');
      if (wrongMethod) throw new ProxyError('method', `method ${method} is not allowed here: ${wrongMethod.usage}`);
      throw new ProxyError('not-found', `no admin API at /-/api/${path}; see the README's admin API section`);
    } catch (err) {
      const pe = err instanceof ProxyError ? err : new ProxyError('internal', `admin API failed: ${errorMessage(err)}`, { cause: err });
      if (!(err instanceof ProxyError)) this.d.log.error({ err }, 'admin API failed');
      ex.errorLine = pe.message;
      for (const [k, v] of Object.entries(pe.headers ?? {})) ex.res.setHeader(k, v);
      sendJson(ex, pe.status, { error: pe.message });
    }
  }

  /**
   * Runs an endpoint for a caller that has already authorized the user (the web UI), and gives
   * back its JSON answer instead of sending it; the exchange keeps what the endpoint noted of the
   * call (module, version) for the access and audit logs.
   */
  async invoke(ex: Exchange, method: AdminEndpoint['method'], path: string, body: Record<string, unknown>): Promise<{ status: number; value: unknown }> {
    let out: { status: number; value: unknown } = { status: 500, value: { error: 'the admin API gave no answer' } };
    taken.set(ex, (status, value) => {
      out = { status, value };
    });
    try {
      const e = this.endpoints.find((x) => x.method === method && (x.role ?? 'admin') === 'admin' && x.path.test(path));
      if (!e) return { status: 404, value: { error: `no admin API for ${method} /-/api/${path} on this server` } };
      const m = e.path.exec(path) as RegExpExecArray;
      await e.run({ ex, method, params: m.slice(1).map((s) => s ?? ''), query: new URLSearchParams(), body: () => Promise.resolve(body) });
    } catch (err) {
      const pe = err instanceof ProxyError ? err : new ProxyError('internal', `admin API failed: ${errorMessage(err)}`, { cause: err });
      if (!(err instanceof ProxyError)) this.d.log.error({ err }, 'admin API failed');
      out = { status: pe.status, value: { error: pe.message } };
    } finally {
      taken.delete(ex);
    }
    return out;
  }

  private builtins(): AdminEndpoint[] {
    return [
      {
        method: 'POST',
        path: /^invalidate$/,
        usage: 'use POST /-/api/invalidate with {"pattern": "example.com/m", "version": "v1.2.3"} (version optional)',
        run: async ({ ex, body }) => {
          const b = await body();
          const target = typeof b.pattern === 'string' ? b.pattern : typeof b.module === 'string' ? b.module : undefined;
          if (target === undefined) throw new ProxyError('bad-request', 'the body must be JSON with "pattern": a module path or GOPRIVATE-style glob');
          const what = parseInvalidation(typeof b.version === 'string' ? `${target}@${b.version}` : target);
          ex.module = what.pattern;
          ex.version = what.version;
          const { stored } = await this.d.invalidations.invalidate(what);
          sendJson(ex, 200, { invalidated: what, storedAnswersDropped: stored });
        },
      },
      {
        method: 'DELETE',
        path: /^modules\/(.+)\/@v\/([^/]+)$/,
        usage: 'use DELETE /-/api/modules/<module>/@v/<version> to purge a version',
        run: async ({ ex, params }) => {
          const mod = moduleOf(params[0] as string);
          const version = versionOf(params[1] as string);
          ex.module = mod.path;
          ex.version = version;
          const deleted = await this.d.purge(mod, version);
          // Every instance's memory and every mutable answer of the module (its list names the version).
          await this.d.invalidations.invalidate({ pattern: mod.path, version });
          if (deleted.length === 0) throw new ProxyError('not-found', `${mod.path}@${version} is not in the cache; nothing was purged`);
          this.d.log.warn({ module: mod.path, version, deleted, user: ex.user }, 'purged a version');
          sendJson(ex, 200, { purged: { module: mod.path, version }, deleted });
        },
      },
    ];
  }

  private async authorize(ex: Exchange, role: 'admin' | 'publish'): Promise<void> {
    const access = this.d.access;
    if (!access) {
      const who = role === 'admin' ? 'a signed-in administrator' : 'a signed-in user with the publish role';
      throw new ProxyError(
        'unauthorized',
        `the ${role === 'admin' ? 'admin' : 'publish'} API needs ${who}, and this server has no sign-in method configured (auth); configure tokens or htpasswd and auth.${role}`,
        {
          headers: { 'WWW-Authenticate': 'Bearer realm="gomodproxy"' },
        },
      );
    }
    const rules = role === 'admin' ? access.adminRules : access.publishRules;
    const creds = credentialsOf(ex.req, ex.clientIp ?? ex.req.socket.remoteAddress);
    const d: AccessDecision = await decide(access, creds, rules, { subject: role === 'admin' ? '/-/api' : 'publish modules' });
    if (d.principal.method !== 'anonymous') {
      ex.user = d.principal.name;
      ex.authMethod = d.principal.method;
    }
    if (d.allowed) return;
    ex.deniedReason = d.reason;
    const kind = d.status === 401 ? 'unauthorized' : d.status === 429 ? 'rate-limited' : 'forbidden';
    throw new ProxyError(kind, d.message, { headers: d.headers });
  }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ProxyError('bad-request', `malformed percent-encoding in ${JSON.stringify(s)}`);
  }
}

/** A module path as written or case-encoded (with "!"), checked as the go command checks it. */
export function moduleOf(p: string): ModuleRef {
  try {
    const path = p.includes('!') ? unescapePath(p) : p;
    checkPath(path);
    return { path, escaped: escapePath(path) };
  } catch (err) {
    if (err instanceof ModuleError) throw new ProxyError('bad-request', `invalid module path ${JSON.stringify(p)}: ${err.message}`);
    throw err;
  }
}

export function versionOf(v: string): string {
  if (!isCanonical(v)) throw new ProxyError('bad-request', `invalid version ${JSON.stringify(v)}: give a canonical version such as v1.2.3`);
  return v;
}

/** Exchanges whose JSON answer a caller in this process takes instead of the client (the web UI's actions). */
const taken = new WeakMap<Exchange, (status: number, value: unknown) => void>();

export function sendJson(ex: Exchange, status: number, value: unknown): void {
  const take = taken.get(ex);
  if (take) {
    take(status, value);
    return;
  }
  sendBody(ex, status, ['Content-Type', JSON_TYPE, 'Cache-Control', 'no-store'], Buffer.from(`${JSON.stringify(value)}\n`));
}

/** A non-negative integer query parameter, or the default. */
export function intParam(query: URLSearchParams, name: string, def: number, max: number): number {
  const s = query.get(name);
  if (s === null || s === '') return def;
  if (!/^\d{1,9}$/.test(s)) throw new ProxyError('bad-request', `query parameter ${name} must be a non-negative integer, not ${JSON.stringify(s)}`);
  return Math.min(Number(s), max);
}

async function readJson(ex: Exchange, maxBytes: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of ex.req) {
    n += (c as Buffer).length;
    if (n > maxBytes) throw new ProxyError('bad-request', `the request body is larger than ${maxBytes} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ProxyError('bad-request', 'the request body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProxyError('bad-request', 'the request body must be a JSON object');
  return v as Record<string, unknown>;
}
