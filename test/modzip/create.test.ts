import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModuleZip, planModuleZip, writeModuleZip, ZipError, type ModuleZipOptions, type ZipSourceFile } from '../../src/modzip/index.js';
import { gotoolsDir, runGoTool } from '../helpers/gotools.js';
import { goCheck, goCreate, goLineOf, listTree, makeTmp, rng, writeTree, type Tree } from './helpers.js';

const run = promisify(execFile);
const MOD = 'example.com/m';
const VER = 'v1.2.3';

let tmp: { dir: string; cleanup: () => Promise<void> };
let counter = 0;
beforeAll(async () => {
  tmp = await makeTmp('create');
});
afterAll(async () => {
  await tmp.cleanup();
});

function buildTree(tree: Tree): Promise<string> {
  return writeTree(path.join(tmp.dir, `tree${counter++}`), tree);
}

function opts(files: ZipSourceFile[], extra: Partial<ModuleZipOptions> = {}): ModuleZipOptions {
  const gomod = files.find((f) => f.name === 'go.mod' && f.mode === 'file');
  return { modulePath: MOD, version: VER, ...extra, ...(gomod ? { goVersion: gomodVersion.get(gomod) } : {}) };
}
// The go line of each tree's root go.mod, read before planning (a git source reads it the same way).
const gomodVersion = new WeakMap<ZipSourceFile, string | undefined>();
async function listWithGoVersion(root: string): Promise<ZipSourceFile[]> {
  const files = await listTree(root);
  const gomod = files.find((f) => f.name === 'go.mod' && f.mode === 'file');
  if (gomod && gomod.size < 1 << 20) gomodVersion.set(gomod, goLineOf(await readFile(path.join(root, 'go.mod'), 'utf8')));
  return files;
}

async function writeOurs(files: ZipSourceFile[], o: ModuleZipOptions): Promise<{ zip: string; h1: string; size: number }> {
  const zip = path.join(tmp.dir, `ours${counter++}.zip`);
  const r = await writeModuleZip(files, o, createWriteStream(zip));
  return { zip, ...r };
}

async function entryNames(zip: string): Promise<string[]> {
  const go = await goCheck(zip, MOD, VER);
  return go.files ?? [];
}

const bigFile = randomBytes(3 << 20);
const vendorFiles = (goLine: string | null): Tree => ({
  ...(goLine === null ? {} : { 'go.mod': `module ${MOD}\n\n${goLine}\n` }),
  'a.go': 'package a\n',
  'vendor/modules.txt': '# example.com/x v1.0.0\n',
  'vendor/vendor.go': 'package vendor\n',
  'vendor/example.com/x/x.go': 'package x\n',
  'pkg/vendor/vendor.go': 'package vendor\n',
  'pkg/vendor/foo/foo.go': 'package foo\n',
  'a/b/vendor/c/d.go': 'package d\n',
  'a/b/vendor/e.go': 'package vendor\n',
  'vendorx/y.go': 'package y\n',
  'pkg/vendored/x.go': 'package x\n',
  'vendor.go': 'package a\n',
});

