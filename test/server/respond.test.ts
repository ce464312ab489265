// The access line is the JSON a parser reads back field for field, whatever the request held:
// quotes, backslashes, control characters, lone surrogates, other scripts.
import { describe, expect, it } from 'vitest';
import { accessLine, type AccessFields } from '../../src/server/respond.js';

const base: AccessFields = {
  method: 'GET',
  path: '/example.com/m/@v/v1.0.0.info',
  kind: 'info',
  module: 'example.com/m',
  version: 'v1.0.0',
  status: 200,
  cache: 'hit',
  source: undefined,
  bytes: 50,
  seconds: 0.00012,
  ip: '127.0.0.1',
  user: undefined,
  error: undefined,
};

const HOSTILE = [
  'plain',
  'a"b',
  'a\\b',
  'line\nbreak',
  'tab\there',
  '\u0000nul',
  '\u001f',
  '\u007f',
  'caf\u00e9',
  '\u2028\u2029',
  '\ud800',
  'x\udfff',
  '😀',
  '"},"admin":true,"x":"',
];

describe('accessLine', () => {
  it.each(HOSTILE)('reads back every field as given: %j', (s) => {
    const fields = { ...base, path: `/${s}`, module: s, version: s, source: s, ip: s, user: s, error: s };
    const line = accessLine(fields);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    const got = JSON.parse(line) as Record<string, unknown>;
    for (const k of ['path', 'module', 'version', 'source', 'ip', 'user', 'error'] as const) expect(got[k], k).toBe(fields[k]);
    expect(got).toMatchObject({ level: 'info', log: 'access', method: 'GET', kind: 'info', status: 200, cache: 'hit', bytes: 50, ms: 0.1, msg: 'request' });
    expect(Object.keys(got)).not.toContain('admin');
    // Written as JSON.stringify writes each string.
    expect(line).toContain(`"module":${JSON.stringify(s)}`);
  });
});
