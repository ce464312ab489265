import { describe, expect, it } from 'vitest';
import {
  ModuleError,
  decDecimal,
  incDecimal,
  isPseudoVersion,
  isZeroPseudoVersion,
  pseudoVersion,
  pseudoVersionBase,
  pseudoVersionRev,
  pseudoVersionTime,
  pseudoVersionTimestamp,
  zeroPseudoVersion,
} from '../../src/module/index.js';

const t = new Date('2019-11-09T02:19:31Z');

describe('pseudoVersion', () => {
  it.each([
    // The three forms of GO-MODULES.md §5.
    ['', '', 'v0.0.0-20191109021931-daa7c04131f5'],
    ['v2', '', 'v2.0.0-20191109021931-daa7c04131f5'],
    ['v0', 'v1.0.0', 'v1.0.1-0.20191109021931-daa7c04131f5'],
    ['v0', 'v1.2.9', 'v1.2.10-0.20191109021931-daa7c04131f5'],
    ['v0', 'v1.2.99', 'v1.2.100-0.20191109021931-daa7c04131f5'],
    ['v0', 'v1.2', 'v1.2.1-0.20191109021931-daa7c04131f5'],
    ['v0', 'v3.0.0-rc.1', 'v3.0.0-rc.1.0.20191109021931-daa7c04131f5'],
    ['v0', 'v2.0.0+incompatible', 'v2.0.1-0.20191109021931-daa7c04131f5+incompatible'],
    ['v0', 'v2.0.0-pre+incompatible', 'v2.0.0-pre.0.20191109021931-daa7c04131f5+incompatible'],
    ['v0', 'v1.2.3+meta', 'v1.2.4-0.20191109021931-daa7c04131f5+meta'],
    ['v5', 'junk', 'v5.0.0-20191109021931-daa7c04131f5'],
  ])('major %j, older %j -> %s', (major, older, want) => {
    expect(pseudoVersion(major, older, t, 'daa7c04131f5')).toBe(want);
  });

  it('formats times in UTC, including years Date.UTC would misread', () => {
    expect(pseudoVersion('', '', new Date('2023-02-03T05:05:06+01:00'), 'x')).toBe('v0.0.0-20230203040506-x');
    const y5 = new Date(0);
    y5.setUTCFullYear(5, 0, 2);
    expect(pseudoVersion('', '', y5, 'x')).toBe('v0.0.0-00050102000000-x');
    expect(pseudoVersion('', '', new Date(-62198755200_000), 'x')).toBe('v0.0.0--00010101000000-x');
    expect(pseudoVersion('', '', new Date(253402300800_000), 'x')).toBe('v0.0.0-100000101000000-x');
    expect(() => pseudoVersion('', '', new Date(NaN), 'x')).toThrow(ModuleError);
  });

  it('zero pseudo-versions are placeholders', () => {
    expect(zeroPseudoVersion('')).toBe('v0.0.0-00010101000000-000000000000');
    expect(zeroPseudoVersion('v2')).toBe('v2.0.0-00010101000000-000000000000');
    expect(isZeroPseudoVersion('v0.0.0-00010101000000-000000000000')).toBe(true);
    expect(isZeroPseudoVersion('v2.0.0-00010101000000-000000000000')).toBe(true);
    expect(isZeroPseudoVersion('v0.0.0-00010101000000-000000000001')).toBe(false);
    expect(isZeroPseudoVersion('v1.0.0')).toBe(false);
    expect(pseudoVersionTime(zeroPseudoVersion('')).toISOString()).toBe('0001-01-01T00:00:00.000Z');
  });
});

describe('isPseudoVersion', () => {
  it.each([
    'v0.0.0-20191109021931-daa7c04131f5',
    'v1.0.1-0.20230203040506-cc218738370e',
    'v3.0.0-rc.1.0.20210201000000-abcdefabcdef',
    'v1.2.3-pre.0.20191109021931-daa7c04131f5+incompatible',
    'v0.0.0-20191109021931-daa7c04131f5+incompatible',
    'v1.0.0-20191109021931-daa7c04131f5',
    'v1.2.0-0.20191109021931-daa7c04131f5',
    'v0.0.0-20191309021931-daa7c04131f5',
  ])('%s is pseudo-version shaped', (v) => {
    expect(isPseudoVersion(v)).toBe(true);
  });

  it.each([
    'v1.2.3',
    'v1.2.3-pre',
    'v1.2.3-20191109021931-daa7c04131f5',
    'v0.0.0-2019110902193-daa7c04131f5',
    'v0.0.0-201911090219311-daa7c04131f5',
    'v0.0.0-20191109021931-',
    'v0.0.0-20191109021931-daa7c04131f5-x',
    'v1.2.3-pre0.20191109021931-daa7c04131f5',
    'v0.0.0-20191109021931.daa7c04131f5',
    'v0.1.0-20191109021931-daa7c04131f5',
  ])('%s is not', (v) => {
    expect(isPseudoVersion(v)).toBe(false);
  });
});

