import { describe, expect, it } from 'vitest';
import { checkFilePath } from '../../src/module/index.js';
import { cleanPath, foldOrbitMin, goLang, langAtLeast, strToFold } from '../../src/modzip/gopath.js';
import { isVendoredPackage } from '../../src/modzip/index.js';
import { runGoTool } from '../helpers/gotools.js';

describe('cleanPath (path.Clean)', () => {
  // Go's path_test.go cleantests.
  const cases: [string, string][] = [
    ['', '.'],
    ['abc', 'abc'],
    ['abc/def', 'abc/def'],
    ['a/b/c', 'a/b/c'],
    ['.', '.'],
    ['..', '..'],
    ['../..', '../..'],
    ['../../abc', '../../abc'],
    ['/abc', '/abc'],
    ['/', '/'],
    ['abc/', 'abc'],
    ['abc/def/', 'abc/def'],
    ['a/b/c/', 'a/b/c'],
    ['./', '.'],
    ['../', '..'],
    ['../../', '../..'],
    ['/abc/', '/abc'],
    ['abc//def//ghi', 'abc/def/ghi'],
    ['//abc', '/abc'],
    ['///abc', '/abc'],
    ['//abc//', '/abc'],
    ['abc//', 'abc'],
    ['abc/./def', 'abc/def'],
    ['/./abc/def', '/abc/def'],
    ['abc/.', 'abc'],
    ['abc/def/ghi/../jkl', 'abc/def/jkl'],
    ['abc/def/../ghi/../jkl', 'abc/jkl'],
    ['abc/def/..', 'abc'],
    ['abc/def/../..', '.'],
    ['/abc/def/../..', '/'],
    ['abc/def/../../..', '..'],
    ['/abc/def/../../..', '/'],
    ['abc/def/../../../ghi/jkl/../../../mno', '../../mno'],
    ['abc/./../def', 'def'],
    ['abc//./../def', 'def'],
    ['abc/../../././../def', '../../def'],
  ];
  it.each(cases)('Clean(%j) = %j', (input, want) => {
    expect(cleanPath(input)).toBe(want);
  });
});

describe('goLang (go/version.Lang)', () => {
  it('agrees with Go', async () => {
    const inputs = [
      '1',
      '1.0',
      '1.2',
      '1.2.3',
      '1.20',
      '1.21',
      '1.21.0',
      '1.21rc1',
      '1.21beta',
      '1.24',
      '1.24.0',
      '1.24rc2',
      '1.99.0',
      '2',
      '2.1',
      '0',
      '0.1',
      '1.21-custom',
      '1.2.3rc1',
      '01.2',
      '1.02',
      'x',
      '',
      '1.',
      '1.2.',
      'go1.24',
      '1.24 ',
      '1.2a',
      '1.2A1',
      '1.21.3.4',
    ];
    const go = JSON.parse(await runGoTool('modzip', ['lang', ...inputs])) as string[];
    expect(inputs.map((v) => goLang(v))).toEqual(go);
  });

  it('compares with go1.24 like go/version.Compare', () => {
    expect(langAtLeast('go1.24', 1, 24)).toBe(true);
    expect(langAtLeast('go1.23', 1, 24)).toBe(false);
    expect(langAtLeast('go1', 1, 24)).toBe(false);
    expect(langAtLeast('go2.0', 1, 24)).toBe(true);
    expect(langAtLeast('', 1, 24)).toBe(false);
  });
});

describe('isVendoredPackage', () => {
  // x/mod zip/vendor_test.go.
  const pre124 = ['', '1.14', '1.21.0', '1.22.4', '1.23', '1.23.1', '1.2', '1.7', '1.9'];
  const after124 = ['1.24.0', '1.24', '1.99.0'];
  const all = [...pre124, ...after124];
  const cases: [string, boolean, string[]][] = [
    ['vendor/foo/foo.go', true, all],
    ['pkg/vendor/foo/foo.go', true, all],
    ['longpackagename/vendor/foo/foo.go', true, all],
    ['vendor/vendor.go', false, all],
    ['vendor/foo/modules.txt', true, all],
    ['modules.txt', false, all],
    ['vendor/amodules.txt', false, all],
    ['vendor/modules.txt', false, pre124],
    ['vendor/modules.txt', true, after124],
    ['pkg/vendor/vendor.go', true, pre124],
    ['pkg/vendor/vendor.go', false, after124],
    ['longpackagename/vendor/vendor.go', true, pre124],
    ['longpackagename/vendor/vendor.go', false, after124],
  ];
  it.each(cases)('%s → %s', (p, want, versions) => {
    for (const v of versions) expect(isVendoredPackage(p, goLang(v || undefined)), `${p} at ${v}`).toBe(want);
  });
});

describe('case folding', () => {
  it('strToFold folds like strings.EqualFold', () => {
    expect(strToFold('abc/def')).toBe('abc/def');
    expect(strToFold('ABC')).toBe('abc');
    expect(strToFold('K')).toBe(strToFold('k')); // Kelvin sign
    expect(strToFold('ſ')).toBe(strToFold('S')); // long s
    expect(strToFold('µ')).toBe(strToFold('Μ')); // micro sign and capital mu
    expect(strToFold('ß')).toBe(strToFold('ẞ'));
    expect(strToFold('ı')).not.toBe(strToFold('I')); // dotless i has no simple fold to I
    expect(strToFold('İ')).not.toBe(strToFold('i'));
    expect(strToFold('ss')).not.toBe(strToFold('ß')); // simple folding only
    // The ASCII shortcut agrees with the orbit table.
    for (let c = 0; c < 0x80; c++) {
      let m = foldOrbitMin(c);
      if (m >= 0x41 && m <= 0x5a) m += 0x20;
      expect(strToFold(String.fromCharCode(c, 0x41)), `char ${c}`).toBe(String.fromCharCode(m, 0x61));
    }
  });

  it('has the orbits of unicode.SimpleFold for every code point Go can accept in a file name', async () => {
    const pairs = JSON.parse(await runGoTool('modzip', ['foldtable'])) as [number, number][];
    const go = new Map(pairs);
    const mismatches: number[] = [];
    const ours = new Map<number, number[]>();
    const theirs = new Map<number, number[]>();
    const add = (m: Map<number, number[]>, k: number, v: number): void => {
      const l = m.get(k);
      if (l) l.push(v);
      else m.set(k, [v]);
    };
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const mine = foldOrbitMin(cp);
      const theirsMin = go.get(cp) ?? cp;
      if (mine !== theirsMin) mismatches.push(cp);
      if (mine !== cp) add(ours, mine, cp);
      if (theirsMin !== cp) add(theirs, theirsMin, cp);
    }
    // Node's Unicode is newer than Go's (15.0), so a few orbits gained members Go does not know.
    // Among the characters CheckFilePath accepts (the only ones that reach the collision check),
    // the orbits must be Go's.
    const valid = (cp: number): boolean => {
      try {
        checkFilePath(`a${String.fromCodePoint(cp)}`);
        return true;
      } catch {
        return false;
      }
    };
    const orbit = (m: Map<number, number[]>, min: number): number[] => [min, ...(m.get(min) ?? [])].filter(valid).sort();
    for (const cp of mismatches) {
      const goMin = go.get(cp) ?? cp;
      const myMin = foldOrbitMin(cp);
      if (!valid(cp)) continue;
      expect(orbit(ours, myMin), `U+${cp.toString(16)}`).toEqual(orbit(theirs, goMin));
    }
    expect(mismatches.length).toBeLessThan(100);
  });
});
