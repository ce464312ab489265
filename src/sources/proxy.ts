// One upstream GOPROXY reached over HTTP(S): keep-alive pools, per-upstream timeouts,
// credentials, corporate egress proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY, and error
// lines that tell the go user which upstream failed and how.
import type { Readable } from 'node:stream';
import { EnvHttpProxyAgent, interceptors, type Dispatcher } from 'undici';
import type { UpstreamSpec } from '../config/index.js';
import { ProxyError, oneLine } from '../errors.js';
import {
  MAX_GOMOD_BYTES,
  MAX_INFO_BYTES,
  MAX_LIST_BYTES,
  MAX_ZIP_BYTES,
  VIA_HEADER,
  type FetchContext,
  type ModuleRef,
  type ModuleSource,
  type VersionRef,
  type ZipBody,
  discard,
} from './types.js';

const USER_AGENT = 'gomodproxy/0.1 (+go module proxy)';

export class ProxySource implements ModuleSource {
  readonly id: string;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly dispatcher: Dispatcher;
  private readonly authorization: string | undefined;
  private readonly agent: EnvHttpProxyAgent;

  constructor(spec: UpstreamSpec) {
    this.id = spec.url;
    const base = new URL(spec.url);
    this.origin = base.origin;
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.agent = new EnvHttpProxyAgent({
      connect: { timeout: spec.timeouts.connect },
      headersTimeout: spec.timeouts.firstByte,
      bodyTimeout: spec.timeouts.idle,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
    });
    // Proxies that keep zips in object storage answer with redirects; the go command follows up to 10.
    this.dispatcher = this.agent.compose(interceptors.redirect({ maxRedirections: 10 }));
    if (spec.auth?.kind === 'basic') {
      this.authorization = `Basic ${Buffer.from(`${spec.auth.username}:${spec.auth.password}`).toString('base64')}`;
    } else if (spec.auth?.kind === 'bearer') {
      this.authorization = `Bearer ${spec.auth.token}`;
    }
  }

