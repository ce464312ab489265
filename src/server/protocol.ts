// Parses a request path into what the go command is asking for, validating module path and
// version exactly as the go command does (a malformed one is 400, never 404: 404 would make the
// go command silently try its next GOPROXY entry). First step of the hot path: no I/O.
import { ProxyError } from '../errors.js';
import { ModuleError, canonicalVersion, check, unescapePath, unescapeVersion } from '../module/index.js';
import type { ModuleRef, VersionRef } from '../sources/index.js';

export type ArtifactKind = 'info' | 'mod' | 'zip';

export type ParsedRequest =
  | { kind: ArtifactKind; mod: ModuleRef; version: VersionRef }
  /** `.info` of something that is not a canonical version: a branch, a tag, a commit prefix, `v1.2`. */
  | { kind: 'query'; mod: ModuleRef; version: VersionRef }
  | { kind: 'list'; mod: ModuleRef }
  | { kind: 'latest'; mod: ModuleRef }
  | { kind: 'sumdb'; path: string }
  | { kind: 'ops'; name: 'healthz' | 'readyz' | 'metrics' };

const MAX_PATH_BYTES = 4096;

/**
 * @param rawUrl req.url as received (path and optional query)
 * @param prefix mount prefix without trailing slash ('' or '/go')
 */
export function parseRequest(rawUrl: string, prefix: string): ParsedRequest {
  let url = rawUrl;
  const q = url.indexOf('?');
  if (q >= 0) url = url.slice(0, q);
  if (url.length > MAX_PATH_BYTES) throw new ProxyError('bad-request', `request path is longer than ${MAX_PATH_BYTES} bytes`);

  if (url === '/healthz' || url === '/readyz' || url === '/metrics') return { kind: 'ops', name: url.slice(1) as 'healthz' };
  if (prefix !== '') {
    if (!url.startsWith(prefix) || url.charCodeAt(prefix.length) !== 47 /* / */) {
      throw new ProxyError('not-found', `not found: ${safe(url)} is outside this proxy's path prefix ${prefix}/; set GOPROXY to <host>${prefix}`);
    }
    url = url.slice(prefix.length);
    if (url === '/healthz' || url === '/readyz' || url === '/metrics') return { kind: 'ops', name: url.slice(1) as 'healthz' };
  }

  let p: string;
  if (url.includes('%')) {
    // The go command percent-encodes '!' (and nothing else we accept); '+' stays '+', never a space.
    try {
      p = decodeURIComponent(url);
    } catch {
      throw new ProxyError('bad-request', `malformed request path ${safe(url)}: bad percent-encoding`);
    }
  } else {
    p = url;
  }
  if (p.charCodeAt(0) !== 47) throw new ProxyError('bad-request', `malformed request path ${safe(p)}`);
  p = p.slice(1);

  if (p.startsWith('sumdb/')) return { kind: 'sumdb', path: p.slice(6) };

  const at = p.indexOf('/@v/');
  if (at > 0) {
    const mod = moduleRef(p.slice(0, at));
    const rest = p.slice(at + 4);
    if (rest === 'list') return { kind: 'list', mod };
    const dot = rest.lastIndexOf('.');
    const ext = dot > 0 ? rest.slice(dot + 1) : '';
    if (ext !== 'info' && ext !== 'mod' && ext !== 'zip') {
      throw new ProxyError('not-found', `not found: ${safe(p)} is not a module proxy request (expected @v/list or @v/<version>.info, .mod or .zip)`);
    }
    if (rest.includes('/')) {
      // No version the go command sends contains a slash (encoded or not): a malformed request.
      throw new ProxyError('bad-request', `invalid version ${safe(rest.slice(0, dot))}: a version cannot contain "/"`);
    }
    const escapedVersion = rest.slice(0, dot);
    let version: string;
    try {
      version = unescapeVersion(escapedVersion);
    } catch (err) {
      throw invalid(err, `invalid version ${safe(escapedVersion)}`);
    }
    const ref: VersionRef = { version, escaped: escapedVersion };
    if (ext === 'info') {
      return isCanonicalFor(mod.path, version) ? { kind: 'info', mod, version: ref } : { kind: 'query', mod, version: ref };
    }
    // The go command only asks for .mod and .zip of canonical versions that fit the path's major version.
    if (canonicalVersion(version) !== version) {
      throw new ProxyError(
        'bad-request',
        `invalid version ${safe(version)} for ${mod.path}: .${ext} is served only for canonical versions (like v1.2.3); resolve it with @v/${safe(escapedVersion)}.info first`,
      );
    }
    try {
      check(mod.path, version);
    } catch (err) {
      throw invalid(err, `invalid version ${safe(version)} for ${mod.path}`);
    }
    return { kind: ext, mod, version: ref };
  }
  if (p.endsWith('/@latest')) return { kind: 'latest', mod: moduleRef(p.slice(0, -8)) };
  throw new ProxyError('not-found', `not found: /${safe(p)} is not a module proxy path; set GOPROXY to this server's base URL`);
}

/**
 * Parses of recently requested paths. The go command and CI fleets ask for the same few thousand
 * paths over and over; validating a module path and version on every cached hit cost more than
 * the lookup it guards. Only valid parses are kept (a refusal is parsed anew each time), frozen so
 * no request can change what the next one is given; a full table is dropped whole, so a client
 * sending endless distinct paths costs one parse each, as without it.
 */
export class RequestParser {
  private readonly seen = new Map<string, ParsedRequest>();

  constructor(
    private readonly prefix: string,
    private readonly max = 4096,
  ) {}

  parse(rawUrl: string): ParsedRequest {
    let p = this.seen.get(rawUrl);
    if (p === undefined) {
      p = freeze(parseRequest(rawUrl, this.prefix));
      if (this.seen.size >= this.max) this.seen.clear();
      this.seen.set(rawUrl, p);
    }
    return p;
  }
}

function freeze(p: ParsedRequest): ParsedRequest {
  if ('mod' in p) Object.freeze(p.mod);
  if ('version' in p) Object.freeze(p.version);
  return Object.freeze(p);
}

function moduleRef(escaped: string): ModuleRef {
  try {
    return { path: unescapePath(escaped), escaped };
  } catch (err) {
    throw invalid(err, `invalid module path ${safe(escaped)}`);
  }
}

function isCanonicalFor(path: string, version: string): boolean {
  if (canonicalVersion(version) !== version) return false;
  try {
    check(path, version);
    return true;
  } catch {
    return false;
  }
}

function invalid(err: unknown, fallback: string): ProxyError {
  if (err instanceof ModuleError) return new ProxyError('bad-request', err.message);
  return new ProxyError('bad-request', fallback);
}

/** Request text echoed in an error line: bounded and printable. */
function safe(s: string): string {
  const t = s.length > 200 ? `${s.slice(0, 200)}...` : s;
  return JSON.stringify(t).slice(1, -1);
}
