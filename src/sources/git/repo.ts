// One bare repository in the shared cache (<cache>/<sha256 of "git3:"+url>, as cmd/go names its
// clones): created on first use, fetched into only as far as a request needs (one ref at
// --depth=1; all heads and tags with full history only when a pseudo-version needs ancestry),
// and read by many requests at once. Fetches into one repository are serialized: in this process
// by a mutex, across processes sharing the data folder by a lock file. Reads (log, cat-file,
// archive) need no lock: git updates objects and refs atomically.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EnvHttpProxyAgent, interceptors, request } from 'undici';
import type { FileLocks, HeldLock } from '../../cluster/filelock.js';
import { GitSourceError, notExist } from './errors.js';
import { run, runChecked, RunError, type RunResult } from './exec.js';
import { CatFileBatch } from './catfile.js';
import { Mutex, sleep, type Semaphore } from './sync.js';

export interface RepoContext {
  /** Base environment for git (process env, credentials, prompts off). */
  env: () => NodeJS.ProcessEnv;
  /** Deadline of one git process. */
  timeoutMs: number;
  /** Fetch single refs with --depth=1 until history is needed. */
  shallow: boolean;
  locks: FileLocks;
  /** Bound on concurrent network operations (ls-remote, fetch). */
  net: Semaphore;
  /** Told after every fetch (the store then checks its size bound). */
  onFetched?: () => void;
}

export interface LocalCommit {
  hash: string;
  /** Committer time, seconds since the epoch. */
  time: number;
}

const ATTRIBUTES = '\n* -export-subst -export-ignore\n';
const MARKER = 'gomodproxy-remote';

/** refs from ls-remote: "HEAD", "refs/heads/x", "refs/tags/y" -> commit hash (annotated tags peeled). */
export type Refs = ReadonlyMap<string, string>;

export class BareRepo {
  private readonly mutex = new Mutex();
  private ready: Promise<void> | undefined;
  private settled = false;
  private refsAt = 0;
  private refsValue: Refs | undefined;
  private refsFlight: Promise<Refs> | undefined;
  /** Sessions using this repository right now (eviction skips it). */
  active = 0;
  /** Bumped after every fetch: readers started before it restart to see the new objects. */
  generation = 0;
  /** Bumped whenever the repository is (re)created: what was known to be in it is gone. */
  epoch = 0;
  hexLen = 40;

  constructor(
    /** The remote URL as discovered (before the user's insteadOf rewrites, which git applies). */
    readonly url: string,
    readonly dir: string,
    private readonly ctx: RepoContext,
  ) {}

  private env(): NodeJS.ProcessEnv {
    return { ...this.ctx.env(), GIT_DIR: this.dir };
  }

  /** Runs git in this repository; throws RunError on failure. */
  git(args: readonly string[], extra: { maxStdout?: number; stdoutFile?: string; maxStdoutFile?: number } = {}): Promise<RunResult> {
    return runChecked('git', args, { cwd: this.dir, env: this.env(), timeoutMs: this.ctx.timeoutMs, ...extra });
  }

  /** Runs git and returns the result whatever the exit status. */
  gitRaw(args: readonly string[], extra: { maxStdout?: number } = {}): Promise<RunResult> {
    return run('git', args, { cwd: this.dir, env: this.env(), timeoutMs: this.ctx.timeoutMs, ...extra });
  }

  /** Touches the repository's use time (eviction removes the least recently used first). */
  async touch(): Promise<void> {
    const t = new Date();
    await utimes(path.join(this.dir, MARKER), t, t).catch(() => undefined);
  }

  /** Creates the bare repository if it is missing or was left half-made. */
  init(): Promise<void> {
    // Another process sharing the cache may have evicted it since: start again then.
    if (this.ready && this.settled && !existsSync(path.join(this.dir, MARKER))) this.ready = undefined;
    this.ready ??= this.mutex
      .run(() => this.withLock(() => this.initLocked()))
      .then(() => {
        this.settled = true;
      })
      .catch((err: unknown) => {
        this.ready = undefined;
        throw err;
      });
    return this.ready;
  }

