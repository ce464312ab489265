// The pure half of `gomodproxy doctor`: given the go command's settings (as `go env -json` reports
// them), the environment and the answers the network gave, decide each finding. Every rule here is
// the go command's own (GO-MODULES.md §1.4, §1.6, §1.8, §9 and net/http's proxy rules), because
// the question a finding answers is "what will the go command do", not "what would be sensible".
import { GoProxyListError, parseGoProxyList, redactURL, type Fallthrough, type GoProxyEntry } from '../../config/index.js';
import { matchPrefixPatterns } from '../../module/index.js';
import { GO_SUMDB_NAME, parseGosumdb } from '../../sumdb/index.js';

export type Status = 'ok' | 'warn' | 'fail';

export interface Finding {
  status: Status;
  /** A short stable name: goproxy, netrc, tls, ... */
  check: string;
  /** What was found, one line. */
  message: string;
  /** What to do about it, one line; absent when nothing needs doing. */
  fix?: string;
}

/** The one-line form: `ok|warn|fail <check>: <what> — <fix>`. */
export function formatFinding(f: Finding): string {
  return `${f.status} ${f.check}: ${f.message}${f.fix ? ` — ${f.fix}` : ''}`;
}

/** Where a go setting came from, for messages ("the environment", "the go env file /x/env", "the default"). */
export type SettingSource = { kind: 'env' } | { kind: 'file'; file: string } | { kind: 'default' } | { kind: 'goprivate'; of: SettingSource };

export function describeSource(s: SettingSource): string {
  switch (s.kind) {
    case 'env':
      return 'the environment';
    case 'file':
      return `the go env file ${s.file}`;
    case 'default':
      return 'the default';
    case 'goprivate':
      return `GOPRIVATE in ${describeSource(s.of)}`;
  }
}

/** How to set a go variable so that it takes effect: `go env -w` cannot override the environment. */
export function setHint(name: string, value: string, source: SettingSource): string {
  const assignment = shellQuote(`${name}=${value}`);
  const from = source.kind === 'goprivate' ? source.of : source;
  return from.kind === 'env' ? `export ${assignment} (${name} is set in the environment, which overrides go env -w)` : `go env -w ${assignment}`;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_=:/.,@+*-]*$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A GOPROXY value with any user:password of its URLs removed. */
export function redactList(value: string): string {
  return value.replace(/\/\/[^/@,|\s]*@/g, '//');
}

/** A proxy URL's identity for comparing: scheme, host (default port dropped), path; no user, no trailing slash. */
export function proxyKey(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return url.replace(/\/+$/, '');
  }
}

interface ListItem {
  /** The entry as written, trimmed. */
  text: string;
  /** The separator after it: decides what falls through to the next entry. */
  fallthrough: Fallthrough;
  entry?: GoProxyEntry;
  error?: string;
}

/** Every entry of a GOPROXY value, including those after direct/off that the go command never reads. */
function listItems(value: string): ListItem[] {
  const items: ListItem[] = [];
  let rest = value;
  while (rest !== '') {
    const cut = rest.search(/[,|]/);
    const raw = cut >= 0 ? rest.slice(0, cut) : rest;
    const fallthrough: Fallthrough = cut >= 0 && rest[cut] === '|' ? 'any' : 'not-found';
    rest = cut >= 0 ? rest.slice(cut + 1) : '';
    const text = raw.trim();
    if (text === '') continue;
    try {
      const [entry] = parseGoProxyList(text);
      items.push({ text, fallthrough, entry: entry && { ...entry, fallthrough } });
    } catch (err) {
      items.push({ text, fallthrough, error: err instanceof GoProxyListError ? err.message : String(err) });
    }
  }
  return items;
}

/** The first http(s) proxy the go command would ask, or undefined (the URL doctor checks by default). */
export function firstHttpProxy(goproxy: string): string | undefined {
  for (const item of listItems(goproxy)) {
    if (!item.entry || item.entry.kind !== 'proxy') return undefined;
    if (/^https?:/.test(item.entry.url)) return item.entry.url;
  }
  return undefined;
}

/** The separator after `target` in GOPROXY: what the go command does with its errors (undefined if absent). */
export function entryFallthrough(goproxy: string, target: string): Fallthrough | undefined {
  const key = proxyKey(target);
  for (const item of listItems(goproxy)) {
    if (!item.entry || item.entry.kind !== 'proxy') return undefined;
    if (proxyKey(item.entry.url) === key) return item.fallthrough;
  }
  return undefined;
}

