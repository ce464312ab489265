// Loads the configuration: defaults < YAML file < GOMODPROXY_* environment < command-line flags,
// validated by the one schema, with errors that name the setting, where it came from, and the fix.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { GO_SUMDB_NAME, parseGosumdb, type GosumdbSetting } from '../sumdb/index.js';
import { readGoEnv, type GoEnv, type GoEnvOptions, type GoEnvOrigin } from './goenv.js';
import { GoProxyListError, formatGoProxyList, parseGoProxyList, type Fallthrough, type GoProxyEntry } from './goproxy.js';
import { configSchema, parseListen, type Balance, type ParsedConfig, type StoreSettings, type Timeouts, type UpstreamInput } from './schema.js';

export const ENV_PREFIX = 'GOMODPROXY_';
export const DEFAULT_CONFIG_FILE = 'gomodproxy.yaml';
export const DEFAULT_GOPROXY = 'https://proxy.golang.org,direct';

export type UpstreamAuth = { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string };

/** One source of modules: an upstream proxy, the VCS ('direct'), or 'off'. */
export interface UpstreamSpec {
  kind: GoProxyEntry['kind'];
  /** Normalized base URL for proxies; 'direct' or 'off' otherwise. Never carries credentials. */
  url: string;
  priority: number;
  balance: Balance;
  fallthrough: Fallthrough;
  auth?: UpstreamAuth;
  timeouts: Timeouts;
}

/** Where artifacts live, with the S3 region decided. */
export type StoreConfig = Exclude<StoreSettings, { type: 's3' }> | (Extract<StoreSettings, { type: 's3' }> & { region: string });

export interface Config extends Omit<ParsedConfig, 'upstream' | 'upstreams' | 'workers' | 'sumdb' | 'noSumdb' | 'private' | 'store' | 'offline'> {
  workers: number;
  /** Serve only the cache: nothing is fetched from anywhere (`offline`, or an upstream list that is just `off`). */
  offline: boolean;
  store: StoreConfig;
  /** GOPRIVATE-style patterns of private modules (direct only, never sent to public destinations). */
  private: string;
  /** The checksum database every public module is verified against, or off. */
  sumdb: GosumdbSetting | 'off';
  /** GONOSUMDB-style patterns of modules never checked against (or sent to) the checksum database. */
  noSumdb: string;
  /** Ordered by priority. */
  upstreams: UpstreamSpec[];
  /** Where the file settings came from, if any. */
  configFile?: string;
  /** Where the settings that decide what is fetched from where, and what is checked, came from. */
  origins: SettingOrigins;
  /** Things the operator should know that do not stop the server (an upstream entry dropped...). */
  warnings: string[];
}

/** Where one setting's value came from. */
export type SettingOrigin = { from: 'default' } | { from: 'file'; file: string } | { from: 'env'; name: string } | { from: 'flag'; key: string } | GoEnvOrigin;

export interface SettingOrigins {
  upstream: SettingOrigin;
  sumdb: SettingOrigin;
  noSumdb: SettingOrigin;
  private: SettingOrigin;
  insecure: SettingOrigin;
}

import { ConfigError } from './error.js';

export { ConfigError };

export interface LoadOptions {
  /** Explicit config file; else $GOMODPROXY_CONFIG; else ./gomodproxy.yaml when present. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Settings from the command line, keyed by their YAML path ("listen", "cache.ttl"). */
  flags?: Record<string, unknown>;
  cwd?: string;
  /** How the go env file is found and read (tests); the environment decides which file, as for the go command. */
  goEnv?: GoEnvOptions;
}

type Source = SettingOrigin;

/** A setting the schema knows, as an environment variable maps to it. */
interface Leaf {
  path: string[];
  env: string;
  /** Plain strings are taken verbatim from the environment; everything else is parsed as YAML. */
  plainString: boolean;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const raw: Record<string, unknown> = {};
  const sources = new Map<string, Source>();

