// From repository to module (cmd/go's modfetch.codeRepo): which tags are versions of this module
// (tag prefix = the module's directory, major version suffixes, +incompatible), what a query
// (tag, branch, commit hash, pseudo-version) resolves to, the pseudo-version of an untagged
// commit (all three forms, with the base tag cmd/go would choose), retractions, where the go.mod
// is (codeDir or codeDir/vN) and the synthesized go.mod of a module without one. The rules and the
// error texts are the go command's, so a client sees the same answers through the proxy as with
// GOPROXY=direct.
import path from 'node:path/posix';
import {
  canonical,
  canonicalVersion,
  compare,
  isPseudoVersion,
  isRetracted as inRetractions,
  isValid,
  major,
  matchPathMajor,
  ModuleError,
  modulePathOf,
  parseGoMod,
  pathMajorPrefix,
  prerelease,
  pseudoVersion,
  pseudoVersionBase,
  pseudoVersionRev,
  pseudoVersionTime,
  sort as semverSort,
  splitPathVersion,
  build as semverBuild,
} from '../../module/index.js';
import type { CodeRevInfo, GitCodeHost, Origin } from './codehost.js';
import { GitSourceError, invalid, invalidVersion, kindOf, messageOf, moduleError } from './errors.js';
import { hasPathPrefix } from './meta.js';

export const MAX_GO_MOD = 16 << 20;
export const MAX_LICENSE = 16 << 20;

export interface RevInfo {
  version: string;
  time: Date;
  name: string;
  short: string;
  origin: Origin;
}

/** Where a version's files are: the commit and the module's directory in it. */
export interface ModuleDir {
  rev: string;
  dir: string;
  gomod: Buffer | null;
}

/** A plain error of the resolution rules: the version is not valid for this module (404 class). */
function rule(message: string): GitSourceError {
  return invalid(message);
}

/** Strips module's 'version "x" invalid: ' / 'pseudo-version "x" invalid: ' prefix to get the reason. */
function reasonOf(err: unknown): string {
  return messageOf(err).replace(/^(pseudo-)?version ".*?" invalid: /, '');
}

/** Go's %q for a module path (paths are printable; JSON quoting matches Go's here). */
const q = (s: string): string => JSON.stringify(s);

export class CodeRepo {
  readonly codeDir: string;
  readonly pathMajor: string;
  readonly pathPrefix: string;
  readonly pseudoMajor: string;
  private retractedP: Promise<(v: string) => boolean> | undefined;
  private readonly goModCache = new Map<string, Promise<Buffer>>();

  constructor(
    readonly code: GitCodeHost,
    readonly codeRoot: string,
    subdir: string,
    readonly modPath: string,
  ) {
    if (!hasPathPrefix(modPath, codeRoot)) throw rule(`mismatched repo: found ${codeRoot} for ${modPath}`);
    const split = splitPathVersion(modPath);
    if (!split.ok) throw rule(`invalid module path ${q(modPath)}`);
    this.pathMajor = split.pathMajor;
    this.pathPrefix = codeRoot === modPath ? modPath : split.prefix;
    this.pseudoMajor = pathMajorPrefix(split.pathMajor);
    let codeDir = '';
    if (codeRoot !== modPath) {
      if (!hasPathPrefix(this.pathPrefix, codeRoot)) throw rule(`repository rooted at ${codeRoot} cannot contain module ${modPath}`);
      codeDir = this.pathPrefix.slice(codeRoot.length).replace(/^\/+|\/+$/g, '');
    }
    if (subdir !== '') codeDir = path.join(codeDir, subdir).replace(/^\.$/, '');
    this.codeDir = codeDir;
  }

  private get tagPrefix(): string {
    return this.codeDir ? `${this.codeDir}/` : '';
  }

  // ---- versions ---------------------------------------------------------------------------

