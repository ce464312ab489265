// RequestParser: the parse of a path it has seen is the parse parseRequest gives, never shared
// in a form a request could change; refusals are never remembered; the table stays bounded.
import { describe, expect, it } from 'vitest';
import { ProxyError } from '../../src/errors.js';
import { RequestParser, parseRequest } from '../../src/server/protocol.js';

const PATHS = [
  '/github.com/!azure/go-autorest/@v/v14.2.0+incompatible.info',
  '/golang.org/x/mod/@v/v0.20.0.mod',
  '/golang.org/x/mod/@v/v0.20.0.zip',
  '/golang.org/x/mod/@v/master.info',
  '/golang.org/x/mod/@v/list',
  '/golang.org/x/mod/@latest',
  '/sumdb/sum.golang.org/supported',
  '/healthz',
];

describe('RequestParser', () => {
  it('gives what parseRequest gives, the first time and from its table', () => {
    const parser = new RequestParser('');
    for (const p of PATHS) {
      const expected = parseRequest(p, '');
      expect(parser.parse(p)).toEqual(expected);
      expect(parser.parse(p)).toEqual(expected);
    }
  });

  it('hands out frozen parses: no request can change what the next one gets', () => {
    const parser = new RequestParser('');
    const p = parser.parse(PATHS[0]!);
    expect(Object.isFrozen(p)).toBe(true);
    if (p.kind !== 'info') throw new Error(`parsed as ${p.kind}`);
    expect(Object.isFrozen(p.mod) && Object.isFrozen(p.version)).toBe(true);
    expect(() => {
      (p.mod as { path: string }).path = 'evil.example/x';
    }).toThrow(TypeError);
    expect(parser.parse(PATHS[0]!)).toEqual(parseRequest(PATHS[0]!, ''));
  });

  it('refuses a malformed path every time it is asked, with the same line', () => {
    const parser = new RequestParser('');
    const bad = '/github.com/Azure/go-autorest/@v/v1.0.0.info';
    const first = (() => {
      try {
        parser.parse(bad);
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(first).toBeInstanceOf(ProxyError);
    expect(() => parser.parse(bad)).toThrow((first as ProxyError).message);
  });

  it('keeps its mount prefix, and a full table is dropped, not grown', () => {
    const parser = new RequestParser('/go', 8);
    expect(() => parser.parse('/golang.org/x/mod/@v/list')).toThrow(/outside this proxy's path prefix/);
    for (let i = 0; i < 50; i++) {
      const p = parser.parse(`/go/example.com/m${i}/@v/v1.0.${i}.mod`);
      expect(p).toEqual(parseRequest(`/go/example.com/m${i}/@v/v1.0.${i}.mod`, '/go'));
    }
    expect((parser as unknown as { seen: Map<string, unknown> }).seen.size).toBeLessThanOrEqual(8);
  });
});
