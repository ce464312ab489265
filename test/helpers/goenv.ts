// An isolated environment for the real go command: its own module cache, GOPATH, HOME and git
// config, nothing inherited from the developer's go or git settings, so a test sees only the world
// it built. The build cache is the one real shared thing: building is not under test, and a cold
// GOCACHE would make every `go list`/`go build` run slow.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describeRun, run, scrubbedEnv } from './proc.js';
import { makeTempDir, removeTree } from './tmp.js';

export interface GoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Per-call go settings; `undefined` removes a variable set by the GoEnv's defaults. */
export type GoVars = Record<string, string | undefined>;

export interface GoEnvOptions {
  /** Directory to hold the environment; a new temp dir by default. */
  root?: string;
  /** Default GOPROXY of this env; `off` unless given, so nothing ever reaches the internet by accident. */
  goproxy?: string;
  /** Default GOSUMDB; `off` unless given. */
  gosumdb?: string;
  goprivate?: string;
  gonoproxy?: string;
  gonosumdb?: string;
  goinsecure?: string;
  /** Any further variables for every call (e.g. SSL_CERT_FILE). */
  env?: GoVars;
}

export interface GoRunOptions {
  /** Working directory; an empty directory outside any module by default. */
  cwd?: string;
  env?: GoVars;
  /** Return a failing result instead of throwing. */
  allowFail?: boolean;
  timeoutMs?: number;
}

/** One object of `go mod download -json` output (fields are omitempty in Go). */
export interface GoModDownload {
  Path: string;
  Version: string;
  Query?: string;
  Error?: string;
  Info?: string;
  GoMod?: string;
  Zip?: string;
  Dir?: string;
  Sum?: string;
  GoModSum?: string;
  Origin?: GoOrigin;
  Reuse?: boolean;
}

export interface GoOrigin {
  VCS?: string;
  URL?: string;
  Subdir?: string;
  Hash?: string;
  TagPrefix?: string;
  TagSum?: string;
  Ref?: string;
  RepoSum?: string;
}

export interface ModDownloadOptions {
  cwd?: string;
  /** Return objects carrying `Error` instead of throwing. */
  allowErrors?: boolean;
  timeoutMs?: number;
}

export interface GoEnv {
  readonly root: string;
  readonly gomodcache: string;
  /** `$GOMODCACHE/cache/download`: a GOPROXY tree once something was downloaded. */
  readonly downloadDir: string;
  readonly gopath: string;
  readonly gocache: string;
  readonly home: string;
  /** The file GIT_CONFIG_GLOBAL points at; `insteadOf()` writes to it. */
  readonly gitConfig: string;
  /** Empty scratch directory outside any module, the default cwd. */
  readonly workDir: string;
  /** The complete environment a call would get with `extra` applied (for spawning go or git yourself). */
  vars(extra?: GoVars): Record<string, string>;
  go(args: readonly string[], opts?: GoRunOptions): Promise<GoResult>;
  /** Runs `go mod download -json` for `modules` (`path@query`) and parses its stream of objects. */
  modDownloadJson(modules: readonly string[], extraEnv?: GoVars, opts?: ModDownloadOptions): Promise<GoModDownload[]>;
  /** Creates `dir/go.mod` for a main module (plus `goModExtra` lines) and returns `dir`. */
  newModule(dir: string, modulePath: string, goModExtra?: string): Promise<string>;
  /** go.sum of the module in `dir` as `"path version"` / `"path version/go.mod"` -> `h1:` hash, in file order. */
  readGoSum(dir: string): Promise<Map<string, string>>;
  /** `go clean -modcache` plus the sumdb state under GOPATH, so the next run starts cold. */
  cleanModCache(): Promise<void>;
}

let realGoCache: string | undefined;

/** The developer's real GOCACHE, looked up once per process with the parent's environment. */
export function sharedGoCache(): string {
  if (realGoCache === undefined) {
    const out = execFileSync('go', ['env', 'GOCACHE'], { encoding: 'utf8' }).trim();
    // `off` or empty would make go refuse to build anything; fall back to a private cache then.
    realGoCache = out && out !== 'off' ? out : '';
  }
  return realGoCache;
}