  const explicit = opts.file ?? env[`${ENV_PREFIX}CONFIG`];
  const file = explicit ? path.resolve(cwd, explicit) : path.resolve(cwd, DEFAULT_CONFIG_FILE);
  let configFile: string | undefined;
  if (explicit || existsSync(file)) {
    configFile = file;
    const fromFile = readYamlFile(file, env);
    for (const [key, value] of Object.entries(fromFile)) {
      raw[key] = value;
      markSources(sources, [key], value, { from: 'file', file });
    }
  }

  const leaves = schemaLeaves();
  const byEnv = new Map(leaves.map((l) => [l.env, l]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || name === `${ENV_PREFIX}CONFIG`) continue;
    const leaf = byEnv.get(name);
    if (!leaf) {
      throw new ConfigError(`unknown setting ${name} in the environment; known variables: ${[...byEnv.keys()].join(', ')}`);
    }
    let parsed: unknown = value;
    if (!leaf.plainString) {
      try {
        parsed = parseYamlValue(value);
      } catch (err) {
        throw new ConfigError(`invalid setting ${leaf.path.join('.')} from ${name}: ${(err as Error).message}`);
      }
    }
    setPath(raw, leaf.path, parsed);
    sources.set(leaf.path.join('.'), { from: 'env', name });
  }

