// Where a module's code lives: cmd/go's repository discovery (vcs.RepoRootForImportPath) plus a
// configured mapping for hosts that serve no <meta> tags. In order: the configured mapping; the
// hosts cmd/go knows without asking (github.com, bitbucket.org, ...); paths with a VCS qualifier
// (example.org/repo.git/sub), whose scheme is found by trying `git ls-remote`; otherwise
// `https://<path>?go-get=1` and its <meta name="go-import"> tags (plain http only for
// GOINSECURE-style patterns); finally launchpad.net.
//
// As for cmd/go (modfetch.lookupDirect wraps every error of vcs.RepoRootForImportPath in
// notExistError), a repository-root lookup that fails in any way is "not found": an unreachable
// ?go-get=1 host (DNS, connection, TLS), a bad status, a page without a matching tag. The go
// command's package-to-module search depends on it: for an import of golang.org/x/text/cases it
// asks for golang.org/x/text/cases, golang.org/x/text, golang.org/x, and needs not-found for the
// paths that are not modules, on networks that reach only some hosts as much as anywhere else.
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { checkPath, compilePrefixPatterns, ModuleError, type PrefixMatcher } from '../../module/index.js';
import { GitSourceError, notExist } from './errors.js';
import { hasPathPrefix, matchGoImport, MetaMatchError, parseMetaGoImports, type MetaImport } from './meta.js';

export type VcsName = 'git' | 'hg' | 'svn' | 'bzr' | 'fossil' | 'mod';

export interface RepoRoot {
  vcs: VcsName;
  /** Repository URL including the scheme (for `mod`: a GOPROXY base URL). */
  repo: string;
  /** Import path of the repository root (of subDir, when a meta tag names one). */
  root: string;
  /** Directory of root inside the repository ("" for the top). */
  subDir: string;
  /** Found through <meta> tags or the configured mapping rather than a built-in rule. */
  custom: boolean;
}

export interface RepoMapping {
  /** Module path prefix (whole path elements). */
  prefix: string;
  /** Repository URL: https://, http://, ssh://, git://, file:// or scp-like git@host:path. */
  url: string;
  vcs?: Exclude<VcsName, 'mod'>;
  /** Directory of `prefix` inside the repository. */
  subdir?: string;
}

export interface MetaResponse {
  status: number;
  /** Final URL after redirects (for messages). */
  url: string;
  body: string;
}

/** Fetches a ?go-get=1 page; `insecure` permits plain http and unverified TLS. Throws on network failure. */
export type MetaFetcher = (url: URL, insecure: boolean) => Promise<MetaResponse>;

/** Tries `<scheme>://<repo>` with the VCS (git ls-remote); resolves true when it answers. */
export type SchemeProbe = (vcs: VcsName, scheme: string, repo: string) => Promise<boolean>;

export interface DiscoveryOptions {
  repos?: readonly RepoMapping[];
  /** GOINSECURE-style patterns. */
  insecure?: string;
  fetchMeta?: MetaFetcher;
  probe: SchemeProbe;
  /** How long a discovery result (or a not-found answer) is reused; default 10 minutes. */
  ttlMs?: number;
  /**
   * How long a not-found that comes from failing to reach a host (or from a host in trouble) is
   * reused; default 10 s, never more than ttlMs.
   */
  unreachableTtlMs?: number;
  /** For tests: the cache's clock (default Date.now). */
  now?: () => number;
  /** Timeout of one ?go-get=1 request; default 30 s. */
  httpTimeoutMs?: number;
  /** GIT_ALLOW_PROTOCOL of git's environment: the schemes cmd/go then treats as secure. */
  gitAllowProtocol?: string;
}

interface VcsPath {
  pathPrefix: string;
  re: RegExp;
  vcs?: string;
  repo?: string;
  check?: (m: Record<string, string>) => void;
  schemeless?: boolean;
}

const vcsNames = ['hg', 'git', 'svn', 'bzr', 'fossil'];

function noVcsSuffix(m: Record<string, string>): void {
  for (const v of vcsNames) {
    if ((m.repo ?? '').endsWith(`.${v}`)) throw notExist(`invalid version control suffix in ${m.prefix} path`);
  }
}

