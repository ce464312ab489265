import { describe, expect, it } from 'vitest';
import {
  ModuleError,
  canonicalVersion,
  check,
  checkFilePath,
  checkImportPath,
  checkPath,
  checkPathMajor,
  isValidModulePath,
  matchPathMajor,
  pathMajorPrefix,
  splitGopkgIn,
  splitPathVersion,
} from '../../src/module/index.js';

/** The reason a check gives, or "ok". */
function why(f: (p: string) => void, p: string): string {
  try {
    f(p);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(ModuleError);
    return (err as Error).message.replace(/^malformed (module|import|file) path "(?:[^"\\]|\\.)*": /, '');
  }
}

describe('checkPath', () => {
  it.each([
    ['github.com/x/y', 'ok'],
    ['rsc.io/quote/v2', 'ok'],
    ['x.y/z~', 'ok'],
    ['x.y/a~1b', 'ok'],
    ['x.y/com0', 'ok'],
    ['x.y/lpt', 'ok'],
    ['x.y/conx', 'ok'],
    ['1.2.3.4/x', 'ok'],
    ['', 'empty string'],
    ['x.y/', 'trailing slash'],
    ['/x.y', 'empty path element'],
    ['x.y//z', 'double slash'],
    ['-x.y/z', 'leading dash'],
    ['x-.y/-z', 'ok'],
    ['x.y/.z', 'leading dot in path element'],
    ['x.y/z.', 'trailing dot in path element'],
    ['x.y/..', 'invalid path element ".."'],
    ['x.y/a+b', `invalid char '+'`],
    ['x.y/a b', `invalid char ' '`],
    ['x.y/\u00e9', `invalid char '\u00e9'`],
    ['x.y/a\u0000', `invalid char '\\x00'`],
    ['x.y/a\tb', `invalid char '\\t'`],
    ['x.y/\u200b', `invalid char '\\u200b'`],
    ['localhost/x', 'missing dot in first path element'],
    ['X.y/a', `invalid char 'X' in first path element`],
    ['x_y.com/a', `invalid char '_' in first path element`],
    ['x.y:8080/a', `invalid char ':'`],
    ['x.y/con', '"con" disallowed as path element component on Windows'],
    ['x.y/CON.txt', '"CON" disallowed as path element component on Windows'],
    ['x.y/Lpt9.go', '"Lpt9" disallowed as path element component on Windows'],
    ['com1.x/y', '"com1" disallowed as path element component on Windows'],
    ['x.y/z~0', 'trailing tilde and digits in path element'],
    ['x.y/PROGRA~1', 'trailing tilde and digits in path element'],
    ['x.y/z~1.go', 'trailing tilde and digits in path element'],
    ['rsc.io/quote/v0', 'invalid version'],
    ['rsc.io/quote/v1', 'invalid version'],
    ['rsc.io/quote/v01', 'invalid version'],
    ['rsc.io/quote/v1.2', 'invalid version'],
    ['rsc.io/quote/v2.0', 'invalid version'],
    ['rsc.io/quote/v2a', 'ok'],
    ['rsc.io/v2', 'ok'],
    ['example.com/v2/x', 'ok'],
    ['gopkg.in/yaml', 'invalid version'],
    ['gopkg.in/yaml.v0', 'ok'],
    ['gopkg.in/yaml.v1', 'ok'],
    ['gopkg.in/yaml.v01', 'invalid version'],
    ['gopkg.in/yaml.v2-unstable', 'ok'],
    ['gopkg.in/user/yaml.v3', 'ok'],
    ['gopkg.in/yaml.v2/x', 'invalid version'],
  ])('%s: %s', (p, reason) => {
    expect(why(checkPath, p)).toBe(reason);
    expect(isValidModulePath(p)).toBe(reason === 'ok');
  });

  it('wraps the reason as the go command does', () => {
    expect(() => checkPath('x.y/CON')).toThrow('malformed module path "x.y/CON": "CON" disallowed as path element component on Windows');
  });

  it('treats an unpaired surrogate as Go treats bytes that are not UTF-8', () => {
    expect(why(checkPath, 'x.y/a\ud800')).toBe('invalid UTF-8');
    expect(why(checkPath, '-\ud800')).toBe('invalid UTF-8');
    expect(why(checkPath, 'x.y/\ud83d\ude00')).toBe(`invalid char '\u{1f600}'`);
  });
});

