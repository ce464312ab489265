// The `direct` source: modules straight from their version control repositories, with the git
// binary and no Go toolchain, answering byte for byte as the go command does with GOPROXY=direct.
// Discovery finds the repository; the shared bare-repository cache fetches what a request needs;
// CodeRepo turns tags and commits into versions; zip.ts builds the module zip. `mod` meta tags
// are answered by the proxy they name; other version control systems go to the optional
// go-command source.
import path from 'node:path';
import { FileLocks } from '../../cluster/filelock.js';
import { ProxyError } from '../../errors.js';
import { GoCmdSource } from '../gocmd.js';
import { ProxySource } from '../proxy.js';
import type { FetchContext, ModuleRef, ModuleSource, VersionRef, ZipBody } from '../types.js';
import { GitCodeHost } from './codehost.js';
import { Credentials, type GitCredential } from './credentials.js';
import { Discovery, type MetaFetcher, type RepoMapping, type RepoRoot } from './discovery.js';
import { GitSourceError, toProxyError } from './errors.js';
import { run } from './exec.js';
import { infoJSON } from './info.js';
import { CodeRepo } from './resolve.js';
import { RepoStore, type StoreLog } from './store.js';
import { Semaphore } from './sync.js';
import { moduleZip } from './zip.js';

export { Discovery, type RepoRoot, type RepoMapping, type MetaFetcher } from './discovery.js';
export { parseMetaGoImports, matchGoImport } from './meta.js';
export { Credentials, type GitCredential } from './credentials.js';
export { observeSpawns, runningProcesses } from './exec.js';
export { RepoStore } from './store.js';

export interface GitSourceOptions {
  /** Folder of the bare-repository cache. */
  cacheDir: string;
  /** Bound of the cache on disk; 0 = unbounded. */
  maxCacheBytes: number;
  /** Deadline of one git process. */
  timeoutMs: number;
  /** How long one ls-remote answer is reused across requests. */
  refsTtlMs: number;
  /** How long a discovery answer is reused. */
  discoveryTtlMs: number;
  /** Fetch single refs with --depth=1 until history is needed. */
  shallow: boolean;
  /** At most this many network git operations at once. */
  concurrency: number;
  repos: RepoMapping[];
  /** GOINSECURE-style patterns: plain http allowed for discovery and repositories. */
  insecure: string;
  credentials: GitCredential[];
  /** Base environment for git (default: process.env). */
  env?: NodeJS.ProcessEnv;
  log?: StoreLog;
  /** For tests: how ?go-get=1 pages are fetched. */
  fetchMeta?: MetaFetcher;
  /** Modules of these version control systems (from discovery) go to `gocmd`. */
  gocmd?: { source: ModuleSource; vcs: readonly string[] };
}

/** A repository and module resolved for one request. */
interface Session {
  repo: CodeRepo;
  done(): void;
  /** Keeps the repository from eviction until the returned function is called (a zip still streaming). */
  retain(): () => void;
}

export class GitSource implements ModuleSource {
  readonly id = 'direct';
  readonly discovery: Discovery;
  readonly store: RepoStore;
  private readonly credentials: Credentials;
  private readonly opened: Promise<void>;
  private readonly modProxies = new Map<string, ModuleSource>();
  private readonly baseEnv: NodeJS.ProcessEnv;