// cmd/go's table (vcs.go vcsPaths); \w is [0-9A-Za-z_] in both RE2 and JavaScript.
const vcsPaths: VcsPath[] = [
  { pathPrefix: 'github.com', re: /^(?<root>github\.com\/[\w.-]+\/[\w.-]+)(\/[\w.-]+)*$/, vcs: 'git', repo: 'https://{root}', check: noVcsSuffix },
  {
    pathPrefix: 'bitbucket.org',
    re: /^(?<root>bitbucket\.org\/(?<bitname>[\w.-]+\/[\w.-]+))(\/[\w.-]+)*$/,
    vcs: 'git',
    repo: 'https://{root}',
    check: noVcsSuffix,
  },
  {
    pathPrefix: 'hub.jazz.net/git',
    re: /^(?<root>hub\.jazz\.net\/git\/[a-z0-9]+\/[\w.-]+)(\/[\w.-]+)*$/,
    vcs: 'git',
    repo: 'https://{root}',
    check: noVcsSuffix,
  },
  { pathPrefix: 'git.apache.org', re: /^(?<root>git\.apache\.org\/[a-z0-9_.-]+\.git)(\/[\w.-]+)*$/, vcs: 'git', repo: 'https://{root}' },
  { pathPrefix: 'git.openstack.org', re: /^(?<root>git\.openstack\.org\/[\w.-]+\/[\w.-]+)(\.git)?(\/[\w.-]+)*$/, vcs: 'git', repo: 'https://{root}' },
  { pathPrefix: 'chiselapp.com', re: /^(?<root>chiselapp\.com\/user\/[A-Za-z0-9]+\/repository\/[\w.-]+)$/, vcs: 'fossil', repo: 'https://{root}' },
  {
    pathPrefix: '',
    re: /(?<root>(?<repo>([a-z0-9.-]+\.)+[a-z0-9.-]+(:[0-9]+)?(\/~?[\w.-]+)+?)\.(?<vcs>bzr|fossil|git|hg|svn))(\/~?[\w.-]+)*$/,
    schemeless: true,
  },
];

const vcsPathsAfterDynamic: VcsPath[] = [
  {
    pathPrefix: 'launchpad.net',
    re: /^(?<root>launchpad\.net\/((?<project>[\w.-]+)(?<series>\/[\w.-]+)?|~[\w.-]+\/(\+junk|[\w.-]+)\/[\w.-]+))(\/[\w.-]+)*$/,
    vcs: 'bzr',
    repo: 'https://{root}',
  },
];

const vcsSchemes: Record<string, string[]> = {
  git: ['git', 'https', 'http', 'git+ssh', 'ssh'],
  hg: ['https', 'http', 'ssh'],
  svn: ['https', 'http', 'svn', 'svn+ssh'],
  bzr: ['https', 'http', 'bzr', 'bzr+ssh'],
  fossil: ['https', 'http'],
};
const defaultSecure = new Set(['https', 'git+ssh', 'bzr+ssh', 'svn+ssh', 'ssh']);

const UNKNOWN_SITE = Symbol('unknown site');

interface Cached {
  /** Reused until then (Date.now() milliseconds). */
  expires: number;
  value: Promise<RepoRoot>;
}

/**
 * Long enough to answer the burst of requests one go command makes for a path (list, @latest,
 * .info, once per candidate path of its package-to-module search, again in the next `go build`)
 * from one failed lookup, which may itself have waited for a DNS or connect timeout; short enough
 * that a network that comes back is noticed within seconds rather than after the discovery TTL.
 */
const UNREACHABLE_TTL_MS = 10_000;

/** A redirect the go command would refuse too: an answer about the page, not a network failure. */
class RefusedRedirect extends Error {
  override readonly name = 'RefusedRedirect';
}

export class Discovery {
  private readonly repos: RepoMapping[];
  private readonly insecure: PrefixMatcher;
  private readonly fetchMeta: MetaFetcher;
  private readonly cache = new Map<string, Cached>();
  private readonly ttlMs: number;
  private readonly unreachableTtlMs: number;
  private readonly now: () => number;
  private readonly gitAllow: string[] | undefined;