describe('checkImportPath', () => {
  it.each([
    ['fmt', 'ok'],
    ['x/y/z', 'ok'],
    ['x.y/.z', 'ok'],
    ['x.y/c++', 'ok'],
    ['X/Y', 'ok'],
    ['x/a b', `invalid char ' '`],
    ['x/a@b', `invalid char '@'`],
    ['x/\u00e9', `invalid char '\u00e9'`],
    ['-x', 'leading dash'],
    ['x/-y', 'ok'],
    ['x/nul', '"nul" disallowed as path element component on Windows'],
    ['x/a~12', 'trailing tilde and digits in path element'],
    ['x/.', 'invalid path element "."'],
  ])('%s: %s', (p, reason) => {
    expect(why(checkImportPath, p)).toBe(reason);
  });
});

describe('checkFilePath', () => {
  it.each([
    ['go.mod', 'ok'],
    ['a/b c/d', 'ok'],
    ['-a', 'ok'],
    ['.hg_archival.txt', 'ok'],
    ['x/a~1', 'ok'],
    ['x/!#$%&()+,-=@[]^_{}~', 'ok'],
    ['caf\u00e9/\u65e5\u672c.go', 'ok'],
    ['x/\u{10400}', 'ok'],
    ['x/\u212a', 'ok'],
    ['x/\u{1f600}', `invalid char '\u{1f600}'`],
    ['x/\u0301', `invalid char '\u0301'`],
    ['x/\u00a0', `invalid char '\\u00a0'`],
    ['x/a:b', `invalid char ':'`],
    ['x/a\\b', `invalid char '\\\\'`],
    ['x/a*b', `invalid char '*'`],
    ['x/a"b', `invalid char '"'`],
    ["x/a'b", `invalid char '\\''`],
    ['x/a`b', "invalid char '`'"],
    ['x/a|b', `invalid char '|'`],
    ['x/a<b', `invalid char '<'`],
    ['x/a?b', `invalid char '?'`],
    ['x/aux.c', '"aux" disallowed as path element component on Windows'],
    ['a//b', 'double slash'],
    ['a/b/', 'trailing slash'],
    ['a/../b', 'invalid path element ".."'],
    ['a/b.', 'trailing dot in path element'],
  ])('%s: %s', (p, reason) => {
    expect(why(checkFilePath, p)).toBe(reason);
  });

  it('follows the Unicode 15.0 tables of Go, not newer ones', () => {
    // U+2EBF0 is a CJK ideograph from Unicode 15.1: a letter to Node 20, unknown to Go.
    expect(why(checkFilePath, 'x/\u{2ebf0}')).toBe(`invalid char '\\U0002ebf0'`);
    expect(why(checkFilePath, 'x/\u{2ebef}')).toBe(`invalid char '\\U0002ebef'`);
    expect(why(checkFilePath, 'x/\u{2b739}')).toBe('ok');
  });
});

describe('splitPathVersion', () => {
  it.each([
    ['rsc.io/quote', 'rsc.io/quote', '', true],
    ['rsc.io/quote/v2', 'rsc.io/quote', '/v2', true],
    ['rsc.io/quote/v10', 'rsc.io/quote', '/v10', true],
    ['rsc.io/quote/v0', 'rsc.io/quote/v0', '', false],
    ['rsc.io/quote/v1', 'rsc.io/quote/v1', '', false],
    ['rsc.io/quote/v01', 'rsc.io/quote/v01', '', false],
    ['rsc.io/quote/v1.2', 'rsc.io/quote/v1.2', '', false],
    ['rsc.io/quote/v', 'rsc.io/quote/v', '', true],
    ['rsc.io/quote/xv2', 'rsc.io/quote/xv2', '', true],
    ['v2', 'v2', '', true],
    ['/v2', '', '/v2', true],
    ['a/v2', 'a', '/v2', true],
    ['gopkg.in/yaml.v2', 'gopkg.in/yaml', '.v2', true],
    ['gopkg.in/yaml.v2-unstable', 'gopkg.in/yaml', '.v2-unstable', true],
    ['gopkg.in/yaml.v0', 'gopkg.in/yaml', '.v0', true],
    ['gopkg.in/yaml.v01', 'gopkg.in/yaml.v01', '', false],
    ['gopkg.in/yaml', 'gopkg.in/yaml', '', false],
    ['gopkg.in/user/yaml.v3', 'gopkg.in/user/yaml', '.v3', true],
  ])('%s', (p, prefix, pathMajor, ok) => {
    expect(splitPathVersion(p)).toEqual({ prefix, pathMajor, ok });
  });

  it('splitGopkgIn refuses other hosts', () => {
    expect(splitGopkgIn('example.com/yaml.v2')).toEqual({ prefix: 'example.com/yaml.v2', pathMajor: '', ok: false });
    expect(splitGopkgIn('gopkg.in/yaml.v2')).toEqual({ prefix: 'gopkg.in/yaml', pathMajor: '.v2', ok: true });
  });
});