  constructor(private readonly opts: GitSourceOptions) {
    this.baseEnv = opts.env ?? process.env;
    this.credentials = new Credentials(opts.credentials, path.join(opts.cacheDir, 'credentials'));
    const net = new Semaphore(opts.concurrency);
    const env = (): NodeJS.ProcessEnv => this.gitEnv();
    this.store = new RepoStore(
      opts.cacheDir,
      opts.maxCacheBytes,
      { env, timeoutMs: opts.timeoutMs, shallow: opts.shallow, locks: new FileLocks(), net },
      opts.log,
    );
    this.discovery = new Discovery({
      repos: opts.repos,
      insecure: opts.insecure,
      ttlMs: opts.discoveryTtlMs,
      fetchMeta: opts.fetchMeta,
      gitAllowProtocol: this.baseEnv.GIT_ALLOW_PROTOCOL,
      probe: async (vcs, scheme, repo) => {
        if (vcs !== 'git') return false;
        await this.opened;
        const r = await net.run(() =>
          run('git', ['ls-remote', '-q', '--end-of-options', `${scheme}://${repo}`], {
            cwd: opts.cacheDir,
            env: this.gitEnv(),
            timeoutMs: Math.min(opts.timeoutMs, 60_000),
          }),
        );
        return r.code === 0;
      },
    });
    if (this.credentials.sshOverridden(this.baseEnv)) {
      opts.log?.warn({}, 'git.credentials sets ssh keys, but GIT_SSH_COMMAND or GIT_SSH is set in the environment and takes precedence');
    }
    const store = this.store;
    const credentials = this.credentials;
    this.opened = (async () => {
      await store.open();
      await credentials.prepare();
    })();
    this.opened.catch(() => undefined);
  }

