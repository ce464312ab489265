// Go string mechanics the module rules depend on: UTF-8 decoding with Go's error convention,
// byte-order string comparison, and the strconv quoting used in messages and go.mod tokens.
import { isPrint } from './unicode.js';

/** utf8.RuneError */
export const RUNE_ERROR = 0xfffd;

/**
 * Decodes one rune from a "byte string" (each UTF-16 unit holds one byte, as Buffer's latin1 gives)
 * the way utf8.DecodeRune does: any invalid or truncated sequence yields RUNE_ERROR of width 1.
 * Returns rune * 8 + width, so callers get both without an allocation.
 */
export function decodeRune(b: string, i: number): number {
  const n = b.length - i;
  if (n <= 0) return RUNE_ERROR * 8;
  const b0 = b.charCodeAt(i);
  if (b0 < 0x80) return b0 * 8 + 1;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  let cp: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    cp = b0 & 0x0f;
    if (b0 === 0xe0) lo = 0xa0;
    else if (b0 === 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 === 0xf0) lo = 0x90;
    else if (b0 === 0xf4) hi = 0x8f;
  } else {
    return RUNE_ERROR * 8 + 1;
  }
  if (n <= need) {
    // A truncated sequence is still RuneError of width 1, whatever its prefix looks like.
    return RUNE_ERROR * 8 + 1;
  }
  for (let k = 1; k <= need; k++) {
    const c = b.charCodeAt(i + k);
    if (c < lo || c > hi) return RUNE_ERROR * 8 + 1;
    lo = 0x80;
    hi = 0xbf;
    cp = (cp << 6) | (c & 0x3f);
  }
  return cp * 8 + need + 1;
}

/** Index of the first byte that is not part of valid UTF-8, or -1. */
export function invalidUtf8At(bytes: Uint8Array): number {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  for (let i = 0; i < b.length;) {
    if (b.charCodeAt(i) < 0x80) {
      i++;
      continue;
    }
    const d = decodeRune(b, i);
    if (d >> 3 === RUNE_ERROR && (d & 7) === 1) return i;
    i += d & 7;
  }
  return -1;
}

/** Decodes bytes as Go's encoding/json would show them: one U+FFFD for each byte DecodeRune rejects. */
export function decodeUtf8Lossy(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const b = buf.toString('latin1');
  let ascii = true;
  for (let i = 0; i < b.length; i++) {
    if (b.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return b;
  let out = '';
  for (let i = 0; i < b.length;) {
    const d = decodeRune(b, i);
    out += String.fromCodePoint(d >> 3);
    i += d & 7;
  }
  return out;
}

/** The UTF-8 bytes of s as a byte string; s itself when it is ASCII. */
export function toByteString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.from(s, 'utf8').toString('latin1');
  }
  return s;
}

/** Whether s holds an unpaired surrogate, the JS counterpart of a Go string that is not valid UTF-8. */
export function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c >= 0xdc00) return true;
    const d = s.charCodeAt(i + 1);
    if (!(d >= 0xdc00 && d <= 0xdfff)) return true;
    i++;
  }
  return false;
}

/**
 * strings.Compare: Go orders strings by UTF-8 bytes, JS by UTF-16 units. The two disagree only
 * between surrogates (astral characters) and U+E000..U+FFFF, so that one case is remapped.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
    if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

function escapeRune(cp: number, quote: number): string {
  if (cp === quote || cp === 0x5c) return '\\' + String.fromCharCode(cp);
  if (isPrint(cp)) return String.fromCodePoint(cp);
  switch (cp) {
    case 0x07:
      return '\\a';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x0b:
      return '\\v';
  }
  if (cp < 0x20 || cp === 0x7f) return '\\x' + hex(cp, 2);
  if (cp >= 0xd800 && cp <= 0xdfff) return '\\ufffd';
  if (cp < 0x10000) return '\\u' + hex(cp, 4);
  return '\\U' + hex(cp, 8);
}

/** strconv.Quote (%q of a string), for messages shown to Go users. */
export function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i) as number;
    out += escapeRune(cp, 0x22);
    i += cp > 0xffff ? 2 : 1;
  }
  return out + '"';
}

/** strconv.QuoteRune (%q of a rune). */
export function quoteRune(cp: number): string {
  return "'" + escapeRune(cp, 0x27) + "'";
}

function unhex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * strconv.Unquote for the two forms go.mod uses, "interpreted" and `raw`. Returns undefined where
 * Go reports ErrSyntax. \x and octal escapes can spell bytes that are not UTF-8; Go keeps such bytes,
 * we cannot, so they decode to U+FFFD the way Go's JSON encoder would show them.
 */
export function unquote(s: string): string | undefined {
  if (s.length < 2) return undefined;
  const q = s.charCodeAt(0);
  if (q === 0x60) {
    if (s.indexOf('`', 1) !== s.length - 1) return undefined;
    const body = s.slice(1, -1);
    return body.includes('\r') ? body.replaceAll('\r', '') : body;
  }
  if (q !== 0x22) return undefined;
  const end = s.indexOf('"', 1);
  if (end === s.length - 1 && !s.includes('\\') && !s.includes('\n')) return s.slice(1, -1);

  const bytes: number[] = [];
  let i = 1;
  const pushRune = (cp: number): void => {
    if (cp < 0x80) bytes.push(cp);
    else for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
  };
  while (i < s.length && s.charCodeAt(i) !== 0x22) {
    const c = s.charCodeAt(i);
    if (c === 0x0a) return undefined;
    if (c !== 0x5c) {
      const cp = s.codePointAt(i) as number;
      pushRune(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    if (i + 1 >= s.length) return undefined;
    const e = s.charCodeAt(i + 1);
    i += 2;
    switch (e) {
      case 0x61:
        bytes.push(0x07);
        break;
      case 0x62:
        bytes.push(0x08);
        break;
      case 0x66:
        bytes.push(0x0c);
        break;
      case 0x6e:
        bytes.push(0x0a);
        break;
      case 0x72:
        bytes.push(0x0d);
        break;
      case 0x74:
        bytes.push(0x09);
        break;
      case 0x76:
        bytes.push(0x0b);
        break;
      case 0x5c:
        bytes.push(0x5c);
        break;
      case 0x22:
        bytes.push(0x22);
        break;
      case 0x78: // \xHH
      case 0x75: // \uHHHH
      case 0x55: {
        // \UHHHHHHHH
        const n = e === 0x78 ? 2 : e === 0x75 ? 4 : 8;
        if (i + n > s.length) return undefined;
        let v = 0;
        for (let k = 0; k < n; k++) {
          const x = unhex(s.charCodeAt(i + k));
          if (x < 0) return undefined;
          v = v * 16 + x;
        }
        i += n;
        if (e === 0x78) {
          bytes.push(v);
        } else {
          if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return undefined;
          pushRune(v);
        }
        break;
      }
      default: {
        if (e < 0x30 || e > 0x37 || i + 2 > s.length) return undefined;
        let v = e - 0x30;
        for (let k = 0; k < 2; k++) {
          const x = s.charCodeAt(i + k) - 0x30;
          if (x < 0 || x > 7) return undefined;
          v = v * 8 + x;
        }
        i += 2;
        if (v > 255) return undefined;
        bytes.push(v);
      }
    }
  }
  if (i !== s.length - 1) return undefined;
  return decodeUtf8Lossy(Uint8Array.from(bytes));
}