const validTrees: Record<string, Tree> = {
  'basic, unicode and sizes': {
    'go.mod': `module ${MOD}\n\ngo 1.20\n`,
    'a.go': 'package a\n',
    'ｚ.go': 'package a // fullwidth z sorts before astral letters in UTF-8 only\n',
    '𠀀.go': 'package a\n',
    'dir/é.go': 'package dir\n',
    'dir/ü/日本語.txt': 'こんにちは\n',
    'README.MD': '# readme\n',
    Makefile: 'all:\n',
    LICENSE: 'MIT\n',
    'empty.txt': '',
    'sub/empty': '',
    'big.bin': bigFile,
    'x/y/z/w/deep.go': 'package w\n',
    'with space/f i.txt': 'spaces\n',
    'punct/!#$%&()+,-.=@[]^_{}~.txt': 'punctuation\n',
    '.dotfile': 'hidden\n',
    '.github/workflows/ci.yml': 'on: push\n',
  },
  'vendor at go 1.20': vendorFiles('go 1.20'),
  'vendor at go 1.23.4': vendorFiles('go 1.23.4'),
  'vendor at go 1.24': vendorFiles('go 1.24'),
  'vendor at go 1.24.0': vendorFiles('go 1.24.0'),
  'vendor at go 1.25rc1': vendorFiles('go 1.25rc1'),
  'vendor without go line': vendorFiles(''),
  'vendor without go.mod': vendorFiles(null),
  'nested modules': {
    'go.mod': `module ${MOD}\n\ngo 1.22\n`,
    'a.go': 'package a\n',
    'sub/go.mod': `module ${MOD}/sub\n`,
    'sub/x.go': 'package sub\n',
    'sub/deeper/y.go': 'package deeper\n',
    'other/GO.MOD': 'module other\n',
    'other/z.go': 'package other\n',
    'third/Go.Mod/file.go': 'package x // a directory called Go.Mod is no module\n',
    'subby/x.go': 'package subby\n',
    'a/b/c/go.mod': 'module deep\n',
    'a/b/c/d/e.go': 'package e\n',
    'a/b/f.go': 'package b\n',
  },
  'hg archival': {
    'go.mod': `module ${MOD}\n`,
    '.hg_archival.txt': 'repo: 1234\n',
    'sub/.hg_archival.txt': 'kept\n',
    'a.go': 'package a\n',
  },
  'symlinks and fifos': {
    'go.mod': `module ${MOD}\n\ngo 1.21\n`,
    'a.go': 'package a\n',
    'link.go': { symlink: 'a.go' },
    'dir/real.go': 'package dir\n',
    linkdir: { symlink: 'dir' },
    dangling: { symlink: 'nowhere' },
    pipe: { fifo: true },
  },
  'no files but go.mod': { 'go.mod': `module ${MOD}\n` },
  'no go.mod': { 'a.go': 'package a\n', LICENSE: 'x' },
  'LICENSE at the limit': { 'go.mod': `module ${MOD}\n`, LICENSE: { sparse: 16 << 20 } },
};

describe('planModuleZip + writeModuleZip against zip.Create / zip.CreateFromDir', () => {
  for (const [title, tree] of Object.entries(validTrees)) {
    it(title, async () => {
      const root = await buildTree(tree);
      const goFilesZip = path.join(tmp.dir, `gofiles${counter++}.zip`);
      const goDirZip = path.join(tmp.dir, `godir${counter++}.zip`);
      const goFiles = await goCreate('files', root, MOD, VER, goFilesZip);
      const goDir = await goCreate('dir', root, MOD, VER, goDirZip);
      expect(goFiles.err).toBeNull();
      expect(goDir.err).toBeNull();
      expect(goDir.h1).toBe(goFiles.h1);

      const files = await listWithGoVersion(root);
      const o = opts(files);
      const plan = planModuleZip(files, o);
      expect(plan.include.map((f) => `${MOD}@${VER}/${f.name}`)).toEqual(goFiles.files ?? []);
      expect(plan.omitted.map((f) => f.name).sort()).toEqual(goFiles.omitted ?? []);

      const ours = await writeOurs(files, o);
      expect(ours.h1).toBe(goFiles.h1);
      expect(ours.size).toBe((await stat(ours.zip)).size);
      expect(await entryNames(ours.zip)).toEqual(goFiles.files ?? []);

      // Both zips check clean, on both sides, with Go's HashZip value.
      for (const zip of [ours.zip, goFilesZip]) {
        const go = await goCheck(zip, MOD, VER);
        expect(go.err).toBeNull();
        expect(go.h1).toBe(goFiles.h1);
        const checked = await checkModuleZip(zip, MOD, VER);
        expect(checked.h1).toBe(goFiles.h1);
        expect(checked.files).toBe(plan.include.length);
        expect(checked.hasGoMod).toBe(plan.include.some((f) => f.name === 'go.mod'));
        if (checked.hasGoMod) expect(checked.goMod).toEqual(await readFile(path.join(root, 'go.mod')));
        expect(checked.uncompressedSize).toBe(plan.include.reduce((n, f) => n + f.size, 0));
      }
    });
  }
});

