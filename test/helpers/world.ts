// A test upstream the tests build themselves: modules written as local git repositories, fetched
// once by the real go command with GOPROXY=direct. What go stored (GOMODCACHE/cache/download) is a
// valid proxy tree to serve, and what go printed (Sum, GoModSum, .info) is the expected answer for
// the proxy under test: Go's own results, computed at test time, never stored ones.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createGoEnv, type GoEnv, type GoModDownload, type GoOrigin } from './goenv.js';
import { createRepo, insteadOf, type FileContent, type GitRepo } from './gitrepo.js';
import { makeTempDir, registerCleanup } from './tmp.js';

export interface WorldVersion {
  /**
   * Version to tag the commit with (`v1.2.0-pre`; `v2.0.0+incompatible` tags `v2.0.0`); the tag gets
   * the module's directory prefix. Omit it for an untagged commit (pseudo-versions, branch heads).
   */
  version?: string;
  /**
   * The module's files at this version, relative to its directory. They replace the previous
   * version's files (other modules' directories nested inside are kept). Default: one Go file
   * naming the version.
   */
  files?: Record<string, FileContent>;
  /** go.mod content; default `module <path>\n\ngo 1.21\n`; `null` for a module without go.mod. */
  goMod?: string | null;
  /** Author and committer date; by default one hour after the previous commit in the world. */
  date?: Date | string;
  annotated?: boolean;
  /** More raw tag names on the same commit (non-canonical `v1.3`, a second version...). */
  extraTags?: string[];
  /** Branch to commit on, created from the current HEAD if new; `main` by default. */
  branch?: string;
  /** Fetch this version into the world's cache (default true for tagged versions). */
  download?: boolean;
  message?: string;
}

export interface WorldModule {
  /** `github.com/<owner>/<repo>[/sub][/vN]`: the only host the go command resolves without HTTP. */
  path: string;
  /**
   * Directory of the module inside the repository; default the path below the repo root, so
   * `.../repo/v2` lives in `v2/` (major subdirectory). `''` for a `/vN` module at the repo root.
   */
  dir?: string;
  versions: WorldVersion[];
  /** Also run `go mod download path@latest`. */
  latest?: boolean;
  /** Also download these queries (branch names, commit hashes, `<v1.2`...). */
  queries?: string[];
}

export interface WorldSpec {
  modules: WorldModule[];
}

/** What the go command said about one version, fetched directly from the git repo. */
export interface ExpectedVersion {
  Path: string;
  Version: string;
  /** `h1:` of the zip. */
  Sum: string;
  /** `h1:` of the .mod. */
  GoModSum: string;
  /** The `.info` file go stored, parsed. */
  Info: ExpectedInfo;
  /** The `.info` file bytes as go wrote them. */
  infoText: string;
  /** The `.mod` bytes as text. */
  modText: string;
  Origin?: GoOrigin;
  /** Absolute paths of the cached files. */
  files: { info: string; mod: string; zip: string };
}

export interface ExpectedInfo {
  Version: string;
  Time: string;
  Origin?: GoOrigin;
}

export interface World {
  readonly root: string;
  /** `GOMODCACHE/cache/download` of `goEnv`: a GOPROXY tree (serve it with startTestUpstream or file://). */
  readonly downloadDir: string;
  /** The env that fetched everything directly; its gitConfig maps the github.com URLs to the local repos. */
  readonly goEnv: GoEnv;
  /** Repositories by repo root (`github.com/<owner>/<repo>`). */
  readonly repos: Map<string, GitRepo>;
  /** `"path@version"` -> what direct mode gave. */
  readonly expected: Map<string, ExpectedVersion>;
  /** `"path@query"` (`@latest`, `@main`, ...) -> what it resolved to. */
  readonly queries: Map<string, ExpectedVersion>;
  /** GOPRIVATE value covering every module of the world. */
  readonly goprivate: string;
  /** Settings that make a go env fetch the world directly from its repos (use with `goEnv` or `configureGit`). */
  readonly directEnv: Record<string, string>;
  /** The expected entry for `path@version`, throwing a readable error if the world lacks it. */
  get(pathAtVersion: string): ExpectedVersion;
  /** Adds this world's insteadOf rules to another go env, so it too can fetch directly. */
  configureGit(env: Pick<GoEnv, 'gitConfig'>): Promise<void>;
}

interface ModuleState {
  spec: WorldModule;
  repoRoot: string;
  dir: string;
  tagPrefix: string;
}

interface WorldState {
  modules: Map<string, ModuleState>;
  commits: number;
  cacheKey?: string;
}

const states = new WeakMap<World, WorldState>();
const cache = new Map<string, Promise<World>>();
const baseDate = Date.UTC(2023, 0, 1, 0, 0, 0);

/**
 * Builds (or returns the cached identical) world. Worlds are shared within a test process: pass
 * `fresh: true` when the test will change the world (addVersionToWorld also stops sharing it).
 */