  /** The module's versions (codeRepo.Versions): canonical tags, plus +incompatible ones when cmd/go lists them. */
  async versions(prefix = ''): Promise<string[]> {
    if (this.modPath.startsWith('gopkg.in/') && this.modPath.endsWith('-unstable')) return [];
    const p = this.codeDir ? `${this.codeDir}/${prefix}` : prefix;
    let tags;
    try {
      tags = await this.code.tags(p);
    } catch (err) {
      throw moduleError(this.modPath, err);
    }
    const { list, incompatible } = this.taggedVersions(tags, p);
    return this.appendIncompatible(list, incompatible);
  }

  /** The canonical version tags of this module, and the major-version tags that may become +incompatible. */
  private taggedVersions(tags: { list: { name: string }[] }, p: string): { list: string[]; incompatible: string[] } {
    const list: string[] = [];
    const incompatible: string[] = [];
    for (const tag of tags.list) {
      if (!tag.name.startsWith(p)) continue;
      let v = tag.name;
      if (this.codeDir) v = v.slice(this.codeDir.length + 1);
      if (v === '' || v !== canonical(v)) continue;
      if (isPseudoVersion(v)) continue;
      if (!matchPathMajor(v, this.pathMajor)) {
        if (this.codeDir === '' && this.pathMajor === '' && major(v) > 'v1') incompatible.push(v);
        continue;
      }
      list.push(v);
    }
    semverSort(list);
    semverSort(incompatible);
    return { list, incompatible };
  }

  private async appendIncompatible(list: string[], incompatible: string[]): Promise<string[]> {
    if (incompatible.length === 0 || this.pathMajor !== '') return list;
    const hasGoMod = async (v: string): Promise<boolean> => {
      try {
        return (await this.code.readFile(v, 'go.mod', MAX_GO_MOD)) !== null;
      } catch (err) {
        throw moduleError(this.modPath, err);
      }
    };
    // The latest compatible version has a go.mod: the author means v0/v1, so no +incompatible ones.
    if (list.length > 0 && (await hasGoMod(list[list.length - 1] as string))) return list;
    const out = [...list];
    let lastMajor = '';
    let lastMajorHasGoMod = false;
    for (let i = 0; i < incompatible.length; i++) {
      const v = incompatible[i] as string;
      const m = major(v);
      if (m !== lastMajor) {
        let j = i;
        while (j < incompatible.length && major(incompatible[j] as string) === m) j++;
        lastMajor = m;
        lastMajorHasGoMod = await hasGoMod(incompatible[j - 1] as string);
      }
      if (lastMajorHasGoMod) continue;
      out.push(`${v}+incompatible`);
    }
    return out;
  }

  /**
   * Fetches in one go what resolving rev will need: its branch or tag and, unless rev is a
   * release tag, the latest release (whose go.mod lists the retractions). Failures are left for
   * the real work to report.
   */
  async prefetch(rev: string): Promise<void> {
    try {
      const refs = await this.code.refs();
      const names: string[] = [];
      const asTag = `refs/tags/${this.revToRev(rev)}`;
      const canonicalTag = isValid(rev) && !isPseudoVersion(rev) && refs.has(asTag);
      if (canonicalTag) names.push(asTag);
      else if (rev === 'HEAD' || rev === 'latest') names.push('HEAD');
      else if (refs.has(`refs/tags/${rev}`)) names.push(`refs/tags/${rev}`);
      else if (refs.has(`refs/heads/${rev}`)) names.push(`refs/heads/${rev}`);
      // A hash or pseudo-version names no ref; what it needs is decided (and fetched) later.
      if (!canonicalTag && names.length > 0) {
        const { list } = this.taggedVersions(await this.code.tags(this.tagPrefix), this.tagPrefix);
        let highest = '';
        for (let i = list.length - 1; i >= 0 && highest === ''; i--) if (prerelease(list[i] as string) === '') highest = list[i] as string;
        if (highest === '' && list.length > 0) highest = list[list.length - 1] as string;
        if (highest !== '') names.push(`refs/tags/${this.tagPrefix}${highest}`);
      }
      await this.code.prefetch(names);
    } catch {
      // The resolution itself will meet the same problem and report it properly.
    }
  }

  // ---- stat -------------------------------------------------------------------------------

