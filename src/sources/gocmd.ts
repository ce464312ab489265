// A source that asks the go command itself (`go list -m`, `go mod download -json`, GOPROXY=direct)
// in one reused module cache, for version control systems gomodproxy does not speak natively
// (hg, svn, bzr, fossil). Off unless configured. Every go process has a deadline and is reaped
// with everything it started (its own process group); answers are the files the go command wrote.
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ProxyError } from '../errors.js';
import { escapePath, escapeVersion } from '../module/index.js';
import { run } from './git/exec.js';
import { Semaphore } from './git/sync.js';
import type { FetchContext, ModuleRef, ModuleSource, VersionRef, ZipBody } from './types.js';

export interface GoCmdOptions {
  /** The go binary; "go" from PATH by default. */
  goBinary?: string;
  /** Folder for the go command's GOMODCACHE and GOPATH (kept between requests). */
  dir: string;
  /** Deadline of one go process. */
  timeoutMs: number;
  /** At most this many go processes at once. */
  concurrency?: number;
  /** GOINSECURE-style patterns. */
  insecure?: string;
  /** Version control systems the go command may use for public modules (GOVCS). */
  vcs?: readonly string[];
  /** Base environment (default process.env); git/hg/ssh settings in it apply. */
  env?: NodeJS.ProcessEnv;
}

interface ListJSON {
  Path?: string;
  Version?: string;
  Versions?: string[];
  GoMod?: string;
  Error?: { Err?: string } | string;
}

interface DownloadJSON {
  Path?: string;
  Version?: string;
  Info?: string;
  GoMod?: string;
  Zip?: string;
  Error?: string;
}

export class GoCmdSource implements ModuleSource {
  readonly id = 'direct (go command)';
  private readonly go: string;
  private readonly modcache: string;
  private readonly work: string;
  private readonly limit: Semaphore;
  private ready: Promise<void> | undefined;

  constructor(private readonly opts: GoCmdOptions) {
    this.go = opts.goBinary ?? 'go';
    this.modcache = path.join(opts.dir, 'modcache');
    this.work = path.join(opts.dir, 'work');
    this.limit = new Semaphore(opts.concurrency ?? 4);
  }

  private env(): NodeJS.ProcessEnv {
    const base = this.opts.env ?? process.env;
    const vcs = (this.opts.vcs ?? ['git', 'hg', 'svn', 'bzr', 'fossil']).join('|');
    return {
      ...base,
      GOMODCACHE: this.modcache,
      GOPATH: path.join(this.opts.dir, 'gopath'),
      GOPROXY: 'direct',
      GOSUMDB: 'off',
      GOFLAGS: '-modcacherw',
      GOTOOLCHAIN: 'local',
      GOWORK: 'off',
      GO111MODULE: 'on',
      GOINSECURE: this.opts.insecure ?? base.GOINSECURE ?? '',
      GOVCS: base.GOVCS ?? `public:${vcs},private:all`,
      GOPRIVATE: '',
      GONOPROXY: '',
      GIT_TERMINAL_PROMPT: '0',
      GCM_INTERACTIVE: 'never',
    };
  }

  private async prepare(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.modcache, { recursive: true });
      await mkdir(this.work, { recursive: true });
    })();
    await this.ready;
  }

  private async goRun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    await this.prepare();
    return this.limit.run(async () => {
      const r = await run(this.go, args, { cwd: this.work, env: this.env(), timeoutMs: this.opts.timeoutMs });
      if (r.timedOut) throw new ProxyError('timeout', `go ${args.join(' ')}: timed out after ${Math.round(this.opts.timeoutMs / 1000)}s`);
      return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
    });
  }

  /** `go list -m -json` of query; the .info and .mod the go command wrote are then in its cache. */
  private async listModule(mod: ModuleRef, query: string): Promise<ListJSON> {
    const r = await this.goRun(['list', '-m', '-json', `${mod.path}@${query}`]);
    if (r.code !== 0) throw failure(r.stderr, `${mod.path}@${query}`);
    return JSON.parse(r.stdout) as ListJSON;
  }

  private cacheFile(mod: ModuleRef, version: string, ext: string): string {
    return path.join(this.modcache, 'cache', 'download', escapePath(mod.path), '@v', `${escapeVersion(version)}.${ext}`);
  }

  async list(mod: ModuleRef, _ctx?: FetchContext): Promise<Buffer> {
    const r = await this.goRun(['list', '-m', '-versions', '-retracted', '-json', mod.path]);
    if (r.code !== 0) throw failure(r.stderr, mod.path);
    const j = JSON.parse(r.stdout) as ListJSON;
    return Buffer.from((j.Versions ?? []).map((v) => `${v}\n`).join(''));
  }

  async latest(mod: ModuleRef, _ctx?: FetchContext): Promise<Buffer> {
    const j = await this.listModule(mod, 'latest');
    return readFile(this.cacheFile(mod, j.Version as string, 'info'));
  }

  async info(mod: ModuleRef, v: VersionRef, _ctx?: FetchContext): Promise<Buffer> {
    const j = await this.listModule(mod, v.version);
    if (!j.Version) throw new ProxyError('upstream', `go list -m ${mod.path}@${v.version} printed no version`);
    return readFile(this.cacheFile(mod, j.Version, 'info'));
  }

  async mod(mod: ModuleRef, v: VersionRef, _ctx?: FetchContext): Promise<Buffer> {
    const j = await this.listModule(mod, v.version);
    try {
      return await readFile(j.GoMod ?? this.cacheFile(mod, v.version, 'mod'));
    } catch {
      // Not fetched by go list: download it (with the zip, the only way to ask for a .mod).
      await this.zip(mod, v).then((z) => z.stream.destroy());
      return readFile(this.cacheFile(mod, v.version, 'mod'));
    }
  }

  async zip(mod: ModuleRef, v: VersionRef, _ctx?: FetchContext): Promise<ZipBody> {
    const r = await this.goRun(['mod', 'download', '-json', `${mod.path}@${v.version}`]);
    let j: DownloadJSON | undefined;
    try {
      j = JSON.parse(r.stdout) as DownloadJSON;
    } catch {
      j = undefined;
    }
    if (!j || j.Error || !j.Zip) throw failure(j?.Error ?? r.stderr, `${mod.path}@${v.version}`);
    const st = await stat(j.Zip);
    return { stream: createReadStream(j.Zip), size: st.size };
  }
}

/** The go command's message as a ProxyError: "does not exist" kinds are 404, the rest are upstream trouble. */
function failure(text: string, what: string): ProxyError {
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ')
    .replace(/^go: /, '');
  const msg = line || `go command failed for ${what}`;
  if (
    /unknown revision|invalid version|not found|no matching versions|unrecognized import path|does not contain package|no commits|disabled by GOVCS|malformed module path|no secure protocol found/i.test(
      msg,
    )
  ) {
    return new ProxyError('not-found', msg);
  }
  return new ProxyError('upstream', msg);
}