export function buildModuleWorld(spec: WorldSpec, opts: { fresh?: boolean } = {}): Promise<World> {
  if (opts.fresh) return build(spec);
  const key = specKey(spec);
  let p = cache.get(key);
  if (!p) {
    p = build(spec, key);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function build(spec: WorldSpec, cacheKey?: string): Promise<World> {
  const root = await makeTempDir('world');
  if (cacheKey) registerCleanup(() => cache.delete(cacheKey));
  const goEnv = await createGoEnv({ root: path.join(root, 'go') });
  const state: WorldState = { modules: new Map(), commits: 0, cacheKey };
  const repos = new Map<string, GitRepo>();

  const owners = new Set<string>();
  for (const m of spec.modules) {
    const ms = moduleState(m);
    if (state.modules.has(m.path)) throw new Error(`world lists ${m.path} twice`);
    state.modules.set(m.path, ms);
    owners.add(ms.repoRoot.split('/').slice(0, 2).join('/'));
  }
  const goprivate = [...owners].sort().join(',');
  const directEnv = { GOPROXY: 'direct', GOPRIVATE: goprivate, GONOSUMDB: goprivate, GOSUMDB: 'off' };

  const world: World = {
    root,
    downloadDir: goEnv.downloadDir,
    goEnv,
    repos,
    expected: new Map(),
    queries: new Map(),
    goprivate,
    directEnv,
    get(key) {
      const e = this.expected.get(key);
      if (!e) throw new Error(`world has no ${key}; it has ${[...this.expected.keys()].join(', ')}`);
      return e;
    },
    async configureGit(env) {
      for (const [repoRoot, repo] of repos) await insteadOf(env, `https://${repoRoot}`, repo.dir);
    },
  };
  states.set(world, state);

  const wanted: string[] = [];
  const queryArgs = new Set<string>();
  for (const m of spec.modules) {
    const ms = state.modules.get(m.path)!;
    for (const v of m.versions) {
      await commitVersion(world, state, ms, v);
      if (v.version && v.download !== false) wanted.push(`${m.path}@${v.version}`);
    }
    if (m.latest) queryArgs.add(`${m.path}@latest`);
    for (const q of m.queries ?? []) queryArgs.add(`${m.path}@${q}`);
  }
  await download(world, [...wanted, ...queryArgs], queryArgs);
  return world;
}

function moduleState(m: WorldModule): ModuleState {
  const parts = m.path.split('/');
  if (parts[0] !== 'github.com' || parts.length < 3) {
    throw new Error(`world module ${m.path}: use github.com/<owner>/<repo>[/...] so go needs no HTTP discovery`);
  }
  const repoRoot = parts.slice(0, 3).join('/');
  const below = parts.slice(3).join('/');
  const dir = (m.dir ?? below).replace(/^\/+|\/+$/g, '');
  // Tags carry the module's directory but never the /vN major directory (GO-MODULES.md §10).
  const major = /^v\d+$/.test(parts[parts.length - 1]!) && parts.length > 3 ? parts[parts.length - 1]! : '';
  const dirParts = dir ? dir.split('/') : [];
  const codeDir = major && dirParts[dirParts.length - 1] === major ? dirParts.slice(0, -1).join('/') : dir;
  return { spec: m, repoRoot, dir, tagPrefix: codeDir ? `${codeDir}/` : '' };
}

async function repoFor(world: World, ms: ModuleState): Promise<GitRepo> {
  let repo = world.repos.get(ms.repoRoot);
  if (!repo) {
    repo = await createRepo(path.join(world.root, 'repos', ms.repoRoot));
    world.repos.set(ms.repoRoot, repo);
    await insteadOf(world.goEnv, `https://${ms.repoRoot}`, repo.dir);
  }
  return repo;
}

async function commitVersion(world: World, state: WorldState, ms: ModuleState, v: WorldVersion): Promise<string> {
  const repo = await repoFor(world, ms);
  const branch = v.branch ?? 'main';
  const hasCommits = await repo.git(['rev-parse', '--verify', '-q', 'HEAD']).then(
    () => true,
    () => false,
  );
  if (hasCommits && (await repo.currentBranch()) !== branch) {
    const exists = await repo.git(['rev-parse', '--verify', '-q', `refs/heads/${branch}`]).then(
      () => true,
      () => false,
    );
    await repo.checkout(branch, { create: !exists });
  } else if (!hasCommits && branch !== 'main') {
    await repo.git(['symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
  }

  // Replace the module's files, sparing nested modules of the same repository.
  const nested = [...state.modules.values()]
    .filter((o) => o !== ms && o.repoRoot === ms.repoRoot && o.dir !== ms.dir && isInside(o.dir, ms.dir))
    .map((o) => o.dir);
  const tracked = hasCommits ? (await repo.git(['ls-files', '-z'])).split('\0').filter(Boolean) : [];
  const stale = tracked.filter((f) => isInside(f, ms.dir) && !nested.some((n) => isInside(f, n)));
  await repo.remove(stale);

  const files: Record<string, FileContent> = {};
  const label = v.version ?? `commit ${state.commits + 1}`;
  const given = v.files ?? defaultFiles(ms.spec.path, label);
  for (const [rel, content] of Object.entries(given)) files[joinRel(ms.dir, rel)] = content;
  if (v.goMod !== undefined) {
    if (v.goMod === null) delete files[joinRel(ms.dir, 'go.mod')];
    else files[joinRel(ms.dir, 'go.mod')] = v.goMod;
  } else if (!('go.mod' in given)) {
    files[joinRel(ms.dir, 'go.mod')] = `module ${ms.spec.path}\n\ngo 1.21\n`;
  }
  await repo.write(files);

  const date = v.date ?? new Date(baseDate + state.commits * 3_600_000);
  state.commits++;
  const hash = await repo.commit(v.message ?? `${ms.spec.path} ${label}`, { date });
  if (v.version) {
    await repo.tag(ms.tagPrefix + v.version.replace(/\+incompatible$/, ''), { annotated: v.annotated });
  }
  for (const t of v.extraTags ?? []) await repo.tag(t, { annotated: v.annotated });
  return hash;
}

function defaultFiles(modulePath: string, label: string): Record<string, string> {
  const elems = modulePath.split('/').filter((e) => !/^v\d+$/.test(e));
  let pkg = (elems[elems.length - 1] ?? 'm').toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (/^[0-9]/.test(pkg)) pkg = `m${pkg}`;
  return {
    [`${pkg}.go`]: `package ${pkg}\n\n// Version names the world version this file was committed as.\nconst Version = ${JSON.stringify(label)}\n`,
  };
}

function isInside(p: string, dir: string): boolean {
  return dir === '' || p === dir || p.startsWith(`${dir}/`);
}

function joinRel(dir: string, rel: string): string {
  return dir ? `${dir}/${rel}` : rel;
}

async function download(world: World, args: string[], queryArgs: Set<string>): Promise<void> {
  if (args.length === 0) return;
  const results = await world.goEnv.modDownloadJson(args, world.directEnv);
  // One object per argument, in argument order (GO-MODULES.md §11).
  if (results.length !== args.length) {
    throw new Error(`go mod download printed ${results.length} objects for ${args.length} arguments`);
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const e = await expectedFrom(results[i]!);
    world.expected.set(`${e.Path}@${e.Version}`, e);
    if (queryArgs.has(arg)) world.queries.set(arg, e);
  }
}

async function expectedFrom(r: GoModDownload): Promise<ExpectedVersion> {
  if (!r.Info || !r.GoMod || !r.Zip || !r.Sum || !r.GoModSum) {
    throw new Error(`go mod download gave an incomplete result: ${JSON.stringify(r)}`);
  }
  const [infoText, modText] = await Promise.all([readFile(r.Info, 'utf8'), readFile(r.GoMod, 'utf8')]);
  return {
    Path: r.Path,
    Version: r.Version,
    Sum: r.Sum,
    GoModSum: r.GoModSum,
    Info: JSON.parse(infoText) as ExpectedInfo,
    infoText,
    modText,
    Origin: r.Origin,
    files: { info: r.Info, mod: r.GoMod, zip: r.Zip },
  };
}

/**
 * Commits and tags a new version of `modulePath` (a new module, even a new repo, is fine) and
 * fetches it (plus `queries`, e.g. `latest`) into the world's cache, so it shows up in
 * `downloadDir`. The world stops being shared with later buildModuleWorld calls.
 */
export async function addVersionToWorld(
  world: World,
  modulePath: string,
  version: WorldVersion,
  opts: { queries?: string[]; dir?: string } = {},
): Promise<ExpectedVersion | undefined> {
  const state = states.get(world);
  if (!state) throw new Error('not a world made by buildModuleWorld');
  if (state.cacheKey) {
    cache.delete(state.cacheKey);
    state.cacheKey = undefined;
  }
  let ms = state.modules.get(modulePath);
  if (!ms) {
    ms = moduleState({ path: modulePath, dir: opts.dir, versions: [] });
    const owner = ms.repoRoot.split('/').slice(0, 2).join('/');
    if (!world.goprivate.split(',').includes(owner)) {
      throw new Error(`${modulePath} is outside the world's GOPRIVATE (${world.goprivate}); build it into the world`);
    }
    state.modules.set(modulePath, ms);
  }
  await commitVersion(world, state, ms, version);
  const queryArgs = new Set((opts.queries ?? []).map((q) => `${modulePath}@${q}`));
  const args = version.version && version.download !== false ? [`${modulePath}@${version.version}`] : [];
  await download(world, [...args, ...queryArgs], queryArgs);
  return version.version ? world.expected.get(`${modulePath}@${version.version}`) : undefined;
}

function specKey(spec: WorldSpec): string {
  return JSON.stringify(spec, (_k, v: unknown) => {
    if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return { buffer: Buffer.from((v as { data: number[] }).data).toString('base64') };
    }
    return v;
  });
}