const invalidTrees: Record<string, Tree> = {
  'GO.MOD at the root': { 'GO.MOD': `module ${MOD}\n`, 'a.go': 'package a\n' },
  'case collision': { 'a.go': '1', 'A.go': '2' },
  'directory case collision': { 'x/a.go': '1', 'X/b.go': '2' },
  'Kelvin sign collision': { 'k.go': '1', '\u212a.go': '2' },
  'disallowed character': { 'a:b.go': '1' },
  'reserved Windows name': { 'sub/con.txt': '1' },
  'LICENSE over 16 MiB': { 'go.mod': `module ${MOD}\n`, LICENSE: { sparse: (16 << 20) + 1 } },
  'go.mod over 16 MiB': { 'go.mod': { sparse: (16 << 20) + 1 } },
  'over 500 MiB in total': { 'a.bin': { sparse: 260 << 20 }, 'b.bin': { sparse: 260 << 20 } },
};

describe('invalid trees fail on both sides, with one-line ZipErrors', () => {
  for (const [title, tree] of Object.entries(invalidTrees)) {
    it(title, async () => {
      const root = await buildTree(tree);
      const go = await goCreate('files', root, MOD, VER, path.join(tmp.dir, `bad${counter++}.zip`));
      expect(go.err).not.toBeNull();
      const files = await listWithGoVersion(root);
      let err: unknown;
      try {
        planModuleZip(files, opts(files));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ZipError);
      const msg = (err as Error).message;
      expect(msg).not.toMatch(/[\r\n]/);
      expect(msg).toContain(`${MOD}@${VER}`);
      await expect(writeOurs(files, opts(files))).rejects.toBeInstanceOf(ZipError);
    });
  }

  it('refuses a non-canonical version and a path/version mismatch, as Create does', () => {
    const files: ZipSourceFile[] = [];
    expect(() => planModuleZip(files, { modulePath: MOD, version: 'v1.0' })).toThrow(/not canonical/);
    expect(() => planModuleZip(files, { modulePath: MOD, version: 'v2.0.0' })).toThrow(ZipError);
    expect(() => planModuleZip(files, { modulePath: `${MOD}/v2`, version: 'v2.0.0' })).not.toThrow();
  });
});

// x/mod's own fixtures (zip/testdata/create): known hashes and errors for zip.Create.
describe('x/mod testdata/create', async () => {
  const { stdout } = await run('go', ['list', '-m', '-f', '{{.Dir}}', 'golang.org/x/mod'], {
    cwd: gotoolsDir,
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
  });
  const dir = path.join(stdout.trim(), 'zip', 'testdata', 'create');
  const names = (await readdir(dir)).filter((n) => n.endsWith('.txt')).sort();
  it('has fixtures', () => expect(names.length).toBeGreaterThan(10));
  it.each(names)('%s', async (name) => {
    const t = parseTxtar(await readFile(path.join(dir, name), 'utf8'));
    const files: ZipSourceFile[] = t.files.map((f) => ({
      name: f.name,
      mode: 'file',
      size: Buffer.byteLength(f.data),
      open: () => Readable.from([Buffer.from(f.data)]),
    }));
    const gomod = t.files.find((f) => f.name === 'go.mod');
    const o: ModuleZipOptions = {
      modulePath: t.params.path ?? '',
      version: t.params.version ?? '',
      ...(gomod ? { goVersion: goLineOf(gomod.data) } : {}),
    };
    if (t.params.wantErr !== undefined) {
      expect(() => planModuleZip(files, o)).toThrow(ZipError);
      return;
    }
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const r = await writeModuleZip(files, o, sink);
    expect(r.h1).toBe(t.params.hash);
  });
});

