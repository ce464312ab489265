// Git repository layouts that make module resolution tricky, for the conformance suite: each one
// is a repository under github.com/gmp-git/<name> (reached through insteadOf, no network), the
// modules to check in it, and the queries to try. Nothing here states an expected answer: the
// suite asks the real go command (GOPROXY=direct) at test time and compares gomodproxy with it,
// so a new case is one more layout and nothing else.
import { spawn } from 'node:child_process';
import { pseudoVersion } from '../../src/module/index.js';
import { createRepo, gitEnv, symlinkTo, type GitRepo } from '../helpers/gitrepo.js';
import { run } from '../helpers/proc.js';

export const OWNER = 'github.com/gmp-git';

/** Named commits (and their committer dates) recorded while a fixture is built. */
export interface Marks {
  hash: Record<string, string>;
  date: Record<string, Date>;
}

export interface ModuleCheck {
  path: string;
  /** Versions to download besides the ones `go list -m -versions -retracted` shows (unlisted +incompatible, pseudo-versions, invalid ones). */
  versions?: (m: Marks) => string[];
  /** Queries (branches, hashes, non-canonical tags, latest...). */
  queries?: (m: Marks) => string[];
}

export interface Fixture {
  name: string;
  /** What makes this layout tricky. */
  about: string;
  build(repo: GitRepo, m: Marks): Promise<void>;
  modules: ModuleCheck[];
  /** Object format of the repository (default sha1). */
  objectFormat?: 'sha256';
  /** Changes made after the first round of checks (a tag moved, a branch deleted). */
  mutate?: (repo: GitRepo, m: Marks) => Promise<void>;
}

const P = OWNER;
const gomod = (path: string, go = '1.21', extra = ''): string => `module ${path}\n\ngo ${go}\n${extra}`;
const short = (h: string): string => h.slice(0, 12);

/** Commits a state and records its hash and date under key. */
async function mark(repo: GitRepo, m: Marks, key: string, message = key): Promise<string> {
  const h = await repo.commit(message);
  m.hash[key] = h;
  m.date[key] = await repo.commitDate(h);
  return h;
}