  /** git's environment: the operator's, no prompts, English messages, our credential helper. */
  private gitEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...this.baseEnv,
      GIT_TERMINAL_PROMPT: '0',
      GCM_INTERACTIVE: 'never',
      LC_ALL: 'C',
      LANGUAGE: 'C',
    };
    // Our git processes pick their own repository; an inherited one would aim them elsewhere.
    delete env.GIT_DIR;
    delete env.GIT_WORK_TREE;
    delete env.GIT_INDEX_FILE;
    delete env.GIT_OBJECT_DIRECTORY;
    delete env.GIT_ALTERNATE_OBJECT_DIRECTORIES;
    return this.credentials.env(env);
  }

  private async session(mod: ModuleRef): Promise<Session | { delegate: ModuleSource }> {
    await this.opened;
    let root: RepoRoot;
    try {
      root = await this.discovery.lookup(mod.path);
    } catch (err) {
      if (!(err instanceof GitSourceError)) throw toProxyError(err);
      throw toProxyError(new GitSourceError(err.kind, `${err.kind === 'not-found' ? 'not found: ' : ''}${mod.path}: ${err.message}`, { cause: err }));
    }
    if (root.vcs === 'mod') return { delegate: this.modProxy(root.repo) };
    const go = this.opts.gocmd;
    if (go && go.vcs.includes(root.vcs)) return { delegate: go.source };
    if (root.vcs !== 'git') {
      throw new ProxyError(
        'not-found',
        `${mod.path}: the repository ${root.repo} uses ${root.vcs}; gomodproxy reads only git natively: enable gocmd (with ${root.vcs} in gocmd.vcs) to fetch it through the go command`,
      );
    }
    const bare = this.store.get(root.repo);
    const code = new GitCodeHost(bare, this.opts.refsTtlMs);
    let repo: CodeRepo;
    try {
      repo = new CodeRepo(code, root.root, root.subDir, mod.path);
    } catch (err) {
      throw toProxyError(err);
    }
    bare.active++;
    // Other processes sharing the cache evict only repositories nobody used lately.
    void bare.touch();
    let released = false;
    return {
      repo,
      done: () => {
        if (released) return;
        released = true;
        code.close();
        bare.active--;
        void bare.touch();
      },
      retain: () => {
        bare.active++;
        let once = false;
        return () => {
          if (once) return;
          once = true;
          bare.active--;
        };
      },
    };
  }

  private modProxy(url: string): ModuleSource {
    let s = this.modProxies.get(url);
    if (!s) {
      s = new ProxySource({
        kind: 'proxy',
        url: url.replace(/\/+$/, ''),
        priority: 0,
        balance: 'failover',
        fallthrough: 'not-found',
        timeouts: { connect: 10_000, firstByte: this.opts.timeoutMs, idle: this.opts.timeoutMs },
      });
      this.modProxies.set(url, s);
    }
    return s;
  }

  private async with<T>(mod: ModuleRef, direct: (repo: CodeRepo, session: Session) => Promise<T>, delegated: (s: ModuleSource) => Promise<T>): Promise<T> {
    const s = await this.session(mod);
    if ('delegate' in s) return delegated(s.delegate);
    try {
      return await direct(s.repo, s);
    } catch (err) {
      throw toProxyError(err);
    } finally {
      s.done();
    }
  }

  list(mod: ModuleRef, ctx: FetchContext): Promise<Buffer> {
    return this.with(
      mod,
      async (repo) => Buffer.from((await repo.versions('')).map((v) => `${v}\n`).join('')),
      (s) => s.list(mod, ctx),
    );
  }

  latest(mod: ModuleRef, ctx: FetchContext): Promise<Buffer> {
    return this.with(
      mod,
      async (repo) => {
        await repo.prefetch('HEAD');
        return infoJSON(await repo.latest());
      },
      (s) => s.latest(mod, ctx),
    );
  }

  info(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<Buffer> {
    return this.with(
      mod,
      async (repo) => {
        await repo.prefetch(v.version);
        return infoJSON(await repo.stat(v.version));
      },
      (s) => s.info(mod, v, ctx),
    );
  }

  mod(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<Buffer> {
    // The go command always resolves a version (.info) before it reads its go.mod: check it the
    // same way, so nothing is served for a version that does not resolve to itself.
    return this.with(
      mod,
      async (repo) => {
        await repo.stat(v.version);
        return repo.goMod(v.version);
      },
      (s) => s.mod(mod, v, ctx),
    );
  }

  async zip(mod: ModuleRef, v: VersionRef, ctx: FetchContext): Promise<ZipBody> {
    return this.with(
      mod,
      async (repo, session) => {
        await repo.stat(v.version);
        const release = session.retain();
        try {
          return await moduleZip(repo, v.version, { tmpDir: this.store.tmpDir, onDone: release });
        } catch (err) {
          release();
          throw err;
        }
      },
      (s) => s.zip(mod, v, ctx),
    );
  }

  async close(): Promise<void> {
    this.store.close();
  }
}

export interface DirectConfig {
  data: string;
  git: {
    enabled: boolean;
    cacheDir?: string | undefined;
    maxCacheBytes: number;
    timeout: number;
    refsTtl: number;
    discoveryTtl: number;
    shallow: boolean;
    concurrency: number;
    insecure?: string | undefined;
    repos: { prefix: string; url: string; vcs?: 'git' | 'hg' | 'svn' | 'bzr' | 'fossil' | undefined; subdir?: string | undefined }[];
    credentials: GitCredential[];
  };
  gocmd: {
    enabled: boolean;
    vcs: string[];
    timeout: number;
    goBinary: string;
    concurrency: number;
    dir?: string | undefined;
  };
}

/**
 * The `direct` source as configured: the native git source (with gocmd for the other version
 * control systems, when enabled), gocmd alone if git is disabled, or undefined when neither is on.
 */
export function createDirectSource(config: DirectConfig, log?: StoreLog): ModuleSource | undefined {
  const g = config.gocmd;
  const insecure = config.git.insecure ?? process.env.GOINSECURE ?? '';
  const gocmd = g.enabled
    ? new GoCmdSource({
        goBinary: g.goBinary,
        dir: g.dir ?? path.join(config.data, 'gocmd'),
        timeoutMs: g.timeout,
        concurrency: g.concurrency,
        insecure,
        vcs: g.vcs,
      })
    : undefined;
  if (!config.git.enabled) return gocmd;
  return new GitSource({
    cacheDir: config.git.cacheDir ?? path.join(config.data, 'vcs'),
    maxCacheBytes: config.git.maxCacheBytes,
    timeoutMs: config.git.timeout,
    refsTtlMs: config.git.refsTtl,
    discoveryTtlMs: config.git.discoveryTtl,
    shallow: config.git.shallow,
    concurrency: config.git.concurrency,
    repos: config.git.repos.map((r) => ({
      prefix: r.prefix.replace(/\/+$/, ''),
      url: r.url,
      ...(r.vcs ? { vcs: r.vcs } : {}),
      ...(r.subdir ? { subdir: r.subdir } : {}),
    })),
    insecure,
    credentials: config.git.credentials,
    ...(log ? { log } : {}),
    ...(gocmd ? { gocmd: { source: gocmd, vcs: g.vcs } } : {}),
  });
}
