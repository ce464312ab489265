// listModuleDir + writeModuleZip against golang.org/x/mod's zip.CreateFromDir, on the layouts a
// developer's checkout has and `gomodproxy publish` must get right: VCS directories, nested
// modules (a go.mod file, a go.mod symlink, a GO.MOD that is no module), vendor directories under
// both vendoring rules, symlinks, empty directories. The h1 of our zip must be Go's, file for file.
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModuleZip, listModuleDir, planModuleZip, writeModuleZip, ZipError } from '../../src/modzip/index.js';
import { goCheck, goCreate, makeTmp, writeTree, type Tree } from './helpers.js';

const run = promisify(execFile);
const MOD = 'example.com/pub';
const VER = 'v1.4.0';

let tmp: { dir: string; cleanup: () => Promise<void> };
let counter = 0;
beforeAll(async () => {
  tmp = await makeTmp('dir');
});
afterAll(async () => {
  await tmp.cleanup();
});

function buildTree(tree: Tree): Promise<string> {
  return writeTree(path.join(tmp.dir, `tree${counter++}`), tree);
}

const checkout = (goLine: string): Tree => ({
  'go.mod': `module ${MOD}\n\n${goLine}\n`,
  'lib.go': 'package pub\n\nfunc Hello() string { return "hi" }\n',
  'internal/x/x.go': 'package x\n',
  '.git/HEAD': 'ref: refs/heads/main\n',
  '.git/objects/ab/cdef': 'blob',
  'sub/.hg/store': 'x',
  '.svn/entries': 'x',
  '.bzr/x': 'x',
  '.gitignore': '*.tmp\n',
  'nested/go.mod': 'module example.com/pub/nested\n',
  'nested/n.go': 'package nested\n',
  'linked/go.mod': { symlink: '../go.mod' },
  'linked/l.go': 'package linked\n',
  'upper/GO.MOD': 'module example.com/pub/upper\n',
  'upper/u.go': 'package upper\n',
  'vendor/modules.txt': '# example.com/dep v1.0.0\n',
  'vendor/example.com/dep/dep.go': 'package dep\n',
  'pkg/vendor/vendor.go': 'package vendor\n',
  'pkg/vendor/deep/d.go': 'package deep\n',
  'alias.go': { symlink: 'lib.go' },
  dirlink: { symlink: 'internal' },
  'empty/dir': { dir: true },
  'testdata/data.txt': 'fixture\n',
  LICENSE: 'MIT\n',
});

const layouts: Record<string, Tree> = {
  'a checkout with VCS folders, nested modules, symlinks and vendor (go 1.21)': checkout('go 1.21'),
  'the same checkout under the go 1.24 vendoring rules': checkout('go 1.24'),
  'no go.mod at all': { 'a.go': 'package a\n', '.git/config': 'x', 'vendor/x/y.go': 'package y\n' },
  'a go.mod that does not parse': { 'go.mod': 'module\n', 'a.go': 'package a\n', 'vendor/modules.txt': 'x' },
};

describe('listModuleDir + writeModuleZip against zip.CreateFromDir', () => {
  for (const [title, tree] of Object.entries(layouts)) {
    it(title, async () => {
      const root = await buildTree(tree);
      const goZip = path.join(tmp.dir, `go${counter++}.zip`);
      const go = await goCreate('dir', root, MOD, VER, goZip);
      expect(go.err).toBeNull();

      const listing = await listModuleDir(root);
      const opts = { modulePath: MOD, version: VER, goVersion: listing.goVersion };
      const plan = planModuleZip(listing.files, opts);
      expect(plan.include.map((f) => `${MOD}@${VER}/${f.name}`)).toEqual(go.files);

      const ours = path.join(tmp.dir, `ours${counter++}.zip`);
      const { h1 } = await writeModuleZip(listing.files, opts, createWriteStream(ours));
      expect(h1).toBe(go.h1);
      expect((await checkModuleZip(ours, MOD, VER)).h1).toBe(go.h1);
      expect((await goCheck(ours, MOD, VER)).h1).toBe(go.h1);
    });
  }

  it('leaves out VCS folders, other modules and links, and says why', async () => {
    const root = await buildTree(checkout('go 1.21'));
    const { omitted, files } = await listModuleDir(root);
    const reasons = new Map(omitted.map((o) => [o.name, o.reason]));
    expect(reasons.get('.git')).toMatch(/version control/);
    expect(reasons.get('nested')).toMatch(/another module/);
    // A go.mod symlink still makes its folder another module; a GO.MOD file does not (zip.Create leaves it out later).
    expect(reasons.get('linked')).toMatch(/another module/);
    expect(reasons.has('upper')).toBe(false);
    expect(reasons.get('alias.go')).toMatch(/not a regular file/);
    expect(reasons.get('dirlink')).toMatch(/not a regular file/);
    expect(files.map((f) => f.name)).not.toContain('.git/HEAD');
  });

  it('a name Go refuses fails on both sides', async () => {
    const root = await buildTree({ 'go.mod': `module ${MOD}\n`, 'a:b.go': 'package a\n' });
    const go = await goCreate('dir', root, MOD, VER, path.join(tmp.dir, `go${counter++}.zip`));
    expect(go.err).not.toBeNull();
    const listing = await listModuleDir(root);
    expect(() => planModuleZip(listing.files, { modulePath: MOD, version: VER, goVersion: listing.goVersion })).toThrow(ZipError);
  });

  it('follows a root that is itself a symbolic link', async () => {
    const root = await buildTree({ 'go.mod': `module ${MOD}\n`, 'a.go': 'package a\n' });
    const link = path.join(tmp.dir, `link${counter++}`);
    await run('ln', ['-s', root, link]);
    expect((await listModuleDir(link)).files.map((f) => f.name)).toEqual(['a.go', 'go.mod']);
  });
});
