// Unit tests of what `gomodproxy prefetch` reads: every input format, from output the real go
// command printed for a module of a test world (a versioned replacement, a directory replacement,
// a dependency from before graph pruning), plus hand-written edge cases; and the version queries.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import {
  InputError,
  detectFormat,
  parseGoList,
  parseGoListJson,
  parseGoModInput,
  parseGoSum,
  parseInput,
  parseSpec,
  replaced,
  type Wanted,
} from '../../src/cli/prefetch-input.js';
import { candidates, choose, classifyQuery, incompatibleProbe, retractionSource } from '../../src/cli/prefetch-query.js';
import { createGoEnv } from '../helpers/goenv.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { buildModuleWorld } from '../helpers/world.js';

const A = 'github.com/gmp-in/a';
const B = 'github.com/gmp-in/b';
const MAIN = 'example.com/main';
const LOCAL = 'example.com/local';

/** What the go command printed, and the go.mod and go.sum it read and wrote. */
const real = { goMod: '', goSum: '', list: '', listJson: '' };

beforeAll(async () => {
  const world = await buildModuleWorld({
    modules: [
      { path: A, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      { path: B, versions: [{ version: 'v1.0.0', goMod: `module ${B}\n\ngo 1.16\n\nrequire ${A} v1.0.0\n` }] },
    ],
  });
  const env = await createGoEnv({ goproxy: `file://${world.downloadDir}` });
  const dir = await makeTempDir('pf-input');
  real.goMod = `module ${MAIN}\n\ngo 1.21\n\nrequire (\n\t${A} v1.0.0\n\t${B} v1.0.0\n\t${LOCAL} v0.0.0\n)\n\nreplace ${A} v1.0.0 => ${A} v1.1.0\n\nreplace ${LOCAL} => ./local\n`;
  await writeFile(path.join(dir, 'go.mod'), real.goMod);
  await mkdir(path.join(dir, 'local'));
  await writeFile(path.join(dir, 'local', 'go.mod'), `module ${LOCAL}\n\ngo 1.21\n`);
  await writeFile(path.join(dir, 'main.go'), `package main\n\nimport (\n\t_ "${A}"\n\t_ "${B}"\n)\n\nfunc main() {}\n`);
  // go.sum: a zip line for what the build uses, /go.mod lines for the graph.
  await env.go(['mod', 'download', A, B], { cwd: dir, env: { GOFLAGS: '-mod=mod -modcacherw' } });
  real.list = (await env.go(['list', '-m', 'all'], { cwd: dir, env: { GOFLAGS: '-mod=mod -modcacherw' } })).stdout;
  real.listJson = (await env.go(['list', '-m', '-json', 'all'], { cwd: dir, env: { GOFLAGS: '-mod=mod -modcacherw' } })).stdout;
  real.goSum = await readFile(path.join(dir, 'go.sum'), 'utf8');
}, 240_000);
afterAll(cleanupAll);

const pairs = (w: Wanted[]): string[] => w.map((x) => `${x.path}@${x.query}${x.zip ? '' : ' (go.mod only)'}`);

describe('real go command output', () => {
  it('go list -m all: the build list, replacements applied, the main module and directory replacements left out', () => {
    expect(real.list).toBe(`${MAIN}\n${LOCAL} v0.0.0 => ./local\n${A} v1.0.0 => ${A} v1.1.0\n${B} v1.0.0\n`);
    expect(detectFormat(real.list, 'modules.txt')).toBe('go list -m all');
    expect(pairs(parseGoList(real.list, 'list'))).toEqual([`${A}@v1.1.0`, `${B}@v1.0.0`]);
    expect(parseGoList(real.list, 'list').map((w) => w.from)).toEqual(['list:3', 'list:4']);
  });

  it('go list -m -json all: the same', () => {
    expect(real.listJson).toContain('"Main": true');
    expect(real.listJson).toContain('"Replace": {');
    expect(detectFormat(real.listJson, 'all.json')).toBe('go list -m -json all');
    expect(pairs(parseGoListJson(real.listJson, 'json'))).toEqual([`${A}@v1.1.0`, `${B}@v1.0.0`]);
    expect(pairs(parseInput(real.listJson, '-').wanted)).toEqual([`${A}@v1.1.0`, `${B}@v1.0.0`]);
  });

  it('go.mod: each requirement as replaced; the replacements kept for the graph', () => {
    expect(detectFormat(real.goMod, 'go.mod')).toBe('go.mod');
    expect(detectFormat(real.goMod, 'requirements')).toBe('go.mod');
    const input = parseGoModInput(real.goMod, 'go.mod');
    expect(pairs(input.wanted)).toEqual([`${A}@v1.1.0`, `${B}@v1.0.0`]);
    expect(input.wanted[0]?.from).toBe(`go.mod (require ${A} v1.0.0)`);
    // B's own requirement of a v1.0.0 is replaced the same way when --deps follows it.
    expect(replaced(input.replace, A, 'v1.0.0')).toEqual({ path: A, version: 'v1.1.0' });
    expect(replaced(input.replace, A, 'v1.0.1')).toEqual({ path: A, version: 'v1.0.1' });
    expect(replaced(input.replace, LOCAL, 'v0.0.0')).toBeNull();
  });

  it('go.sum: whole versions for zip lines, .info and .mod for /go.mod-only lines', () => {
    expect(detectFormat(real.goSum, 'go.sum')).toBe('go.sum');
    expect(detectFormat(real.goSum, 'sums.txt')).toBe('go.sum');
    const got = pairs(parseGoSum(real.goSum, 'go.sum')).sort();
    expect(got).toEqual(expect.arrayContaining([`${A}@v1.1.0`, `${B}@v1.0.0`]));
    // Anything else go.sum holds was needed for its go.mod alone.
    for (const g of got.filter((x) => x !== `${A}@v1.1.0` && x !== `${B}@v1.0.0`)) expect(g).toMatch(/ \(go\.mod only\)$/);
  });
});

describe('hand-written inputs', () => {
  it('module@version lines: comments, blank lines, several on a line, queries', () => {
    const text = `# tools\n${A}@v1.0.0 ${B}@latest // newest\n\n  ${A}@<v1.1.0\n`;
    expect(detectFormat(text, 'modules.txt')).toBe('module@version lines');
    expect(parseInput(text, 'modules.txt').wanted).toEqual([
      { path: A, query: 'v1.0.0', zip: true, from: 'modules.txt:2' },
      { path: B, query: 'latest', zip: true, from: 'modules.txt:2' },
      { path: A, query: '<v1.1.0', zip: true, from: 'modules.txt:4' },
    ]);
  });

  it('go list -m -u and -retracted annotations say nothing about the build list', () => {
    expect(pairs(parseGoList(`${MAIN}\n${A} v1.0.0 [v1.1.0]\n${B} v1.0.0 (retracted) [v1.0.1]\n`, 'u'))).toEqual([`${A}@v1.0.0`, `${B}@v1.0.0`]);
  });

  it('a go.sum that names a version twice, once for its go.mod only, wants it whole', () => {
    const sum = `${A} v1.0.0/go.mod h1:x=\n${A} v1.0.0 h1:y=\n${B} v1.0.0/go.mod h1:z=\n`;
    expect(pairs(parseGoSum(sum, 'go.sum'))).toEqual([`${A}@v1.0.0`, `${B}@v1.0.0 (go.mod only)`]);
  });

  it('an empty file is nothing to fetch', () => {
    expect(parseInput('', 'go.sum').wanted).toEqual([]);
    expect(parseInput('# nothing\n', 'modules.txt').wanted).toEqual([]);
  });

  it.each([
    ['go.sum', `${A} v1.0.0 h1:x=\n${A} v1.0.0\n`, 'go.sum:2: expected "<module> <version>[/go.mod] h1:<hash>", got "github.com/gmp-in/a v1.0.0"'],
    ['go.sum', `${A} v1.0 h1:x=\n`, 'go.sum:1: "v1.0" is not a canonical version of github.com/gmp-in/a'],
    ['list', `${MAIN}\nNot/A/Path v1.0.0\n`, 'list:2: expected "<module> <version>" as go list -m all prints it, got "Not/A/Path v1.0.0"'],
    ['list', `${MAIN}\n${A} v1.0.0 extra\n`, `list:2: expected "<module> <version>" as go list -m all prints it, got "${A} v1.0.0 extra"`],
    ['all.json', `{"Path": "${A}", "Version": "v1.0.0"}\n{"Path": `, 'all.json: the JSON stops in the middle of an object'],
    ['all.json', `{"Version": "v1.0.0"}`, 'all.json:1: module object 1 has no Path'],
    ['modules.txt', `${A}@v1.0.0\n${A}\n`, `modules.txt:2: "${A}" is not module@version (or module@latest, module@<branch>)`],
    [
      'modules.txt',
      `${A}@upgrade\n`,
      `modules.txt:1: ${A}@upgrade: the query upgrade is relative to a version a main module requires; name a version or use @latest`,
    ],
    ['go.mod', `module ${MAIN}\n\nrequire ${A}\n`, 'go.mod:3: usage: require module/path v1.2.3'],
  ])('%s: %j is refused with the file and line', (name, text, message) => {
    expect(() => parseInput(text, name)).toThrow(InputError);
    expect(() => parseInput(text, name)).toThrow(message);
  });

  it('arguments: module@version or module@query', () => {
    expect(parseSpec(`${A}@v1.0.0`, 'argument 1')).toEqual({ path: A, query: 'v1.0.0', zip: true, from: 'argument 1' });
    expect(parseSpec(`${A}@>=v1.0.0`, 'argument 2').query).toBe('>=v1.0.0');
    expect(() => parseSpec('Example.com/x@v1.0.0', 'argument 3')).toThrow(/argument 3: "Example.com\/x" is not a module path/);
    expect(() => parseSpec(`${A}@feature/x`, 'argument 4')).toThrow(/is not a version or query/);
  });
});

describe('version queries', () => {
  const list = ['v1.0.0', 'v1.1.0', 'v1.2.0-rc.1', 'v1.1.1', 'v0.9.0', 'v2.0.0+incompatible', 'v0.0.0-20240101000000-abcdefabcdef'];
  const none = (): boolean => false;

  it('classifies as the go command does', () => {
    expect(classifyQuery(A, 'v1.0.0')).toEqual({ kind: 'exact', version: 'v1.0.0' });
    expect(classifyQuery(A, 'latest')).toEqual({ kind: 'latest' });
    expect(classifyQuery(A, 'v1')).toEqual({ kind: 'prefix', prefix: 'v1' });
    expect(classifyQuery(A, 'v1.1')).toEqual({ kind: 'prefix', prefix: 'v1.1' });
    expect(classifyQuery(A, '<=v1.1.0')).toEqual({ kind: 'compare', op: '<=', bound: 'v1.1.0' });
    expect(classifyQuery(A, 'main')).toEqual({ kind: 'revision', rev: 'main' });
    expect(classifyQuery(A, 'v1.0.0+meta')).toEqual({ kind: 'revision', rev: 'v1.0.0+meta' });
    // v2.0.0 does not fit a path without /v2: the upstream says which version it is (+incompatible).
    expect(classifyQuery(A, 'v2.0.0')).toEqual({ kind: 'revision', rev: 'v2.0.0' });
    expect(() => classifyQuery(A, '<v1.2')).toThrow('ambiguous semantic version "v1.2" in range "<v1.2"');
    expect(() => classifyQuery(A, '>=nope')).toThrow('invalid semantic version "nope" in range ">=nope"');
  });

  it.each([
    ['latest', 'v2.0.0+incompatible'],
    ['v1', 'v1.1.1'],
    ['v1.1', 'v1.1.1'],
    ['v0', 'v0.9.0'],
    ['<v1.1.0', 'v1.0.0'],
    ['<=v1.1.0', 'v1.1.0'],
    ['>v1.0.0', 'v1.1.0'],
    ['>=v1.1.1', 'v1.1.1'],
    ['>v1.1.1', 'v2.0.0+incompatible'],
    ['v3', undefined],
  ])('%s chooses %s: releases first, the highest (the lowest above a > or >= bound)', (q, want) => {
    const query = classifyQuery(A, q);
    if (query.kind === 'exact' || query.kind === 'revision') throw new Error(`not a list query: ${q}`);
    expect(choose(query, candidates(query, list, none))).toBe(want);
  });

  it('pre-releases only when no release matches; retracted versions never', () => {
    const latest = { kind: 'latest' } as const;
    expect(choose(latest, candidates(latest, ['v1.0.0-rc.1', 'v1.0.0-rc.2'], none))).toBe('v1.0.0-rc.2');
    expect(
      choose(
        latest,
        candidates(latest, ['v1.0.0', 'v1.1.0'], (v) => v === 'v1.1.0'),
      ),
    ).toBe('v1.0.0');
    expect(choose(latest, candidates(latest, ['v0.0.0-20240101000000-abcdefabcdef'], none))).toBeUndefined();
    // Retractions come from the go.mod of the latest version before retractions.
    expect(retractionSource(['v1.0.0', 'v1.1.0', 'v1.2.0-rc.1'])).toBe('v1.1.0');
    expect(retractionSource(['v1.2.0-rc.1'])).toBe('v1.2.0-rc.1');
  });

  it('+incompatible: the highest compatible candidate (pre-releases too) is asked about, unless the query names an incompatible version', () => {
    const latest = { kind: 'latest' } as const;
    expect(incompatibleProbe(latest, candidates(latest, list, none))).toBe('v1.2.0-rc.1');
    expect(incompatibleProbe(latest, candidates(latest, ['v1.0.0', 'v2.0.0+incompatible'], none))).toBe('v1.0.0');
    expect(incompatibleProbe(latest, ['v1.0.0', 'v1.1.0'])).toBeUndefined();
    expect(incompatibleProbe({ kind: 'compare', op: '>=', bound: 'v2.0.0+incompatible' }, list)).toBeUndefined();
  });
});