  for (const [key, value] of Object.entries(opts.flags ?? {})) {
    if (value === undefined) continue;
    const p = key.split('.');
    setPath(raw, p, value);
    sources.set(key, { from: 'flag', key });
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues, sources, leaves));
  const parsed = result.data;

  // `upstream` and `upstreams` both set at the same level would leave the reader guessing which wins.
  if (parsed.upstream !== undefined && parsed.upstreams !== undefined) {
    throw new ConfigError(
      `settings upstream and upstreams are both set (${describe(sources.get('upstream'))}, ${describe(sources.get('upstreams'))}); keep one: upstream for a GOPROXY-style list, upstreams for priorities and credentials`,
    );
  }
  const listen = parseListen(parsed.listen) as { host: string; port: number };
  // The go command's own settings: the environment, else the go env file (`go env -w`).
  const goEnv = readGoEnv(env, opts.goEnv);
  const warnings: string[] = [...goEnv.warnings];
  const setting = (key: string): SettingOrigin => sources.get(key) ?? { from: 'default' };
  let upstreams: UpstreamSpec[];
  let upstreamOrigin: SettingOrigin;
  try {
    if (parsed.upstreams) {
      upstreams = fromStructured(parsed.upstreams, parsed);
      upstreamOrigin = setting('upstreams');
    } else if (parsed.upstream !== undefined) {
      upstreams = fromGoProxy(parsed.upstream, parsed);
      upstreamOrigin = setting('upstream');
    } else {
      ({ upstreams, origin: upstreamOrigin } = defaultUpstreams(goEnv, parsed, listen, warnings));
    }
  } catch (err) {
    if (err instanceof GoProxyListError || err instanceof ConfigError) {
      const key = parsed.upstreams ? 'upstreams' : 'upstream';
      const src = sources.get(key);
      throw new ConfigError(`invalid setting ${key}${src ? ` from ${describe(src)}` : ''}: ${err.message}`);
    }
    throw err;
  }
  if (upstreams.length === 0) {
    throw new ConfigError(
      'no upstream is configured: set upstream (GOMODPROXY_UPSTREAM) to a GOPROXY-style list such as https://proxy.golang.org,direct, or to off to serve only what is cached',
    );
  }

  let sumdb: GosumdbSetting | 'off';
  const goSumdb = parsed.sumdb === undefined ? goEnv.get('GOSUMDB') : undefined;
  const sumdbOrigin: SettingOrigin = parsed.sumdb !== undefined ? setting('sumdb') : (goSumdb?.origin ?? { from: 'default' });
  const sumdbSetting = parsed.sumdb ?? goSumdb?.value ?? GO_SUMDB_NAME;
  try {
    sumdb = parseGosumdb(sumdbSetting === '' ? GO_SUMDB_NAME : sumdbSetting);
  } catch (err) {
    throw new ConfigError(`invalid setting sumdb from ${describe(sumdbOrigin)}: ${(err as Error).message}`);
  }
  // As the go command: GONOSUMDB and GONOPROXY default to GOPRIVATE when unset or empty.
  const goPrivate = goEnv.get('GOPRIVATE');
  const noSumdbFrom = parsed.noSumdb === undefined ? (goEnv.get('GONOSUMDB') ?? goPrivate) : undefined;
  const noSumdb = parsed.noSumdb ?? noSumdbFrom?.value ?? '';
  const privateFrom = parsed.private === undefined ? (goEnv.get('GONOPROXY') ?? goPrivate) : undefined;
  const privatePatterns = parsed.private ?? privateFrom?.value ?? '';
  const insecureFrom = parsed.git.insecure === undefined ? goEnv.get('GOINSECURE') : undefined;
  const origins: SettingOrigins = {
    upstream: upstreamOrigin,
    sumdb: sumdbOrigin,
    noSumdb: parsed.noSumdb !== undefined ? setting('noSumdb') : (noSumdbFrom?.origin ?? { from: 'default' }),
    private: parsed.private !== undefined ? setting('private') : (privateFrom?.origin ?? { from: 'default' }),
    insecure: parsed.git.insecure !== undefined ? setting('git.insecure') : (insecureFrom?.origin ?? { from: 'default' }),
  };

  // `upstream: off` has always meant "the cache only"; offline mode makes that whole (no database,
  // no version control either), unless offline: false says the operator wants those still.
  const offline = parsed.offline ?? upstreams[0]?.kind === 'off';
  if (offline) {
    parsed.routes.forEach((r, i) => {
      if (r.sources !== undefined) warnings.push(`routes[${i}].sources (${r.sources}) is not used: gomodproxy is offline and fetches nothing`);
    });
    // The same file may serve a connected mirror and the offline copy of its data folder.
    if (parsed.sync.length > 0) {
      warnings.push(
        `sync (${parsed.sync.map((j) => j.name).join(', ')}) is not run: gomodproxy is offline and sync jobs need an upstream; run them on the connected mirror`,
      );
    }
  }

  const { upstream: _u, upstreams: _us, workers, sumdb: _s, noSumdb: _n, private: _p, offline: _o, ...rest } = parsed;
  const config: Config = {
    ...rest,
    offline,
    private: privatePatterns,
    sumdb,
    noSumdb,
    data: path.resolve(cwd, parsed.data),
    sync: parsed.sync.map((j) => (j.prefetch === undefined ? j : { ...j, prefetch: path.resolve(cwd, j.prefetch) })),
    // As the AWS tools: the region from the environment when the settings name none.
    store: parsed.store.type === 's3' ? { ...parsed.store, region: parsed.store.region ?? (env.AWS_REGION || 'us-east-1') } : parsed.store,
    git: { ...rest.git, insecure: parsed.git.insecure ?? insecureFrom?.value },
    workers: workers ?? Math.max(1, os.availableParallelism()),
    upstreams,
    origins,
    warnings,
  };
  if (configFile) config.configFile = configFile;
  return config;
}

function readYamlFile(file: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; check the path given by --config or GOMODPROXY_CONFIG`,
    );
  }
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0] as { message: string; linePos?: [{ line: number; col: number }] };
    const where = e.linePos ? `:${e.linePos[0].line}:${e.linePos[0].col}` : '';
    throw new ConfigError(`config file ${file}${where} is not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`config file ${file} must be a YAML mapping of settings (key: value), not a ${Array.isArray(value) ? 'list' : typeof value}`);
  }
  return interpolate(value as Record<string, unknown>, env, file, []) as Record<string, unknown>;
}