  private async initLocked(objectFormat?: 'sha256'): Promise<void> {
    const marker = path.join(this.dir, MARKER);
    if (!objectFormat && existsSync(marker)) {
      const have = (await readFile(marker, 'utf8')).trim();
      if (have === this.url) {
        this.hexLen = (await this.objectFormat()) === 'sha256' ? 64 : 40;
        return;
      }
    }
    this.epoch++;
    this.generation++;
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    const env = { ...this.ctx.env() };
    delete env.GIT_DIR;
    // No template: the sample hooks and the rest are of no use in a cache.
    await runChecked('git', ['init', '--bare', '-q', '--template=', `--object-format=${objectFormat ?? 'sha1'}`, this.dir], {
      cwd: this.dir,
      env,
      timeoutMs: this.ctx.timeoutMs,
    });
    // Written directly rather than with `git remote add` and `git config` (one process instead of
    // five). A named remote, as cmd/go uses, lets the user's insteadOf and credential settings
    // apply as usual. Fetched packs stay packs; gc, when git decides to run it, runs inside our
    // (timed) fetch rather than detached.
    await appendFile(
      path.join(this.dir, 'config'),
      `[remote "origin"]\n\turl = ${configQuote(this.url)}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n` +
        '[fetch]\n\tunpackLimit = 1\n[gc]\n\tautoDetach = false\n[core]\n\tlogAllRefUpdates = false\n',
    );
    await mkdir(path.join(this.dir, 'info'), { recursive: true });
    await appendFile(path.join(this.dir, 'info', 'attributes'), ATTRIBUTES);
    await writeFile(marker, `${this.url}\n`);
    this.hexLen = objectFormat === 'sha256' ? 64 : 40;
  }

  private async objectFormat(): Promise<string> {
    const r = await this.gitRaw(['config', 'extensions.objectformat']);
    return r.code === 0 ? r.stdout.toString().trim() : 'sha1';
  }