describe('path majors', () => {
  it.each([
    ['v1.2.3', '', true],
    ['v0.1.0', '', true],
    ['v2.0.0', '', false],
    ['v2.0.0+incompatible', '', true],
    ['v2.0.0+meta', '', false],
    ['v2.0.0', '/v2', true],
    ['v2.0.0+incompatible', '/v2', true],
    ['v3.0.0', '/v2', false],
    ['v1.0.0', '/v2', false],
    ['v1.5.0', '.v1', true],
    ['v0.0.0-20161208181325-20d25e280405', '.v1', true],
    ['v0.1.0', '.v1', false],
    ['v2.1.0', '.v2-unstable', true],
    ['v0.3.0', '.v0', true],
    ['v2.0.0', 'v2', false],
    ['junk', '', false],
  ])('%s fits %j: %s', (v, pm, ok) => {
    expect(matchPathMajor(v, pm)).toBe(ok);
    if (ok) expect(() => checkPathMajor(v, pm)).not.toThrow();
    else expect(() => checkPathMajor(v, pm)).toThrow(ModuleError);
  });

  it('says what was expected', () => {
    expect(() => checkPathMajor('v2.0.0', '')).toThrow('version "v2.0.0" invalid: should be v0 or v1, not v2');
    expect(() => checkPathMajor('v1.0.0', '/v3')).toThrow('version "v1.0.0" invalid: should be v3, not v1');
    expect(() => checkPathMajor('v1.0.0', '.v2-unstable')).toThrow('should be v2, not v1');
  });

  it('pathMajorPrefix', () => {
    expect(pathMajorPrefix('')).toBe('');
    expect(pathMajorPrefix('/v2')).toBe('v2');
    expect(pathMajorPrefix('.v1')).toBe('v1');
    expect(pathMajorPrefix('.v2-unstable')).toBe('v2');
    expect(() => pathMajorPrefix('v2')).toThrow(ModuleError);
    expect(() => pathMajorPrefix('/v02')).toThrow(ModuleError);
    expect(() => pathMajorPrefix('/v2-unstable')).toThrow(ModuleError);
  });
});

describe('check', () => {
  it.each([
    ['rsc.io/quote', 'v1.5.2'],
    ['rsc.io/quote', 'v0.0.0-20180517163830-0d9aa9a6b72b'],
    ['rsc.io/quote/v3', 'v3.1.0'],
    ['github.com/x/y', 'v2.0.0+incompatible'],
    ['gopkg.in/yaml.v2', 'v2.4.0'],
    ['gopkg.in/check.v1', 'v0.0.0-20161208181325-20d25e280405'],
    ['rsc.io/quote', 'v1'],
  ])('accepts %s@%s', (p, v) => {
    expect(() => check(p, v)).not.toThrow();
  });

  it.each([
    ['rsc.io/quote', 'v2.0.0', 'rsc.io/quote@v2.0.0: invalid version: should be v0 or v1, not v2'],
    ['rsc.io/quote/v3', 'v1.0.0', 'rsc.io/quote/v3@v1.0.0: invalid version: should be v3, not v1'],
    ['rsc.io/quote', 'master', 'rsc.io/quote@master: invalid version: not a semantic version'],
    ['rsc.io/quote', '1.0.0', 'rsc.io/quote@1.0.0: invalid version: not a semantic version'],
    ['gopkg.in/yaml.v2', 'v3.0.0', 'gopkg.in/yaml.v2@v3.0.0: invalid version: should be v2, not v3'],
    ['Rsc.io/quote', 'v1.0.0', `malformed module path "Rsc.io/quote": invalid char 'R' in first path element`],
  ])('rejects %s@%s', (p, v, msg) => {
    expect(() => check(p, v)).toThrow(msg);
  });

  it('carries the path and version on the error', () => {
    try {
      check('rsc.io/quote', 'v2.0.0');
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ name: 'ModuleError', path: 'rsc.io/quote', version: 'v2.0.0' });
    }
  });
});

describe('canonicalVersion', () => {
  it.each([
    ['v1.2.3', 'v1.2.3'],
    ['v1.2', 'v1.2.0'],
    ['v1', 'v1.0.0'],
    ['v1.2.3+meta', 'v1.2.3'],
    ['v2.0.0+incompatible', 'v2.0.0+incompatible'],
    ['v2.0.0-pre+incompatible', 'v2.0.0-pre+incompatible'],
    ['v2.0.0+incompatible.1', 'v2.0.0'],
    ['1.2.3', ''],
    ['master', ''],
  ])('%s -> %j', (v, c) => {
    expect(canonicalVersion(v)).toBe(c);
  });
});
