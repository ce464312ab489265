// The route table: for a module path, which sources answer it, whether the checksum database is
// consulted, how long mutable answers stay fresh, and who may read it. Plus the operator's
// policy: deny rules (optionally for version ranges) and an allow-list mode. Lookups are cached
// per module path, so the hot path pays one Map lookup.
import type { Config, UpstreamSpec } from '../config/index.js';
import { parseGoProxyList } from '../config/index.js';
import { ProxyError } from '../errors.js';
import { compare, compilePrefixPatterns, isValid, type PrefixMatcher } from '../module/index.js';
import type { SourceChain } from '../sources/index.js';

export interface Route {
  /** For logs and errors: "default", or "routes[1] (corp.example/*)". */
  readonly name: string;
  readonly chain: SourceChain;
  /** Consult the checksum database for these modules. */
  readonly sumdb: boolean;
  /** Never sent to a public upstream or the checksum database. */
  readonly private: boolean;
  readonly ttlMs: number;
  /** Authorization rules (anonymous | authenticated | user:x | group:x | scope:x). */
  readonly read: readonly string[];
  readonly deniedAs: 'not-found' | 'forbidden';
  /** Its versions are published here (never fetched): answers come from the store alone. */
  readonly publish: boolean;
}

function patternsOf(list: string | string[]): string[] {
  return (Array.isArray(list) ? list : list.split(',')).map((e) => e.trim()).filter((e) => e !== '' && !e.startsWith('!'));
}

/** A GOPRIVATE-style list with "!" exclusions. */
export function compileMatch(list: string | string[]): PrefixMatcher {
  const entries = (Array.isArray(list) ? list : list.split(',')).map((e) => e.trim()).filter((e) => e !== '');
  const include = compilePrefixPatterns(entries.filter((e) => !e.startsWith('!')).join(','));
  const excludes = entries.filter((e) => e.startsWith('!')).map((e) => e.slice(1));
  if (excludes.length === 0) return include;
  const exclude = compilePrefixPatterns(excludes.join(','));
  return (path: string) => include(path) && !exclude(path);
}

interface DenyRule {
  match: PrefixMatcher;
  versions: VersionRange | null;
  reason: string;
}

const ROUTE_CACHE_MAX = 10_000;

/** The policy that refuses versions with known vulnerabilities: ids and fixes of module@version, none when it has none. */
export interface VulnerabilityCheck {
  /** Whether the database names the module at all (cheap, before any version check). */
  has(modulePath: string): boolean;
  findings(modulePath: string, version: string): readonly { id: string; fixed: string | null }[];
}

export class RouteTable {
  private readonly routes: { match: PrefixMatcher; patterns: string[]; route: Route }[] = [];
  private readonly fallback: Route;
  private readonly cache = new Map<string, Route>();
  private readonly denyRules: DenyRule[];
  private readonly allowList: PrefixMatcher | null;
  private vulns: VulnerabilityCheck | null = null;

  /**
   * @param makeChain builds the source chain for a GOPROXY-style upstream list (or the global one when undefined)
   * @param publishedChain the chain of routes with publish: true, which must fetch nothing (default: off)
   */
  constructor(
    config: Config,
    makeChain: (specs: UpstreamSpec[] | undefined, label: string) => SourceChain,
    publishedChain: (label: string) => SourceChain = (label) => makeChain(specsOf('off', config), label),
  ) {
    const defaultRead = config.read;
    const ttl = config.cache.ttl;
    let i = 0;
    // GOPRIVATE/GONOPROXY (or `private`) first: a private module must never fall into a public route.
    if (config.private.trim() !== '') {
      this.routes.push({
        match: compileMatch(config.private),
        patterns: patternsOf(config.private),
        route: {
          name: `private (${config.private})`,
          chain: makeChain(specsOf('direct', config), 'private'),
          sumdb: false,
          private: true,
          ttlMs: ttl,
          read: defaultRead,
          deniedAs: 'not-found',
          publish: false,
        },
      });
    }
    for (const r of config.routes) {
      const label = `routes[${i++}] (${Array.isArray(r.match) ? r.match.join(',') : r.match})`;
      // Published modules exist nowhere else: naming them to an upstream or the database would leak them.
      const isPrivate = r.private || r.publish;
      // A private route's own sources are the operator's explicit choice (e.g. an internal proxy); without any, direct.
      const sources = r.sources ?? (isPrivate ? 'direct' : undefined);
      this.routes.push({
        match: compileMatch(r.match),
        patterns: patternsOf(r.match),
        route: {
          name: label,
          chain: r.publish ? publishedChain(label) : makeChain(sources === undefined ? undefined : specsOf(sources, config), label),
          sumdb: r.publish ? false : (r.sumdb ?? !isPrivate),
          private: isPrivate,
          ttlMs: r.ttl ?? ttl,
          read: r.read ?? defaultRead,
          deniedAs: r.deniedAs ?? (isPrivate ? 'not-found' : 'forbidden'),
          publish: r.publish,
        },
      });
    }
    this.fallback = {
      name: 'default',
      chain: makeChain(undefined, 'default'),
      sumdb: true,
      private: false,
      ttlMs: ttl,
      read: defaultRead,
      deniedAs: 'forbidden',
      publish: false,
    };
    this.denyRules = config.deny.map((d) => ({ match: compileMatch(d.match), versions: d.versions ? parseVersionRange(d.versions) : null, reason: d.reason }));
    this.allowList = config.allow ? compileMatch(config.allow) : null;
  }

