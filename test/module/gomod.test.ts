import { describe, expect, it } from 'vitest';
import { ModuleError, isRetracted, modulePathOf, parseGoMod, retractionRationales } from '../../src/module/index.js';

function parseError(data: string | Buffer, strict = false): string {
  try {
    parseGoMod(data, 'go.mod', { strict });
  } catch (err) {
    expect(err).toBeInstanceOf(ModuleError);
    return (err as Error).message;
  }
  throw new Error('expected a parse error');
}

describe('parseGoMod', () => {
  it('reads a typical dependency go.mod', () => {
    const f = parseGoMod(
      [
        '// Deprecated: use example.com/n instead.',
        'module example.com/m',
        '',
        'go 1.21',
        '',
        'toolchain go1.22.1',
        '',
        'require (',
        '\texample.com/a v1.2.3',
        '\texample.com/b v1.2 // indirect',
        '\t"example.com/c/v2" v2.0.0+incompatible',
        ')',
        '',
        'exclude example.com/a v1.0.0',
        'replace example.com/a => ../a',
        '',
        'retract (',
        '\tv1.0.0 // Published too early.',
        '\t[v1.1.0, v1.1.9] // Broken build.',
        ')',
        '',
      ].join('\n'),
    );
    expect(f.module).toEqual({ path: 'example.com/m', deprecated: 'use example.com/n instead.' });
    expect(f.go).toBe('1.21');
    expect(f.require).toEqual([
      { path: 'example.com/a', version: 'v1.2.3', indirect: false },
      { path: 'example.com/b', version: 'v1.2.0', indirect: true },
      { path: 'example.com/c/v2', version: 'v2.0.0+incompatible', indirect: false },
    ]);
    expect(f.retract).toEqual([
      { low: 'v1.0.0', high: 'v1.0.0', rationale: 'Published too early.' },
      { low: 'v1.1.0', high: 'v1.1.9', rationale: 'Broken build.' },
    ]);
    // ParseLax ignores what only a main module uses.
    expect(f.toolchain).toBeUndefined();
    expect(f.exclude).toEqual([]);
    expect(f.replace).toEqual([]);
  });

  it('strict mode reads every directive, as modfile.Parse does', () => {
    const f = parseGoMod(
      'module m\ntoolchain go1.22.1\ngodebug panicnil=1\nexclude a v1.0.0\nreplace a v1.0.0 => b v1.1.0\nreplace c => ./c\ntool example.com/t\nignore ./x\n',
      'go.mod',
      { strict: true },
    );
    expect(f.toolchain).toBe('go1.22.1');
    expect(f.godebug).toEqual([{ key: 'panicnil', value: '1' }]);
    expect(f.exclude).toEqual([{ path: 'a', version: 'v1.0.0' }]);
    expect(f.replace).toEqual([
      { old: { path: 'a', version: 'v1.0.0' }, new: { path: 'b', version: 'v1.1.0' } },
      { old: { path: 'c', version: '' }, new: { path: './c', version: '' } },
    ]);
    expect(f.tool).toEqual(['example.com/t']);
    expect(f.ignore).toEqual(['./x']);
    expect(parseError('module m\nfuture x\n', true)).toBe('go.mod:2: unknown directive: future');
    expect(parseGoMod('module m\nfuture x\n').module?.path).toBe('m');
  });

  describe('deprecation', () => {
    it.each([
      ['// Deprecated: use n.\nmodule m\n', 'use n.'],
      ['module m // Deprecated: in a suffix\n', 'in a suffix'],
      ['// Package m.\n//\n// Deprecated: use n.\n// More text.\n//\n// Not this.\nmodule m\n', 'use n.\nMore text.'],
      ['// Deprecated: first\n//\n// Deprecated: second\nmodule m\n', 'first'],
      ['// Deprecated: block\nmodule (\n\tm\n)\n', 'block'],
      ['module (\n\t// Deprecated: inside\n\tm\n)\n', 'inside'],
    ])('%j', (text, msg) => {
      expect(parseGoMod(text).module?.deprecated).toBe(msg);
    });

    it.each([
      '// Deprecated: detached by a blank line\n\nmodule m\n',
      '// deprecated: lower case\nmodule m\n',
      '// x Deprecated: not at the start of a paragraph\nmodule m\n',
      '// Deprecated:\nmodule m\n',
      'module m\n// Deprecated: after\n',
    ])('not deprecated: %j', (text) => {
      expect(parseGoMod(text).module).toEqual({ path: 'm' });
    });
  });

  describe('retract', () => {
    it('takes the rationale from the line, else from the block', () => {
      const f = parseGoMod('module m\n// applies to the block\nretract (\n\tv1.0.0\n\tv1.1.0 // own\n\n\t// above\n\tv1.2.0\n)\n');
      expect(f.retract).toEqual([
        { low: 'v1.0.0', high: 'v1.0.0', rationale: 'applies to the block' },
        { low: 'v1.1.0', high: 'v1.1.0', rationale: 'own' },
        { low: 'v1.2.0', high: 'v1.2.0', rationale: 'above' },
      ]);
    });

    it('keeps bounds as written, and skips what a newer Go might mean', () => {
      expect(parseGoMod('module m\nretract v1.0\nretract "v1.1.0"\nretract [v1.2.0, v1.3.0] extra\n').retract).toEqual([
        { low: 'v1.0', high: 'v1.0', rationale: '' },
        { low: 'v1.1.0', high: 'v1.1.0', rationale: '' },
        { low: 'v1.2.0', high: 'v1.3.0', rationale: '' },
      ]);
      expect(parseGoMod('module m\nretract (v1.0.0, v1.1.0]\nretract\nretract [v1.0.0\n').retract).toEqual([]);
      expect(parseError('module m\nretract [v1.0.0\n', true)).toBe("go.mod:2: expected ',' after version");
      expect(parseError('module m\nretract v1.0.0 extra\n', true)).toBe('go.mod:2: unexpected token after version: "extra"');
    });

    it('isRetracted uses closed intervals in semver order', () => {
      const r = parseGoMod('module m\nretract v1.0\nretract [v1.2.0, v1.3.0] // bad\n').retract;
      expect(isRetracted('v1.0.0', r)).toBe(true);
      expect(isRetracted('v1.0.1', r)).toBe(false);
      expect(isRetracted('v1.2.0', r)).toBe(true);
      expect(isRetracted('v1.2.5-pre', r)).toBe(true);
      expect(isRetracted('v1.3.0', r)).toBe(true);
      expect(isRetracted('v1.3.0+meta', r)).toBe(true);
      expect(isRetracted('v1.3.1-pre', r)).toBe(false);
      expect(isRetracted('v1.2.0-pre', r)).toBe(false);
      expect(retractionRationales('v1.2.1', r)).toEqual(['bad']);
      expect(retractionRationales('v1.0.0', r)).toEqual([]);
    });
  });

  describe('indirect', () => {
    it.each([
      ['// indirect', true],
      ['//indirect', true],
      ['//  indirect  ', true],
      ['// indirect; for tests', true],
      ['// indirect tests', false],
      ['// Indirect', false],
      ['// not indirect', false],
    ])('%j', (comment, indirect) => {
      expect(parseGoMod(`module m\nrequire a v1.0.0 ${comment}\n`).require[0]?.indirect).toBe(indirect);
    });
  });

  it('reads the lax go version forms', () => {
    expect(parseGoMod('module m\ngo 1.21rc1\n').go).toBe('1.21rc1');
    expect(parseGoMod('module m\ngo v1.21.3\n').go).toBe('1.21');
    expect(parseError('module m\ngo v1.21\n')).toBe("go.mod:2: invalid go version 'v1.21': must match format 1.23.0");
    expect(parseGoMod('module m\ngo 1.21-pre\n').go).toBe('1.21');
    expect(parseError('module m\ngo 1\n')).toBe("go.mod:2: invalid go version '1': must match format 1.23.0");
    expect(parseError('module m\ngo 1.21-pre\n', true)).toBe("go.mod:2: invalid go version '1.21-pre': must match format 1.23.0");
  });

  it.each([
    ['module m\nrequire a v2.0.0\n', 'go.mod:2: require a: version "v2.0.0" invalid: should be v0 or v1, not v2'],
    ['module m\nrequire a/v2 v1.0.0\n', 'go.mod:2: require a/v2: version "v1.0.0" invalid: should be v2, not v1'],
    ['module m\nrequire a master\n', 'go.mod:2: require a: version "master" invalid: must be of the form v1.2.3'],
    ['module m\nrequire a/v1 v1.0.0\n', 'go.mod:2: invalid module path'],
    ['module m\nrequire (\n\ta\n)\n', 'go.mod:3:2: usage: require module/path v1.2.3'],
    ['module m\nrequire a "v1\n', 'go.mod:2:14: unexpected newline in string'],
    ['module m\nrequire a "v1', 'go.mod:2:11: unexpected EOF in string'],
    ['module "m\\q"\n', 'go.mod:1: invalid quoted string: invalid syntax'],
    ["module 'm'\n", 'go.mod:1: invalid quoted string: unquoted string cannot contain quote'],
    ['module a\nmodule b\n', 'go.mod:2: repeated module statement'],
    ['module a\ngo 1.20\ngo 1.21\n', 'go.mod:3: repeated go statement'],
    ['module m\nrequire (\n\ta v1.0.0\n', 'go.mod:4: syntax error (unterminated block started at go.mod:2:1)'],
    ['module m\nrequire (\n) x\n', 'go.mod:3:4: syntax error (expected newline after closing paren)'],
    ['/* c */\nmodule m\n', 'go.mod:1: mod files must use // comments (not /* */ comments)'],
    ['module m/*x\n', 'go.mod:1:9: mod files must use // comments (not /* */ comments)'],
    ['module m\n\u00a0\n', `go.mod:2: unexpected input character '\\u00a0'`],
    ['\ufeffmodule m\n', `go.mod:1: unexpected input character '\\ufeff'`],
    [
      'module a\nrequire b v2.0.0\nrequire c v3.0.0\n',
      'go.mod:2: require b: version "v2.0.0" invalid: should be v0 or v1, not v2; go.mod:3: require c: version "v3.0.0" invalid: should be v0 or v1, not v3',
    ],
  ])('error for %j', (text, msg) => {
    expect(parseError(text)).toBe(msg);
  });

  it('names the file it was given', () => {
    expect(() => parseGoMod('module a\nmodule b\n', 'example.com/m@v1.0.0/go.mod')).toThrow('example.com/m@v1.0.0/go.mod:2: repeated module statement');
  });

  it('accepts bytes that are not UTF-8, and NUL, where modfile does (a module the go command can use must not be refused)', () => {
    const f = parseGoMod(Buffer.from([0x6d, 0x6f, 0x64, 0x75, 0x6c, 0x65, 0x20, 0x6d, 0x0a, 0x2f, 0x2f, 0x20, 0xe9, 0x0a]));
    expect(f.module?.path).toBe('m');
    expect(parseGoMod('module m\n// a\u0000b\n').module?.path).toBe('m');
    // A JavaScript string can hold what no byte sequence can: refused.
    expect(parseError('module m\ud800\n')).toBe('go.mod:1:9: invalid UTF-8 encoding');
  });

  it('handles CRLF line ends, Unicode and comments everywhere', () => {
    const f = parseGoMod('module example.com/m\r\n\r\n// caf\u00e9 \u{1f600}\r\nrequire example.com/\u00e9 v1.0.0 // indirect\r\n');
    expect(f.module?.path).toBe('example.com/m');
    expect(f.require).toEqual([{ path: 'example.com/\u00e9', version: 'v1.0.0', indirect: true }]);
  });

  it('unquotes Go string syntax in paths', () => {
    expect(parseGoMod('module "example.com/\\x41\\u00e9\\101"\n').module?.path).toBe('example.com/A\u00e9A');
    expect(parseGoMod('module ""\n').module?.path).toBe('');
  });

  // Its speed is measured by bench/gomod.mjs; here, that a big file comes out whole and the same every time.
  it('parses a 2000-line require block completely, each line with its own comment, the same on every parse', () => {
    const line = (i: number): string => `\texample.com/dep${i} v1.${i}.0${i % 3 === 0 ? ' // indirect' : i % 3 === 1 ? ' // a note' : ''}`;
    const data = Buffer.from(`module m\ngo 1.21\nrequire (\n${Array.from({ length: 2000 }, (_, i) => line(i)).join('\n')}\n)\n`);
    const want = Array.from({ length: 2000 }, (_, i) => ({ path: `example.com/dep${i}`, version: `v1.${i}.0`, indirect: i % 3 === 0 }));
    const first = parseGoMod(data);
    expect(first.module?.path).toBe('m');
    expect(first.go).toBe('1.21');
    expect(first.require).toEqual(want);
    for (let i = 0; i < 10; i++) expect(parseGoMod(data)).toEqual(first);
  });
});

describe('modulePathOf (modfile.ModulePath)', () => {
  it.each([
    ['module example.com/m\n', 'example.com/m'],
    ['// c\n\n  module   example.com/m  // c\n', 'example.com/m'],
    ['module "example.com/m"\n', 'example.com/m'],
    ['module `example.com/m`\n', 'example.com/m'],
    ['module "example.com/m" x\n', ''],
    ['module example.com/m x\n', 'example.com/m x'],
    ['modulex\nmodule y\n', 'y'],
    ['module\nmodule y\n', 'y'],
    ['require x v1.0.0\n', ''],
    ['module (\n\tx\n)\n', '('],
    ['go 1.21\n/* junk */ ((\nmodule m\n', 'm'],
    ['', ''],
  ])('%j -> %j', (text, path) => {
    expect(modulePathOf(text)).toBe(path);
    expect(modulePathOf(Buffer.from(text))).toBe(path);
  });

  it('tolerates bytes that are not UTF-8', () => {
    expect(modulePathOf(Buffer.from([0xff, 0x0a, 0x6d, 0x6f, 0x64, 0x75, 0x6c, 0x65, 0x20, 0x6d]))).toBe('m');
  });
});