export const fixtures: Fixture[] = [
  {
    name: 'root',
    about: 'module at the repository root; releases, a pre-release, untagged commits; branch, HEAD and hash queries',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/root`), 'a.go': 'package root\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'a.go': 'package root // 2\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.1.0', { annotated: true });
      await r.write({ 'b.go': 'package root\n' });
      await mark(r, m, 'c3');
      await r.write({ 'c.go': 'package root\n' });
      await mark(r, m, 'c4');
      await r.tag('v1.2.0-rc.1');
      await r.write({ 'd.go': 'package root\n' });
      await mark(r, m, 'c5');
    },
    modules: [
      {
        path: `${P}/root`,
        queries: (m) => ['main', 'HEAD', (m.hash.c3 as string).slice(0, 7), m.hash.c2 as string, short(m.hash.c5 as string), 'v1.1', 'latest', '<v1.1.0'],
        versions: (m) => [
          // A valid pseudo-version on an older base than cmd/go would choose, one without a base,
          // and invalid ones: wrong time, wrong base, a v1 without a preceding tag.
          pseudoVersion('', 'v1.0.0', m.date.c3 as Date, short(m.hash.c3 as string)),
          pseudoVersion('', '', m.date.c3 as Date, short(m.hash.c3 as string)),
          pseudoVersion('', 'v1.1.0', new Date(Date.UTC(2020, 0, 1)), short(m.hash.c3 as string)),
          pseudoVersion('', 'v1.3.0', m.date.c3 as Date, short(m.hash.c3 as string)),
          pseudoVersion('v1', '', m.date.c3 as Date, short(m.hash.c3 as string)),
          pseudoVersion('', 'v1.0.0', m.date.c2 as Date, short(m.hash.c2 as string)),
          'v1.0.1',
        ],
      },
    ],
  },
  {
    name: 'subdir',
    about: 'module in a subdirectory with prefixed tags; LICENSE only at the repository root; a root module too',
    async build(r, m) {
      await r.write({
        LICENSE: 'root license\n',
        'README.md': 'readme\n',
        'sub/go.mod': gomod(`${P}/subdir/sub`),
        'sub/x.go': 'package sub\n',
        'root.go': 'package subdir\n',
      });
      await mark(r, m, 'c1');
      await r.tag('sub/v1.0.0');
      await r.tag('v1.0.0');
      await r.write({ 'sub/y.go': 'package sub\n' });
      await mark(r, m, 'c2');
      await r.tag('sub/v1.0.1');
      await r.write({ 'sub/z.go': 'package sub\n' });
      await mark(r, m, 'c3');
    },
    modules: [
      { path: `${P}/subdir/sub`, queries: (m) => ['main', short(m.hash.c1 as string), 'latest'] },
      { path: `${P}/subdir`, queries: () => ['main', 'latest'] },
    ],
  },
  {
    name: 'licsub',
    about: 'two subdirectory modules: one with its own LICENSE, one taking the root LICENSE',
    async build(r, m) {
      await r.write({
        LICENSE: 'root license\n',
        'a/go.mod': gomod(`${P}/licsub/a`),
        'a/LICENSE': 'a license\n',
        'a/a.go': 'package a\n',
        'b/go.mod': gomod(`${P}/licsub/b`),
        'b/b.go': 'package b\n',
      });
      await mark(r, m, 'c1');
      await r.tag('a/v0.1.0');
      await r.tag('b/v0.1.0');
    },
    modules: [{ path: `${P}/licsub/a` }, { path: `${P}/licsub/b` }],
  },
  {
    name: 'multi',
    about: 'several modules in one repository with prefixed tags; nested modules left out of the root zip',
    async build(r, m) {
      await r.write({
        'go.mod': gomod(`${P}/multi`),
        'root.go': 'package multi\n',
        'tools/go.mod': gomod(`${P}/multi/tools`),
        'tools/t.go': 'package tools\n',
        'x/y/z/go.mod': gomod(`${P}/multi/x/y/z`),
        'x/y/z/z.go': 'package z\n',
        'x/y/plain.go': 'package y\n',
      });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.tag('tools/v0.1.0');
      await r.tag('x/y/z/v1.0.0');
      await r.write({ 'tools/t2.go': 'package tools\n' });
      await mark(r, m, 'c2');
      await r.tag('tools/v0.2.0');
      await r.write({ 'root2.go': 'package multi\n' });
      await mark(r, m, 'c3');
      await r.tag('v1.1.0');
    },
    modules: [
      { path: `${P}/multi`, queries: () => ['main'] },
      { path: `${P}/multi/tools`, queries: () => ['main', 'latest'] },
      { path: `${P}/multi/x/y/z`, queries: () => ['main'] },
    ],
  },
  {
    name: 'majorsub',
    about: 'v2 in a v2/ subdirectory beside a v1 root module',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/majorsub`), 'a.go': 'package majorsub\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'v2/go.mod': gomod(`${P}/majorsub/v2`), 'v2/a.go': 'package majorsub\n' });
      await mark(r, m, 'c2');
      await r.tag('v2.0.0');
      await r.write({ 'v2/b.go': 'package majorsub\n' });
      await mark(r, m, 'c3');
      await r.tag('v2.1.0');
      await r.write({ 'v2/c.go': 'package majorsub\n' });
      await mark(r, m, 'c4');
    },
    modules: [
      { path: `${P}/majorsub`, versions: () => ['v2.0.0+incompatible'], queries: () => ['main', 'v2.0.0'] },
      { path: `${P}/majorsub/v2`, queries: () => ['main', 'latest'] },
    ],
  },
  {
    name: 'majorbranch',
    about: 'v2 on a major branch (root go.mod says /v2 there); v1 on main',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/majorbranch`), 'a.go': 'package majorbranch\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'a.go': 'package majorbranch // 1.0.1\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.0.1');
      await r.checkout('v2', { create: true });
      await r.write({ 'go.mod': gomod(`${P}/majorbranch/v2`), 'a.go': 'package majorbranch // v2\n' });
      await mark(r, m, 'b1');
      await r.tag('v2.0.0');
      await r.write({ 'b.go': 'package majorbranch\n' });
      await mark(r, m, 'b2');
      await r.tag('v2.1.0');
      await r.write({ 'c.go': 'package majorbranch\n' });
      await mark(r, m, 'b3');
      await r.checkout('main');
    },
    modules: [
      { path: `${P}/majorbranch`, queries: () => ['main', 'v2'] },
      { path: `${P}/majorbranch/v2`, queries: () => ['v2', 'main', 'latest'] },
    ],
  },
  {
    name: 'incompat',
    about: 'no go.mod at all: major versions 2+ become +incompatible; pseudo-versions too',
    async build(r, m) {
      await r.write({ 'a.go': 'package incompat\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'a.go': 'package incompat // 2\n' });
      await mark(r, m, 'c2');
      await r.tag('v2.0.0');
      await r.write({ 'b.go': 'package incompat\n' });
      await mark(r, m, 'c3');
      await r.tag('v2.1.0');
      await r.write({ 'c.go': 'package incompat\n' });
      await mark(r, m, 'c4');
      await r.tag('v3.0.0-pre');
      await r.write({ 'd.go': 'package incompat\n' });
      await mark(r, m, 'c5');
    },
    modules: [{ path: `${P}/incompat`, versions: () => ['v2.0.0'], queries: (m) => ['v2.0.0', 'main', 'latest', short(m.hash.c3 as string)] }],
  },
  {
    name: 'incompatdrop',
    about: 'the latest v1 has a go.mod, so v2 tags without one are not listed (but resolve when asked for)',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/incompatdrop`), 'a.go': 'package incompatdrop\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.remove(['go.mod']);
      await r.write({ 'a.go': 'package incompatdrop // 2\n' });
      await mark(r, m, 'c2');
      await r.tag('v2.0.0');
    },
    modules: [{ path: `${P}/incompatdrop`, versions: () => ['v2.0.0+incompatible'], queries: () => ['main', 'latest', 'v2.0.0'] }],
  },
  {
    name: 'incompatmajor',
    about: '+incompatible decided per major: v3 dropped (its latest has a go.mod), v4 listed though v4/go.mod exists',
    async build(r, m) {
      await r.write({ 'a.go': 'package incompatmajor\n' });
      await mark(r, m, 'c1');
      await r.tag('v2.0.0');
      await r.write({ 'b.go': 'package incompatmajor\n' });
      await mark(r, m, 'c2');
      await r.tag('v2.1.0');
      await r.tag('v3.0.0');
      await r.write({ 'go.mod': gomod(`${P}/incompatmajor/v3`) });
      await mark(r, m, 'c3');
      await r.tag('v3.1.0');
      await r.remove(['go.mod']);
      await r.write({ 'v4/go.mod': gomod(`${P}/incompatmajor/v4`), 'v4/a.go': 'package incompatmajor\n' });
      await mark(r, m, 'c4');
      await r.tag('v4.0.0');
    },
    modules: [
      { path: `${P}/incompatmajor`, versions: () => ['v3.0.0+incompatible', 'v3.1.0+incompatible'], queries: () => ['v4.0.0', 'v2.1.0', 'latest', 'main'] },
      { path: `${P}/incompatmajor/v4` },
      { path: `${P}/incompatmajor/v3` },
    ],
  },
  {
    name: 'v2dirnoroot',
    about: 'no root go.mod, v2/go.mod at v2.0.0: listed +incompatible for the root path, and as v2.0.0 of /v2',
    async build(r, m) {
      await r.write({ 'a.go': 'package v2dirnoroot\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'v2/go.mod': gomod(`${P}/v2dirnoroot/v2`), 'v2/a.go': 'package v2dirnoroot\n' });
      await mark(r, m, 'c2');
      await r.tag('v2.0.0');
    },
    modules: [
      { path: `${P}/v2dirnoroot`, queries: () => ['v2.0.0', 'latest', 'main'] },
      { path: `${P}/v2dirnoroot/v2`, queries: () => ['main'] },
    ],
  },
  {
    name: 'gomodlater',
    about: 'go.mod added in a later version: the first .mod is synthesized',
    async build(r, m) {
      await r.write({ 'a.go': 'package gomodlater\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'go.mod': gomod(`${P}/gomodlater`) });
      await mark(r, m, 'c2');
      await r.tag('v1.1.0');
    },
    modules: [{ path: `${P}/gomodlater`, queries: (m) => [short(m.hash.c1 as string)] }],
  },
  ...(['1.20', '1.24', ''] as const).map((go): Fixture => ({
    name: `vendor${go.replace('.', '') || 'nogo'}`,
    about: `vendor directories at several depths and vendor/modules.txt with ${go ? `go ${go}` : 'no go line'}`,
    async build(r, m) {
      const path = `${P}/vendor${go.replace('.', '') || 'nogo'}`;
      await r.write({
        'go.mod': go ? gomod(path, go) : `module ${path}\n`,
        'a.go': 'package v\n',
        'vendor/modules.txt': '# example.com/dep v1.0.0\n',
        'vendor/top.go': 'package vendor\n',
        'vendor/example.com/dep/dep.go': 'package dep\n',
        'pkg/vendor/x.go': 'package vendor\n',
        'pkg/vendor/a/b.go': 'package a\n',
        'pkg/notvendor/vendor.go': 'package notvendor\n',
        'internal/vendorish/v.go': 'package vendorish\n',
      });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/vendor${go.replace('.', '') || 'nogo'}` }],
  })),
  {
    name: 'nested',
    about: 'nested modules (go.mod, GO.MOD) left out; a directory named go.mod kept',
    async build(r, m) {
      await r.write({
        'go.mod': gomod(`${P}/nested`),
        'a.go': 'package nested\n',
        'inner/go.mod': gomod(`${P}/nested/inner`),
        'inner/x.go': 'package inner\n',
        'deep/a/GO.MOD': 'module whatever\n',
        'deep/a/y.go': 'package a\n',
        'deep/b.go': 'package deep\n',
        'other/go.mod/file.txt': 'a directory named go.mod\n',
      });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/nested` }, { path: `${P}/nested/inner`, queries: () => ['main'] }],
  },
  {
    name: 'symlinks',
    about: 'symbolic links to a file and to a directory (left out of the zip)',
    async build(r, m) {
      await r.write({
        'go.mod': gomod(`${P}/symlinks`),
        'a.go': 'package symlinks\n',
        'link.go': symlinkTo('a.go'),
        'sub/real.go': 'package sub\n',
        dirlink: symlinkTo('sub'),
        'dangling.txt': symlinkTo('nowhere'),
      });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/symlinks` }],
  },
  {
    name: 'UpperCase',
    about: 'upper case in the module path, in file names and in a pre-release',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/UpperCase`), 'Foo.go': 'package uppercase\n', 'README.MD': 'x\n', 'Sub/Bar.go': 'package sub\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'Baz.go': 'package uppercase\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.0.1-RC1');
    },
    modules: [{ path: `${P}/UpperCase`, queries: () => ['main', 'latest'] }],
  },
  {
    name: 'emptycommit',
    about: 'a tagged empty commit and an untagged empty commit',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/emptycommit`), 'a.go': 'package emptycommit\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await mark(r, m, 'c2');
      await r.tag('v1.0.1');
      await mark(r, m, 'c3');
    },
    modules: [{ path: `${P}/emptycommit`, queries: () => ['main'] }],
  },
  {
    name: 'prerelease',
    about: 'only pre-release tags: latest is the highest pre-release; pseudo-versions build on a pre-release',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/prerelease`), 'a.go': 'package prerelease\n' });
      await mark(r, m, 'c1');
      await r.tag('v0.9.0-alpha');
      await r.write({ 'b.go': 'package prerelease\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.0.0-beta.1');
      await r.write({ 'c.go': 'package prerelease\n' });
      await mark(r, m, 'c3');
      await r.tag('v1.0.0-rc.1');
      await r.write({ 'd.go': 'package prerelease\n' });
      await mark(r, m, 'c4');
    },
    modules: [{ path: `${P}/prerelease`, queries: () => ['main', 'latest', 'v1.0.0-rc.1'] }],
  },
  {
    name: 'buildmeta',
    about: 'tags with build metadata: not listed; as queries they give pseudo-versions on their base',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/buildmeta`), 'a.go': 'package buildmeta\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'b.go': 'package buildmeta\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.1.0+meta');
      await r.write({ 'c.go': 'package buildmeta\n' });
      await mark(r, m, 'c3');
      await r.tag('v1.2.0+build.5');
      await r.tag('v1.2.0');
    },
    modules: [{ path: `${P}/buildmeta`, queries: (m) => ['v1.1.0+meta', 'v1.2.0+build.5', short(m.hash.c2 as string), 'main'] }],
  },
  {
    name: 'nonsemver',
    about: 'tags that are not canonical semver (release-1, v1.2, 1.0.0): queries resolve to pseudo-versions',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/nonsemver`), 'a.go': 'package nonsemver\n' });
      await mark(r, m, 'c1');
      await r.tag('v0.1.0');
      await r.write({ 'b.go': 'package nonsemver\n' });
      await mark(r, m, 'c2');
      await r.tag('release-1');
      await r.write({ 'c.go': 'package nonsemver\n' });
      await mark(r, m, 'c3');
      await r.tag('v1.2');
      await r.tag('1.0.0');
    },
    modules: [{ path: `${P}/nonsemver`, queries: () => ['release-1', '1.0.0', 'v1.2', 'main', 'latest'] }],
  },
  {
    name: 'pseudotag',
    about: 'a tag shaped like a pseudo-version is ignored',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/pseudotag`), 'a.go': 'package pseudotag\n' });
      await mark(r, m, 'c1');
      await r.tag('v0.1.0');
      await r.write({ 'b.go': 'package pseudotag\n' });
      const h = await mark(r, m, 'c2');
      await r.tag(`v0.1.1-0.20200101000000-${short(h)}`);
    },
    modules: [{ path: `${P}/pseudotag`, queries: () => ['main', 'latest'] }],
  },
  {
    name: 'retracted',
    about: 'retractions in the latest go.mod (one version, a range, the latest itself)',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/retracted`), 'a.go': 'package retracted\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'b.go': 'package retracted\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.1.0');
      await r.write({ 'go.mod': gomod(`${P}/retracted`, '1.21', '\n// Broken.\nretract v1.1.0\n') });
      await mark(r, m, 'c3');
      await r.tag('v1.2.0');
      await r.write({ 'c.go': 'package retracted\n' });
      await mark(r, m, 'c4');
      await r.tag('v1.3.0');
      await r.write({ 'go.mod': gomod(`${P}/retracted`, '1.21', '\nretract (\n\tv1.1.0 // Broken.\n\t[v1.3.0, v1.4.0] // Oops.\n)\n') });
      await mark(r, m, 'c5');
      await r.tag('v1.4.0');
      await r.write({ 'd.go': 'package retracted\n' });
      await mark(r, m, 'c6');
    },
    modules: [{ path: `${P}/retracted`, queries: (m) => ['main', 'latest', short(m.hash.c5 as string), 'v1.3'] }],
  },
  {
    name: 'annotated',
    about: 'annotated tags (peeled in ls-remote) beside a lightweight one',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/annotated`), 'a.go': 'package annotated\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0', { annotated: 'first release' });
      await r.write({ 'b.go': 'package annotated\n' });
      await mark(r, m, 'c2');
      await r.tag('v1.1.0', { annotated: true, date: new Date(Date.UTC(2024, 5, 1)) });
      await r.write({ 'c.go': 'package annotated\n' });
      await mark(r, m, 'c3');
      await r.tag('v1.2.0');
      await r.write({ 'd.go': 'package annotated\n' });
      await mark(r, m, 'c4');
    },
    modules: [{ path: `${P}/annotated`, queries: () => ['main', 'latest'] }],
  },
  {
    name: 'notags',
    about: 'no tags at all: empty list, latest is a v0.0.0 pseudo-version of HEAD',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/notags`), 'a.go': 'package notags\n' });
      await mark(r, m, 'c1');
      await r.write({ 'b.go': 'package notags\n' });
      await mark(r, m, 'c2');
      await r.write({ 'c.go': 'package notags\n' });
      await mark(r, m, 'c3');
    },
    modules: [
      {
        path: `${P}/notags`,
        queries: (m) => ['latest', 'main', short(m.hash.c2 as string)],
        versions: (m) => [
          pseudoVersion('v1', '', m.date.c2 as Date, short(m.hash.c2 as string)),
          pseudoVersion('', '', m.date.c2 as Date, short(m.hash.c2 as string).slice(0, 11) + '0'),
        ],
      },
    ],
  },
  {
    name: 'v2root',
    about: 'a /v2 module at the repository root without tags: v2.0.0-based pseudo-versions',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/v2root/v2`), 'a.go': 'package v2root\n' });
      await mark(r, m, 'c1');
      await r.write({ 'b.go': 'package v2root\n' });
      await mark(r, m, 'c2');
    },
    modules: [
      { path: `${P}/v2root/v2`, queries: () => ['latest', 'main'] },
      { path: `${P}/v2root`, queries: () => ['main'] },
    ],
  },
  {
    name: 'postmajor',
    about: 'go.mod declares /v3 but the tags are v1: invalid for the root path, v3 only by pseudo-version',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/postmajor/v3`), 'a.go': 'package postmajor\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [
      { path: `${P}/postmajor`, versions: () => ['v1.0.0'] },
      { path: `${P}/postmajor/v3`, queries: () => ['latest', 'main'] },
    ],
  },
  {
    name: 'bothv2',
    about: 'both go.mod and v2/go.mod claim /v2: an error',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/bothv2/v2`), 'v2/go.mod': gomod(`${P}/bothv2/v2`), 'a.go': 'package bothv2\n' });
      await mark(r, m, 'c1');
      await r.tag('v2.0.0');
    },
    modules: [{ path: `${P}/bothv2/v2`, versions: () => ['v2.0.0'], queries: () => ['main'] }],
  },
  {
    name: 'wrongpath',
    about: 'go.mod names another module path (accepted by go mod download)',
    async build(r, m) {
      await r.write({ 'go.mod': gomod('example.com/other'), 'a.go': 'package other\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/wrongpath` }],
  },
  {
    name: 'tagnomod',
    about: 'a prefixed tag on a commit where the subdirectory has no go.mod yet',
    async build(r, m) {
      await r.write({ 'sub/x.go': 'package sub\n' });
      await mark(r, m, 'c1');
      await r.tag('sub/v1.0.0');
      await r.write({ 'sub/go.mod': gomod(`${P}/tagnomod/sub`) });
      await mark(r, m, 'c2');
      await r.tag('sub/v1.1.0');
    },
    modules: [{ path: `${P}/tagnomod/sub`, queries: () => ['latest'] }],
  },
  {
    name: 'casecollide',
    about: 'a.go and A.go: the version resolves but cannot be zipped',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/casecollide`), 'a.go': 'package a\n', 'A.go': 'package a\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/casecollide` }],
  },
  {
    name: 'reserved',
    about: 'a Windows-reserved file name makes the zip invalid',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/reserved`), 'aux.go': 'package reserved\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/reserved` }],
  },
  {
    name: 'gitattrs',
    about: '.gitattributes with export-ignore, export-subst and eol=crlf (git archive applies the eol rule)',
    async build(r, m) {
      await r.write({
        'go.mod': gomod(`${P}/gitattrs`),
        'a.go': 'package gitattrs\n',
        '.gitattributes': 'ignored.txt export-ignore\nsubst.txt export-subst\ncrlf.txt text eol=crlf\n',
        'ignored.txt': 'still here\n',
        'subst.txt': 'hash $Format:%H$\n',
        'crlf.txt': 'line one\nline two\n',
        // A module below the root gets the root's attributes too.
        'sub/go.mod': gomod(`${P}/gitattrs/sub`),
        'sub/notes.txt': 'converted\nas well\n',
        'sub/x.go': 'package sub\n',
      });
      await r.write({ '.gitattributes': 'ignored.txt export-ignore\nsubst.txt export-subst\n*.txt text eol=crlf\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.tag('sub/v1.0.0');
    },
    modules: [{ path: `${P}/gitattrs` }, { path: `${P}/gitattrs/sub` }],
  },
  {
    name: 'sha256',
    about: 'a repository with SHA-256 object names (64-hex hashes, 12-digit pseudo-version revisions)',
    objectFormat: 'sha256',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/sha256`), 'a.go': 'package s\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'b.go': 'package s\n' });
      await mark(r, m, 'c2');
    },
    modules: [{ path: `${P}/sha256`, queries: (m) => ['main', 'latest', short(m.hash.c2 as string)] }],
  },
  {
    name: 'bigfiles',
    about: 'files larger than the read-ahead window among small ones, and a large vendored file left out',
    async build(r, m) {
      const big = (n: number, seed: string): string => Array.from({ length: n }, (_, i) => `// ${seed} line ${i} ${'x'.repeat(i % 50)}\n`).join('');
      const files: Record<string, string> = {
        'go.mod': gomod(`${P}/bigfiles`, '1.24'),
        'a.go': 'package b\n',
        'vendor/modules.txt': '# x\n',
        'vendor/example.com/x/huge.go': big(20_000, 'vendored'),
      };
      for (let i = 0; i < 80; i++) files[`small/s${String(i).padStart(2, '0')}.go`] = `package small // ${i}\n`;
      files['m/big1.go'] = big(30_000, 'one');
      files['m/mid.go'] = big(6_000, 'mid');
      files['n/big2.go'] = big(25_000, 'two');
      await r.write(files);
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/bigfiles` }],
  },
  {
    name: 'hgarchival',
    about: '.hg_archival.txt at the root is left out (but kept deeper)',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/hgarchival`), 'a.go': 'package h\n', '.hg_archival.txt': 'repo: x\n', 'sub/.hg_archival.txt': 'deeper\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/hgarchival` }],
  },
  {
    name: 'submodule',
    about: 'a submodule (gitlink) entry, left out',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/submodule`), 'a.go': 'package s\n' });
      const h = await mark(r, m, 'c1');
      await r.git(['update-index', '--add', '--cacheinfo', `160000,${h},ext/lib`]);
      await r.git(['config', '-f', '.gitmodules', 'submodule.lib.path', 'ext/lib']);
      await r.git(['config', '-f', '.gitmodules', 'submodule.lib.url', 'https://example.com/lib']);
      await mark(r, m, 'c2');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/submodule` }],
  },
  {
    name: 'headtagged',
    about: 'HEAD carries a release and a pre-release tag: branch queries resolve to the release',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/headtagged`), 'a.go': 'package h\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0-rc.1');
      await r.tag('v1.0.0');
    },
    modules: [{ path: `${P}/headtagged`, queries: (m) => ['main', 'HEAD', 'latest', m.hash.c1 as string] }],
  },
  {
    name: 'branchonly',
    about: 'commits reachable only from a branch (not the default one), by branch and by hash',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/branchonly`), 'a.go': 'package b\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'main.go': 'package b\n' });
      await mark(r, m, 'c2');
      await r.checkout('dev', { create: true });
      await r.git(['reset', '-q', '--hard', m.hash.c1 as string]);
      await r.write({ 'd1.go': 'package b\n' });
      await mark(r, m, 'd1');
      await r.write({ 'd2.go': 'package b\n' });
      await mark(r, m, 'd2');
      await r.write({ 'd3.go': 'package b\n' });
      await mark(r, m, 'd3');
      await r.checkout('main');
    },
    modules: [{ path: `${P}/branchonly`, queries: (m) => ['dev', short(m.hash.d2 as string), m.hash.d1 as string] }],
  },
  {
    name: 'deletedbranch',
    about: 'a branch queried, then deleted: its commits are no longer resolvable (cached answers stay)',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/deletedbranch`), 'a.go': 'package d\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.checkout('feature', { create: true });
      await r.write({ 'f1.go': 'package d\n' });
      await mark(r, m, 'f1');
      await r.write({ 'f2.go': 'package d\n' });
      await mark(r, m, 'f2');
      await r.checkout('main');
    },
    modules: [{ path: `${P}/deletedbranch`, queries: () => ['feature'] }],
    async mutate(r) {
      await r.git(['branch', '-D', 'feature']);
    },
  },
  {
    name: 'movedtag',
    about: 'a tag moved after the first fetch',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/movedtag`), 'a.go': 'package m\n' });
      await mark(r, m, 'c1');
      await r.tag('v1.0.0');
      await r.write({ 'a.go': 'package m // moved\n' });
      await mark(r, m, 'c2');
    },
    modules: [{ path: `${P}/movedtag` }],
    async mutate(r, m) {
      await r.moveTag('v1.0.0', m.hash.c2 as string);
    },
  },
  {
    name: 'deephistory',
    about: 'a long history: the pseudo-version base is far back and needs the full history',
    async build(r, m) {
      await r.write({ 'go.mod': gomod(`${P}/deephistory`), 'a.go': 'package d\n' });
      await mark(r, m, 'c0');
      await r.tag('v1.0.0');
      await appendCommits(r, 120, 'one');
      m.hash.mid = await r.head();
      await r.tag('v1.1.0');
      await appendCommits(r, 120, 'two');
      m.hash.late = await r.head('HEAD~30');
    },
    modules: [{ path: `${P}/deephistory`, queries: (m) => ['main', short(m.hash.late as string)] }],
  },
];