  /** codeRepo.Stat: what rev (a version, tag, branch, hash or "latest") resolves to. */
  async stat(rev: string): Promise<RevInfo> {
    if (rev === 'latest') return this.latest();
    const codeRev = this.revToRev(rev);
    let info: CodeRevInfo;
    try {
      info = await this.code.stat(codeRev);
    } catch (err) {
      throw invalidVersion(this.modPath, rev, err);
    }
    return this.convert(info, rev);
  }

  async latest(): Promise<RevInfo> {
    let info: CodeRevInfo;
    try {
      info = await this.code.latest();
    } catch (err) {
      // As cmd/go reports it for the "latest" query.
      if (err instanceof GitSourceError && err.kind === 'not-found') throw invalid(`${this.modPath}@latest: ${err.message}`);
      throw err;
    }
    return this.convert(info, '');
  }

  private revToRev(rev: string): string {
    if (isValid(rev)) {
      if (isPseudoVersion(rev)) return pseudoVersionRev(rev);
      if (semverBuild(rev) === '+incompatible') rev = rev.slice(0, -'+incompatible'.length);
      return this.codeDir === '' ? rev : `${this.codeDir}/${rev}`;
    }
    return rev;
  }

  private tagToVersion(tag: string): [string, boolean] {
    const prefix = this.tagPrefix;
    if (!tag.startsWith(prefix)) return ['', false];
    const trimmed = tag.slice(prefix.length);
    // Tags that look like pseudo-versions would be confusing (cmd/go checks the whole tag).
    if (isPseudoVersion(tag)) return ['', false];
    const v = canonical(trimmed);
    if (v === '' || !trimmed.startsWith(v)) return ['', false];
    return [v, v === trimmed];
  }