  constructor(private readonly opts: DiscoveryOptions) {
    // Longest prefix first, so a more specific mapping wins.
    this.repos = [...(opts.repos ?? [])].sort((a, b) => b.prefix.length - a.prefix.length);
    this.insecure = compilePrefixPatterns(opts.insecure ?? '');
    this.fetchMeta = opts.fetchMeta ?? defaultMetaFetcher(opts.httpTimeoutMs ?? 30_000);
    this.ttlMs = opts.ttlMs ?? 600_000;
    this.unreachableTtlMs = Math.min(opts.unreachableTtlMs ?? UNREACHABLE_TTL_MS, this.ttlMs);
    this.now = opts.now ?? Date.now;
    this.gitAllow = opts.gitAllowProtocol ? opts.gitAllowProtocol.split(':') : undefined;
  }

  /**
   * The repository holding modulePath. Results and not-found answers are reused for ttlMs; a
   * not-found that only says a host was out of reach, for unreachableTtlMs after it came.
   */
  lookup(modulePath: string): Promise<RepoRoot> {
    const now = this.now();
    const hit = this.cache.get(modulePath);
    if (hit && now < hit.expires) return hit.value;
    const value = this.resolve(modulePath);
    const entry: Cached = { expires: now + this.ttlMs, value };
    this.cache.set(modulePath, entry);
    value.catch((err: unknown) => {
      if (this.cache.get(modulePath) !== entry) return;
      // Anything else (a git probe that could not run, a bug) is not remembered: the next request tries again.
      if (!(err instanceof GitSourceError && err.kind === 'not-found')) this.cache.delete(modulePath);
      else if (err.unreachable) entry.expires = Math.min(entry.expires, this.now() + this.unreachableTtlMs);
    });
    if (this.cache.size > 10_000) {
      for (const [k, v] of this.cache) if (now >= v.expires) this.cache.delete(k);
    }
    return value;
  }

  isInsecure(modulePath: string): boolean {
    return this.insecure(modulePath);
  }

  private async resolve(importPath: string): Promise<RepoRoot> {
    try {
      checkPath(importPath);
    } catch (err) {
      throw notExist(err instanceof ModuleError ? err.message : String(err));
    }
    for (const m of this.repos) {
      if (hasPathPrefix(importPath, m.prefix)) {
        return { vcs: m.vcs ?? 'git', repo: m.url, root: m.prefix, subDir: m.subdir ?? '', custom: true };
      }
    }
    const insecure = this.insecure(importPath);
    let rr: RepoRoot | typeof UNKNOWN_SITE;
    let err: unknown;
    try {
      rr = await this.fromVcsPaths(importPath, insecure, vcsPaths);
      if (rr === UNKNOWN_SITE) {
        try {
          rr = await this.dynamic(importPath, insecure);
        } catch (e) {
          if (e instanceof GitSourceError && e.kind !== 'not-found') throw e;
          // cmd/go says `unrecognized import path "<path>"`; the caller names the path already.
          throw new GitSourceError('not-found', `cannot look up its repository: ${(e as Error).message}`, {
            cause: e,
            unreachable: e instanceof GitSourceError && e.unreachable,
          });
        }
      }
      return rr;
    } catch (e) {
      err = e;
    }
    const after = await this.fromVcsPaths(importPath, insecure, vcsPathsAfterDynamic).catch(() => UNKNOWN_SITE);
    if (typeof after !== 'symbol') return after;
    throw err;
  }

  private isSecureScheme(vcs: string, scheme: string): boolean {
    if (vcs === 'git' && this.gitAllow) return this.gitAllow.includes(scheme);
    return defaultSecure.has(scheme);
  }