/** ${NAME} in a string takes the environment variable's value, so secrets need not live in the file. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv, file: string, at: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) {
        throw new ConfigError(
          `setting ${at.join('.')} in ${file} refers to \${${name}}, which is not set in the environment; set it or write the value in the file`,
        );
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, file, [...at, String(i)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, file, [...at, k])]));
  }
  return value;
}

function parseYamlValue(text: string): unknown {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new Error((doc.errors[0] as Error).message.split('\n')[0]);
  return doc.toJS();
}

function setPath(obj: Record<string, unknown>, p: string[], value: unknown): void {
  let cur = obj;
  for (const key of p.slice(0, -1)) {
    const next = cur[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[p[p.length - 1] as string] = value;
}

function markSources(sources: Map<string, Source>, p: string[], value: unknown, src: Source): void {
  sources.set(p.join('.'), src);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) markSources(sources, [...p, k], v, src);
  }
}

function describe(src: Source | undefined): string {
  return src ? describeOrigin(src) : 'the defaults';
}

/** Where a setting came from, as a log line or an error message says it. */
export function describeOrigin(src: SettingOrigin): string {
  switch (src.from) {
    case 'default':
      return 'the defaults';
    case 'env':
      return `environment variable ${src.name}`;
    case 'file':
      return `config file ${src.file}`;
    case 'flag':
      return `the command line (--${src.key === 'log.access' ? 'no-access-log' : src.key.replace(/\./g, '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)})`;
    case 'go-env':
      return `${src.name} in the environment`;
    case 'go-env-file':
      return `${src.name} in the go env file ${src.file}`;
  }
}

type ZodNode = z.ZodType & { def: { type: string; innerType?: ZodNode; in?: ZodNode; shape?: Record<string, ZodNode>; options?: ZodNode[] } };

/**
 * The settings an object holds; for a union of objects (store: fs | s3), those of every variant,
 * so each variant's keys are settable one by one (GOMODPROXY_STORE_TYPE, GOMODPROXY_STORE_BUCKET).
 */
function shapeOf(node: ZodNode): Record<string, ZodNode> | undefined {
  if (node.def.type === 'object') return node.def.shape;
  if (node.def.type !== 'union' || !node.def.options) return undefined;
  const variants = node.def.options.map((o) => unwrap(o));
  if (!variants.every((v) => v.def.type === 'object' && v.def.shape)) return undefined;
  const merged: Record<string, ZodNode> = {};
  for (const v of variants) for (const [k, child] of Object.entries(v.def.shape ?? {})) merged[k] ??= child;
  return merged;
}

function unwrap(node: ZodNode): ZodNode {
  let n = node;
  for (;;) {
    const d = n.def;
    if ((d.type === 'default' || d.type === 'prefault' || d.type === 'optional' || d.type === 'nullable') && d.innerType) n = d.innerType;
    else if (d.type === 'pipe' && d.in) n = d.in;
    else return n;
  }
}

let leafCache: Leaf[] | undefined;

/** Every setting, with the environment variable that sets it (camelCase path -> UPPER_SNAKE). */
export function schemaLeaves(): Leaf[] {
  if (leafCache) return leafCache;
  const out: Leaf[] = [];
  const walk = (node: ZodNode, p: string[]): void => {
    const n = unwrap(node);
    const shape = shapeOf(n);
    if (shape) {
      for (const [k, child] of Object.entries(shape)) walk(child, [...p, k]);
      return;
    }
    out.push({ path: p, env: envName(p), plainString: n.def.type === 'string' });
  };
  walk(configSchema as unknown as ZodNode, []);
  leafCache = out;
  return out;
}