describe('pseudo-version parts', () => {
  it.each([
    ['v0.0.0-20191109021931-daa7c04131f5', '', '20191109021931', 'daa7c04131f5'],
    ['v1.0.1-0.20230203040506-cc218738370e', 'v1.0.0', '20230203040506', 'cc218738370e'],
    ['v1.2.10-0.20191109021931-daa7c04131f5', 'v1.2.9', '20191109021931', 'daa7c04131f5'],
    ['v1.2.100-0.20191109021931-daa7c04131f5', 'v1.2.99', '20191109021931', 'daa7c04131f5'],
    ['v3.0.0-rc.1.0.20210201000000-abcdefabcdef', 'v3.0.0-rc.1', '20210201000000', 'abcdefabcdef'],
    ['v2.1.1-0.20210201000000-abcdefabcdef+incompatible', 'v2.1.0+incompatible', '20210201000000', 'abcdefabcdef'],
    ['v1.2.3-0.0.20191109021931-daa7c04131f5', 'v1.2.3-0', '20191109021931', 'daa7c04131f5'],
  ])('%s: base %j', (v, base, ts, rev) => {
    expect(pseudoVersionBase(v)).toBe(base);
    expect(pseudoVersionTimestamp(v)).toBe(ts);
    expect(pseudoVersionRev(v)).toBe(rev);
  });

  it('rejects bases no tag could have produced', () => {
    expect(() => pseudoVersionBase('v1.2.0-0.20191109021931-daa7c04131f5')).toThrow(
      'pseudo-version "v1.2.0-0.20191109021931-daa7c04131f5" invalid: version before v1.2.0 would have negative patch number',
    );
    expect(() => pseudoVersionBase('v0.0.0-20191109021931-daa7c04131f5+incompatible')).toThrow('lacks base version, but has build metadata "+incompatible"');
    expect(() => pseudoVersionBase('v1.2.3')).toThrow('pseudo-version "v1.2.3" invalid: syntax error');
    expect(() => pseudoVersionRev('v1.2.3')).toThrow(ModuleError);
  });

  it('pseudoVersionTime validates the calendar as time.Parse does', () => {
    expect(pseudoVersionTime('v0.0.0-20191109021931-daa7c04131f5').toISOString()).toBe('2019-11-09T02:19:31.000Z');
    expect(pseudoVersionTime('v0.0.0-20200229000000-x').toISOString()).toBe('2020-02-29T00:00:00.000Z');
    expect(pseudoVersionTime('v0.0.0-20000229000000-x').toISOString()).toBe('2000-02-29T00:00:00.000Z');
    expect(pseudoVersionTime('v0.0.0-00000229000000-x').toISOString()).toBe('0000-02-29T00:00:00.000Z');
    expect(pseudoVersionTime('v0.0.0-00500101000000-x').getUTCFullYear()).toBe(50);
    for (const bad of [
      '20190229000000',
      '21000229000000',
      '20191309000000',
      '20190001000000',
      '20190100000000',
      '20190431000000',
      '20191109240000',
      '20191109236000',
      '20191109235960',
    ]) {
      expect(() => pseudoVersionTime(`v0.0.0-${bad}-x`)).toThrow(`malformed time "${bad}"`);
    }
  });
});

describe('decimal strings', () => {
  it.each([
    ['0', '1'],
    ['9', '10'],
    ['19', '20'],
    ['199', '200'],
    ['99999999999999999999', '100000000000000000000'],
  ])('incDecimal(%s) = %s, decDecimal back', (a, b) => {
    expect(incDecimal(a)).toBe(b);
    expect(decDecimal(b)).toBe(a);
  });

  it('decDecimal of zero is empty', () => {
    expect(decDecimal('0')).toBe('');
    expect(decDecimal('000')).toBe('');
    expect(decDecimal('1')).toBe('0');
  });
});