  /** Holds the cross-process lock of this repository while fn runs (waiting for another holder). */
  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const lockFile = `${this.dir}.lock`;
    const deadline = Date.now() + this.ctx.timeoutMs;
    let lock: HeldLock | null;
    for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
      lock = await this.ctx.locks.tryAcquire(lockFile);
      if (lock) break;
      if (Date.now() > deadline) throw new GitSourceError('timeout', `timed out waiting for another gomodproxy process to finish fetching ${this.url}`);
      await sleep(wait);
    }
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /**
   * The remote's refs (git ls-remote), reused for maxAgeMs; concurrent callers share one
   * ls-remote. Throws GitSourceError: not-found for a missing repository, upstream/timeout for
   * anything that keeps us from knowing.
   */
  async refs(maxAgeMs: number): Promise<Refs> {
    if (this.refsValue && Date.now() - this.refsAt < maxAgeMs) return this.refsValue;
    if (this.refsFlight) return this.refsFlight;
    const flight = (async () => {
      // ls-remote needs no local repository: ask the remote by URL while the repository is made.
      const ready = this.init();
      ready.catch(() => undefined);
      const started = Date.now();
      let r: RunResult;
      try {
        const env: NodeJS.ProcessEnv = { ...this.ctx.env(), GIT_CEILING_DIRECTORIES: path.dirname(path.dirname(this.dir)) };
        delete env.GIT_DIR;
        r = await this.ctx.net.run(() =>
          run('git', ['ls-remote', '-q', '--end-of-options', this.url], {
            cwd: path.dirname(this.dir),
            env,
            timeoutMs: this.ctx.timeoutMs,
            maxStdout: 256 << 20,
          }),
        );
      } catch (err) {
        throw new GitSourceError('upstream', `git ls-remote ${this.url}: ${(err as Error).message}`, { cause: err });
      }
      await ready;
      if (r.code !== 0 || r.timedOut) {
        const err = lsRemoteError(this.url, r);
        // As cmd/go (codehost gitRepo.loadRefs): a failed ls-remote means "no such repository"
        // only when a plain GET of an http(s) remote URL answers 404 or 410; git's own words
        // ("repository not found", a host asking for credentials, as GitHub does for missing and
        // private repositories alike) prove nothing by themselves. A timeout stays a timeout.
        if (err.kind !== 'timeout' && /^https?:/i.test(this.url)) {
          const status = await webStatus(this.url, this.ctx.timeoutMs);
          if (status === 404 || status === 410) {
            throw notExist(`${err.base}; the repository does not exist, or it is private (then configure credentials for its host in git.credentials)`);
          }
        }
        throw err;
      }
      const refs = new Map<string, string>();
      for (const line of r.stdout.toString('utf8').split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length !== 2) continue;
        const [hash, ref] = f as [string, string];
        if (ref === 'HEAD' || ref.startsWith('refs/heads/') || ref.startsWith('refs/tags/')) refs.set(ref, hash);
      }
      for (const [ref, hash] of [...refs]) {
        if (ref.endsWith('^{}')) {
          refs.set(ref.slice(0, -3), hash);
          refs.delete(ref);
        }
      }
      const any = refs.values().next();
      if (!any.done && any.value.length === 64 && this.hexLen === 40) await this.switchToSha256();
      this.refsValue = refs;
      this.refsAt = started;
      return refs;
    })();
    this.refsFlight = flight;
    try {
      return await flight;
    } finally {
      this.refsFlight = undefined;
    }
  }

  /** A remote with SHA-256 object names needs a repository of that format (only while still empty). */
  private async switchToSha256(): Promise<void> {
    await this.mutex.run(() =>
      this.withLock(async () => {
        if ((await this.objectFormat()) === 'sha256') {
          this.hexLen = 64;
          return;
        }
        await this.initLocked('sha256');
      }),
    );
  }

  /** The commit rev names in the local repository, or null if it is not there. */
  async localCommit(rev: string): Promise<LocalCommit | null> {
    const r = await this.gitRaw(['-c', 'log.showsignature=false', 'log', '--no-decorate', '-n1', '--format=format:%H %ct', '--end-of-options', rev, '--']);
    if (r.code !== 0) {
      if (r.timedOut) throw new RunError(`git log ${rev}`, r.code, r.stderr, true);
      return null;
    }
    const f = r.stdout.toString('utf8').trim().split(/\s+/);
    const time = Number(f[1]);
    if (!f[0] || !Number.isFinite(time)) return null;
    return { hash: f[0], time };
  }

  async isShallow(): Promise<boolean> {
    return existsSync(path.join(this.dir, 'shallow'));
  }

  /** Whether the repository holds history beyond single commits (it was fully fetched and is not shallow). */
  async hasHistory(): Promise<boolean> {
    return existsSync(path.join(this.dir, 'gomodproxy-complete')) && !(await this.isShallow());
  }

  /**
   * Fetches refs (refs/heads/x, refs/tags/y, or HEAD by its hash) whose commits are not here yet,
   * all in one fetch. With history present the fetch is not shallow, so the repository stays
   * complete.
   */
  async fetchRefs(wants: readonly { ref: string; hash: string }[], checkedAt?: number): Promise<void> {
    if (wants.length === 0) return;
    await this.mutex.run(() =>
      this.withLock(async () => {
        // The caller saw these missing; unless a fetch happened here since, skip asking again
        // (another process may have fetched them: fetching again then costs a negotiation only).
        const missing = checkedAt === this.generation ? new Set(wants.map((w) => w.hash)) : await this.missing(wants.map((w) => w.hash));
        const todo = wants.filter((w) => missing.has(w.hash));
        if (todo.length === 0) return;
        // HEAD is fetched by hash under a name of its own (as cmd/go does); other refs by name,
        // which every server accepts.
        const refspecs = todo.map((w) => (w.ref === 'HEAD' ? `${w.hash}:refs/dummy` : `${w.ref}:${w.ref}`));
        const depth = this.ctx.shallow && !(await this.hasHistory()) ? ['--depth=1'] : [];
        try {
          await this.ctx.net.run(() =>
            this.git(['-c', 'protocol.version=2', 'fetch', '-f', '-q', '--no-tags', ...depth, '--end-of-options', 'origin', ...refspecs]),
          );
        } finally {
          this.generation++;
        }
        this.ctx.onFetched?.();
      }),
    );
  }

  /** Which of hashes are not in the local repository. */
  async missing(hashes: readonly string[]): Promise<Set<string>> {
    const r = await run('git', ['cat-file', '--batch-check'], {
      cwd: this.dir,
      env: this.env(),
      timeoutMs: this.ctx.timeoutMs,
      input: hashes.map((h) => `${h}\n`).join(''),
    });
    const out = new Set<string>();
    for (const line of r.stdout.toString('utf8').split('\n')) {
      const m = /^(\S+) missing$/.exec(line.trim());
      if (m) out.add(m[1] as string);
    }
    if (r.code !== 0) for (const h of hashes) out.add(h);
    return out;
  }

  /** A `git cat-file --batch` reader of this repository (the caller closes it). */
  catFile(): CatFileBatch {
    return new CatFileBatch(this.dir, this.env(), this.ctx.timeoutMs);
  }

  /** Fetches every branch and tag with full history (what cmd/go does when it needs ancestry). */
  async fetchAll(): Promise<void> {
    await this.mutex.run(() =>
      this.withLock(async () => {
        try {
          await this.ctx.net.run(async () => {
            await this.git(['fetch', '-f', '-q', '--prune', '--end-of-options', 'origin', 'refs/heads/*:refs/heads/*', 'refs/tags/*:refs/tags/*']);
            if (await this.isShallow()) await this.git(['fetch', '-q', '--unshallow', '-f', '--end-of-options', 'origin']);
          });
        } finally {
          this.generation++;
        }
        await writeFile(path.join(this.dir, 'gomodproxy-complete'), `${new Date().toISOString()}\n`);
        this.ctx.onFetched?.();
      }),
    );
  }

  /** Contents of path at commit, or null if there is no such file. */
  async readBlob(commit: string, file: string, max: number): Promise<Buffer | null> {
    const r = await this.gitRaw(['cat-file', '--end-of-options', 'blob', `${commit}:${file}`], { maxStdout: max + 1 });
    if (r.timedOut) throw new RunError(`git cat-file blob ${commit}:${file}`, r.code, r.stderr, true);
    if (r.tooLarge) return r.stdout;
    if (r.code !== 0) return null;
    return r.stdout;
  }

  /** Local tags (name -> peeled commit hash) from which commit is reachable. */
  async mergedTags(commit: string): Promise<Map<string, string>> {
    const r = await this.git(['for-each-ref', '--format=%(refname) %(objectname) %(*objectname)', `--merged=${commit}`, 'refs/tags'], { maxStdout: 256 << 20 });
    const out = new Map<string, string>();
    for (const line of r.stdout.toString('utf8').split('\n')) {
      const [ref, obj, peeled] = line.trim().split(' ');
      if (!ref?.startsWith('refs/tags/') || !obj) continue;
      out.set(ref.slice('refs/tags/'.length), peeled || obj);
    }
    return out;
  }

  /** Whether ancestor is commit or one of its ancestors; null if git cannot tell (objects missing). */
  async isAncestor(ancestor: string, commit: string): Promise<boolean | null> {
    const r = await this.gitRaw(['merge-base', '--is-ancestor', '--', ancestor, commit]);
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    if (r.timedOut) throw new RunError('git merge-base', r.code, r.stderr, true);
    return null;
  }

  /**
   * `git archive --format=tar` of commit (only subdir, when given) into file, with the same
   * settings as cmd/go (export-subst and export-ignore disabled, no CRLF conversion on the way out).
   */
  async archive(commit: string, subdir: string, file: string, maxBytes: number): Promise<void> {
    // The attributes in the tree apply (as for cmd/go); the operator's global and system ones do
    // not: a module's checksum must not depend on the machine that zipped it.
    const args = [
      '-c',
      'core.autocrlf=input',
      '-c',
      'core.eol=lf',
      '-c',
      'core.attributesFile=/dev/null',
      'archive',
      '--format=tar',
      '--end-of-options',
      commit,
    ];
    // No "--" here: after --end-of-options, git archive would take it for a path.
    if (subdir) args.push(subdir);
    const r = await run('git', args, {
      cwd: this.dir,
      env: { ...this.env(), GIT_ATTR_NOSYSTEM: '1' },
      timeoutMs: this.ctx.timeoutMs,
      stdoutFile: file,
      maxStdoutFile: maxBytes,
    });
    if (r.tooLarge) throw notExist(`downloaded zip file too large`);
    if (r.code !== 0 || r.timedOut) {
      if (r.stderr.includes('did not match any files')) throw notExist(`file does not exist`);
      throw new RunError(`git archive ${commit}`, r.code, r.stderr, r.timedOut);
    }
  }

  /** Moves the repository out of the way and deletes it (eviction); returns false if it is in use. */
  async remove(trashDir: string): Promise<boolean> {
    if (this.active > 0) return false;
    const lock = await this.ctx.locks.tryAcquire(`${this.dir}.lock`);
    if (!lock) return false;
    try {
      if (this.active > 0) return false;
      await mkdir(trashDir, { recursive: true });
      const aside = path.join(trashDir, `${path.basename(this.dir)}-${randomBytes(4).toString('hex')}`);
      await rename(this.dir, aside).catch(() => undefined);
      this.ready = undefined;
      this.settled = false;
      this.refsValue = undefined;
      await rm(aside, { recursive: true, force: true });
      return true;
    } finally {
      await lock.release();
    }
  }
}