/** Where `target` stands in the go command's GOPROXY list, and what that means. */
export function checkGoProxy(goproxy: string, target: string, source: SettingSource): Finding {
  const check = 'goproxy';
  const shown = `GOPROXY=${redactList(goproxy)} (from ${describeSource(source)})`;
  const t = redactURL(target);
  const fix = setHint('GOPROXY', `${t},direct`, source);
  const items = listItems(goproxy);
  const key = proxyKey(target);
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (item.error !== undefined) {
      return { status: 'fail', check, message: `${shown}: ${item.error}; the go command refuses to fetch anything`, fix };
    }
    const entry = item.entry!;
    if (entry.kind === 'off') {
      const what =
        i === 0 ? 'off: the go command fetches nothing (only GONOPROXY modules, straight from version control)' : `off comes before ${t}, which is never asked`;
      return { status: 'fail', check, message: `${shown}: ${what}`, fix };
    }
    if (entry.kind === 'direct') {
      const what =
        i === 0 ? `direct: the go command fetches from version control itself and never asks ${t}` : `direct comes before ${t}, which is never asked`;
      return { status: 'fail', check, message: `${shown}: ${what}`, fix };
    }
    if (proxyKey(entry.url) !== key) continue;
    if (/^http:\/\/[^/]*@/.test(entry.url)) {
      return {
        status: 'fail',
        check,
        message: `${shown}: the entry for ${t} carries a user and password over http://, which the go command refuses ("refusing to pass credentials to insecure URL")`,
        fix: 'take the credentials out of GOPROXY: use https:// with a .netrc entry',
      };
    }
    const next = items[i + 1];
    const nextName = next ? redactURL(next.entry?.kind === 'proxy' ? next.entry.url : next.text) : undefined;
    const after = !next
      ? 'nothing comes after it, so its 404/410 answers are final'
      : item.fallthrough === 'any'
        ? `"|" after it: any error from it (even 401, 403, 5xx) falls through to ${nextName}, whose error is then the one you see`
        : `"," after it: only its 404/410 answers fall through to ${nextName}; other errors (401, 403, 5xx) stop the go command with the proxy's message`;
    if (i === 0) return { status: 'ok', check, message: `${shown}: ${t} is asked first; ${after}` };
    const before = items
      .slice(0, i)
      .map((x) => redactURL(x.entry?.kind === 'proxy' ? x.entry.url : x.text))
      .join(', ');
    return {
      status: 'warn',
      check,
      message: `${shown}: ${before} is asked before ${t}, which sees only what the earlier entries answer 404/410 for (or fail on, after "|")`,
      fix: `to ask it first: ${fix}`,
    };
  }
  return { status: 'fail', check, message: `${shown} does not name ${t}: the go command never asks it`, fix };
}

/** Patterns with spaces around them never match: the go command does not trim them (GO-MODULES.md §9). */
function spacedPatterns(patterns: string): string[] {
  return patterns.split(',').filter((p) => p !== p.trim() && p.trim() !== '');
}

export interface GoSettings {
  GOPROXY: string;
  GOPRIVATE: string;
  /** As the go command resolves it: GOPRIVATE when unset. */
  GONOPROXY: string;
  /** As the go command resolves it: GOPRIVATE when unset. */
  GONOSUMDB: string;
  GOSUMDB: string;
  GOINSECURE: string;
  GOFLAGS: string;
  /** Absent before Go 1.24, which has no GOAUTH (netrc only). */
  GOAUTH: string | undefined;
  GOVERSION: string;
}

/** Does GONOPROXY (or GOPRIVATE) send the module past every proxy? */
export function checkNoProxy(s: GoSettings, module: string, source: SettingSource): Finding {
  const check = 'gonoproxy';
  const spaced = spacedPatterns(s.GONOPROXY);
  const name = source.kind === 'goprivate' ? 'GOPRIVATE' : 'GONOPROXY';
  const value = source.kind === 'goprivate' ? s.GOPRIVATE : s.GONOPROXY;
  const shown = `${name}=${value} (from ${describeSource(source.kind === 'goprivate' ? source.of : source)})`;
  if (s.GONOPROXY === '' || s.GONOPROXY === 'none') {
    return {
      status: 'ok',
      check,
      message: `${s.GONOPROXY === 'none' ? 'GONOPROXY=none' : 'GOPRIVATE and GONOPROXY are not set'}: every module goes through GOPROXY`,
    };
  }
  if (matchPrefixPatterns(s.GONOPROXY, module)) {
    return {
      status: 'warn',
      check,
      message: `${shown} matches ${module}: the go command fetches it straight from its version control and bypasses the proxy`,
      fix: `if the proxy should serve it: ${setHint('GONOPROXY', 'none', source.kind === 'goprivate' ? source.of : source)}${
        name === 'GOPRIVATE' ? ' (GOPRIVATE still keeps it away from the checksum database)' : ''
      }`,
    };
  }
  if (spaced.length > 0) {
    return {
      status: 'warn',
      check,
      message: `${shown}: the pattern ${JSON.stringify(spaced[0])} has spaces, which the go command keeps, so it matches nothing`,
      fix: 'write the patterns without spaces: a.example/*,b.example',
    };
  }
  return { status: 'ok', check, message: `${shown} does not match ${module}: it goes through GOPROXY` };
}

export interface SumdbPlan {
  finding: Finding;
  /** The database to ask the proxy about (`<url>/sumdb/<name>/supported`), when the go command would. */
  probe?: string;
}

