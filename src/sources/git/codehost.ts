// The code host view of one repository for one request (cmd/go's codehost.Repo for git): tags,
// stat of a revision, the default branch, file reads, the most recent tag before a commit and
// ancestry. The remote's refs (ls-remote) are the truth for what tags and branches exist and
// where they point, never the local repository's possibly stale refs, so a shared, long-lived
// cache answers as a fresh clone would. What a commit contains never changes, so commit times and
// small files are also cached across requests.
import { createHash } from 'node:crypto';
import { canonical, compare as semverCompare, isPseudoVersion } from '../../module/index.js';
import { notExist, GitSourceError } from './errors.js';
import type { BareRepo, LocalCommit, Refs } from './repo.js';
import type { CatFileBatch } from './catfile.js';
import { Lru } from './sync.js';

export interface Origin {
  VCS?: string;
  URL?: string;
  Subdir?: string;
  Hash?: string;
  TagPrefix?: string;
  TagSum?: string;
  Ref?: string;
  RepoSum?: string;
}

export interface CodeRevInfo {
  origin: Origin;
  /** Full commit hash. */
  name: string;
  /** 12 hex digits, for pseudo-versions. */
  short: string;
  /** The rev asked for if it is a tag on this commit, else the hash. */
  version: string;
  time: Date;
  /** Tags on this commit, sorted. */
  tags: string[];
}

export interface Tag {
  name: string;
  hash: string;
}

export interface Tags {
  origin: Origin;
  list: Tag[];
}

const commitCache = new Lru<string, LocalCommit>(200_000);
const fileCache = new Lru<string, { data: Buffer | null }>(64 << 20, (v) => (v.data?.length ?? 0) + 64);
const MAX_CACHED_FILE = 1 << 20;

export const MIN_HASH_DIGITS = 7;

export function allHex(s: string): boolean {
  return /^[0-9a-f]*$/.test(s);
}

/** isOriginTag: tags that matter to version lists and pseudo-version bases. */
function isOriginTag(tag: string): boolean {
  const c = canonical(tag);
  return c !== '' && tag.startsWith(c) && !isPseudoVersion(tag);
}

/**
 * Go's %q of a ref name. Git refuses control characters and DEL in ref names, and for the rest
 * JSON string quoting is the same as Go's.
 */
function q(s: string): string {
  return JSON.stringify(s);
}

