import { describe, expect, it } from 'vitest';
import { ModuleError, compilePrefixPatterns, matchPrefixPatterns, parsePatternAtVersion, pathMatch } from '../../src/module/index.js';
import { PREFIX_CASES } from './corpus.js';

describe('pathMatch (Go path.Match)', () => {
  it.each([
    ['abc', 'abc', true],
    ['*', 'abc', true],
    ['*', 'a/b', false],
    ['a*/b', 'abc/b', true],
    ['a*/b', 'a/c/b', false],
    ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
    ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
    ['a*b?c*x', 'abxbbxdbxebxczzx', true],
    ['ab[b-d]', 'abc', true],
    ['ab[^b-d]', 'abc', false],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'ab', false],
    ['a?b', 'a\u263ab', true],
    ['a???b', 'a\u263ab', false],
    ['a?b', 'a/b', false],
    ['[\\-x]', '-', true],
    ['*x', 'xxx', true],
    // Behind a star Go tries every byte offset, even inside a multi-byte character.
    ['*??', '\u20ac', true],
    ['*???', '\u20ac', false],
  ])('%j ~ %j', (pattern, name, want) => {
    let got: boolean | 'error';
    try {
      got = pathMatch(pattern, name);
    } catch (err) {
      expect(err).toBeInstanceOf(ModuleError);
      got = 'error';
    }
    expect(got).toBe(want);
  });

  it.each(['[', '[^', 'a[', '[a-b-c]', '[]a]', '[-]', '\\', 'a/b[', '*\\', '[x-]'])('%j is a syntax error', (pattern) => {
    expect(() => pathMatch(pattern, 'a')).toThrow('syntax error in pattern');
  });

  it('reports a syntax error even past the point where the match failed', () => {
    expect(() => pathMatch('b*[', 'a')).toThrow('syntax error in pattern');
  });
});

describe('matchPrefixPatterns (GOPRIVATE)', () => {
  it.each([
    ['github.com/*/repo2', 'github.com/example/repo2', true],
    ['github.com/*/repo2', 'github.com/example/repo2/sub/pkg', true],
    ['github.com/*/repo2', 'github.com/example', false],
    ['*.com', 'github.com/example/repo2', true],
    ['*.com', 'github.org/example/repo2', false],
    ['a.com, b.com', 'a.com/x', true],
    ['a.com, b.com', 'b.com', false], // spaces are not trimmed
    ['a.com,b.com', 'b.com/x', true],
    ['b.com/', 'b.com/x', true], // a trailing slash is dropped
    ['github.com/foo', 'github.com/foobar', false], // whole elements only
    ['github.com/foo', 'github.com/foo/bar', true],
    ['github.com/foo/bar', 'github.com/foo', false], // fewer elements than the glob
    ['[', 'x', false], // malformed globs never match
    ['[,x', 'x', true],
    ['', 'x', false],
    [',,a,', 'a/b', true],
  ])('%j matches %j: %s', (globs, target, want) => {
    expect(matchPrefixPatterns(globs, target)).toBe(want);
    expect(compilePrefixPatterns(globs)(target)).toBe(want);
  });

  it('the compiled matcher agrees with the direct one on the corpus', () => {
    for (const [g, t] of PREFIX_CASES) expect([g, t, compilePrefixPatterns(g)(t)]).toEqual([g, t, matchPrefixPatterns(g, t)]);
  });
});

describe('parsePatternAtVersion (a pin: one glob, optionally @version)', () => {
  it.each([
    ['example.com/team/*', { pattern: 'example.com/team/*' }],
    ['example.com/m/', { pattern: 'example.com/m' }],
    ['github.com/Azure/go@v1.2.3', { pattern: 'github.com/Azure/go', version: 'v1.2.3' }],
    ['example.com/m@v2.0.0+incompatible', { pattern: 'example.com/m', version: 'v2.0.0+incompatible' }],
    ['*.corp.example', { pattern: '*.corp.example' }],
  ])('%j', (text, want) => {
    expect(parsePatternAtVersion(text)).toEqual(want);
  });

  it.each([
    ['', /expected a module path/],
    ['a.com,b.com', /without spaces or commas/],
    ['a.com b.com', /without spaces or commas/],
    ['/example.com', /empty path elements/],
    ['example.com//m', /empty path elements/],
    ['example.com/[x', /glob syntax error/],
    ['example.com/m@latest', /not a canonical version/],
    ['example.com/m@v1.2', /not a canonical version/],
    ['example.com/m@v1.2.3+meta', /not a canonical version/],
  ])('%j is refused', (text, why) => {
    expect(() => parsePatternAtVersion(text)).toThrow(ModuleError);
    expect(() => parsePatternAtVersion(text)).toThrow(why);
  });
});