/** GOSUMDB and GONOSUMDB: is there a database, is it reached through the proxy, is the module looked up? */
export function checkGoSumdb(s: GoSettings, module: string, source: SettingSource, noSumdbSource: SettingSource): SumdbPlan {
  const check = 'gosumdb';
  const shown = `GOSUMDB=${redactList(s.GOSUMDB)} (from ${describeSource(source)})`;
  let setting;
  try {
    setting = parseGosumdb(s.GOSUMDB);
  } catch (err) {
    return { finding: { status: 'fail', check, message: `${shown}: ${(err as Error).message}`, fix: setHint('GOSUMDB', GO_SUMDB_NAME, source) } };
  }
  if (setting === 'off') {
    return {
      finding: {
        status: 'warn',
        check,
        message: `${shown}: downloads are checked against no checksum database, only against go.sum`,
        fix: `unless this machine can reach no database, ${source.kind === 'env' ? 'unset GOSUMDB' : 'go env -u GOSUMDB'}; keep private modules out with GONOSUMDB`,
      },
    };
  }
  const skipped = matchPrefixPatterns(s.GONOSUMDB, module)
    ? `; ${module} matches GONOSUMDB=${s.GONOSUMDB} (from ${describeSource(noSumdbSource)}), so its hashes are not looked up`
    : '';
  if (setting.url) {
    return {
      finding: {
        status: 'ok',
        check,
        message: `${shown}: the go command reaches ${setting.name} at ${redactURL(setting.url)} itself, not through the proxy${skipped}`,
      },
    };
  }
  return {
    finding: {
      status: 'ok',
      check,
      message: `${shown}: the go command asks the proxy whether it serves ${setting.name} before going to https://${setting.name}${skipped}`,
    },
    probe: setting.name,
  };
}

/** GOINSECURE concerns direct fetches only; an http:// proxy needs none. */
export function checkGoInsecure(s: GoSettings, target: string, module: string): Finding {
  const check = 'goinsecure';
  const http = target.startsWith('http:');
  const note = http ? `${redactURL(target)} is http://, which the go command allows for a GOPROXY without GOINSECURE, but it sends no credentials over it` : '';
  if (s.GOINSECURE === '') return { status: 'ok', check, message: note || 'GOINSECURE is not set (a proxy never needs it)' };
  const matches = matchPrefixPatterns(s.GOINSECURE, module) ? ` (it matches ${module})` : '';
  return {
    status: 'ok',
    check,
    message: `GOINSECURE=${s.GOINSECURE}${matches} affects only direct fetches from version control, never a proxy or the checksum database${note ? `; ${note}` : ''}`,
  };
}

/** GOFLAGS entries that change whether modules are fetched at all. */
export function checkGoFlags(s: GoSettings): Finding {
  const check = 'goflags';
  const flags = s.GOFLAGS.split(/\s+/).filter((f) => f !== '');
  if (flags.length === 0) return { status: 'ok', check, message: 'GOFLAGS is not set' };
  const shown = `GOFLAGS=${s.GOFLAGS}`;
  if (flags.some((f) => /^--?mod=vendor$/.test(f))) {
    return {
      status: 'warn',
      check,
      message: `${shown}: -mod=vendor makes builds use the module's vendor folder and download nothing, through the proxy or otherwise`,
      fix: 'drop -mod=vendor from GOFLAGS if modules should be downloaded (go env -w GOFLAGS=... or unset it)',
    };
  }
  if (flags.some((f) => /^--?insecure(=|$)/.test(f))) {
    return {
      status: 'warn',
      check,
      message: `${shown}: -insecure is obsolete (GOINSECURE replaced it) and has no effect on proxies`,
      fix: 'drop -insecure from GOFLAGS',
    };
  }
  return { status: 'ok', check, message: shown };
}

export interface GoAuthPlan {
  finding: Finding;
  /** Whether the go command reads .netrc. */
  netrc: boolean;
  /** Other credential sources it runs (git helpers, commands), which doctor cannot see into. */
  others: string[];
}

/** GOAUTH (Go 1.24+): which credential sources the go command consults, in its order. */
export function checkGoAuth(s: GoSettings, source: SettingSource): GoAuthPlan {
  const check = 'goauth';
  if (s.GOAUTH === undefined) {
    return { finding: { status: 'ok', check, message: `${s.GOVERSION || 'this go'} has no GOAUTH: credentials come from .netrc` }, netrc: true, others: [] };
  }
  const shown = `GOAUTH=${s.GOAUTH} (from ${describeSource(source)})`;
  const commands = s.GOAUTH.split(';')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  const words = commands.map((c) => c.split(/\s+/));
  if (words.some((w) => w[0] === 'off')) {
    if (commands.length > 1) {
      return {
        finding: {
          status: 'fail',
          check,
          message: `${shown}: off cannot be combined with other methods; the go command stops with an error`,
          fix: setHint('GOAUTH', 'netrc', source),
        },
        netrc: false,
        others: [],
      };
    }
    return { finding: { status: 'ok', check, message: `${shown}: the go command sends no credentials` }, netrc: false, others: [] };
  }
  const others: string[] = [];
  for (const w of words) {
    if (w[0] === 'netrc') continue;
    if (w[0] === 'git') {
      if (w.length !== 2 || !w[1]!.startsWith('/')) {
        return {
          finding: {
            status: 'fail',
            check,
            message: `${shown}: "git" needs exactly one absolute directory; the go command stops with an error`,
            fix: 'write GOAUTH="git /abs/dir"',
          },
          netrc: false,
          others: [],
        };
      }
      others.push(`git credential helpers (for ${w[1]})`);
    } else {
      // Only the program's name: its arguments may carry anything.
      others.push(`the command ${w[0]}`);
    }
  }
  const netrc = words.some((w) => w[0] === 'netrc');
  const parts = [...(netrc ? ['.netrc'] : []), ...others];
  return { finding: { status: 'ok', check, message: `${shown}: credentials come from ${parts.join(', then ')}` }, netrc, others };
}

