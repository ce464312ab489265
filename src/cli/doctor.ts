// `gomodproxy doctor [URL]`: run on a developer's or CI machine to find why the go command there
// cannot use the proxy. It asks the go command itself for its settings (`go env -json`: the
// environment, the go env file and GOROOT/go.env all count), walks the troubleshooting chart in
// order (settings, then the network, then permissions, then the checksum database and a real
// download) and prints one line per finding with the fix. The last step runs the real go command
// in a throwaway module cache, so what it reports is what the user's go command would do, not
// doctor's idea of it. Nothing secret is printed: passwords found on the way are scrubbed from
// every line.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_GOPROXY, GoProxyListError, parseGoEnvFile, parseGoProxyList, readGoEnv, redactURL } from '../config/index.js';
import { checkPath, escapePath, escapeVersion, isValid, matchPrefixPatterns, semver } from '../module/index.js';
import { GO_SUMDB_NAME } from '../sumdb/index.js';
import {
  checkGoAuth,
  checkGoFlags,
  checkGoInsecure,
  checkGoProxy,
  checkGoSumdb,
  checkHttpProxy,
  checkNetrc,
  checkNoProxy,
  credentialsFinding,
  describeSource,
  entryFallthrough,
  firstHttpProxy,
  formatFinding,
  goErrorFix,
  healthzFinding,
  keysNetrcByPort,
  moduleFinding,
  oneLine,
  parseNetrc,
  readyzFinding,
  sumdbFinding,
  tcpFinding,
  tlsFinding,
  type Credentials,
  type Finding,
  type GoSettings,
  type SettingSource,
} from './doctor/checks.js';
import { dispatcherFor, goRoots, httpGet, probeTcp, probeTls } from './doctor/net.js';

/** The module fetched when none is named: public, small, and on every proxy that mirrors the public ones. */
const DEFAULT_MODULE = 'golang.org/x/text';

export interface DoctorOptions {
  /** The proxy to check; default: the first http(s) entry of the go command's GOPROXY. */
  url?: string;
  /** `path[@version]` to fetch; default golang.org/x/text@latest. */
  module?: string;
  json?: boolean;
  /** Limit of each network step. */
  timeoutMs?: number;
  /** Limit of the go command's download. */
  goTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Where lines go; default stdout. */
  write?: (text: string) => void;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The program could not be started (ENOENT: not on PATH). */
  spawnError?: NodeJS.ErrnoException;
  timedOut?: boolean;
}

function runGo(args: string[], env: NodeJS.ProcessEnv, cwd: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn('go', args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ code: null, stdout: '', stderr: '', spawnError: e });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
  });
}

/** Where each go setting came from: the go command's own order (environment, then the go env file). */
function sourcesOf(env: NodeJS.ProcessEnv): (name: string) => SettingSource {
  const goenv = readGoEnv(env);
  const one = (name: string): SettingSource => {
    const v = goenv.get(name);
    if (!v) return { kind: 'default' };
    return v.origin.from === 'go-env' ? { kind: 'env' } : { kind: 'file', file: v.origin.file };
  };
  return (name) => {
    const s = one(name);
    if (s.kind === 'default' && (name === 'GONOPROXY' || name === 'GONOSUMDB')) {
      const p = one('GOPRIVATE');
      if (p.kind !== 'default') return { kind: 'goprivate', of: p };
    }
    return s;
  };
}

/** Settings as the go command would have them, when it cannot be asked (not installed). */
function settingsWithoutGo(env: NodeJS.ProcessEnv): GoSettings {
  const goenv = readGoEnv(env);
  const v = (name: string): string | undefined => goenv.get(name)?.value;
  const goprivate = v('GOPRIVATE') ?? '';
  return {
    GOPROXY: v('GOPROXY') ?? DEFAULT_GOPROXY,
    GOPRIVATE: goprivate,
    GONOPROXY: v('GONOPROXY') ?? goprivate,
    GONOSUMDB: v('GONOSUMDB') ?? goprivate,
    GOSUMDB: v('GOSUMDB') ?? GO_SUMDB_NAME,
    GOINSECURE: v('GOINSECURE') ?? '',
    GOFLAGS: v('GOFLAGS') ?? '',
    GOAUTH: v('GOAUTH') ?? 'netrc',
    GOVERSION: '',
  };
}

