// Git repositories on disk for test modules. Every commit has fixed author and committer dates
// (the committer date is what goes into pseudo-versions and `.info` Time), and no global or
// system git config is read, so the same script yields the same hashes on every machine.
import { lstat, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { GoEnv } from './goenv.js';
import { describeRun, run, scrubbedEnv } from './proc.js';

/** Marks a file to be written as a symbolic link pointing at `target`. */
export interface SymlinkSpec {
  symlink: string;
}

export type FileContent = string | Buffer | SymlinkSpec;

export function symlinkTo(target: string): SymlinkSpec {
  return { symlink: target };
}

export interface CommitOptions {
  /** Author and committer date; by default one hour after the previous default-dated commit of this repo. */
  date?: Date | string;
  /** Separate author date, if it must differ from the committer date. */
  authorDate?: Date | string;
}

export interface TagOptions {
  /** An annotated tag (with this message, or the tag name if `true`). */
  annotated?: boolean | string;
  /** What to tag; HEAD by default. */
  ref?: string;
  /** Tagger date of an annotated tag; the tagged commit's date by default. */
  date?: Date | string;
}

export interface GitRepo {
  readonly dir: string;
  /** `file://` URL of the repository, what `insteadOf` rewrites to. */
  readonly url: string;
  /** Runs git in the repo with the isolated identity/config; throws on failure, returns stdout. */
  git(args: readonly string[], env?: Record<string, string>): Promise<string>;
  /** Writes files (parents created); a `SymlinkSpec` makes a symbolic link. Replaces what was there. */
  write(files: Record<string, FileContent>): Promise<void>;
  /** Deletes files or directories from the work tree (the next commit records it). */
  remove(paths: readonly string[]): Promise<void>;
  /** Stages everything (`add -A`) and commits, even if nothing changed; returns the commit hash. */
  commit(message: string, opts?: CommitOptions): Promise<string>;
  tag(name: string, opts?: TagOptions): Promise<void>;
  /** Re-points an existing tag (force), keeping it annotated if asked. */
  moveTag(name: string, ref?: string, opts?: Omit<TagOptions, 'ref'>): Promise<void>;
  deleteTag(name: string): Promise<void>;
  /** Creates a branch at `from` (HEAD by default) without switching to it. */
  branch(name: string, from?: string): Promise<void>;
  /** Switches the work tree to a branch, tag or commit; `create` makes the branch from HEAD first. */
  checkout(ref: string, opts?: { create?: boolean }): Promise<void>;
  /** Full hash of HEAD (or of `ref`). */
  head(ref?: string): Promise<string>;
  /** Name of the checked-out branch, or `HEAD` when detached. */
  currentBranch(): Promise<string>;
  /** Committer date of a commit as a Date. */
  commitDate(ref?: string): Promise<Date>;
}

const baseDate = Date.UTC(2023, 0, 1, 0, 0, 0);

function gitDate(d: Date | string): string {
  const ms = typeof d === 'string' ? Date.parse(d) : d.getTime();
  if (Number.isNaN(ms)) throw new Error(`bad date ${String(d)}`);
  // "<unix seconds> +0000" is git's internal format: no parsing ambiguity, no local time zone.
  return `${Math.floor(ms / 1000)} +0000`;
}

const identity = [
  '-c',
  'user.name=gomodproxy test',
  '-c',
  'user.email=test@gomodproxy.invalid',
  '-c',
  'init.defaultBranch=main',
  '-c',
  'commit.gpgsign=false',
  '-c',
  'tag.gpgsign=false',
  '-c',
  'core.autocrlf=false',
  '-c',
  'core.symlinks=true',
  '-c',
  'advice.detachedHead=false',
];

export function gitEnv(): Record<string, string> {
  return {
    ...scrubbedEnv(),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
  };
}

async function git(dir: string, args: readonly string[], env?: Record<string, string>): Promise<string> {
  const full = [...identity, ...args];
  const r = await run('git', full, { cwd: dir, env: { ...gitEnv(), ...env } });
  if (r.code !== 0) throw new Error(describeRun('git', full, r, dir));
  return r.stdout;
}

/** Initialises an empty repository (branch `main`) in `dir`, creating the directory. */
export async function createRepo(repoDir: string): Promise<GitRepo> {
  const dir = path.resolve(repoDir);
  await mkdir(dir, { recursive: true });
  await git(dir, ['init', '-q', '-b', 'main']);
  let commits = 0;

  const repo: GitRepo = {
    dir,
    url: pathToFileURL(dir).href,
    git: (args, env) => git(dir, args, env),
    async write(files) {
      for (const [rel, content] of Object.entries(files)) {
        const p = inside(dir, rel);
        await mkdir(path.dirname(p), { recursive: true });
        // A stale symlink or file at the spot would be followed or kept; start from nothing.
        if (await lstat(p).catch(() => null)) await rm(p, { recursive: true, force: true });
        if (typeof content === 'string' || Buffer.isBuffer(content)) await writeFile(p, content);
        else await symlink(content.symlink, p);
      }
    },
    async remove(paths) {
      for (const rel of paths) await rm(inside(dir, rel), { recursive: true, force: true });
    },
    async commit(message, opts = {}) {
      const date = opts.date ?? new Date(baseDate + commits * 3_600_000);
      commits++;
      await git(dir, ['add', '-A']);
      await git(dir, ['commit', '-q', '--allow-empty', '-m', message], {
        GIT_AUTHOR_DATE: gitDate(opts.authorDate ?? date),
        GIT_COMMITTER_DATE: gitDate(date),
      });
      return repo.head();
    },
    async tag(name, opts = {}) {
      await makeTag(name, opts, false);
    },
    async moveTag(name, ref = 'HEAD', opts = {}) {
      await makeTag(name, { ...opts, ref }, true);
    },
    async deleteTag(name) {
      await git(dir, ['tag', '-d', name]);
    },
    async branch(name, from = 'HEAD') {
      await git(dir, ['branch', name, from]);
    },
    async checkout(ref, opts = {}) {
      await git(dir, opts.create ? ['checkout', '-q', '-b', ref] : ['checkout', '-q', ref]);
    },
    async head(ref = 'HEAD') {
      return (await git(dir, ['rev-parse', `${ref}^{commit}`])).trim();
    },
    async currentBranch() {
      return (await git(dir, ['rev-parse', '--abbrev-ref', 'HEAD'])).trim();
    },
    async commitDate(ref = 'HEAD') {
      const s = (await git(dir, ['log', '-1', '--format=%ct', ref])).trim();
      return new Date(Number(s) * 1000);
    },
  };

  async function makeTag(name: string, opts: TagOptions, force: boolean): Promise<void> {
    const ref = opts.ref ?? 'HEAD';
    const args = ['tag', ...(force ? ['-f'] : [])];
    if (opts.annotated) {
      const msg = typeof opts.annotated === 'string' ? opts.annotated : name;
      const date = opts.date ?? (await repo.commitDate(ref));
      await git(dir, [...args, '-a', '-m', msg, name, ref], { GIT_COMMITTER_DATE: gitDate(date) });
    } else {
      await git(dir, [...args, name, ref]);
    }
  }

  return repo;
}

function inside(dir: string, rel: string): string {
  const p = path.resolve(dir, rel);
  if (p === dir || !p.startsWith(dir + path.sep)) throw new Error(`path ${rel} escapes ${dir}`);
  if (p.split(path.sep).includes('.git')) throw new Error(`refusing to touch ${rel}: inside .git`);
  return p;
}

/**
 * Makes the go command (and any git run with this env) fetch `url` (e.g. https://github.com/o/r)
 * from the local repository at `localPath`: a `url.<file URL>.insteadOf` entry in the env's
 * GIT_CONFIG_GLOBAL. github.com paths need no HTTP discovery, so with GOPROXY=direct and the
 * module private (GOPRIVATE/GONOSUMDB) nothing leaves the machine.
 */
export async function insteadOf(goEnv: Pick<GoEnv, 'gitConfig'>, url: string, localPath: string): Promise<void> {
  await addInsteadOf(goEnv.gitConfig, url, localPath);
}

/** Same as `insteadOf`, for any git config file (e.g. one handed to the proxy under test). */
export async function addInsteadOf(configFile: string, url: string, localPath: string): Promise<void> {
  const fileUrl = pathToFileURL(path.resolve(localPath)).href;
  const env = gitEnv();
  const base = ['config', '--file', configFile];
  for (const args of [
    [...base, '--add', `url.${fileUrl}.insteadOf`, url.replace(/\/+$/, '')],
    // git >= 2.38.1 refuses file:// for submodules only; harmless for clones and keeps newer gits happy.
    [...base, 'protocol.file.allow', 'always'],
  ]) {
    const r = await run('git', args, { env });
    if (r.code !== 0) throw new Error(describeRun('git', args, r));
  }
}