function parseTxtar(text: string): { params: Record<string, string>; files: { name: string; data: string }[] } {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const params: Record<string, string> = {};
  const files: { name: string; data: string }[] = [];
  let cur: { name: string; data: string } | undefined;
  for (const line of lines) {
    const m = /^-- (.+) --$/.exec(line);
    if (m) {
      cur = { name: (m[1] as string).trim(), data: '' };
      files.push(cur);
    } else if (cur) {
      cur.data += `${line}\n`;
    } else {
      const l = line.replace(/#.*/, '').trim();
      const eq = l.indexOf('=');
      if (eq > 0) params[l.slice(0, eq).trim()] = l.slice(eq + 1).trim();
    }
  }
  return { params, files };
}

// Synthetic file lists (names no file system would hold) against zip.CheckFiles.
describe('planModuleZip against zip.CheckFiles on random file lists', () => {
  it('agrees on included, omitted and invalid files for 400 random lists', async () => {
    const rand = rng(20240601);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const common = ['a', 'b', 'sub', 'pkg', 'vendor', 'go.mod', 'x.go', 'modules.txt', 'LICENSE', 'é', 'ｚ', '𠀀', '.hg_archival.txt'];
    const risky = ['A', 'Vendor', 'GO.MOD', 'Go.mod', 'license', 'ß', 'ẞ', 'k', 'K', '\u212a', 'É', '..', '.', '', 'con', 'a~1', "bad'"];
    const elem = (): string => (rand() < 0.93 ? pick(common) : pick(risky));
    const versions = ['1.20', '1.23', '1.24', '1.24.1', '1.26', null];
    interface Synth {
      name: string;
      mode: 'file' | 'symlink' | 'other';
      size: number;
      data: string;
    }
    const cases: Synth[][] = [];
    for (let i = 0; i < 400; i++) {
      const n = 1 + Math.floor(rand() * 8);
      const files: Synth[] = [];
      const v = pick(versions);
      if (rand() < 0.6) {
        const data = v === null ? `module ${MOD}\n` : `module ${MOD}\n\ngo ${v}\n`;
        files.push({ name: 'go.mod', mode: rand() < 0.9 ? 'file' : 'symlink', size: data.length, data });
      }
      for (let j = 0; j < n; j++) {
        const depth = 1 + Math.floor(rand() * 3);
        const parts: string[] = [];
        for (let k = 0; k < depth; k++) parts.push(elem());
        let name = parts.join('/');
        if (rand() < 0.01) name = `/${name}`;
        if (rand() < 0.01) name = `${name}/`;
        const r = rand();
        const mode = r < 0.85 ? 'file' : r < 0.95 ? 'symlink' : 'other';
        const big = rand();
        const size = big < 0.01 ? (16 << 20) + 1 : big < 0.02 ? 300 << 20 : Math.floor(rand() * 100);
        files.push({ name, mode, size, data: '' });
      }
      if (rand() < 0.03 && files.length > 1) files.push({ ...(files[1] as Synth) });
      cases.push(files);
    }
    const go = JSON.parse(await runGoTool('modzip', ['checkfiles'], JSON.stringify(cases.map((files) => ({ files }))))) as {
      valid: string[] | null;
      omitted: { path: string }[] | null;
      invalid: { path: string }[] | null;
      err: string | null;
    }[];
    let accepted = 0;
    let omittedSome = 0;
    for (const [i, files] of cases.entries()) {
      const g = go[i] as (typeof go)[number];
      if (g.err === null) accepted++;
      if ((g.omitted ?? []).length > 0) omittedSome++;
      const src: ZipSourceFile[] = files.map((f) => ({ ...f, open: () => Readable.from([]) }));
      const gomod = files.find((f) => f.name === 'go.mod' && f.mode === 'file');
      const o: ModuleZipOptions = { modulePath: MOD, version: VER, ...(gomod ? { goVersion: goLineOf(gomod.data) } : {}) };
      const label = JSON.stringify(files.map((f) => [f.name, f.mode, f.size]));
      let plan: ReturnType<typeof planModuleZip> | undefined;
      let err: unknown;
      try {
        plan = planModuleZip(src, o);
      } catch (e) {
        err = e;
      }
      if (g.err === null) {
        expect(err, label).toBeUndefined();
        expect(
          plan?.include.map((f) => f.name),
          label,
        ).toEqual(g.valid ?? []);
        expect(
          plan?.omitted.map((f) => f.name),
          label,
        ).toEqual((g.omitted ?? []).map((f) => f.path));
      } else {
        expect(err, `${label}: Go says ${g.err}`).toBeInstanceOf(ZipError);
        expect((err as Error).message).not.toMatch(/[\r\n]/);
      }
    }
    // Both outcomes must be well represented for the comparison to mean anything.
    expect(accepted).toBeGreaterThan(60);
    expect(cases.length - accepted).toBeGreaterThan(60);
    expect(omittedSome).toBeGreaterThan(60);
  });
});

describe('writeModuleZip streaming failures', () => {
  const file = (name: string, size: number, open: ZipSourceFile['open']): ZipSourceFile => ({
    name,
    mode: 'file',
    size,
    open,
  });

  it('rejects a file whose stream is shorter or longer than its size', async () => {
    for (const [declared, actual] of [
      [10, 5],
      [5, 10],
    ] as const) {
      const files = [file('a.go', declared, () => Readable.from([Buffer.alloc(actual)]))];
      const out = new PassThrough();
      out.resume();
      const p = writeModuleZip(files, { modulePath: MOD, version: VER }, out);
      await expect(p).rejects.toBeInstanceOf(ZipError);
      await expect(p).rejects.toThrow(/a\.go/);
    }
  });

  it('passes on a source stream error and destroys the output', async () => {
    const boom = new Error('disk on fire');
    const files = [
      file('a.go', 3, () => Readable.from([Buffer.from('abc')])),
      file(
        'b.go',
        3,
        () =>
          new Readable({
            read() {
              this.destroy(boom);
            },
          }),
      ),
    ];
    const out = new PassThrough();
    out.resume();
    await expect(writeModuleZip(files, { modulePath: MOD, version: VER }, out)).rejects.toBe(boom);
    expect(out.destroyed).toBe(true);
  });

  it('passes on an error from open()', async () => {
    const files = [file('a.go', 3, () => Promise.reject(new Error('cannot open')))];
    const out = new PassThrough();
    out.resume();
    await expect(writeModuleZip(files, { modulePath: MOD, version: VER }, out)).rejects.toThrow('cannot open');
  });

  it('stops reading files when the output fails', async () => {
    let opened = 0;
    const files = Array.from({ length: 50 }, (_, i) =>
      file(`f${i}.bin`, 100_000, () => {
        opened++;
        return Readable.from([randomBytes(100_000)]);
      }),
    );
    let written = 0;
    const out = new Writable({
      write(chunk: Buffer, _e, cb) {
        written += chunk.length;
        cb(written > 300_000 ? new Error('disk full') : null);
      },
    });
    await expect(writeModuleZip(files, { modulePath: MOD, version: VER }, out)).rejects.toThrow('disk full');
    await new Promise((r) => setTimeout(r, 50));
    expect(opened).toBeLessThan(10);
  });

  it('opens one file at a time', async () => {
    let open = 0;
    let maxOpen = 0;
    const files = Array.from({ length: 20 }, (_, i) =>
      file(`f${i}.txt`, 1000, () => {
        open++;
        maxOpen = Math.max(maxOpen, open);
        const s = Readable.from([randomBytes(1000)]);
        s.on('end', () => open--);
        return s;
      }),
    );
    const out = new PassThrough();
    out.resume();
    await writeModuleZip(files, { modulePath: MOD, version: VER }, out);
    expect(maxOpen).toBe(1);
  });
});