export interface NetrcEntry {
  machine: string;
  login: string;
  password: string;
}

/** .netrc as cmd/go/internal/auth reads it: machine/login/password triples, a macdef skipped, stop at default. */
export function parseNetrc(data: string): NetrcEntry[] {
  const out: NetrcEntry[] = [];
  let l: NetrcEntry = { machine: '', login: '', password: '' };
  let inMacro = false;
  for (const line of data.split('\n')) {
    if (inMacro) {
      if (line === '') inMacro = false;
      continue;
    }
    const f = line.split(/\s+/).filter((x) => x !== '');
    let i = 0;
    for (; i < f.length - 1; i += 2) {
      switch (f[i]) {
        case 'machine':
          l = { machine: f[i + 1]!, login: '', password: '' };
          break;
        case 'login':
          l.login = f[i + 1]!;
          break;
        case 'password':
          l.password = f[i + 1]!;
          break;
        case 'macdef':
          inMacro = true;
          break;
      }
      if (l.machine !== '' && l.login !== '' && l.password !== '') {
        out.push(l);
        l = { machine: '', login: '', password: '' };
      }
    }
    if (i < f.length && f[i] === 'default') break;
  }
  return out;
}

/** Go 1.24 replaced the host-name match of .netrc with GOAUTH's host[:port]/path prefixes. */
export function keysNetrcByPort(goversion: string): boolean {
  const m = /go1\.(\d+)/.exec(goversion);
  return !m || Number(m[1]) >= 24;
}

export interface NetrcMatch {
  /** The entry the go command would use for requests to the URL. */
  entry?: NetrcEntry;
  /** What the go command looks the URL up by (host:port for a non-default port). */
  key: string;
  /** An entry that looks meant for this host but that the go command will not use (wrong or missing port). */
  near?: NetrcEntry;
}

/** Which .netrc entry the go command would use for `url`, by its rules for the Go version. */
export function matchNetrc(entries: readonly NetrcEntry[], url: string, byPort: boolean): NetrcMatch {
  const u = new URL(url);
  if (!byPort) {
    const entry = entries.find((e) => e.machine === u.hostname);
    const near = entry ? undefined : entries.find((e) => e.machine.startsWith(`${u.hostname}:`) || e.machine.startsWith(`${u.hostname}/`));
    return { entry, key: u.hostname, near };
  }
  // The first entry for a machine wins; lookups try host[:port]/path, then each shorter path.
  const byMachine = new Map<string, NetrcEntry>();
  for (const e of entries) if (!byMachine.has(e.machine)) byMachine.set(e.machine, e);
  let prefix = `${u.host}${u.pathname.replace(/\/+$/, '')}`;
  for (;;) {
    const entry = byMachine.get(prefix);
    if (entry) return { entry, key: u.host };
    const slash = prefix.lastIndexOf('/');
    if (slash < 0) break;
    prefix = prefix.slice(0, slash);
  }
  const near = entries.find((e) => {
    const host = e.machine.split('/')[0]!;
    return host === u.hostname || host.startsWith(`${u.hostname}:`);
  });
  return { key: u.host, near };
}

/** The netrc finding: is there a line the go command will use for the proxy? */
export function checkNetrc(
  file: string,
  read: { text: string } | { missing: true } | { error: string },
  target: string,
  goauth: GoAuthPlan,
  byPort: boolean,
): { finding: Finding; match?: NetrcMatch } {
  const check = 'netrc';
  if (!goauth.netrc) return { finding: { status: 'ok', check, message: `not read: GOAUTH does not name netrc` } };
  if (!target.startsWith('https:')) {
    return { finding: { status: 'ok', check, message: `not used for ${redactURL(target)}: the go command sends credentials only over https://` } };
  }
  const host = new URL(target).host;
  if ('missing' in read)
    return {
      finding: { status: 'ok', check, message: `${file} does not exist: no credentials for ${host} (needed only if the proxy asks)` },
      match: { key: host },
    };
  if ('error' in read) {
    return {
      finding: {
        status: 'warn',
        check,
        message: `cannot read ${file} (${read.error}); the go command cannot either, and sends no credentials`,
        fix: `make ${file} readable by you (chmod 600)`,
      },
      match: { key: host },
    };
  }
  const match = matchNetrc(parseNetrc(read.text), target, byPort);
  if (match.entry) {
    return {
      finding: {
        status: 'ok',
        check,
        message: `${file} has machine ${match.entry.machine} (login ${match.entry.login}): the go command sends it to ${redactURL(target)}`,
      },
      match,
    };
  }
  if (match.near) {
    const why = byPort
      ? `the go command looks credentials up by ${match.key} (host with its port when the port is not 443) and will not use that line`
      : 'this go command (before Go 1.24) matches the host name alone and will not use that line';
    return {
      finding: {
        status: 'warn',
        check,
        message: `${file} has machine ${match.near.machine} but no machine ${match.key}: ${why}`,
        fix: `change the line to machine ${match.key}`,
      },
      match,
    };
  }
  return { finding: { status: 'ok', check, message: `${file} has no machine ${match.key} (needed only if the proxy asks for credentials)` }, match };
}