  private async convert(info: CodeRevInfo, statVers: string): Promise<RevInfo> {
    const origin: Origin = { ...info.origin };
    if (this.codeDir) origin.Subdir = this.codeDir;
    else delete origin.Subdir;
    const withOrigin = (r: Omit<RevInfo, 'origin'>): RevInfo => ({ ...r, origin });

    const incompatibleOk = new Map<string, boolean>();
    const noFile = async (file: string): Promise<boolean> => {
      try {
        return (await this.code.readFile(info.name, file, MAX_GO_MOD)) === null;
      } catch {
        return true;
      }
    };
    const canUseIncompatible = async (v: string): Promise<boolean> => {
      if (this.codeDir !== '' || this.pathMajor !== '') return false;
      let ok = incompatibleOk.get('');
      if (ok === undefined) {
        ok = await noFile('go.mod');
        incompatibleOk.set('', ok);
      }
      if (!ok) return false;
      if (v !== '' && !statVers.endsWith('+incompatible')) {
        const m = major(v);
        ok = incompatibleOk.get(m);
        if (ok === undefined) {
          ok = await noFile(path.join(m, 'go.mod'));
          incompatibleOk.set(m, ok);
        }
        if (!ok) return false;
      }
      return true;
    };

    const checkCanonical = async (v0: string): Promise<RevInfo> => {
      let v = v0;
      try {
        await this.findDir(v);
      } catch (err) {
        throw invalidVersion(this.modPath, v, err);
      }
      if (v === statVers.replace(/\+incompatible$/, '')) v = statVers;
      const base = v.replace(/\+incompatible$/, '');
      let errIncompatible: GitSourceError | undefined;
      if (!matchPathMajor(base, this.pathMajor)) {
        if (await canUseIncompatible(base)) v = `${base}+incompatible`;
        else if (this.pathMajor !== '')
          errIncompatible = invalidVersion(this.modPath, v, rule('module path includes a major version suffix, so major version must match'));
        else
          errIncompatible = invalidVersion(
            this.modPath,
            v,
            rule(`module contains a go.mod file, so module path must match major version (${q(path.join(this.pathPrefix, major(v)))})`),
          );
      } else if (v.endsWith('+incompatible')) {
        errIncompatible = invalidVersion(this.modPath, v, rule(`+incompatible suffix not allowed: major version ${major(v)} is compatible`));
      }
      if (statVers !== '' && statVers === canonicalVersion(statVers)) {
        const statBase = statVers.replace(/\+incompatible$/, '');
        if (statBase !== base) throw invalidVersion(this.modPath, statVers, rule(`resolves to version ${v} (${statBase} is not a tag)`));
      }
      if (errIncompatible) throw errIncompatible;
      return withOrigin({ name: info.name, short: info.short, time: info.time, version: v });
    };

    if (isPseudoVersion(statVers)) {
      const r = await checkCanonical(statVers);
      await this.validatePseudoVersion(info, statVers);
      return r;
    }

    // Computed only when needed (a canonical tag asked for does not depend on it): cmd/go reads
    // it first, but the answer is the same, and it costs the fetch of another release.
    let retracted: ((v: string) => boolean) | undefined;
    const loadRetracted = async (): Promise<(v: string) => boolean> => {
      retracted ??= await this.retractedVersions().catch(
        () =>
          (_: string): boolean =>
            false,
      );
      return retracted;
    };

    const [iv, ivCanonical] = this.tagToVersion(info.version);
    if (ivCanonical) {
      try {
        return await checkCanonical(iv);
      } catch (err) {
        // Not usable as is: fall back to the tags on the revision, then a pseudo-version.
        if (kindOf(err) !== 'not-found') throw err;
      }
    }

    const isRetracted = await loadRetracted();
    let highestCanonical = '';
    let pseudoBase = '';
    for (const pathTag of info.tags) {
      const [v, tagIsCanonical] = this.tagToVersion(pathTag);
      if (statVers !== '' && compare(v, statVers) === 0) {
        if (tagIsCanonical) return checkCanonical(v);
        pseudoBase = v;
      }
      if (tagIsCanonical && compare(highestCanonical, v) < 0 && !isRetracted(v)) {
        if (matchPathMajor(v, this.pathMajor) || (await canUseIncompatible(v))) highestCanonical = v;
      }
    }
    if (highestCanonical !== '') return checkCanonical(highestCanonical);

    if (pseudoBase === '') {
      // The allowed check runs synchronously inside recentTag, so precompute what it needs.
      const candidates = (await this.code.tags(this.tagPrefix)).list.map((t) => t.name);
      const allowed = new Map<string, boolean>();
      for (const tag of candidates) {
        const [v] = this.tagToVersion(tag);
        let ok = v !== '';
        if (ok && !matchPathMajor(v, this.pathMajor) && !(await canUseIncompatible(v))) ok = false;
        if (ok && isRetracted(v)) ok = false;
        allowed.set(tag, ok);
      }
      const tag = await this.code.recentTag(info.name, this.tagPrefix, (t) => allowed.get(t) === true);
      if (tag !== '') pseudoBase = this.tagToVersion(tag)[0];
    }
    return checkCanonical(pseudoVersion(this.pseudoMajor, pseudoBase, info.time, info.short));
  }