function goEnvFileFinding(env: NodeJS.ProcessEnv): Finding {
  const check = 'goenv';
  const goenv = readGoEnv(env);
  if (goenv.warnings.length > 0)
    return { status: 'warn', check, message: goenv.warnings.join('; '), fix: `make ${goenv.file ?? 'the file'} readable, or remove it` };
  if (!goenv.file) return { status: 'ok', check, message: `no go env file is read (${goenv.noFile ?? 'none'}): go env -w settings do not apply` };
  let keys: string[];
  try {
    keys = [...parseGoEnvFile(readFileSync(goenv.file, 'utf8')).entries()].filter(([, v]) => v !== '').map(([k]) => k);
  } catch {
    return { status: 'ok', check, message: `the go env file ${goenv.file} does not exist: nothing is set with go env -w` };
  }
  if (keys.length === 0) return { status: 'ok', check, message: `the go env file ${goenv.file} sets nothing` };
  const overridden = keys.filter((k) => env[k]);
  return {
    status: 'ok',
    check,
    message: `the go env file ${goenv.file} sets ${keys.join(', ')}${overridden.length > 0 ? `; the environment overrides ${overridden.join(', ')}` : ''}`,
  };
}

function parseModule(spec: string | undefined): { path: string; query: string; isDefault: boolean } {
  if (spec === undefined) return { path: DEFAULT_MODULE, query: 'latest', isDefault: true };
  const at = spec.lastIndexOf('@');
  const p = at > 0 ? spec.slice(0, at) : spec;
  const query = at > 0 ? spec.slice(at + 1) : 'latest';
  checkPath(p);
  escapeVersion(query);
  return { path: p, query, isDefault: false };
}