export interface ProxyChoice {
  /** The HTTP proxy the go command connects through, or undefined for a direct connection. */
  via?: URL;
  finding: Finding;
}

function envAny(env: NodeJS.ProcessEnv, ...names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value) return { name, value };
  }
  return undefined;
}

function parseProxyEnv(value: string): URL | undefined {
  const tryParse = (s: string): URL | undefined => {
    try {
      const u = new URL(s);
      return u.host !== '' ? u : undefined;
    } catch {
      return undefined;
    }
  };
  // As net/http: a value without a scheme (proxy.corp:3128) is taken as http://.
  return tryParse(value) ?? tryParse(`http://${value}`);
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (/^127\.\d+\.\d+\.\d+$/.test(host)) return true;
  return host === '::1' || host === '[::1]';
}

function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** Does one NO_PROXY entry cover host:port? (golang.org/x/net/http/httpproxy rules.) */
function noProxyCovers(entry: string, host: string, port: string): boolean {
  const p = entry.trim().toLowerCase();
  if (p === '') return false;
  if (p === '*') return true;
  const cidr = /^([\d.]+)\/(\d+)$/.exec(p);
  if (cidr) {
    const base = ipv4ToInt(cidr[1]!);
    const ip = ipv4ToInt(host);
    const bits = Number(cidr[2]);
    if (base === undefined || ip === undefined || bits > 32) return false;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return (base & mask) === (ip & mask);
  }
  let phost = p;
  let pport = '';
  const hp = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(p);
  if (hp) {
    phost = hp[1]!.replace(/^\[|\]$/g, '');
    pport = hp[2]!;
  }
  if (phost === '') return false;
  if (ipv4ToInt(phost) !== undefined || phost.includes(':')) return phost === host.replace(/^\[|\]$/g, '') && (pport === '' || pport === port);
  if (phost.startsWith('*.')) phost = phost.slice(1);
  const matchHost = !phost.startsWith('.');
  if (matchHost) phost = `.${phost}`;
  const h = host.toLowerCase();
  if (h.endsWith(phost) || (matchHost && h === phost.slice(1))) return pport === '' || pport === port;
  return false;
}

/** Would the go command reach `target` through an HTTP proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)? */
export function checkHttpProxy(target: string, env: NodeJS.ProcessEnv): ProxyChoice {
  const check = 'http-proxy';
  const u = new URL(target);
  const https = u.protocol === 'https:';
  const host = u.hostname.toLowerCase();
  const port = u.port || (https ? '443' : '80');
  const proxyVar = https ? envAny(env, 'HTTPS_PROXY', 'https_proxy') : envAny(env, 'HTTP_PROXY', 'http_proxy');
  const noProxy = envAny(env, 'NO_PROXY', 'no_proxy');
  const wanted = https ? 'HTTPS_PROXY/https_proxy' : 'HTTP_PROXY/http_proxy';
  if (!proxyVar) return { finding: { status: 'ok', check, message: `no ${wanted} is set: the go command connects to ${u.host} directly` } };
  const shownProxy = `${proxyVar.name}=${redactURL(proxyVar.value)}`;
  if (isLoopback(host)) {
    return { finding: { status: 'ok', check, message: `${u.hostname} is loopback: the go command never uses ${shownProxy} for it` } };
  }
  if (noProxy && noProxy.value.split(',').some((e) => noProxyCovers(e, host, port))) {
    return {
      finding: {
        status: 'ok',
        check,
        message: `${noProxy.name}=${noProxy.value} covers ${u.hostname}: the go command connects directly, not through ${shownProxy}`,
      },
    };
  }
  const via = parseProxyEnv(proxyVar.value);
  if (!via) return { finding: { status: 'ok', check, message: `${shownProxy} is not a URL; the go command ignores it and connects directly` } };
  if (!https && env.REQUEST_METHOD) {
    return {
      finding: {
        status: 'fail',
        check,
        message: `${shownProxy} with REQUEST_METHOD set (a CGI environment): the go command refuses to use HTTP_PROXY there`,
        fix: `unset HTTP_PROXY or add ${u.hostname} to NO_PROXY`,
      },
    };
  }
  return {
    via,
    finding: {
      status: 'ok',
      check,
      message: `the go command reaches ${u.host} through ${shownProxy}${noProxy ? ` (${noProxy.name}=${noProxy.value} does not cover it)` : ''}; the checks below go the same way`,
      fix: `if that proxy cannot reach ${u.hostname}, add it to NO_PROXY`,
    },
  };
}

/** The outcome of one HTTP request doctor made. */
export type HttpOutcome = { status: number; line: string; body: string } | { error: string; code?: string };

