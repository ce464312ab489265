// Which store keys an invalidation names: keys parsed back to module and version (escaped forms
// included), GOPRIVATE-style patterns, and the operator's target checked with one-line errors.
import { describe, expect, it } from 'vitest';
import { compilePrefixPatterns } from '../../src/module/index.js';
import { invalidates, keyParts, parseInvalidation } from '../../src/server/invalidation.js';

describe('invalidation targets', () => {
  it('parses the keys of mutable answers and artifacts, case-encoded paths and versions included', () => {
    expect(keyParts('mutable/github.com/!azure/go/@v/list')).toEqual({ path: 'github.com/Azure/go', version: undefined, mutable: true, anyVersion: true });
    expect(keyParts('mutable/example.com/m/@latest')).toEqual({ path: 'example.com/m', version: undefined, mutable: true, anyVersion: true });
    expect(keyParts('mutable/example.com/m/@v/main.info')).toEqual({ path: 'example.com/m', version: 'main', mutable: true, anyVersion: false });
    expect(keyParts('example.com/m/@v/v1.0.0-!r!c1.zip')).toEqual({ path: 'example.com/m', version: 'v1.0.0-RC1', mutable: false, anyVersion: false });
    expect(keyParts('state/instance-id')).toBeNull();
    expect(keyParts('example.com/m/@v/noext')).toBeNull();
  });

  it('drops mutable answers of matching modules; artifacts only when their version is named', () => {
    const match = compilePrefixPatterns('example.com/team');
    const list = keyParts('mutable/example.com/team/svc/@v/list')!;
    const query = keyParts('mutable/example.com/team/@v/v1.2.0.info')!;
    const zip = keyParts('example.com/team/@v/v1.2.0.zip')!;
    const other = keyParts('mutable/example.com/teams/@v/list')!;
    expect(invalidates(match, { pattern: 'example.com/team' }, list)).toBe(true);
    expect(invalidates(match, { pattern: 'example.com/team' }, query)).toBe(true);
    expect(invalidates(match, { pattern: 'example.com/team' }, zip)).toBe(false);
    expect(invalidates(match, { pattern: 'example.com/team' }, other)).toBe(false);
    expect(invalidates(match, { pattern: 'example.com/team', version: 'v1.2.0' }, zip)).toBe(true);
    expect(invalidates(match, { pattern: 'example.com/team', version: 'v1.2.0' }, list)).toBe(true);
    expect(invalidates(match, { pattern: 'example.com/team', version: 'v1.3.0' }, query)).toBe(false);
  });

  it('checks the target an operator gives', () => {
    expect(parseInvalidation('example.com/m')).toEqual({ pattern: 'example.com/m' });
    expect(parseInvalidation('example.com/*@v1.2.3')).toEqual({ pattern: 'example.com/*', version: 'v1.2.3' });
    expect(() => parseInvalidation('example.com/m@latest')).toThrow(/invalid version "latest": give a semantic version/);
    expect(() => parseInvalidation('a.com,b.com')).toThrow(/give one module path or GOPRIVATE-style glob/);
    expect(() => parseInvalidation('')).toThrow(/invalid module pattern/);
  });
});