export function envName(p: string[]): string {
  return ENV_PREFIX + p.map((s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function knownKeysAt(p: PropertyKey[]): string[] {
  let node = unwrap(configSchema as unknown as ZodNode);
  for (const seg of p) {
    if (typeof seg !== 'string') {
      // Inside an array: step into the element type (unless the key before it did).
      const el = (node.def as unknown as { element?: ZodNode }).element;
      if (node.def.type === 'array' && el) node = unwrap(el);
      continue;
    }
    const child = shapeOf(node)?.[seg];
    if (!child) return [];
    node = unwrap(child);
    const el = (node.def as unknown as { element?: ZodNode }).element;
    if (node.def.type === 'array' && el) node = unwrap(el);
  }
  return Object.keys(shapeOf(node) ?? {});
}

function formatIssues(issues: z.core.$ZodIssue[], sources: Map<string, Source>, leaves: Leaf[]): string {
  const lines = issues.map((issue) => {
    const p = issue.path.map(String);
    const key = settingName(issue.path) || '(top level)';
    if (issue.code === 'unrecognized_keys') {
      const where = describe(sources.get(p.join('.')) ?? nearestSource(sources, p) ?? (p.length === 0 ? findFileSource(sources) : undefined));
      const known = knownKeysAt(issue.path);
      return `unknown setting ${issue.keys.map((k) => settingName([...issue.path, k])).join(', ')} in ${where}; known settings${p.length ? ` under ${key}` : ''}: ${known.join(', ')}`;
    }
    const src = sources.get(p.join('.')) ?? nearestSource(sources, p);
    // The setting itself, or the list/object setting that holds it (upstreams.0.balance -> upstreams).
    const leaf = leaves.find((l) => l.path.length <= p.length && l.path.every((seg, i) => seg === p[i]));
    const envHint = leaf && src?.from !== 'env' ? ` (also settable as ${leaf.env})` : '';
    return `invalid setting ${key}${src ? ` from ${describe(src)}` : ''}: ${issue.message}${envHint}`;
  });
  return lines.join('\n');
}

/** A setting as messages write it: sync[0].schedule, not sync.0.schedule. */
function settingName(p: readonly PropertyKey[]): string {
  return p.map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : `${i > 0 ? '.' : ''}${String(seg)}`)).join('');
}

function findFileSource(sources: Map<string, Source>): Source | undefined {
  for (const s of sources.values()) if (s.from === 'file') return s;
  return undefined;
}

function nearestSource(sources: Map<string, Source>, p: string[]): Source | undefined {
  for (let i = p.length - 1; i > 0; i--) {
    const s = sources.get(p.slice(0, i).join('.'));
    if (s) return s;
  }
  return undefined;
}

function fromGoProxy(value: string, cfg: ParsedConfig): UpstreamSpec[] {
  return parseGoProxyList(value).map((e, i) => toSpec(e, i, cfg.balance, cfg.timeouts));
}

function toSpec(e: GoProxyEntry, priority: number, balance: Balance, timeouts: Timeouts): UpstreamSpec {
  const spec: UpstreamSpec = {
    kind: e.kind,
    url: e.kind === 'proxy' ? e.url : e.kind,
    priority,
    balance,
    fallthrough: e.fallthrough,
    timeouts,
  };
  if (e.kind === 'proxy') {
    // Credentials in the URL become auth headers: they must never appear in logs or error lines.
    const u = new URL(e.url);
    if (u.username || u.password) {
      spec.auth = { kind: 'basic', username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
      u.username = '';
      u.password = '';
      spec.url = u.toString().replace(/\/+$/, '');
    }
  }
  return spec;
}

function fromStructured(list: UpstreamInput[], cfg: ParsedConfig): UpstreamSpec[] {
  const specs = list.map((u, i) => {
    const entries = parseGoProxyList(u.url);
    if (entries.length !== 1 || u.url.includes(',') || u.url.includes('|')) {
      throw new ConfigError(`upstreams[${i}].url must be one URL, direct or off, not a list ("${u.url}"); give each upstream its own entry`);
    }
    const base = toSpec(entries[0] as GoProxyEntry, u.priority, u.balance ?? cfg.balance, {
      connect: u.timeouts?.connect ?? cfg.timeouts.connect,
      firstByte: u.timeouts?.firstByte ?? cfg.timeouts.firstByte,
      idle: u.timeouts?.idle ?? cfg.timeouts.idle,
    });
    base.fallthrough = u.fallthrough;
    if (u.token !== undefined && (u.username !== undefined || u.password !== undefined)) {
      throw new ConfigError(`upstreams[${i}] sets both token and username/password; choose bearer (token) or basic (username, password)`);
    }
    if (u.token !== undefined) base.auth = { kind: 'bearer', token: u.token };
    else if (u.username !== undefined || u.password !== undefined) {
      base.auth = { kind: 'basic', username: u.username ?? '', password: u.password ?? '' };
    }
    if (base.auth && base.kind !== 'proxy') {
      throw new ConfigError(`upstreams[${i}] (${base.url}) cannot carry credentials; only proxy URLs can`);
    }
    return base;
  });
  // Replicas of one priority must agree on how they are balanced and on the fall-through after them.
  const byPriority = new Map<number, UpstreamSpec>();
  for (const s of specs) {
    const first = byPriority.get(s.priority);
    if (!first) byPriority.set(s.priority, s);
    else if (first.balance !== s.balance || first.fallthrough !== s.fallthrough) {
      throw new ConfigError(
        `upstreams of priority ${s.priority} disagree on balance or fallthrough (${first.url}: ${first.balance}/${first.fallthrough}, ${s.url}: ${s.balance}/${s.fallthrough}); set the same values on each`,
      );
    }
  }
  return specs.sort((a, b) => a.priority - b.priority);
}

/**
 * With no upstream configured: GOPROXY as the go command sees it (environment, else go env file),
 * minus `off` and anything that points at this server, each dropped entry named in a warning;
 * else Go's default.
 */
function defaultUpstreams(
  goEnv: GoEnv,
  cfg: ParsedConfig,
  listen: { host: string; port: number },
  warnings: string[],
): { upstreams: UpstreamSpec[]; origin: SettingOrigin } {
  const goproxy = goEnv.get('GOPROXY');
  const isSelf = (url: string): boolean => {
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
      const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
      if (port !== listen.port) return false;
      const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
      const local = ['localhost', '127.0.0.1', '::1', '0.0.0.0', '::', os.hostname().toLowerCase()];
      return local.includes(host) || host === listen.host.toLowerCase() || host.startsWith('127.');
    } catch {
      return false;
    }
  };
  const fallback = (): { upstreams: UpstreamSpec[]; origin: SettingOrigin } => ({ upstreams: fromGoProxy(DEFAULT_GOPROXY, cfg), origin: { from: 'default' } });
  const value = goproxy?.value.trim();
  if (!goproxy || !value) return fallback();
  const where = describeOrigin(goproxy.origin);
  // `off` would end the list before anything useful (the go command stops there): it is dropped
  // with its separator wherever it stands, and a server asked for `off` says so with upstream: off.
  let offs = 0;
  const withoutOff = value
    .split(/([,|])/)
    .reduce<string[]>((acc, part) => {
      if (part.trim() !== 'off') acc.push(part);
      else {
        offs++;
        acc.pop();
      }
      return acc;
    }, [])
    .join('');
  if (offs > 0) {
    warnings.push(
      `GOPROXY entry off (from ${where}) is not used: it would leave gomodproxy nothing to fetch from; set upstream: off (GOMODPROXY_UPSTREAM=off) to serve only the cache`,
    );
  }
  let entries: GoProxyEntry[];
  try {
    entries = parseGoProxyList(withoutOff);
  } catch (err) {
    throw new ConfigError(`GOPROXY (from ${where}) is not a valid list: ${(err as Error).message}; fix it, or set upstream (GOMODPROXY_UPSTREAM)`);
  }
  const kept: GoProxyEntry[] = [];
  for (const e of entries) {
    if (e.kind === 'proxy' && isSelf(e.url)) {
      warnings.push(
        `GOPROXY entry ${formatGoProxyList([{ ...e, fallthrough: 'not-found' }])} (from ${where}) points at this gomodproxy (${cfg.listen}) and is dropped from its upstreams; it would ask itself`,
      );
      continue;
    }
    kept.push(e);
  }
  if (kept.length === 0) {
    warnings.push(`GOPROXY (from ${where}) names no upstream gomodproxy can use; using Go's default ${DEFAULT_GOPROXY}`);
    return fallback();
  }
  return { upstreams: kept.map((e, i) => toSpec(e, i, cfg.balance, cfg.timeouts)), origin: goproxy.origin };
}