function answer(r: { status: number; line: string }): string {
  return r.line ? `${r.status}: ${r.line}` : String(r.status);
}

/** /healthz: the process answers HTTP at all. */
export function healthzFinding(target: string, r: HttpOutcome): Finding {
  const check = 'healthz';
  const url = `${redactURL(target)}/healthz`;
  if ('error' in r) return { status: 'fail', check, message: `GET ${url}: ${r.error}`, fix: httpErrorFix(target, r) };
  if (r.status === 200) return { status: 'ok', check, message: `GET ${url}: 200 ${r.line}`.trimEnd() };
  return {
    status: 'fail',
    check,
    message: `GET ${url}: ${answer(r)}`,
    fix:
      r.status === 404
        ? 'the URL may lack the path prefix the server is configured with (path-prefix), or something else answers there'
        : 'look at the server log and whatever stands in front of it (a load balancer)',
  };
}

/** /readyz: the instance can serve (storage, upstreams); degraded still serves. */
export function readyzFinding(target: string, r: HttpOutcome): Finding {
  const check = 'readyz';
  const url = `${redactURL(target)}/readyz`;
  if ('error' in r) return { status: 'fail', check, message: `GET ${url}: ${r.error}`, fix: httpErrorFix(target, r) };
  if (r.status === 200 && r.line.startsWith('ready, degraded')) {
    return {
      status: 'warn',
      check,
      message: `GET ${url}: 200 ${r.line}`,
      fix: 'hits are served; misses are fetched per instance: see the server log for why it is degraded',
    };
  }
  if (r.status === 200) return { status: 'ok', check, message: `GET ${url}: 200 ${r.line}`.trimEnd() };
  if (r.status === 404) return { status: 'warn', check, message: `GET ${url}: 404: the server has no /readyz (not a gomodproxy?)` };
  return { status: 'fail', check, message: `GET ${url}: ${answer(r)}`, fix: 'the server says what keeps it from serving: fix that (see its log)' };
}

function httpErrorFix(target: string, r: { error: string; code?: string }): string {
  if (r.code === 'UND_ERR_SOCKET' || /other side closed|socket hang up|ECONNRESET/.test(r.error)) {
    return target.startsWith('http:')
      ? 'the server closed the connection: if it serves TLS, use https:// in GOPROXY'
      : 'the server closed the connection: see its log';
  }
  if (r.code === 'UND_ERR_HEADERS_TIMEOUT' || /timeout/i.test(r.error)) return 'the server accepted the connection but did not answer in time: see its log';
  return 'see the tcp and tls findings above';
}

export interface Credentials {
  /** Where the credentials come from, for messages (never the secret). */
  from: string;
  header: string;
}

/** Would the go command be let in? `creds` is what it sends; `others` are GOAUTH sources doctor cannot see. */
export function credentialsFinding(
  target: string,
  module: string,
  r: HttpOutcome,
  creds: Credentials | undefined,
  ctx: { netrcFile: string; key: string; near?: NetrcEntry; others: string[]; goauth: boolean },
): Finding {
  const check = 'credentials';
  const url = `${redactURL(target)}/${module}/@v/list`;
  if ('error' in r) return { status: 'fail', check, message: `GET ${url}: ${r.error}`, fix: httpErrorFix(target, r) };
  const sent = creds ? `with the credentials of ${creds.from}` : 'without credentials';
  if (r.status !== 401 && r.status !== 403) {
    return {
      status: 'ok',
      check,
      message: creds
        ? `the proxy accepts the credentials of ${creds.from} (GET ${url}: ${r.status})`
        : `the proxy asks for no credentials for ${module} (GET ${url}: ${r.status}, none sent)`,
    };
  }
  const said = `GET ${url} ${sent}: ${answer(r)}`;
  if (r.status === 403) {
    return {
      status: 'fail',
      check,
      message: said,
      fix: creds
        ? `the user is known but may not read ${module}: ask the proxy's administrator to grant it`
        : `the proxy refuses ${module} to everyone without credentials: add a machine ${ctx.key} line to ${ctx.netrcFile}`,
    };
  }
  if (creds) {
    return {
      status: 'fail',
      check,
      message: said,
      fix: `the proxy rejects them: correct the login and password (an API token from gomodproxy token create, or your password) of machine ${ctx.key} in ${ctx.netrcFile}`,
    };
  }
  if (target.startsWith('http:')) {
    return {
      status: 'fail',
      check,
      message: `${said}; the go command never sends credentials over http://`,
      fix: 'serve the proxy over https (tls.cert, tls.key) and use https:// in GOPROXY, or let anonymous users read these modules',
    };
  }
  if (ctx.others.length > 0) {
    return {
      status: 'warn',
      check,
      message: `${said}; GOAUTH also runs ${ctx.others.join(' and ')}, whose answer doctor does not see`,
      fix: 'see go-fetch for whether the go command gets in',
    };
  }
  if (!ctx.goauth) {
    return { status: 'fail', check, message: `${said}; GOAUTH=off sends none`, fix: 'go env -w GOAUTH=netrc and add a machine line to .netrc' };
  }
  const fix = ctx.near
    ? `change "machine ${ctx.near.machine}" in ${ctx.netrcFile} to "machine ${ctx.key}"`
    : `add a machine ${ctx.key} line with login and password (an API token from gomodproxy token create) to ${ctx.netrcFile}`;
  return { status: 'fail', check, message: said, fix };
}