  /** Whether any module needs a sign-in to be read. */
  get restricted(): boolean {
    return [...this.routes.map((r) => r.route), this.fallback].some((r) => !r.read.includes('anonymous'));
  }

  /** Whether any route takes published modules (the publish API answers nothing otherwise). */
  get publishes(): boolean {
    return this.routes.some((r) => r.route.publish);
  }

  /** The patterns of private routes with who may read them (clients need them in GONOSUMDB). */
  privateRoutes(): { patterns: string[]; read: readonly string[] }[] {
    return this.routes.filter((r) => r.route.private).map((r) => ({ patterns: r.patterns, read: r.route.read }));
  }

  /** The route of modules no other route covers. */
  get defaultRoute(): Route {
    return this.fallback;
  }

  /** Every route's chain (for health, readiness and shutdown). */
  chains(): SourceChain[] {
    return [...new Set([...this.routes.map((r) => r.route.chain), this.fallback.chain])];
  }

  routeFor(modulePath: string): Route {
    let r = this.cache.get(modulePath);
    if (r) return r;
    r = this.routes.find((x) => x.match(modulePath))?.route ?? this.fallback;
    if (this.cache.size >= ROUTE_CACHE_MAX) this.cache.clear();
    this.cache.set(modulePath, r);
    return r;
  }

  /** Turns on refusing versions with known vulnerabilities (vulndb.refuseVulnerable). */
  refuseVulnerable(check: VulnerabilityCheck): void {
    this.vulns = check;
  }

  /**
   * Throws a 403 when policy refuses the module (or this version of it). The allow list governs
   * what comes in from outside: private modules (the operator's own, from its own version
   * control) are not subject to it; deny rules, being explicit, apply to every module.
   */
  checkPolicy(modulePath: string, version?: string): void {
    if (this.allowList && !this.allowList(modulePath) && !this.routeFor(modulePath).private) {
      throw new ProxyError('forbidden', `${modulePath} is not on this proxy's allow list; ask its operator to allow it`);
    }
    for (const d of this.denyRules) {
      if (!d.match(modulePath)) continue;
      if (d.versions === null) throw new ProxyError('forbidden', `${modulePath} is blocked by this proxy: ${d.reason}`);
      if (version !== undefined && d.versions(version)) {
        throw new ProxyError('forbidden', `${modulePath}@${version} is blocked by this proxy: ${d.reason}`);
      }
    }
    if (this.vulns !== null && version !== undefined && this.vulns.has(modulePath)) {
      const found = this.vulns.findings(modulePath, version);
      if (found.length > 0) {
        const which = found.map((f) => `${f.id} (${f.fixed ? `fixed in ${f.fixed}` : 'no fixed version yet'})`).join(', ');
        throw new ProxyError('forbidden', `${modulePath}@${version} is refused by this proxy: it has known vulnerabilities ${which}; use a fixed version`);
      }
    }
  }

  /** Whether any deny rule names versions of this module (so lists need filtering). */
  hasVersionRules(modulePath: string): boolean {
    return this.denyRules.some((d) => d.versions !== null && d.match(modulePath)) || (this.vulns?.has(modulePath) ?? false);
  }

  /** Whether this version is refused (for filtering lists). */
  isDeniedVersion(modulePath: string, version: string): boolean {
    if (this.denyRules.some((d) => d.versions !== null && d.match(modulePath) && d.versions(version))) return true;
    return this.vulns !== null && this.vulns.has(modulePath) && this.vulns.findings(modulePath, version).length > 0;
  }

  /** Whether any policy applies at all: without one, the hot path skips the checks. */
  get hasPolicy(): boolean {
    return this.allowList !== null || this.denyRules.length > 0 || this.vulns !== null;
  }
}

function specsOf(list: string, config: Config): UpstreamSpec[] {
  return parseGoProxyList(list).map((e, i) => ({
    kind: e.kind,
    url: e.kind === 'proxy' ? e.url : e.kind,
    priority: i,
    balance: config.balance,
    fallthrough: e.fallthrough,
    timeouts: config.timeouts,
  }));
}

export type VersionRange = (v: string) => boolean;

/**
 * Version ranges in Go semver: space-separated comparators that must all hold (">=v1.2.0 <v1.3.0"),
 * alternatives joined by "||", a bare version meaning exactly it.
 */
export function parseVersionRange(text: string): VersionRange {
  const alternatives = text.split('||').map((alt) =>
    alt
      .trim()
      .split(/\s+/)
      .filter((c) => c !== '')
      .map((c) => {
        const m = /^(<=|>=|<|>|=)?(v.+)$/.exec(c);
        if (!m || !isValid(m[2] as string)) throw new Error(`invalid version range "${text}": "${c}" is not <op>v1.2.3`);
        const op = m[1] ?? '=';
        const bound = m[2] as string;
        return (v: string): boolean => {
          const d = compare(v, bound);
          return op === '<' ? d < 0 : op === '<=' ? d <= 0 : op === '>' ? d > 0 : op === '>=' ? d >= 0 : d === 0;
        };
      }),
  );
  if (alternatives.some((a) => a.length === 0)) throw new Error(`invalid version range "${text}": empty alternative`);
  return (v) => isValid(v) && alternatives.some((a) => a.every((c) => c(v)));
}