  private async validatePseudoVersion(info: CodeRevInfo, version: string): Promise<void> {
    const fail = (err: unknown): GitSourceError => {
      if (err instanceof GitSourceError && err.message.startsWith(`${this.modPath}@`)) return err;
      if (err instanceof GitSourceError && err.kind !== 'not-found') return invalidVersion(this.modPath, version, err, true);
      return invalidVersion(this.modPath, version, rule(reasonOf(err)), true);
    };
    try {
      const rev = pseudoVersionRev(version);
      if (rev !== info.short) {
        if (rev.startsWith(info.short)) throw rule(`revision is longer than canonical (expected ${info.short})`);
        if (info.short.startsWith(rev)) throw rule(`revision is shorter than canonical (expected ${info.short})`);
        throw rule(`does not match short name of revision (expected ${info.short})`);
      }
      const t = pseudoVersionTime(version);
      if (t.getTime() !== Math.floor(info.time.getTime() / 1000) * 1000) {
        throw rule(`does not match version-control timestamp (expected ${pseudoStamp(info.time)})`);
      }
      const tagPrefix = this.tagPrefix;
      const base = pseudoVersionBase(version.replace(/\+incompatible$/, ''));
      if (base === '') {
        if (this.pseudoMajor === '' && major(version) === 'v1') throw rule('major version without preceding tag must be v0, not v1');
        return;
      }
      for (const tag of info.tags) {
        const versionOnly = tag.startsWith(tagPrefix) ? tag.slice(tagPrefix.length) : tag;
        if (versionOnly === base) {
          throw rule(`tag (${tag}) found on revision ${rev} is already canonical, so should not be replaced with a pseudo-version derived from that tag`);
        }
      }
      const tags = await this.code.tags(tagPrefix + base);
      let lastTag = '';
      let ancestorFound = false;
      for (const tag of tags.list) {
        const versionOnly = tag.name.startsWith(tagPrefix) ? tag.name.slice(tagPrefix.length) : tag.name;
        if (compare(versionOnly, base) === 0) {
          lastTag = tag.name;
          ancestorFound = await this.code.descendsFrom(info.name, tag.name);
          if (ancestorFound) break;
        }
      }
      if (lastTag === '') throw rule(`preceding tag (${base}) not found`);
      if (!ancestorFound) throw rule(`revision ${rev} is not a descendent of preceding tag (${lastTag})`);
    } catch (err) {
      if (err instanceof ModuleError || err instanceof GitSourceError) throw fail(err);
      throw err;
    }
  }

  // ---- go.mod and the module's directory ---------------------------------------------------

  /** codeRepo.findDir: the commit and directory of version, and the go.mod found there. */
  async findDir(version: string): Promise<ModuleDir> {
    if (!isValid(version)) throw invalidVersion(this.modPath, version, rule('syntax error'));
    const rev = this.revToRev(version);
    const read = async (file: string): Promise<Buffer | null> => {
      try {
        return await this.code.readFile(rev, file, MAX_GO_MOD);
      } catch (err) {
        throw new GitSourceError(kindOf(err), `reading ${this.codeRoot}/${file} at revision ${rev}: ${messageOf(err)}`, { cause: err });
      }
    };
    const file1 = path.join(this.codeDir, 'go.mod');
    const gomod1 = await read(file1);
    const mpath1 = gomod1 ? modulePathOf(gomod1) : '';
    const found1 = gomod1 !== null && (isMajor(mpath1, this.pathMajor) || this.canReplaceMismatchedVersionDueToBug(mpath1));

    let file2 = '';
    if (this.pathMajor !== '' && this.codeRoot !== this.modPath && !this.pathMajor.startsWith('.')) {
      const dir2 = path.join(this.codeDir, this.pathMajor.slice(1));
      file2 = path.join(dir2, 'go.mod');
      const gomod2 = await read(file2);
      const mpath2 = gomod2 ? modulePathOf(gomod2) : '';
      const found2 = gomod2 !== null && isMajor(mpath2, this.pathMajor);
      if (found1 && found2) {
        throw rule(`${this.pathPrefix}/${file1} and ...${this.pathMajor}/go.mod both have ...${this.pathMajor} module paths at revision ${rev}`);
      }
      if (found2) return { rev, dir: dir2, gomod: gomod2 };
      if (gomod2 !== null) {
        if (mpath2 === '') throw rule(`${this.codeRoot}/${file2} is missing module path at revision ${rev}`);
        throw rule(`${this.codeRoot}/${file2} has non-...${this.pathMajor} module path ${q(mpath2)} at revision ${rev}`);
      }
    }
    if (found1) return { rev, dir: this.codeDir, gomod: gomod1 };
    if (gomod1 !== null) {
      const suffix = file2 ? ` (and ...${this.pathMajor}/go.mod does not exist)` : '';
      if (mpath1 === '') throw rule(`${file1} is missing module path${suffix} at revision ${rev}`);
      if (this.pathMajor !== '') throw rule(`${file1} has non-...${this.pathMajor} module path ${q(mpath1)}${suffix} at revision ${rev}`);
      if (!splitPathVersion(mpath1).ok) throw rule(`${file1} has malformed module path ${q(mpath1)}${suffix} at revision ${rev}`);
      throw rule(`${file1} has post-${major(version)} module path ${q(mpath1)}${suffix} at revision ${rev}`);
    }
    if (this.codeDir === '' && (this.pathMajor === '' || this.pathMajor.startsWith('.'))) return { rev, dir: '', gomod: null };
    if (file2) throw rule(`missing ${this.pathPrefix}/go.mod and ...${this.pathMajor}/go.mod at revision ${rev}`);
    throw rule(`missing ${this.pathPrefix}/go.mod at revision ${rev}`);
  }