  list(mod: ModuleRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@v/list`, MAX_LIST_BYTES, ctx);
  }

  latest(mod: ModuleRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@latest`, MAX_INFO_BYTES, ctx);
  }

  info(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@v/${wire(v.escaped)}.info`, MAX_INFO_BYTES, ctx);
  }

  mod(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@v/${wire(v.escaped)}.mod`, MAX_GOMOD_BYTES, ctx);
  }

  async zip(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<ZipBody> {
    const what = `${wire(mod.escaped)}/@v/${wire(v.escaped)}.zip`;
    const res = await this.request(what, ctx);
    const len = res.headers['content-length'];
    const size = typeof len === 'string' && /^\d+$/.test(len) ? Number(len) : undefined;
    if (size !== undefined && size > MAX_ZIP_BYTES) {
      discard(res.body);
      throw new ProxyError('upstream', `upstream ${this.id} offers a ${size}-byte zip for ${mod.path}@${v.version}, over the go command's 500 MiB limit; the module cannot be used`, { upstreamStatus: 200 });
    }
    return { stream: res.body as Readable, size };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** GETs `<base>/<what>` whole (bounded). Also how the checksum database is reached through this proxy. */
  async fetchPath(what: string, max: number, ctx: FetchContext): Promise<Buffer> {
    const res = await this.request(what, ctx);
    const len = Number(res.headers['content-length'] ?? -1);
    if (len > max) {
      discard(res.body);
      // An answer about this file, not an outage: it must not rest the upstream for every module.
      throw new ProxyError('upstream', `upstream ${this.id} answered ${len} bytes for ${what}, over the ${max}-byte limit for this kind of file`, { upstreamStatus: 200 });
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > max) {
          discard(res.body);
          throw new ProxyError('upstream', `upstream ${this.id} sent more than ${max} bytes for ${what}, over the limit for this kind of file`, { upstreamStatus: 200 });
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      throw this.transportError(err, what);
    }
    return Buffer.concat(chunks, total);
  }

  private async request(what: string, ctx: FetchContext): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, [VIA_HEADER]: ctx.via };
    if (this.authorization) headers.authorization = this.authorization;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.dispatcher.request({
        origin: this.origin,
        path: `${this.basePath}/${what}`,
        method: 'GET',
        headers,
        signal: ctx.signal,
      });
    } catch (err) {
      throw this.transportError(err, what);
    }
    if (res.statusCode === 200) return res;
    const line = await errorLine(res);
    if (res.statusCode === 404 || res.statusCode === 410) {
      // Keep the upstream's own reason ("unknown revision v1.9.9"): it is what the go user needs to read.
      throw new ProxyError(res.statusCode === 404 ? 'not-found' : 'gone', line || `not found: ${what} (${this.id} answered ${res.statusCode})`, {
        upstreamStatus: res.statusCode,
      });
    }
    if (res.statusCode === 508) {
      throw new ProxyError('loop', `upstream ${this.id} reports a request loop: ${line || 'it is configured to use this gomodproxy as its upstream'}; fix the upstream settings`, {
        upstreamStatus: 508,
      });
    }
    const hint =
      res.statusCode === 401
        ? "; the upstream refused gomodproxy's credentials, ask its operator to check them"
        : res.statusCode === 403
          ? '; the upstream refuses to serve it'
          : res.statusCode === 429
          ? '; the upstream is rate-limiting gomodproxy, retry later'
          : '; retry later, or ask the gomodproxy operator to check this upstream';
    throw new ProxyError('upstream', `upstream ${this.id} answered ${res.statusCode} for ${what}${line ? `: ${line}` : ''}${hint}`, {
      upstreamStatus: res.statusCode,
    });
  }

  private transportError(err: unknown, what: string): ProxyError {
    if (err instanceof ProxyError) return err;
    const e = err as { code?: string; message?: string; name?: string };
    switch (e.code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new ProxyError('timeout', `upstream ${this.id} did not accept a connection in time (fetching ${what}); retry later, or ask the gomodproxy operator to check this upstream`, { cause: err });
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new ProxyError('timeout', `upstream ${this.id} did not answer in time (fetching ${what}); retry later, or ask the gomodproxy operator to check this upstream`, { cause: err });
      case 'UND_ERR_BODY_TIMEOUT':
        return new ProxyError('timeout', `upstream ${this.id} stalled while sending ${what}; retry later`, { cause: err });
      default:
        break;
    }
    if (e.name === 'AbortError') return new ProxyError('unavailable', `fetch of ${what} from ${this.id} was cancelled`, { cause: err });
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? e.code ?? e.message ?? String(err);
    return new ProxyError('upstream', `cannot reach upstream ${this.id} (${oneLine(String(cause), 120)}) while fetching ${what}; retry later, or ask the gomodproxy operator to check this upstream`, { cause: err });
  }
}

/**
 * Escapes case-encoded path segments as the go command does (url.PathEscape per segment): '!' and
 * anything outside A-Z a-z 0-9 - _ . ~ $ & + : = @ is percent-encoded. A query version may hold
 * a space, '#', '%' or '&' (any file-name character); sent raw it would change the request.
 */
export function wire(escaped: string): string {
  return SAFE.test(escaped) ? escaped : escaped.split('/').map(escapeSegment).join('/');
}

const SAFE = /^[A-Za-z0-9\-_.~$&+:=@/]*$/;

function escapeSegment(seg: string): string {
  let out = '';
  for (const ch of seg) {
    if (/[A-Za-z0-9\-_.~$&+:=@]/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The first line of a text/plain error body, as the go command would print it. */
async function errorLine(res: Dispatcher.ResponseData): Promise<string> {
  const type = String(res.headers['content-type'] ?? '');
  let text = '';
  try {
    let total = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total > 4096) break;
    }
    discard(res.body);
    text = Buffer.concat(chunks).toString('utf8');
  } catch {
    return '';
  }
  if (type && !type.startsWith('text/plain')) return '';
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return oneLine(first, 400);
}
