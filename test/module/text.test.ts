// The Go string mechanics under src/module (internal helpers, tested directly because the public
// functions' messages and orderings rest on them).
import { describe, expect, it } from 'vitest';
import { compareStrings, decodeRune, decodeUtf8Lossy, invalidUtf8At, quote, quoteRune, unquote } from '../../src/module/text.js';
import { isLetter, isPrint, isSpace } from '../../src/module/unicode.js';

describe('quote (strconv.Quote)', () => {
  it.each([
    ['abc', '"abc"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ["it's", `"it's"`],
    ['\u0000\u0007\t\n\u001b\u007f', '"\\x00\\a\\t\\n\\x1b\\x7f"'],
    ['caf\u00e9 \u{1f600}', '"caf\u00e9 \u{1f600}"'],
    ['\u00a0\u200b\ufeff', '"\\u00a0\\u200b\\ufeff"'],
    ['\u{e0001}', '"\\U000e0001"'],
  ])('%j', (s, q) => {
    expect(quote(s)).toBe(q);
  });

  it('quoteRune', () => {
    expect(quoteRune(0x27)).toBe("'\\''");
    expect(quoteRune(0x22)).toBe(`'"'`);
    expect(quoteRune(0)).toBe("'\\x00'");
  });
});

describe('unquote (strconv.Unquote)', () => {
  it.each([
    ['"abc"', 'abc'],
    ['""', ''],
    ['"a\\"b"', 'a"b'],
    ['"\\a\\b\\f\\n\\r\\t\\v\\\\"', '\u0007\b\f\n\r\t\u000b\\'],
    ['"\\x41\\101\\u00e9\\U0001f600"', 'A' + 'A\u00e9\u{1f600}'],
    ['"\\xc3\\xa9"', '\u00e9'],
    ['"\\xff"', '\ufffd'],
    ['"\\xe2\\x82"', '\ufffd\ufffd'],
    ['`a\\n`', 'a\\n'],
    ['`a\rb`', 'ab'],
  ])('%j', (q, s) => {
    expect(unquote(q)).toBe(s);
  });

  it.each(['', '"', '"abc', 'abc"', '"a"b"', '"\\q"', '"\\\'"', '"\\x4"', '"\\400"', '"\\ud800"', '"\\U00110000"', '"a\nb"', '`a`b`', "'a'"])(
    'rejects %j',
    (q) => {
      expect(unquote(q)).toBeUndefined();
    },
  );
});

describe('compareStrings (Go byte order)', () => {
  it('orders astral characters after U+E000..U+FFFF, as UTF-8 does', () => {
    expect(compareStrings('\uffff', '\u{10000}')).toBe(-1);
    expect('\uffff' < '\u{10000}').toBe(false); // UTF-16 order disagrees
    expect(compareStrings('a', 'b')).toBe(-1);
    expect(compareStrings('ab', 'a')).toBe(1);
    expect(compareStrings('x', 'x')).toBe(0);
  });
});

describe('UTF-8 decoding (utf8.DecodeRune)', () => {
  const bytes = (...b: number[]): string => Buffer.from(b).toString('latin1');
  it.each([
    [[0x41], 0x41, 1],
    [[0xc3, 0xa9], 0xe9, 2],
    [[0xe2, 0x82, 0xac], 0x20ac, 3],
    [[0xf0, 0x9f, 0x98, 0x80], 0x1f600, 4],
    [[0xc0, 0x80], 0xfffd, 1],
    [[0xe0, 0x80, 0x80], 0xfffd, 1],
    [[0xed, 0xa0, 0x80], 0xfffd, 1],
    [[0xf4, 0x90, 0x80, 0x80], 0xfffd, 1],
    [[0xe2, 0x82], 0xfffd, 1],
    [[0x80], 0xfffd, 1],
  ])('%j', (b, rune, width) => {
    const d = decodeRune(bytes(...b), 0);
    expect([d >> 3, d & 7]).toEqual([rune, width]);
  });

  it('finds the first invalid byte and decodes like Go does for display', () => {
    expect(invalidUtf8At(Buffer.from('ok'))).toBe(-1);
    expect(invalidUtf8At(Buffer.from([0x61, 0xe2, 0x82, 0x61]))).toBe(1);
    expect(decodeUtf8Lossy(Buffer.from([0x61, 0xe2, 0x82, 0x61]))).toBe('a\ufffd\ufffda');
  });
});

describe('Go character classes', () => {
  it('matches unicode.IsLetter / IsPrint / IsSpace on notable characters', () => {
    expect(isLetter(0xe9)).toBe(true);
    expect(isLetter(0x212a)).toBe(true);
    expect(isLetter(0x2ebf0)).toBe(false); // assigned in Unicode 15.1, after Go's tables
    expect(isPrint(0x20)).toBe(true);
    expect(isPrint(0xa0)).toBe(false);
    expect(isPrint(0xfffd)).toBe(true);
    expect(isPrint(0x1fa89)).toBe(false); // an emoji from Unicode 16
    expect(isSpace(0x85)).toBe(true);
    expect(isSpace(0xfeff)).toBe(false);
    expect(isSpace(0x180e)).toBe(false);
  });
});