/** The status of a plain GET of url (redirects followed, as cmd/go's web.GetBytes), or undefined if it cannot be reached. */
async function webStatus(url: string, timeoutMs: number): Promise<number | undefined> {
  const t = Math.min(timeoutMs, 15_000);
  const agent = new EnvHttpProxyAgent({ headersTimeout: t, bodyTimeout: t });
  try {
    const res = await request(url, {
      method: 'GET',
      dispatcher: agent.compose(interceptors.redirect({ maxRedirections: 10 })),
      signal: AbortSignal.timeout(t),
    });
    await res.body.dump();
    return res.statusCode;
  } catch {
    return undefined;
  } finally {
    await agent.close().catch(() => undefined);
  }
}

/**
 * A failed ls-remote in git's words plus what to do about it. Never "not found" by itself (see
 * refs): that takes a 404 for the repository URL. `base` is the message without the advice.
 */
function lsRemoteError(url: string, r: RunResult): GitSourceError & { base: string } {
  const text = r.stderr;
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('hint:'))
    .slice(-3)
    .join('; ');
  const base = `git ls-remote -q origin (${url}): ${r.timedOut ? 'timed out' : `exit status ${r.code}`}${line ? `: ${line}` : ''}`;
  const err = (kind: 'timeout' | 'upstream', advice?: string): GitSourceError & { base: string } =>
    Object.assign(new GitSourceError(kind, advice ? `${base}; ${advice}` : base), { base });
  if (r.timedOut) return err('timeout');
  if (/could not read Username|could not read Password|terminal prompts disabled/i.test(text)) {
    return err('upstream', 'the repository needs credentials: configure them for its host in git.credentials (or a git credential helper, or ~/.netrc)');
  }
  if (/Authentication failed|Permission denied|HTTP Basic: Access denied|403/i.test(text)) {
    return err('upstream', 'the credentials for this host were refused');
  }
  const host = failedHost(text) ?? hostOf(url);
  if (/SSL certificate problem|server certificate verification failed|certificate verify failed/i.test(text)) {
    return err(
      'upstream',
      `make gomodproxy's git trust the certificate of ${host} (GIT_SSL_CAINFO, or http.sslCAInfo in its git config), or map the module with git.repos to a repository it can reach`,
    );
  }
  if (
    /Could not resolve host|Could not resolve hostname|Failed to connect to|Connection refused|Connection timed out|Network is unreachable|No route to host/i.test(
      text,
    )
  ) {
    const through = /^https?:/i.test(url) ? ', e.g. through HTTPS_PROXY' : '';
    return err('upstream', `let gomodproxy reach ${host}${through}, or map the module with git.repos to a repository it can reach`);
  }
  if (/repository '.*' not found|does not appear to be a git repository|Repository not found/i.test(text)) {
    return err('upstream', 'git finds no repository there: check the URL (git.repos, or insteadOf rules in the git config gomodproxy uses)');
  }
  return err('upstream');
}

/** The host git says it could not reach, if it names one. */
function failedHost(stderr: string): string | undefined {
  const m = /Could not resolve host: ([^\s;']+)|Could not resolve hostname ([^\s:;']+)|Failed to connect to ([^\s;']+) port/i.exec(stderr);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

/** The host of a remote URL or of scp-like user@host:path. */
function hostOf(url: string): string {
  try {
    const u = new URL(url);
    if (u.host) return u.host;
  } catch {
    // scp-like: not a URL
  }
  const scp = /^(?:[^@/]+@)?([^:/]+):/.exec(url);
  return scp?.[1] ?? url;
}

/** A git config value in double quotes (backslash and quote escaped). */
function configQuote(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
