import { describe, expect, it } from 'vitest';
import { ModuleError, escapePath, escapeVersion, isValidModulePath, unescapePath, unescapeVersion } from '../../src/module/index.js';
import { PATHS, VERSIONS } from './corpus.js';

describe('escapePath', () => {
  it.each([
    ['github.com/Azure/azure-sdk-for-go', 'github.com/!azure/azure-sdk-for-go'],
    ['github.com/GoogleCloudPlatform/cloudsql-proxy', 'github.com/!google!cloud!platform/cloudsql-proxy'],
    ['github.com/Sirupsen/logrus', 'github.com/!sirupsen/logrus'],
    ['rsc.io/QUOTE', 'rsc.io/!q!u!o!t!e'],
    ['rsc.io/quote', 'rsc.io/quote'],
    ['example.com/a/B/c/v2', 'example.com/a/!b/c/v2'],
  ])('%s -> %s', (p, escaped) => {
    expect(escapePath(p)).toBe(escaped);
    expect(unescapePath(escaped)).toBe(p);
  });

  it('returns the very string when there is nothing to escape', () => {
    const p = 'golang.org/x/mod';
    expect(escapePath(p)).toBe(p);
    expect(unescapePath(p)).toBe(p);
  });

  it('rejects invalid module paths with the go wording', () => {
    expect(() => escapePath('Github.com/x')).toThrow(ModuleError);
    expect(() => escapePath('Github.com/x')).toThrow(`malformed module path "Github.com/x": invalid char 'G' in first path element`);
    expect(() => escapePath('x/y')).toThrow('malformed module path "x/y": missing dot in first path element');
    expect(() => escapePath('x.y/a!b')).toThrow(`malformed module path "x.y/a!b": invalid char '!'`);
    expect(() => escapePath('')).toThrow('malformed module path "": empty string');
  });

  it('round-trips every valid corpus path', () => {
    for (const p of PATHS.filter(isValidModulePath)) expect(unescapePath(escapePath(p))).toBe(p);
  });
});

describe('unescapePath', () => {
  it.each([
    ['github.com/Azure/x', 'upper case is never part of an escaped path'],
    ['github.com/!', 'trailing !'],
    ['github.com/!!a', '! followed by !'],
    ['github.com/!1', '! followed by a digit'],
    ['github.com/!A', '! followed by upper case'],
    ['github.com/\u00e9', 'non-ASCII'],
  ])('rejects %s (%s)', (escaped) => {
    expect(() => unescapePath(escaped)).toThrow(`invalid escaped module path ${JSON.stringify(escaped)}`);
  });

  it('checks the decoded path', () => {
    expect(() => unescapePath('!github.com/x')).toThrow(
      `invalid escaped module path "!github.com/x": malformed module path "Github.com/x": invalid char 'G' in first path element`,
    );
    expect(() => unescapePath('x.y/con')).toThrow('"con" disallowed as path element component on Windows');
    expect(() => unescapePath('rsc.io/quote/v1')).toThrow('malformed module path "rsc.io/quote/v1": invalid version');
  });
});

describe('escapeVersion / unescapeVersion', () => {
  it.each([
    ['v1.0.0', 'v1.0.0'],
    ['v1.0.0-RC1', 'v1.0.0-!r!c1'],
    ['master', 'master'],
    ['Main', '!main'],
    ['v1.2.3+incompatible', 'v1.2.3+incompatible'],
  ])('%s <-> %s', (v, escaped) => {
    expect(escapeVersion(v)).toBe(escaped);
    expect(unescapeVersion(escaped)).toBe(v);
  });

  it('accepts any file-name-like query but not "!" or path separators', () => {
    expect(escapeVersion('a b')).toBe('a b');
    expect(() => escapeVersion('v1.0.0!')).toThrow('version "v1.0.0!" invalid: disallowed version string');
    expect(() => escapeVersion('a/b')).toThrow('disallowed version string');
    expect(() => escapeVersion('')).toThrow('disallowed version string');
    expect(() => escapeVersion('..')).toThrow('disallowed version string');
    expect(() => escapeVersion('con')).toThrow('disallowed version string');
    expect(() => escapeVersion('a:b')).toThrow('disallowed version string');
  });

  it('refuses non-ASCII letters, which a file name allows but the escaping cannot spell', () => {
    expect(() => escapeVersion('v\u00e9')).toThrow('internal error: inconsistency in EscapePath');
    expect(() => unescapeVersion('v\u00e9')).toThrow('invalid escaped version "v\u00e9"');
  });

  it('checks the decoded version', () => {
    expect(() => unescapeVersion('v1!')).toThrow('invalid escaped version "v1!"');
    expect(() => unescapeVersion('a/b')).toThrow(`invalid escaped version "a/b": invalid char '/'`);
    expect(() => unescapeVersion('x.')).toThrow('invalid escaped version "x.": trailing dot in path element');
  });

  it('round-trips every corpus version that escapes', () => {
    for (const v of VERSIONS) {
      let escaped: string;
      try {
        escaped = escapeVersion(v);
      } catch {
        continue;
      }
      expect(unescapeVersion(escaped)).toBe(v);
    }
  });
});
