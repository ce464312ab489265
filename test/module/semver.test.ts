import { describe, expect, it } from 'vitest';
import { semver } from '../../src/module/index.js';

describe('semver parsing', () => {
  it.each([
    // [version, canonical, major, majorMinor, prerelease, build]
    ['v1.2.3', 'v1.2.3', 'v1', 'v1.2', '', ''],
    ['v1.2', 'v1.2.0', 'v1', 'v1.2', '', ''],
    ['v1', 'v1.0.0', 'v1', 'v1.0', '', ''],
    ['v0.0.0', 'v0.0.0', 'v0', 'v0.0', '', ''],
    ['v1.2.3-pre', 'v1.2.3-pre', 'v1', 'v1.2', '-pre', ''],
    ['v1.2.3-pre+meta', 'v1.2.3-pre', 'v1', 'v1.2', '-pre', '+meta'],
    ['v1.2.3+meta', 'v1.2.3', 'v1', 'v1.2', '', '+meta'],
    ['v1.2.3+meta-valid.1', 'v1.2.3', 'v1', 'v1.2', '', '+meta-valid.1'],
    ['v1.2.3+incompatible', 'v1.2.3', 'v1', 'v1.2', '', '+incompatible'],
    ['v1.2.3-0a', 'v1.2.3-0a', 'v1', 'v1.2', '-0a', ''],
    ['v1.2.3-rc.1.2', 'v1.2.3-rc.1.2', 'v1', 'v1.2', '-rc.1.2', ''],
    ['v1.2.3+01', 'v1.2.3', 'v1', 'v1.2', '', '+01'],
    ['v99999999999999999999.0.0', 'v99999999999999999999.0.0', 'v99999999999999999999', 'v99999999999999999999.0', '', ''],
  ])('%s is valid', (v, canonical, major, majorMinor, prerelease, build) => {
    expect(semver.isValid(v)).toBe(true);
    expect(semver.canonical(v)).toBe(canonical);
    expect(semver.major(v)).toBe(major);
    expect(semver.majorMinor(v)).toBe(majorMinor);
    expect(semver.prerelease(v)).toBe(prerelease);
    expect(semver.build(v)).toBe(build);
    expect(semver.isCanonical(v)).toBe(canonical === v);
  });

  it.each([
    '',
    'v',
    '1.2.3',
    'V1.2.3',
    'v1.',
    'v1.2.',
    'v1.2.3.',
    'v1.2.3.4',
    'v01',
    'v1.02',
    'v1.2.03',
    'v00.0.0',
    'v1-pre',
    'v1.2-pre',
    'v1.2+meta',
    'v1+meta',
    'v1.2.3-',
    'v1.2.3+',
    'v1.2.3-01',
    'v1.2.3-a.01',
    'v1.2.3-00',
    'v1.2.3-a..b',
    'v1.2.3-.a',
    'v1.2.3-a.',
    'v1.2.3+a..b',
    'v1.2.3+.a',
    'v1.2.3+a.',
    'v1.2.3-a_b',
    'v1.2.3-a+b+c',
    'v1.2.3-\u03b1',
    'v1.2.3 ',
    ' v1.2.3',
    'v1.0.0-!r!c1',
    'master',
    'latest',
  ])('%j is invalid', (v) => {
    expect(semver.isValid(v)).toBe(false);
    expect(semver.canonical(v)).toBe('');
    expect(semver.major(v)).toBe('');
    expect(semver.majorMinor(v)).toBe('');
    expect(semver.prerelease(v)).toBe('');
    expect(semver.build(v)).toBe('');
    expect(semver.isCanonical(v)).toBe(false);
  });
});

describe('semver.compare', () => {
  // Ascending, per SemVer 2.0 rule 11 as Go applies it; entries in one inner list are equal.
  const ordered: string[][] = [
    ['bad', 'v1.2.3.4', ''],
    ['v0.0.0-alpha'],
    ['v0.0.0'],
    ['v0.1'],
    ['v1.0.0-0'],
    ['v1.0.0-1'],
    ['v1.0.0-2'],
    ['v1.0.0-10'],
    ['v1.0.0-0a'],
    ['v1.0.0-alpha'],
    ['v1.0.0-alpha.1'],
    ['v1.0.0-alpha.beta'],
    ['v1.0.0-beta'],
    ['v1.0.0-beta.2'],
    ['v1.0.0-beta.11'],
    ['v1.0.0-rc.1'],
    ['v1', 'v1.0', 'v1.0.0', 'v1.0.0+meta', 'v1.0.0+incompatible'],
    ['v1.2'],
    ['v1.2.3'],
    ['v1.10.0'],
    ['v2.0.0-pre'],
    ['v2.0.0'],
    ['v10.0.0'],
    ['v99999999999999999999.0.0'],
    ['v100000000000000000000.0.0'],
  ];
  it('orders versions, treating equal classes as equal', () => {
    ordered.forEach((group, i) => {
      ordered.forEach((other, j) => {
        for (const v of group) for (const w of other) expect([v, w, semver.compare(v, w)]).toEqual([v, w, Math.sign(i - j)]);
      });
    });
  });

  it('max returns the larger in canonical form', () => {
    expect(semver.max('v1.2', 'v1.1.9')).toBe('v1.2.0');
    expect(semver.max('v1.2.0+a', 'v1.2.0+b')).toBe('v1.2.0');
    expect(semver.max('bad', 'v0.0.1')).toBe('v0.0.1');
    expect(semver.max('v0.0.1', 'bad')).toBe('v0.0.1');
    expect(semver.max('bad', 'worse')).toBe('');
  });

  it('sort breaks ties by Go string order', () => {
    expect(semver.sort(['v1.0.0', 'x', 'v1', 'a', 'v1.0.0+b', 'v0.9.0', 'v1.0.0-rc.1', '\u{1f600}', '\uffff'])).toEqual([
      'a',
      'x',
      '\uffff',
      '\u{1f600}',
      'v0.9.0',
      'v1.0.0-rc.1',
      'v1',
      'v1.0.0',
      'v1.0.0+b',
    ]);
  });
});