export async function createGoEnv(opts: GoEnvOptions = {}): Promise<GoEnv> {
  const root = opts.root ?? (await makeTempDir('goenv'));
  const gomodcache = path.join(root, 'modcache');
  const gopath = path.join(root, 'gopath');
  const home = path.join(root, 'home');
  const workDir = path.join(root, 'work');
  const gitConfig = path.join(root, 'gitconfig');
  const gocache = sharedGoCache() || path.join(root, 'gocache');
  await Promise.all([gomodcache, gopath, home, workDir].map((d) => mkdir(d, { recursive: true })));
  await writeFile(gitConfig, '', { flag: 'a' });

  const base: Record<string, string> = {
    ...scrubbedEnv(),
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    GOMODCACHE: gomodcache,
    GOPATH: gopath,
    GOCACHE: gocache,
    GOFLAGS: '-modcacherw',
    GOTOOLCHAIN: 'local',
    GOENV: 'off',
    GOWORK: 'off',
    GOPROXY: opts.goproxy ?? 'off',
    GOSUMDB: opts.gosumdb ?? 'off',
    GIT_CONFIG_GLOBAL: gitConfig,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GCM_INTERACTIVE: 'never',
  };
  if (opts.goprivate !== undefined) base.GOPRIVATE = opts.goprivate;
  if (opts.gonoproxy !== undefined) base.GONOPROXY = opts.gonoproxy;
  if (opts.gonosumdb !== undefined) base.GONOSUMDB = opts.gonosumdb;
  if (opts.goinsecure !== undefined) base.GOINSECURE = opts.goinsecure;
  applyVars(base, opts.env);

  const vars = (extra?: GoVars): Record<string, string> => applyVars({ ...base }, extra);

  const go = async (args: readonly string[], ro: GoRunOptions = {}): Promise<GoResult> => {
    const cwd = ro.cwd ?? workDir;
    const r = await run('go', args, { cwd, env: vars(ro.env), timeoutMs: ro.timeoutMs });
    if (r.code !== 0 && !ro.allowFail) throw new Error(describeRun('go', args, r, cwd));
    return r;
  };

  return {
    root,
    gomodcache,
    downloadDir: path.join(gomodcache, 'cache', 'download'),
    gopath,
    gocache,
    home,
    gitConfig,
    workDir,
    vars,
    go,
    async modDownloadJson(modules, extraEnv, mo = {}) {
      const args = ['mod', 'download', '-json', ...modules];
      const r = await go(args, { cwd: mo.cwd, env: extraEnv, allowFail: true, timeoutMs: mo.timeoutMs });
      let parsed: GoModDownload[];
      try {
        parsed = parseJsonStream(r.stdout) as GoModDownload[];
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${describeRun('go', args, r)}`, { cause: err });
      }
      if (!mo.allowErrors) {
        const errors = parsed.filter((o) => o.Error).map((o) => `${o.Path}@${o.Version || o.Query}: ${o.Error}`);
        if (r.code !== 0 || errors.length > 0) {
          throw new Error(`go mod download failed:\n${errors.join('\n')}\n${describeRun('go', args, r)}`);
        }
      }
      return parsed;
    },
    async newModule(dir, modulePath, goModExtra = '') {
      await mkdir(dir, { recursive: true });
      const extra = goModExtra && !goModExtra.endsWith('\n') ? `${goModExtra}\n` : goModExtra;
      await writeFile(path.join(dir, 'go.mod'), `module ${modulePath}\n\ngo 1.21\n${extra ? `\n${extra}` : ''}`);
      return dir;
    },
    async readGoSum(dir) {
      const text = await readFile(path.join(dir, 'go.sum'), 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return '';
        throw err;
      });
      const out = new Map<string, string>();
      for (const line of text.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length === 3) out.set(`${f[0]} ${f[1]}`, f[2]!);
      }
      return out;
    },
    async cleanModCache() {
      await go(['clean', '-modcache']);
      await removeTree(path.join(gopath, 'pkg', 'sumdb'));
      await removeTree(path.join(gomodcache, 'cache', 'download', 'sumdb'));
    },
  };
}

function applyVars(target: Record<string, string>, extra: GoVars | undefined): Record<string, string> {
  if (!extra) return target;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete target[k];
    else target[k] = v;
  }
  return target;
}

/**
 * Parses concatenated JSON values (what `go ... -json` prints: indented objects back to back,
 * not an array). Tracks nesting outside strings to find where each value ends.
 */
export function parseJsonStream(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
      if (depth < 0) throw new Error(`unbalanced JSON stream at offset ${i}`);
    } else if (depth === 0 && c !== undefined && !/\s/.test(c)) {
      throw new Error(`unexpected ${JSON.stringify(c)} between JSON values at offset ${i}`);
    }
  }
  if (depth !== 0 || inString) throw new Error('truncated JSON stream');
  return out;
}
