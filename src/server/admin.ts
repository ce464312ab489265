// The admin API under /-/api/ (a path no module can have): JSON in and out, for operators and
// their scripts. Every call is authenticated against auth.admin, audited, and refused with a
// JSON error otherwise. Nothing here is on the hot path.
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

export interface AdminDeps {
  access: Access | null;
  invalidations: Invalidations;
  /** Removes a version from the store; resolves with the keys that were there. */
  purge(mod: ModuleRef, version: string): Promise<string[]>;
  log: Logger;
}

export class AdminApi {
  constructor(private readonly d: AdminDeps) {}

  /** `path` is what follows /-/api/. */
  async handle(ex: Exchange, path: string): Promise<void> {
    ex.kind = 'admin';
    try {
      await this.authorize(ex);
      const method = ex.req.method ?? 'GET';
      if (path === 'invalidate') {
        if (method !== 'POST')
          throw new ProxyError('method', 'use POST /-/api/invalidate with {"pattern": "example.com/m", "version": "v1.2.3"} (version optional)');
        const body = await readJson(ex);
        const target = typeof body.pattern === 'string' ? body.pattern : typeof body.module === 'string' ? body.module : undefined;
        if (target === undefined) throw new ProxyError('bad-request', 'the body must be JSON with "pattern": a module path or GOPRIVATE-style glob');
        const what = parseInvalidation(typeof body.version === 'string' ? `${target}@${body.version}` : target);
        ex.module = what.pattern;
        ex.version = what.version;
        const { stored } = await this.d.invalidations.invalidate(what);
        sendJson(ex, 200, { invalidated: what, storedAnswersDropped: stored });
        return;
      }
      const purge = /^modules\/(.+)\/@v\/([^/]+)$/.exec(path);
      if (purge) {
        if (method !== 'DELETE') throw new ProxyError('method', 'use DELETE /-/api/modules/<module>/@v/<version> to purge a version');
        const mod = moduleOf(decodeURIComponent(purge[1] as string));
        const version = decodeURIComponent(purge[2] as string);
        if (!isCanonical(version)) throw new ProxyError('bad-request', `invalid version ${JSON.stringify(version)}: give a canonical version such as v1.2.3`);
        ex.module = mod.path;
        ex.version = version;
        const deleted = await this.d.purge(mod, version);
        // Every instance's memory and every mutable answer of the module (its list names the version).
        await this.d.invalidations.invalidate({ pattern: mod.path, version });
        if (deleted.length === 0) throw new ProxyError('not-found', `${mod.path}@${version} is not in the cache; nothing was purged`);
        this.d.log.warn({ module: mod.path, version, deleted, user: ex.user }, 'purged a version');
        sendJson(ex, 200, { purged: { module: mod.path, version }, deleted });
        return;
      }
      throw new ProxyError('not-found', `no admin API at /-/api/${path}; see the README's admin API section`);
    } catch (err) {
      const pe = err instanceof ProxyError ? err : new ProxyError('internal', `admin API failed: ${errorMessage(err)}`, { cause: err });
      if (!(err instanceof ProxyError)) this.d.log.error({ err }, 'admin API failed');
      ex.errorLine = pe.message;
      for (const [k, v] of Object.entries(pe.headers ?? {})) ex.res.setHeader(k, v);
      sendJson(ex, pe.status, { error: pe.message });
    }
  }

  private async authorize(ex: Exchange): Promise<void> {
    const access = this.d.access;
    if (!access) {
      throw new ProxyError(
        'unauthorized',
        'the admin API needs a signed-in administrator, and this server has no sign-in method configured (auth); configure tokens or htpasswd and auth.admin',
        {
          headers: { 'WWW-Authenticate': 'Bearer realm="gomodproxy"' },
        },
      );
    }
    const d: AccessDecision = await decide(access, credentialsOf(ex.req, ex.clientIp ?? ex.req.socket.remoteAddress), access.adminRules, { subject: '/-/api' });
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

/** A module path as written or case-encoded (with "!"), checked as the go command checks it. */
function moduleOf(p: string): ModuleRef {
  try {
    const path = p.includes('!') ? unescapePath(p) : p;
    checkPath(path);
    return { path, escaped: escapePath(path) };
  } catch (err) {
    if (err instanceof ModuleError) throw new ProxyError('bad-request', `invalid module path ${JSON.stringify(p)}: ${err.message}`);
    throw err;
  }
}

function sendJson(ex: Exchange, status: number, value: unknown): void {
  sendBody(ex, status, ['Content-Type', JSON_TYPE, 'Cache-Control', 'no-store'], Buffer.from(`${JSON.stringify(value)}\n`));
}

async function readJson(ex: Exchange): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of ex.req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY_BYTES) throw new ProxyError('bad-request', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
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