  private async fromVcsPaths(importPath: string, insecure: boolean, table: VcsPath[]): Promise<RepoRoot | typeof UNKNOWN_SITE> {
    if (hasPathPrefix(importPath, 'example.net')) throw notExist('no modules on example.net');
    if (importPath === 'rsc.io') throw notExist('rsc.io is not a module');
    for (const srv of table) {
      if (srv.pathPrefix !== '' && !hasPathPrefix(importPath, srv.pathPrefix)) continue;
      const m = srv.re.exec(importPath);
      if (!m) {
        if (srv.pathPrefix !== '') throw notExist(`invalid ${srv.pathPrefix} import path "${importPath}"`);
        continue;
      }
      const match: Record<string, string> = { prefix: `${srv.pathPrefix}/`, import: importPath };
      for (const [k, v] of Object.entries(m.groups ?? {})) if (v !== undefined && !match[k]) match[k] = v;
      if (srv.vcs) match.vcs = expand(match, srv.vcs);
      if (srv.repo) match.repo = expand(match, srv.repo);
      srv.check?.(match);
      const vcs = match.vcs as VcsName;
      if (!vcsNames.includes(vcs)) throw notExist(`unknown version control system "${vcs}"`);
      let repo = match.repo as string;
      if (srv.schemeless) {
        let found: string | undefined;
        for (const s of vcsSchemes[vcs] ?? []) {
          if (!insecure && !this.isSecureScheme(vcs, s)) continue;
          if (vcs !== 'git') {
            // Only git can be asked without a toolchain for that VCS: take the first allowed scheme.
            found = s;
            break;
          }
          if (await this.opts.probe(vcs, s, repo)) {
            found = s;
            break;
          }
        }
        if (!found) throw notExist(`no ${insecure ? '' : 'secure '}protocol found for repository`);
        repo = `${found}://${repo}`;
      }
      return { vcs, repo, root: match.root as string, subDir: '', custom: false };
    }
    return UNKNOWN_SITE;
  }

  private async dynamic(importPath: string, insecure: boolean): Promise<RepoRoot> {
    const { url, imports, finalURL } = await this.metaImports(importPath, insecure);
    let mmi: MetaImport;
    try {
      mmi = matchGoImport(imports, importPath);
    } catch (err) {
      if (err instanceof MetaMatchError && err.mismatch) throw notExist(`parse ${finalURL}: no go-import meta tags (${err.message})`);
      throw notExist(`parse ${url}: ${(err as Error).message}`);
    }
    if (mmi.prefix !== importPath) {
      // A tag found on a deeper path is trusted only if the prefix's own page says the same.
      const again = await this.metaImports(mmi.prefix, insecure);
      let m2: MetaImport | undefined;
      try {
        m2 = matchGoImport(again.imports, importPath);
      } catch {
        m2 = undefined;
      }
      if (!m2 || m2.prefix !== mmi.prefix || m2.vcs !== mmi.vcs || m2.repoRoot !== mmi.repoRoot || m2.subDir !== mmi.subDir) {
        throw notExist(`${finalURL} and ${again.finalURL} disagree about go-import for ${mmi.prefix}`);
      }
    }
    if (mmi.subDir !== '' && (mmi.subDir.startsWith('/') || mmi.subDir.startsWith('-'))) {
      throw notExist(`${finalURL}: invalid subdirectory "${mmi.subDir}": leading ${mmi.subDir.startsWith('/') ? 'slash' : 'hyphen'}`);
    }
    let scheme: string;
    try {
      scheme = new URL(mmi.repoRoot).protocol.slice(0, -1);
    } catch {
      throw notExist(`${finalURL}: invalid repo root "${mmi.repoRoot}": no scheme`);
    }
    if (scheme === 'file') throw notExist(`${finalURL}: invalid repo root "${mmi.repoRoot}": file scheme disallowed`);
    let vcs: VcsName;
    if (mmi.vcs === 'mod') vcs = 'mod';
    else if (vcsNames.includes(mmi.vcs)) vcs = mmi.vcs as VcsName;
    else throw notExist(`${finalURL}: unknown vcs "${mmi.vcs}"`);
    return { vcs, repo: mmi.repoRoot, root: mmi.prefix, subDir: mmi.subDir, custom: true };
  }