/** The checksum database through the proxy: `<url>/sumdb/<name>/supported` (GO-MODULES.md §1.8). */
export function sumdbFinding(target: string, name: string, r: HttpOutcome, fallthrough: Fallthrough | undefined): Finding {
  const check = 'sumdb';
  const url = `${redactURL(target)}/sumdb/${name}/supported`;
  if ('error' in r) return { status: 'fail', check, message: `GET ${url}: ${r.error}`, fix: httpErrorFix(target, r) };
  if (r.status === 200) return { status: 'ok', check, message: `GET ${url}: 200: the go command looks up and verifies checksums through the proxy` };
  if (r.status === 404 || r.status === 410) {
    return {
      status: 'warn',
      check,
      message: `GET ${url}: ${answer(r)}: the go command goes to https://${name} itself for checksums`,
      fix: `if this machine cannot reach ${name}, have the proxy serve it (its sumdb setting, GOMODPROXY_SUMDB), or list private modules in GONOSUMDB`,
    };
  }
  if (fallthrough === 'any') {
    return { status: 'warn', check, message: `GET ${url}: ${answer(r)}: after "|" the go command asks the next GOPROXY entry` };
  }
  return {
    status: 'fail',
    check,
    message: `GET ${url}: ${answer(r)}: with this answer every checksum lookup fails`,
    fix: r.status === 401 || r.status === 403 ? 'see credentials' : 'the server cannot reach its checksum database: see its log',
  };
}

/** The module itself through the proxy, before the go command tries it. */
export function moduleFinding(target: string, module: string, query: string, path: string, r: HttpOutcome, isDefault: boolean): Finding {
  const check = 'module';
  const url = `${redactURL(target)}/${path}`;
  if ('error' in r) return { status: 'fail', check, message: `GET ${url}: ${r.error}`, fix: httpErrorFix(target, r) };
  if (r.status === 200) return { status: 'ok', check, message: `GET ${url}: 200${r.line ? `: ${r.line}` : ''}` };
  if ((r.status === 404 || r.status === 410) && isDefault) {
    return {
      status: 'warn',
      check,
      message: `GET ${url}: ${answer(r)}: the proxy does not serve ${module}`,
      fix: 'name a module it should serve: gomodproxy doctor --module <path>@<version>',
    };
  }
  return {
    status: 'fail',
    check,
    message: `GET ${url}: ${answer(r)}`,
    fix:
      r.status === 404 || r.status === 410
        ? `the proxy has no ${module}@${query}: check the path and version, and the proxy's upstreams`
        : r.status === 401 || r.status === 403
          ? 'see credentials'
          : "the proxy's message says why: see its log",
  };
}

/** A fix for the error line of `go mod download`. */
export function goErrorFix(error: string, ctx: { target: string; module: string; netrcKey?: string; isDefault?: boolean }): string {
  if (/x509:|certificate signed by unknown authority|tls: failed to verify/.test(error))
    return "the go command does not trust the proxy's certificate: see tls (SSL_CERT_FILE)";
  if (/401 Unauthorized/.test(error))
    return `the go command sends no accepted credentials: see netrc and credentials${ctx.netrcKey ? ` (machine ${ctx.netrcKey})` : ''}`;
  if (/403 Forbidden/.test(error)) return `ask the proxy's administrator for read access to ${ctx.module}`;
  if (/SECURITY ERROR|checksum mismatch/.test(error))
    return "the proxy's files differ from the checksum database: tell its operator (gomodproxy verify finds them)";
  if (/verifying|sumdb|checksum database/.test(error)) return 'the checksum database is not reachable as configured: see gosumdb and sumdb';
  if (/404 Not Found|410 Gone|no matching versions|unknown revision|invalid version/.test(error)) {
    return ctx.isDefault
      ? 'name a module it should serve: gomodproxy doctor --module <path>@<version>'
      : `the proxy has no ${ctx.module}: check the path and version, and the proxy's upstreams`;
  }
  if (/connection refused|no such host|i\/o timeout|dial tcp|proxyconnect/.test(error)) return 'the go command cannot reach the proxy: see http-proxy and tcp';
  if (/GOFLAGS/.test(error)) return 'fix GOFLAGS (go env GOFLAGS)';
  return `run it yourself for details: GOPROXY=${redactURL(ctx.target)} go mod download -x ${ctx.module}`;
}

