import { describe, expect, it } from 'vitest';
import { GO_SUMDB_KEY, SumdbError, generateKey, parseGosumdb } from '../../src/sumdb/index.js';

describe('parseGosumdb', () => {
  const { verifierKey } = generateKey('sumdb.example.com/db');

  it('reads off, known names, keys and URLs', () => {
    expect(parseGosumdb('off')).toBe('off');
    expect(parseGosumdb(' off ')).toBe('off');
    expect(parseGosumdb('sum.golang.org')).toEqual({ name: 'sum.golang.org', verifierKey: GO_SUMDB_KEY });
    expect(parseGosumdb('sum.golang.google.cn')).toEqual({ name: 'sum.golang.org', verifierKey: GO_SUMDB_KEY, url: 'https://sum.golang.google.cn' });
    expect(parseGosumdb('sum.golang.org http://127.0.0.1:8080/sumdb/sum.golang.org/')).toEqual({
      name: 'sum.golang.org',
      verifierKey: GO_SUMDB_KEY,
      url: 'http://127.0.0.1:8080/sumdb/sum.golang.org',
    });
    expect(parseGosumdb(verifierKey)).toEqual({ name: 'sumdb.example.com/db', verifierKey });
    expect(parseGosumdb(`  ${verifierKey}\thttps://db.example.com:8443  `)).toEqual({
      name: 'sumdb.example.com/db',
      verifierKey,
      url: 'https://db.example.com:8443',
    });
  });

  it('explains bad settings in one line that says how to fix them', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      [`${verifierKey} http://a http://b`, /too many fields/],
      ['sum.example.org', /neither a known database nor a verifier key/],
      [verifierKey.replace(/\+[0-9a-f]{8}\+/, '+00000000+'), /does not match the key/],
      ['x+1234+abc', /malformed verifier key/],
      [generateKey('https://db.example').verifierKey, /must be host\[\/path\]/],
      [generateKey('db.example/').verifierKey, /must be host\[\/path\]/],
      [generateKey('db.example?x').verifierKey, /must be host\[\/path\]/],
      [`${verifierKey} ftp://db.example`, /must be http:\/\/ or https:\/\//],
      [`${verifierKey} db.example`, /is not a URL/],
      [`${verifierKey} https://db.example/?q=1`, /no query/],
    ];
    for (const [setting, why] of cases) {
      let err: unknown;
      try {
        parseGosumdb(setting);
      } catch (e) {
        err = e;
      }
      expect(err, setting).toBeInstanceOf(SumdbError);
      const e = err as SumdbError;
      expect(e.code).toBe('config');
      expect(e.message, setting).toMatch(why);
      expect(e.message).not.toContain('\n');
      expect(e.message).toContain('use "off", a known database name (sum.golang.org), or "<verifier key> [<url>]"');
    }
  });

  it('never repeats URL credentials', () => {
    try {
      parseGosumdb(`${verifierKey} https://user:s3cret@db.example`);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/must not carry credentials/);
      expect((err as Error).message).not.toContain('s3cret');
    }
  });
});