/** Resolves with the exit status: 0 nothing failed, 1 something failed, 2 bad arguments. */
export async function runDoctor(opts: DoctorOptions = {}): Promise<number> {
  const env = opts.env ?? process.env;
  const findings: Finding[] = [];
  if (!opts.write) {
    // `gomodproxy doctor | head` closes the pipe early: stop quietly, with the status found so far.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(findings.some((f) => f.status === 'fail') ? 1 : 0);
    });
  }
  const write = opts.write ?? ((t: string) => void process.stdout.write(t));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let mod: ReturnType<typeof parseModule>;
  let given: string | undefined;
  try {
    mod = parseModule(opts.module);
    if (opts.url !== undefined) {
      const entries = parseGoProxyList(opts.url);
      const e = entries[0];
      if (entries.length !== 1 || e?.kind !== 'proxy' || !/^https?:/.test(e.url))
        throw new GoProxyListError(`"${opts.url}" is not an http:// or https:// proxy URL`);
      given = e.url;
    }
  } catch (err) {
    process.stderr.write(`gomodproxy doctor: ${(err as Error).message}\n`);
    return 2;
  }

  const secrets = new Set<string>();
  // Nothing here prints a password on purpose; this is the net under that, for text the go
  // command or a server hands back. Very short secrets are left alone: replacing "8443" or "ok"
  // everywhere would garble the findings more than it protects.
  const scrub = (s: string): string => {
    let out = s;
    for (const x of secrets) if (x.length >= 6) out = out.split(x).join('***');
    return out;
  };
  const emit = (f: Finding): void => {
    const clean: Finding = { ...f, message: scrub(f.message), ...(f.fix !== undefined ? { fix: scrub(f.fix) } : {}) };
    findings.push(clean);
    write(opts.json ? `${JSON.stringify(clean)}\n` : `${formatFinding(clean)}\n`);
  };
  const finish = (stoppedAfter?: string): number => {
    const count = (s: Finding['status']) => findings.filter((f) => f.status === s).length;
    if (!opts.json) {
      const fails = count('fail');
      const warns = count('warn');
      const verdict = fails > 0 ? `${fails} failed` : warns > 0 ? 'nothing failed' : 'all checks passed';
      write(
        `doctor: ${verdict} (${count('ok')} ok, ${warns} warn, ${fails} fail)${stoppedAfter ? `; stopped after ${stoppedAfter}: fix that first, then run doctor again` : ''}\n`,
      );
    }
    return findings.some((f) => f.status === 'fail') ? 1 : 0;
  };

  const work = await mkdtemp(path.join(os.tmpdir(), 'gomodproxy-doctor-'));
  let dispatcher: ReturnType<typeof dispatcherFor> | undefined;
  try {
    // 1. The go command's settings, as it sees them.
    const source = sourcesOf(env);
    const goEnv = await runGo(['env', '-json'], env, work, 60_000);
    let settings: GoSettings;
    let haveGo = false;
    if (goEnv.spawnError) {
      emit({
        status: 'fail',
        check: 'go',
        message: `cannot run the go command (${goEnv.spawnError.code ?? goEnv.spawnError.message}); settings below are read from the environment and the go env file`,
        fix: 'install Go, or put its bin folder on PATH',
      });
      settings = settingsWithoutGo(env);
    } else if (goEnv.code !== 0) {
      emit({
        status: 'fail',
        check: 'go',
        message: `go env -json failed: ${oneLine(goEnv.stderr || goEnv.stdout)}`,
        fix: 'fix what the go command says (go env)',
      });
      settings = settingsWithoutGo(env);
    } else {
      const j = JSON.parse(goEnv.stdout) as Record<string, string | undefined>;
      const s = (k: string): string => j[k] ?? '';
      settings = {
        GOPROXY: s('GOPROXY'),
        GOPRIVATE: s('GOPRIVATE'),
        GONOPROXY: s('GONOPROXY'),
        GONOSUMDB: s('GONOSUMDB'),
        GOSUMDB: s('GOSUMDB'),
        GOINSECURE: s('GOINSECURE'),
        GOFLAGS: s('GOFLAGS'),
        GOAUTH: j.GOAUTH,
        GOVERSION: s('GOVERSION'),
      };
      haveGo = true;
      emit({ status: 'ok', check: 'go', message: `${settings.GOVERSION || 'go'} (GOROOT ${s('GOROOT')})` });
    }
    emit(goEnvFileFinding(env));

    // Which proxy to check.
    const target = given ?? firstHttpProxy(settings.GOPROXY);
    const proxySource = source('GOPROXY');
    if (!target || (given === undefined && proxySource.kind === 'default' && settings.GOPROXY === DEFAULT_GOPROXY)) {
      const what = !target
        ? `GOPROXY=${settings.GOPROXY} (from ${describeSource(proxySource)}) names no http(s) proxy`
        : `GOPROXY is not set: the go command uses its default ${settings.GOPROXY}`;
      emit({
        status: 'fail',
        check: 'goproxy',
        message: `${what}, so there is no gomodproxy to check`,
        fix: 'pass the proxy URL (gomodproxy doctor https://proxy.example:8443), or go env -w GOPROXY=<its URL>,direct',
      });
      return finish('goproxy');
    }
    for (const u of [target, ...settings.GOPROXY.split(/[,|]/)]) {
      try {
        const p = new URL(u.trim()).password;
        if (p) secrets.add(decodeURIComponent(p));
      } catch {
        // not a URL: nothing to hide
      }
    }
    const targetURL = new URL(target);
    const https = targetURL.protocol === 'https:';

    emit(checkGoProxy(settings.GOPROXY, target, proxySource));
    const direct = matchPrefixPatterns(settings.GONOPROXY, mod.path) && settings.GONOPROXY !== 'none';
    emit(checkNoProxy(settings, mod.path, source('GONOPROXY')));
    const sumdb = checkGoSumdb(settings, mod.path, source('GOSUMDB'), source('GONOSUMDB'));
    emit(sumdb.finding);
    emit(checkGoInsecure(settings, target, mod.path));
    emit(checkGoFlags(settings));
    const goauth = checkGoAuth(settings, source('GOAUTH'));
    emit(goauth.finding);

    const home = env.HOME ?? os.homedir();
    const netrcFile = env.NETRC || path.join(home, process.platform === 'win32' ? '_netrc' : '.netrc');
    let netrcRead: { text: string } | { missing: true } | { error: string };
    try {
      netrcRead = { text: readFileSync(netrcFile, 'utf8') };
      for (const e of parseNetrc(netrcRead.text)) secrets.add(e.password);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      netrcRead = code === 'ENOENT' || code === 'ENOTDIR' ? { missing: true } : { error: code ?? (err as Error).message };
    }
    const netrc = checkNetrc(netrcFile, netrcRead, target, goauth, keysNetrcByPort(settings.GOVERSION));
    emit(netrc.finding);

    const proxyChoice = checkHttpProxy(target, env);
    for (const v of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) {
      try {
        const p = env[v] ? new URL(env[v]).password : '';
        if (p) secrets.add(decodeURIComponent(p));
      } catch {
        // not a URL
      }
    }
    emit(proxyChoice.finding);
    const via = proxyChoice.via;

    // 2. The network: a connection, then TLS as the go command verifies it, then the server itself.
    const port = Number(targetURL.port || (https ? 443 : 80));
    const tcp = await probeTcp(targetURL.hostname, port, timeoutMs, via);
    emit(tcpFinding(target, tcp, timeoutMs, via));
    if (!tcp.ok) return finish('tcp');
    const roots = https ? goRoots(env) : { pems: undefined, describe: '' };
    if (https) {
      const t = tlsFinding(target, await probeTls(targetURL.hostname, port, roots, timeoutMs, via), roots, env);
      emit(t);
      if (t.status === 'fail') return finish('tls');
    }
    dispatcher = dispatcherFor(roots, timeoutMs, via);
    const base = target.replace(/\/+$/, '');
    // Requests carry no user:password of the URL; credentials go in a header, as the go command sends them.
    const bare = (() => {
      const u = new URL(base);
      u.username = '';
      u.password = '';
      return u.toString().replace(/\/+$/, '');
    })();
    emit(healthzFinding(target, await httpGet(`${bare}/healthz`, dispatcher, timeoutMs)));
    emit(readyzFinding(target, await httpGet(`${bare}/readyz`, dispatcher, timeoutMs)));

    // 3. Permissions: what the go command would send, and whether the proxy takes it.
    let creds: Credentials | undefined;
    if (https && netrc.match?.entry) {
      const e = netrc.match.entry;
      creds = {
        from: `machine ${e.machine} in ${netrcFile} (login ${e.login})`,
        header: `Basic ${Buffer.from(`${e.login}:${e.password}`).toString('base64')}`,
      };
    } else if (https && targetURL.username) {
      creds = {
        from: `the user ${decodeURIComponent(targetURL.username)} in the GOPROXY URL`,
        header: `Basic ${Buffer.from(`${decodeURIComponent(targetURL.username)}:${decodeURIComponent(targetURL.password)}`).toString('base64')}`,
      };
    }
    const headers: Record<string, string> = creds ? { authorization: creds.header } : {};
    const escaped = escapePath(mod.path);
    emit(
      credentialsFinding(target, mod.path, await httpGet(`${bare}/${escaped}/@v/list`, dispatcher, timeoutMs, headers), creds, {
        netrcFile,
        key: netrc.match?.key ?? targetURL.host,
        near: netrc.match?.near,
        others: goauth.others,
        goauth: goauth.netrc || goauth.others.length > 0,
      }),
    );

    // 4. The checksum database through the proxy.
    if (sumdb.probe) {
      emit(
        sumdbFinding(
          target,
          sumdb.probe,
          await httpGet(`${bare}/sumdb/${sumdb.probe}/supported`, dispatcher, timeoutMs, headers),
          entryFallthrough(settings.GOPROXY, target),
        ),
      );
    }

    // 5. The module, first by hand, then with the real go command.
    let probePath: string;
    let r;
    if (mod.query === 'latest') {
      probePath = `${escaped}/@v/list`;
      r = await httpGet(`${bare}/${probePath}`, dispatcher, timeoutMs, headers);
      if ('status' in r && r.status === 200) {
        const versions = r.body
          .split('\n')
          .map((l) => l.trim().split(/\s+/)[0] ?? '')
          .filter((v) => isValid(v));
        if (versions.length > 0) {
          r = { ...r, line: `${versions.length} version${versions.length === 1 ? '' : 's'}, the newest ${versions.reduce((a, b) => semver.max(a, b))}` };
        } else {
          probePath = `${escaped}/@latest`;
          r = await httpGet(`${bare}/${probePath}`, dispatcher, timeoutMs, headers);
        }
      }
    } else {
      probePath = `${escaped}/@v/${escapeVersion(mod.query)}.info`;
      r = await httpGet(`${bare}/${probePath}`, dispatcher, timeoutMs, headers);
    }
    if ('status' in r && r.status === 200 && probePath.endsWith('.info')) {
      try {
        const info = JSON.parse(r.body) as { Version?: string; Time?: string };
        r = { ...r, line: `${info.Version ?? '?'}${info.Time ? ` (${info.Time})` : ''}` };
      } catch {
        r = { ...r, line: 'not JSON' };
      }
    } else if ('status' in r && r.status === 200 && probePath.endsWith('@latest')) {
      try {
        r = { ...r, line: `latest is ${(JSON.parse(r.body) as { Version?: string }).Version ?? '?'}` };
      } catch {
        r = { ...r, line: 'not JSON' };
      }
    }
    emit(moduleFinding(target, mod.path, mod.query, probePath, r, mod.isDefault));

    if (haveGo) emit(await goFetch(target, mod, settings, env, work, direct, opts.goTimeoutMs ?? 120_000, netrc.match?.key));
    return finish();
  } finally {
    await dispatcher?.close().catch(() => undefined);
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The real go command downloads the module through the proxy, with the user's other settings. */
async function goFetch(
  target: string,
  mod: { path: string; query: string; isDefault: boolean },
  settings: GoSettings,
  env: NodeJS.ProcessEnv,
  work: string,
  direct: boolean,
  timeoutMs: number,
  netrcKey: string | undefined,
): Promise<Finding> {
  const check = 'go-fetch';
  const spec = `${mod.path}@${mod.query}`;
  const flags = settings.GOFLAGS.split(/\s+/).filter((f) => f !== '');
  // -modcacherw: the throwaway cache must be removable afterwards.
  if (!flags.includes('-modcacherw')) flags.push('-modcacherw');
  const runEnv: NodeJS.ProcessEnv = {
    ...env,
    GOPROXY: target,
    GOMODCACHE: path.join(work, 'modcache'),
    GOPATH: path.join(work, 'gopath'),
    GOFLAGS: flags.join(' '),
    GOWORK: 'off',
    // Else a GOPRIVATE match would send the go command past the proxy, and this step would test version control instead.
    ...(direct ? { GONOPROXY: 'none' } : {}),
  };
  const shownCmd = `GOPROXY=${redactURL(target)}${direct ? ' GONOPROXY=none' : ''} go mod download -json ${spec}`;
  const r = await runGo(['mod', 'download', '-json', spec], runEnv, work, timeoutMs);
  if (r.timedOut)
    return { status: 'fail', check, message: `${shownCmd} did not finish within ${timeoutMs / 1000}s`, fix: `run it yourself with -x to see where it waits` };
  let out: { Path?: string; Version?: string; Error?: string; Sum?: string } | undefined;
  try {
    out = JSON.parse(r.stdout) as typeof out;
  } catch {
    out = undefined;
  }
  const error = out?.Error ?? (r.code !== 0 ? r.stderr || r.stdout || `exit status ${r.code}` : undefined);
  if (error !== undefined) {
    const notHere = /404 Not Found|410 Gone|no matching versions/.test(error);
    return {
      status: notHere && mod.isDefault ? 'warn' : 'fail',
      check,
      message: `${shownCmd}: ${oneLine(error)}`,
      fix: goErrorFix(error, { target, module: spec, netrcKey, isDefault: mod.isDefault }),
    };
  }
  const bypass = direct ? ' (with your GONOPROXY the go command would fetch it directly instead)' : '';
  return {
    status: 'ok',
    check,
    message: `the go command downloaded ${out?.Path ?? mod.path}@${out?.Version ?? mod.query} through ${redactURL(target)} (${out?.Sum ?? 'no sum'})${bypass}`,
  };
}