  private async metaImports(importPath: string, insecure: boolean): Promise<{ url: string; finalURL: string; imports: MetaImport[] }> {
    const slash = importPath.indexOf('/');
    const host = slash < 0 ? importPath : importPath.slice(0, slash);
    const p = slash < 0 ? '/' : importPath.slice(slash);
    if (!host.includes('.')) throw notExist('import path does not begin with hostname');
    const url = new URL(`https://${host}${p}?go-get=1`);
    const shown = insecure ? `${url.href} (then plain http)` : url.href;
    let res: MetaResponse;
    try {
      res = await this.fetchMeta(url, insecure);
    } catch (err) {
      // Not-exist for cmd/go, whatever kept the page from us; what to do depends on what did.
      throw new GitSourceError('not-found', `${shown}: ${describeFailure(err)} (${hintForFailure(host, err)})`, {
        cause: err,
        unreachable: !(err instanceof RefusedRedirect),
      });
    }
    const imports = parseMetaGoImports(res.body);
    if (imports.length === 0) {
      if (res.status < 200 || res.status > 299) {
        // A host in trouble may answer differently in a minute; a 4xx is its answer about the path.
        const trouble = res.status >= 500 || res.status === 429 || res.status === 408;
        throw new GitSourceError('not-found', `reading ${res.url}: ${res.status} (${hintForStatus(res.status)})`, { unreachable: trouble });
      }
      throw notExist(`fetching ${importPath}: no go-import meta tag found in ${res.url} (${MAP_IT})`);
    }
    return { url: shown, finalURL: res.url, imports };
  }
}

const MAP_IT = 'if it is a module, map it with git.repos';

/** The cause of a failed ?go-get=1 fetch in one phrase (Node's errors may carry it in a code or in several errors). */
function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message) return err.message;
  if (err instanceof AggregateError && err.errors.length > 0) return [...new Set(err.errors.map(describeFailure))].join('; ');
  const code = (err as NodeJS.ErrnoException).code;
  return code ?? err.name;
}

function isTlsFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = String((err as NodeJS.ErrnoException).code ?? '');
  return /CERT|SSL|TLS|EPROTO/.test(code) || /certificate|\bssl\b|\btls\b/i.test(err.message);
}

/** What the operator can do about a ?go-get=1 page that could not be fetched from host. */
function hintForFailure(host: string, err: unknown): string {
  if (err instanceof RefusedRedirect) return MAP_IT;
  if (isTlsFailure(err)) return `${MAP_IT}, or make gomodproxy trust the certificate of ${host} (NODE_EXTRA_CA_CERTS), or list it in git.insecure`;
  return `${MAP_IT}, or let gomodproxy reach ${host}, e.g. through HTTPS_PROXY`;
}

function hintForStatus(status: number): string {
  if (status === 401 || status === 403)
    return "if it is a private module, map it with git.repos to its repository and give that host's credentials in git.credentials";
  return MAP_IT;
}

function expand(match: Record<string, string>, s: string): string {
  return s.replace(/\{(\w+)\}/g, (whole, k: string) => match[k] ?? whole);
}

const MAX_META_BYTES = 1 << 20;

/** ?go-get=1 over undici: honours HTTP(S)_PROXY/NO_PROXY, follows up to 10 redirects, reads at most 1 MiB. */
export function defaultMetaFetcher(timeoutMs: number): MetaFetcher {
  const secure = new EnvHttpProxyAgent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const lax = new Agent({ connect: { timeout: Math.min(timeoutMs, 5_000), rejectUnauthorized: false }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const get = async (url: URL, dispatcher: Dispatcher): Promise<MetaResponse> => {
    let current = url;
    for (let hop = 0; hop <= 10; hop++) {
      const res = await request(current, { method: 'GET', dispatcher, headers: { 'user-agent': 'Go-http-client/1.1' } });
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
        await res.body.dump();
        const next = new URL(String(res.headers.location), current);
        // As the go command: never follow a redirect from https down to plain http.
        if (current.protocol === 'https:' && next.protocol !== 'https:')
          throw new RefusedRedirect(`redirected from secure URL ${current.href} to insecure URL ${next.href}`);
        current = next;
        continue;
      }
      let body = '';
      let n = 0;
      for await (const chunk of res.body) {
        const b = chunk as Buffer;
        n += b.length;
        if (n > MAX_META_BYTES) {
          res.body.destroy();
          break;
        }
        body += b.toString('utf8');
      }
      return { status: res.statusCode, url: current.href, body };
    }
    throw new RefusedRedirect('stopped after 10 redirects');
  };
  return async (url, insecure) => {
    if (!insecure) return get(url, secure);
    try {
      return await get(url, lax);
    } catch {
      const plain = new URL(url.href);
      plain.protocol = 'http:';
      return get(plain, secure);
    }
  };
}
