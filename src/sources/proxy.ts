// One upstream GOPROXY reached over HTTP(S): keep-alive pools, per-upstream timeouts,
// credentials, corporate egress proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY, and error
// lines that tell the go user which upstream failed and how.
import type { Readable } from 'node:stream';
import { EnvHttpProxyAgent, interceptors, type Dispatcher } from 'undici';
import type { Timeouts, UpstreamSpec } from '../config/index.js';
import { formatDuration } from '../config/units.js';
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
  /** host[:port], for error lines about DNS, connections and certificates. */
  private readonly host: string;
  private readonly timeouts: Timeouts;

  constructor(spec: UpstreamSpec) {
    this.id = spec.url;
    const base = new URL(spec.url);
    this.origin = base.origin;
    this.host = base.host;
    this.timeouts = spec.timeouts;
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
    return this.fetchPath(`${wire(mod.escaped)}/@v/list`, MAX_LIST_BYTES, ctx, `the version list of ${mod.path}`);
  }

  latest(mod: ModuleRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@latest`, MAX_INFO_BYTES, ctx, `the latest version of ${mod.path}`);
  }

  info(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@v/${wire(v.escaped)}.info`, MAX_INFO_BYTES, ctx, `${mod.path}@${v.version}.info`);
  }

  mod(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<Buffer> {
    return this.fetchPath(`${wire(mod.escaped)}/@v/${wire(v.escaped)}.mod`, MAX_GOMOD_BYTES, ctx, `${mod.path}@${v.version}.mod`);
  }

  async zip(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<ZipBody> {
    const what = `${wire(mod.escaped)}/@v/${wire(v.escaped)}.zip`;
    const res = await this.request(what, ctx, `${mod.path}@${v.version}.zip`);
    const len = res.headers['content-length'];
    const size = typeof len === 'string' && /^\d+$/.test(len) ? Number(len) : undefined;
    if (size !== undefined && size > MAX_ZIP_BYTES) {
      discard(res.body);
      throw new ProxyError(
        'upstream',
        `upstream ${this.id} offers a ${size}-byte zip for ${mod.path}@${v.version}, over the go command's 500 MiB limit; the module cannot be used`,
        { upstreamStatus: 200 },
      );
    }
    return { stream: res.body as Readable, size };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** GETs `<base>/<what>` whole (bounded). Also how the checksum database is reached through this proxy. */
  async fetchPath(what: string, max: number, ctx: FetchContext, about: string = what): Promise<Buffer> {
    const res = await this.request(what, ctx, about);
    const len = Number(res.headers['content-length'] ?? -1);
    if (len > max) {
      discard(res.body);
      // An answer about this file, not an outage: it must not rest the upstream for every module.
      throw new ProxyError('upstream', `upstream ${this.id} answered ${len} bytes for ${about}, over the ${max}-byte limit for this kind of file`, {
        upstreamStatus: 200,
      });
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > max) {
          discard(res.body);
          throw new ProxyError('upstream', `upstream ${this.id} sent more than ${max} bytes for ${about}, over the limit for this kind of file`, {
            upstreamStatus: 200,
          });
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      throw this.transportError(err, about);
    }
    return Buffer.concat(chunks, total);
  }

  private async request(what: string, ctx: FetchContext, about: string = what): Promise<Dispatcher.ResponseData> {
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
      throw this.transportError(err, about);
    }
    if (res.statusCode === 200) return res;
    const line = await errorLine(res);
    if (res.statusCode === 404 || res.statusCode === 410) {
      // Keep the upstream's own reason ("unknown revision v1.9.9"): it is what the go user needs to read.
      throw new ProxyError(res.statusCode === 404 ? 'not-found' : 'gone', line || `not found: ${about} (${this.id} answered ${res.statusCode})`, {
        upstreamStatus: res.statusCode,
      });
    }
    if (res.statusCode === 508) {
      throw new ProxyError(
        'loop',
        `upstream ${this.id} reports a request loop: ${line || 'it is configured to use this gomodproxy as its upstream'}; fix the upstream settings`,
        {
          upstreamStatus: 508,
        },
      );
    }
    const said = `upstream ${this.id} answered ${res.statusCode} for ${about}${line ? ` (${line})` : ''}`;
    throw new ProxyError('upstream', `${said}; ${statusAdvice(res.statusCode, this.authorization !== undefined)}`, { upstreamStatus: res.statusCode });
  }

  /** A failure before any answer: says which host, and which of gomodproxy's settings decide it. */
  private transportError(err: unknown, about: string): ProxyError {
    if (err instanceof ProxyError) return err;
    const e = err as { code?: string; message?: string; name?: string; cause?: { code?: string; message?: string } };
    const t = this.timeouts;
    switch (e.code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new ProxyError(
          'timeout',
          `upstream ${this.id} did not accept a connection from ${this.host} within timeouts.connect (${formatDuration(t.connect)}) while fetching ${about}; check the upstream URL setting and HTTPS_PROXY/NO_PROXY, or raise timeouts.connect (upstreams[].timeouts.connect for one upstream)`,
          { cause: err },
        );
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new ProxyError(
          'timeout',
          `upstream ${this.id} did not start answering within timeouts.firstByte (${formatDuration(t.firstByte)}) for ${about}; retry later, or raise timeouts.firstByte (upstreams[].timeouts.firstByte for one upstream) if it is just slow`,
          { cause: err },
        );
      case 'UND_ERR_BODY_TIMEOUT':
        return new ProxyError(
          'timeout',
          `upstream ${this.id} stalled: silent for longer than timeouts.idle (${formatDuration(t.idle)}) while sending ${about}; retry later, or raise timeouts.idle (upstreams[].timeouts.idle for one upstream)`,
          { cause: err },
        );
      default:
        break;
    }
    if (e.name === 'AbortError') return new ProxyError('unavailable', `fetch of ${about} from ${this.id} was cancelled`, { cause: err });
    const code = e.cause?.code ?? e.code ?? '';
    const detail = oneLine(code || e.cause?.message || e.message || String(err), 120);
    const check =
      'check the upstream URL setting (upstream, or upstreams[].url), and HTTPS_PROXY/NO_PROXY if gomodproxy reaches the internet through an egress proxy';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
      return new ProxyError('upstream', `cannot resolve the host ${this.host} of upstream ${this.id} (${detail}) while fetching ${about}; ${check}`, {
        cause: err,
      });
    }
    if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') {
      return new ProxyError('upstream', `cannot connect to ${this.host} for upstream ${this.id} (${detail}) while fetching ${about}; ${check}`, { cause: err });
    }
    if (TLS_CODES.test(code)) {
      return new ProxyError(
        'upstream',
        `the TLS certificate of ${this.host} (upstream ${this.id}) is not trusted (${detail}) while fetching ${about}; if it is signed by a private CA, start gomodproxy with NODE_EXTRA_CA_CERTS=<ca.pem>, else check the upstream URL setting`,
        { cause: err },
      );
    }
    // A connection that broke mid-answer (reset, closed early) is passing trouble: asking again can work.
    return new ProxyError(
      'upstream',
      `the connection to upstream ${this.id} (${this.host}) failed (${detail}) while fetching ${about}; retry, and if it persists ask the gomodproxy operator to check this upstream and HTTPS_PROXY/NO_PROXY`,
      { cause: err },
    );
  }
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_)/;

/**
 * What to do about an upstream's error status. A 4xx is the upstream's answer to this request
 * (asking again gets the same answer), except 408 and 429; a 5xx is its trouble.
 */
function statusAdvice(status: number, sentCredentials: boolean): string {
  if (status === 401) {
    return sentCredentials
      ? "the upstream refused gomodproxy's credentials: fix upstreams[].token (or upstreams[].username/password) for this upstream"
      : 'the upstream wants credentials and gomodproxy sent none: set upstreams[].token (or upstreams[].username/password) for this upstream';
  }
  if (status === 403)
    return 'the upstream refuses to serve it to gomodproxy; its operator decides what it serves, so ask them, or get the module from another source';
  if (status === 429) return 'the upstream is rate-limiting gomodproxy; retry later';
  if (status === 408) return 'the upstream gave up waiting for the request; retry';
  if (status === 400)
    return 'the upstream rejects this request as invalid, so retrying will not help; check the module path and version, or ask the gomodproxy operator whether this upstream serves such modules';
  if (status >= 400 && status < 500) return 'the upstream refuses this request, so retrying will not help; ask the gomodproxy operator to check this upstream';
  return 'retry later, or ask the gomodproxy operator to check this upstream';
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
  let text: string;
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