/** Go's string order (UTF-8 bytes). */
export function compareStrings(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class GitCodeHost {
  private refsP: Promise<Refs> | undefined;
  private readonly stats = new Map<string, Promise<CodeRevInfo>>();
  private fetchedAll = false;
  private batch: CatFileBatch | undefined;
  private batchGen = -1;

  constructor(
    readonly repo: BareRepo,
    private readonly refsMaxAgeMs: number,
  ) {}

  get url(): string {
    return this.repo.url;
  }

  /** The remote's refs, once per session. */
  refs(): Promise<Refs> {
    this.refsP ??= this.repo.refs(this.refsMaxAgeMs);
    return this.refsP;
  }

  private get hexLen(): number {
    return this.repo.hexLen;
  }

  private shorten(hash: string): string {
    return allHex(hash) && hash.length === this.hexLen ? hash.slice(0, 12) : hash;
  }

  async tags(prefix: string): Promise<Tags> {
    const refs = await this.refs();
    const list: Tag[] = [];
    for (const [ref, hash] of refs) {
      if (!ref.startsWith('refs/tags/')) continue;
      const name = ref.slice('refs/tags/'.length);
      if (name.startsWith(prefix)) list.push({ name, hash });
    }
    list.sort((a, b) => compareStrings(a.name, b.name));
    const dir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const h = createHash('sha256');
    for (const t of list) if (isOriginTag(t.name.slice(dir.length))) h.update(`${q(t.name)} ${t.hash}\n`);
    return { origin: { VCS: 'git', URL: this.url, TagPrefix: prefix, TagSum: `t1:${h.digest('base64')}` }, list };
  }

  /** RepoSum: a checksum of every ref, for answers about versions that do not exist. */
  async repoSum(): Promise<string> {
    const refs = await this.refs();
    const names = [...refs.keys()].sort(compareStrings);
    const h = createHash('sha256');
    for (const r of names) h.update(`${q(r)} ${refs.get(r) as string}\n`);
    return `r1:${h.digest('base64')}`;
  }

  async latest(): Promise<CodeRevInfo> {
    const refs = await this.refs();
    const head = refs.get('HEAD');
    if (!head) throw notExist('no commits');
    const info = await this.stat(head);
    return { ...info, origin: { ...info.origin, Ref: 'HEAD', Hash: head } };
  }

  stat(rev: string): Promise<CodeRevInfo> {
    let p = this.stats.get(rev);
    if (!p) {
      p = this.statUncached(rev);
      this.stats.set(rev, p);
    }
    return p;
  }

  /** This session's object reader; restarted after a fetch so it sees the new objects. */
  private cat(): CatFileBatch {
    if (!this.batch || this.batchGen !== this.repo.generation) {
      this.batch?.close();
      this.batch = this.repo.catFile();
      this.batchGen = this.repo.generation;
    }
    return this.batch;
  }

  /** Ends the session's git processes. */
  close(): void {
    this.batch?.close();
    this.batch = undefined;
  }

  private async localCommit(rev: string): Promise<LocalCommit | null> {
    const full = rev.length === this.hexLen && allHex(rev);
    // Keyed by the repository's epoch: after an eviction nothing is known to be here any more.
    const key = `${this.repo.dir}\0${this.repo.epoch}\0${rev}`;
    if (full) {
      const hit = commitCache.get(key);
      if (hit) return hit;
    }
    const obj = await this.cat().read(`${rev}^{commit}`, 16 << 20);
    if (!obj || obj.type !== 'commit') return null;
    const m = /^committer .* (-?\d+) [+-]\d{4}$/m.exec(obj.data.toString('utf8'));
    const c: LocalCommit = m ? { hash: obj.hash, time: Number(m[1]) } : ((await this.repo.localCommit(obj.hash)) as LocalCommit);
    if (!c) return null;
    commitCache.set(`${this.repo.dir}\0${this.repo.epoch}\0${c.hash}`, c);
    return c;
  }

  /**
   * Fetches, in one go, the refs among names (refs/tags/x, refs/heads/y) whose commits are not
   * here yet: a request that will need several (the version asked for and the release whose
   * go.mod lists retractions) pays for one fetch.
   */
  async prefetch(names: readonly string[]): Promise<void> {
    const refs = await this.refs();
    const gen = this.repo.generation;
    const wants: { ref: string; hash: string }[] = [];
    for (const name of new Set(names)) {
      const hash = refs.get(name);
      if (hash && !(await this.localCommit(hash))) wants.push({ ref: name, hash });
    }
    await this.repo.fetchRefs(wants, gen);
  }

  private async statUncached(rev: string): Promise<CodeRevInfo> {
    const refs = await this.refs();
    let ref = '';
    let hash = '';
    let want = rev;
    const isHexRev = rev.length >= MIN_HASH_DIGITS && rev.length <= this.hexLen && allHex(rev);
    const tagHash = refs.get(`refs/tags/${rev}`);
    const branchHash = refs.get(`refs/heads/${rev}`);
    if (tagHash) {
      ref = `refs/tags/${rev}`;
      hash = tagHash;
    } else if (branchHash) {
      ref = `refs/heads/${rev}`;
      hash = branchHash;
      want = hash;
    } else if (rev === 'HEAD' && refs.get('HEAD')) {
      ref = 'HEAD';
      hash = refs.get('HEAD') as string;
      want = hash;
    } else if (isHexRev) {
      for (const [k, h] of refs) {
        if (h.startsWith(rev)) {
          if (hash && hash !== h) throw notExist(`ambiguous revision ${rev}`);
          if (!ref || compareStrings(ref, k) > 0) ref = k;
          want = h;
          hash = h;
        }
      }
      if (!hash && rev.length === this.hexLen) hash = rev;
    } else {
      throw notExist(`unknown revision ${rev}`);
    }

    let c: LocalCommit | null;
    if (ref && hash) {
      // The tip of a branch or tag: fetch just that ref if the commit is not here yet.
      const gen = this.repo.generation;
      c = await this.localCommit(hash);
      if (!c) {
        try {
          await this.repo.fetchRefs([{ ref, hash }], gen);
        } catch {
          // As cmd/go: whatever went wrong (a ref moved or vanished since ls-remote, a server
          // that refuses shallow fetches), fall back to fetching everything below.
        }
        c = await this.localCommit(hash);
      }
      if (!c) {
        await this.fetchAll();
        c = await this.localCommit(hash);
      }
    } else {
      // Any other commit counts only if a branch or tag of the remote reaches it now, as for a
      // fresh clone: cmd/go never fetches a commit by hash, and a commit seen earlier through a
      // since-deleted branch is not reachable any more.
      c = await this.localCommit(hash || rev);
      if (!c || !(await this.reachable(c.hash))) {
        await this.fetchAll();
        c = await this.localCommit(hash || rev);
        if (c && !(await this.reachable(c.hash))) c = null;
      }
    }
    if (!c) throw notExist(`unknown revision ${rev}`);

    const tags: string[] = [];
    for (const [k, h] of refs) if (h === c.hash && k.startsWith('refs/tags/')) tags.push(k.slice('refs/tags/'.length));
    tags.sort(compareStrings);
    const origin: Origin = { VCS: 'git', URL: this.url, Hash: c.hash };
    if (ref && ref !== c.hash) origin.Ref = ref;
    let version = c.hash.startsWith(want) ? c.hash : want;
    if (!tags.includes(version) && version !== c.hash) version = c.hash;
    return { origin, name: c.hash, short: this.shorten(c.hash), version, time: new Date(c.time * 1000), tags };
  }

  /** Whether a branch or tag, as the remote has it now, reaches commit (judged from local history). */
  private async reachable(commit: string): Promise<boolean> {
    const refs = await this.refs();
    const r = await this.repo.gitRaw(['for-each-ref', '--contains', commit, '--format=%(refname) %(objectname) %(*objectname)', 'refs/heads', 'refs/tags'], {
      maxStdout: 256 << 20,
    });
    if (r.code !== 0) return false;
    for (const line of r.stdout.toString('utf8').split('\n')) {
      const [name, obj, peeled] = line.trim().split(' ');
      if (name && obj && refs.get(name) === (peeled || obj)) return true;
    }
    return false;
  }

  /** All branches and tags with history, at most once per session. */
  async fetchAll(): Promise<void> {
    if (this.fetchedAll) return;
    this.fetchedAll = true;
    await this.repo.fetchAll();
  }

  /** The file at rev, or null if it does not exist there (or is not a file). */
  async readFile(rev: string, file: string, max: number): Promise<Buffer | null> {
    const info = await this.stat(rev);
    const key = `${this.repo.dir}\0${info.name}\0${file}`;
    const hit = fileCache.get(key);
    if (hit) return hit.data;
    const obj = await this.cat().read(`${info.name}:${file}`, Math.max(max, 64 << 20));
    const data = obj && obj.type === 'blob' ? obj.data : null;
    if (!data || data.length <= MAX_CACHED_FILE) fileCache.set(key, { data });
    return data;
  }

  /** Whether an object exists at path in commit (a file or a directory). */
  async exists(commit: string, file: string): Promise<boolean> {
    return (await this.cat().read(`${commit}:${file}`, 64 << 20)) !== null;
  }

  /**
   * The highest tag (with prefix, passing allowed) on rev or an ancestor, or "". As a fresh clone
   * of cmd/go decides it: an allowed tag on the commit itself wins (the shallow clone sees only
   * those); otherwise the highest allowed tag among its ancestors. Tags count only as the remote
   * has them now; all history is fetched when the local repository cannot decide.
   */
  async recentTag(rev: string, prefix: string, allowed: (tag: string) => boolean): Promise<string> {
    const info = await this.stat(rev);
    const refs = await this.refs();
    const remote = new Map<string, string>();
    for (const [k, h] of refs) {
      if (!k.startsWith('refs/tags/')) continue;
      const name = k.slice('refs/tags/'.length);
      if (name.startsWith(prefix) && allowed(name)) remote.set(name, h);
    }
    const highestOf = (names: Iterable<string>): string => {
      let highest = '';
      for (const name of names) {
        const v = name.slice(prefix.length);
        if (highest === '' || semverCompare(v, highest) > 0) highest = v;
      }
      return highest === '' ? '' : prefix + highest;
    };
    const onCommit = [...remote].filter(([, h]) => h === info.name).map(([n]) => n);
    if (onCommit.length > 0) return highestOf(onCommit);
    if (remote.size === 0) return '';
    if (!(await this.repo.hasHistory()) || !(await this.allTagsLocal(remote))) await this.fetchAll();
    const merged = await this.repo.mergedTags(info.name);
    return highestOf([...remote].filter(([n, h]) => merged.get(n) === h).map(([n]) => n));
  }

  /** Whether every tag in remote exists locally pointing where the remote says. */
  private async allTagsLocal(remote: Map<string, string>): Promise<boolean> {
    const r = await this.repo.git(['for-each-ref', '--format=%(refname) %(objectname) %(*objectname)', 'refs/tags'], { maxStdout: 256 << 20 });
    const local = new Map<string, string>();
    for (const line of r.stdout.toString('utf8').split('\n')) {
      const [ref, obj, peeled] = line.trim().split(' ');
      if (ref?.startsWith('refs/tags/') && obj) local.set(ref.slice(10), peeled || obj);
    }
    for (const [name, h] of remote) if (local.get(name) !== h) return false;
    return true;
  }

  /** Whether rev is tag's commit or a descendant of it (the tag as the remote has it). */
  async descendsFrom(rev: string, tag: string): Promise<boolean> {
    const info = await this.stat(rev);
    const refs = await this.refs();
    const tagHash = refs.get(`refs/tags/${tag}`);
    if (!tagHash) return false;
    const first = await this.repo.isAncestor(tagHash, info.name);
    if (first === true) return true;
    // A "no" from a shallow repository may only mean missing history: fetch it and ask again.
    if (first === false && (await this.repo.hasHistory())) return false;
    await this.fetchAll();
    const again = await this.repo.isAncestor(tagHash, info.name);
    if (again === null) throw new GitSourceError('upstream', `git merge-base --is-ancestor ${tag} ${rev} failed in ${this.url}`);
    return again;
  }
}