/** Adds n commits on the current branch at once with git fast-import (one file changed per commit, dates one minute apart). */
export async function appendCommits(repo: GitRepo, n: number, label: string, opts: { files?: number; start?: Date } = {}): Promise<void> {
  const head = await repo.head();
  const branch = await repo.currentBranch();
  const startSec = Math.floor((opts.start ?? (await repo.commitDate(head))).getTime() / 1000) + 60;
  const files = Math.max(1, opts.files ?? 1);
  let stream = '';
  for (let i = 0; i < n; i++) {
    const t = startSec + i * 60;
    const body = `package d\n\n// ${label} ${i}\n`;
    const msg = `${label} ${i}\n`;
    stream += `commit refs/heads/${branch}\nmark :${i + 1}\n`;
    stream += `author gomodproxy test <test@gomodproxy.invalid> ${t} +0000\ncommitter gomodproxy test <test@gomodproxy.invalid> ${t} +0000\n`;
    stream += `data ${Buffer.byteLength(msg)}\n${msg}`;
    if (i === 0) stream += `from ${head}\n`;
    stream += `M 100644 inline gen/${label}_${i % files}.go\ndata ${Buffer.byteLength(body)}\n${body}\n`;
  }
  await fastImport(repo.dir, stream);
  await repo.git(['reset', '-q', '--hard', branch]);
}

export function fastImport(dir: string, stream: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('git', ['fast-import', '--quiet', '--force'], { cwd: dir, env: gitEnv(), stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git fast-import exited ${code}: ${err}`))));
    p.stdin.end(stream);
  });
}

/** Builds every fixture under root (in parallel); returns marks by fixture name. */
export async function buildFixtures(root: string, list: Fixture[] = fixtures): Promise<Map<string, { repo: GitRepo; marks: Marks; fixture: Fixture }>> {
  const out = new Map<string, { repo: GitRepo; marks: Marks; fixture: Fixture }>();
  const queue = [...list];
  const worker = async (): Promise<void> => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      if (f.objectFormat) {
        const r = await run('git', ['init', '-q', '-b', 'main', `--object-format=${f.objectFormat}`, `${root}/${f.name}`], { env: gitEnv() });
        if (r.code !== 0) throw new Error(r.stderr);
      }
      const repo = await createRepo(`${root}/${f.name}`);
      const marks: Marks = { hash: {}, date: {} };
      await f.build(repo, marks);
      out.set(f.name, { repo, marks, fixture: f });
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return out;
}