  /** cmd/go once accepted unversioned paths as replacements for gopkg.in ones (golang.org/issue/34254). */
  private canReplaceMismatchedVersionDueToBug(mpath: string): boolean {
    return this.pathMajor === '' && mpath.startsWith('gopkg.in/');
  }

  /** codeRepo.GoMod, without the pseudo-version check (see source.ts, which stats first). */
  goMod(version: string): Promise<Buffer> {
    let p = this.goModCache.get(version);
    if (!p) {
      p = this.goModUncached(version);
      this.goModCache.set(version, p);
    }
    return p;
  }

  private async goModUncached(version: string): Promise<Buffer> {
    if (version !== canonicalVersion(version)) throw rule(`version ${version} is not canonical`);
    const { rev, dir, gomod } = await this.findDir(version);
    if (gomod) return gomod;
    const data = await this.code.readFile(rev, path.join(dir, 'go.mod'), MAX_GO_MOD);
    return data ?? legacyGoMod(this.modPath);
  }

  /** Which versions the latest release's go.mod retracts (none if it cannot be read). */
  retractedVersions(): Promise<(v: string) => boolean> {
    this.retractedP ??= this.retractedUncached();
    return this.retractedP;
  }

  private async retractedUncached(): Promise<(v: string) => boolean> {
    let versions = await this.versions('');
    const firstIncompatible = versions.findIndex((v) => v.endsWith('+incompatible'));
    if (firstIncompatible >= 0) versions = versions.slice(0, firstIncompatible);
    if (versions.length === 0) return () => false;
    let highest = '';
    for (let i = versions.length - 1; i >= 0; i--) {
      if (prerelease(versions[i] as string) === '') {
        highest = versions[i] as string;
        break;
      }
    }
    if (highest === '') highest = versions[versions.length - 1] as string;
    const data = await this.goMod(highest);
    const f = parseGoMod(data, 'go.mod');
    const intervals = f.retract;
    return (v: string) => inRetractions(v, intervals);
  }
}

/** The go.mod of a module that has none: its module line and nothing else. */
export function legacyGoMod(modPath: string): Buffer {
  const quoted = /^[A-Za-z0-9._~+\-/]+$/.test(modPath) ? modPath : JSON.stringify(modPath);
  return Buffer.from(`module ${quoted}\n`);
}

/** Whether mpath's major version rules match pathMajor's (cmd/go isMajor). */
function isMajor(mpath: string, pathMajor: string): boolean {
  if (mpath === '') return false;
  const s = splitPathVersion(mpath);
  if (!s.ok) return false;
  if (pathMajor === '') {
    let pm: string;
    try {
      pm = pathMajorPrefix(s.pathMajor);
    } catch {
      return false;
    }
    return pm === '' || pm === 'v0' || pm === 'v1';
  }
  if (s.pathMajor === '') return false;
  return pathMajor.slice(1) === s.pathMajor.slice(1);
}

function pseudoStamp(t: Date): string {
  const p = (n: number, w: number): string => String(n).padStart(w, '0');
  return `${p(t.getUTCFullYear(), 4)}${p(t.getUTCMonth() + 1, 2)}${p(t.getUTCDate(), 2)}${p(t.getUTCHours(), 2)}${p(t.getUTCMinutes(), 2)}${p(t.getUTCSeconds(), 2)}`;
}