/** The go command's multi-line error as one line. */
export function oneLine(text: string, max = 600): string {
  const s = text.replace(/\s*\n\s*/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

export type TcpOutcome = { ok: true; address: string } | { ok: false; stage: 'dns' | 'connect' | 'proxy'; code: string; message: string };

/** Can a connection be opened at all (DNS, then TCP, or the HTTP proxy's tunnel)? */
export function tcpFinding(target: string, r: TcpOutcome, timeoutMs: number, via?: URL): Finding {
  const check = 'tcp';
  const u = new URL(target);
  const hostPort = `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  if (r.ok) return { status: 'ok', check, message: `connected to ${r.address}` };
  if (r.stage === 'dns')
    return { status: 'fail', check, message: r.message, fix: `check the host name in GOPROXY, your DNS, or the VPN that makes ${u.hostname} resolvable` };
  if (r.stage === 'proxy') {
    return {
      status: 'fail',
      check,
      message: `through the HTTP proxy ${redactURL(via?.href ?? '')}: ${r.message}`,
      fix: `fix HTTPS_PROXY/HTTP_PROXY, or add ${u.hostname} to NO_PROXY if it is reachable directly`,
    };
  }
  if (r.code === 'ECONNREFUSED') {
    return {
      status: 'fail',
      check,
      message: `nothing listens on ${hostPort} (connection refused)`,
      fix: 'start the server (gomodproxy serve), or correct the host and port in GOPROXY',
    };
  }
  if (r.code === 'ETIMEDOUT') {
    return {
      status: 'fail',
      check,
      message: `no answer from ${hostPort} within ${timeoutMs / 1000}s`,
      fix: 'a firewall may drop the connection, or the host is only reachable through a VPN or an HTTP proxy (HTTPS_PROXY)',
    };
  }
  if (r.code === 'EHOSTUNREACH' || r.code === 'ENETUNREACH') {
    return { status: 'fail', check, message: `${hostPort} is unreachable (${r.code})`, fix: 'check the network route or VPN to the proxy' };
  }
  return { status: 'fail', check, message: `cannot connect to ${hostPort}: ${r.message}`, fix: 'check the host and port in GOPROXY and the network to it' };
}

export interface CertSummary {
  subject: string;
  issuer: string;
  selfSigned: boolean;
  validTo: string;
}

export interface TlsOutcome {
  /** The chain verified against the roots and the name matched. */
  authorized: boolean;
  /** OpenSSL's or Node's reason when not authorized, or the handshake error's code. */
  code?: string;
  /** A handshake that failed outright (no certificate to look at). */
  error?: string;
  leaf?: CertSummary & { altNames: string };
  /** The last certificate the server sent: its issuer is the CA the roots must hold. */
  top?: CertSummary;
}

const UNKNOWN_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

/** Would the go command accept the certificate? If not, which CA is missing and how to add it. */
export function tlsFinding(target: string, r: TlsOutcome, roots: { describe: string; problem?: string }, env: NodeJS.ProcessEnv): Finding {
  const check = 'tls';
  const u = new URL(target);
  if (r.authorized && r.leaf) {
    return {
      status: 'ok',
      check,
      message: `the certificate of ${u.hostname} (issued by ${r.leaf.issuer}, valid until ${r.leaf.validTo}) is trusted by ${roots.describe}`,
    };
  }
  if (!r.leaf) {
    const plain = /wrong version number|packet length too long|unknown protocol|ECONNRESET/i.test(`${r.code ?? ''} ${r.error ?? ''}`);
    return {
      status: 'fail',
      check,
      message: `TLS handshake with ${u.host} failed: ${r.error ?? r.code ?? 'unknown error'}`,
      fix: plain
        ? `${u.host} does not seem to speak TLS: if it serves plain HTTP, use http:// in GOPROXY`
        : "check the server's tls settings (tls.cert, tls.key) and its log",
    };
  }
  const code = r.code ?? '';
  if (UNKNOWN_CA.has(code)) {
    const top = r.top ?? r.leaf;
    const ca = top.selfSigned ? top.subject : top.issuer;
    const sent = top.selfSigned ? `the server sends its root "${ca}"` : `it is issued by "${ca}"`;
    const bundle = env.SSL_CERT_FILE
      ? ''
      : ' (to keep the system roots too, put them in the same file: cat /etc/ssl/certs/ca-certificates.crt ca.pem > bundle.pem)';
    return {
      status: 'fail',
      check,
      message: `the certificate of ${u.hostname} is not trusted (${code}): ${sent}, which is not among the roots the go command trusts: ${roots.describe}${roots.problem ? `; ${roots.problem}` : ''}`,
      fix: `export SSL_CERT_FILE=<a PEM file holding the CA "${ca}">${bundle}, or add it to the system store (update-ca-certificates)`,
    };
  }
  if (code === 'CERT_HAS_EXPIRED') {
    return {
      status: 'fail',
      check,
      message: `the certificate of ${u.hostname} expired on ${r.leaf.validTo}`,
      fix: "renew the server's certificate (tls.cert); the server reloads it on SIGHUP",
    };
  }
  if (code === 'CERT_NOT_YET_VALID') {
    return {
      status: 'fail',
      check,
      message: `the certificate of ${u.hostname} is not valid yet`,
      fix: "check this machine's clock, or the certificate's dates",
    };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      status: 'fail',
      check,
      message: `the certificate is for ${r.leaf.altNames || r.leaf.subject}, not ${u.hostname}`,
      fix: 'use one of its names in GOPROXY, or issue a certificate that names this host',
    };
  }
  return {
    status: 'fail',
    check,
    message: `the certificate of ${u.hostname} is not accepted: ${code}`,
    fix: "check the server's certificate chain (tls.cert should hold the intermediates too)",
  };
}
