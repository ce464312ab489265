// The vulnerability database's shape checks and the affected-version rules, on the cases that
// x/vuln's internal/semver tests spell out: no ranges means every version, a fix ends a range,
// a vulnerability re-introduced after a fix, bare OSV versions against Go's "v" versions.
import { describe, expect, it } from 'vitest';
import { AffectedIndex, VulnDbError, parseDbMeta, parseEntry, parseModulesIndex, parseVulnsIndex, type OsvEntry } from '../../src/vulndb/index.js';

const M = 'example.com/m';

function entry(id: string, events: OsvEntry['affected'][number]['ranges'][number]['events'] | null, extra: Partial<OsvEntry> = {}): OsvEntry {
  return {
    id,
    modified: '2024-01-01T00:00:00Z',
    aliases: [],
    summary: undefined,
    withdrawn: false,
    affected: [{ module: M, ranges: events === null ? [] : [{ type: 'SEMVER', events }] }],
    ...extra,
  };
}

describe('AffectedIndex', () => {
  const index = new AffectedIndex([
    entry('GO-1', [{ introduced: '0' }, { fixed: '1.2.0' }]),
    entry('GO-2', [{ introduced: '1.0.0' }, { fixed: '1.0.5' }, { introduced: '1.1.0' }, { fixed: '1.1.3' }]),
    entry('GO-3', null),
    entry('GO-4', [{ introduced: '2.0.0' }]),
    entry('GO-5', [{ introduced: '0' }], { withdrawn: true }),
  ]);
  const ids = (v: string): Array<[string, string | null]> => index.findings(M, v).map((f) => [f.id, f.fixed]);

  it('a fix ends a range, and the first fix after the version is the one named', () => {
    expect(ids('v0.9.0')).toEqual([
      ['GO-1', 'v1.2.0'],
      ['GO-3', null],
    ]);
    expect(ids('v1.0.2')).toEqual([
      ['GO-1', 'v1.2.0'],
      ['GO-2', 'v1.0.5'],
      ['GO-3', null],
    ]);
    expect(ids('v1.0.5')).toEqual([
      ['GO-1', 'v1.2.0'],
      ['GO-3', null],
    ]);
    // Re-introduced in v1.1.0, fixed again in v1.1.3.
    expect(ids('v1.1.1')).toEqual([
      ['GO-1', 'v1.2.0'],
      ['GO-2', 'v1.1.3'],
      ['GO-3', null],
    ]);
    expect(ids('v1.2.0')).toEqual([['GO-3', null]]);
  });

  it('no ranges is every version; an open range has no fix; withdrawn entries count for nothing', () => {
    expect(ids('v2.3.0+incompatible')).toEqual([
      ['GO-3', null],
      ['GO-4', null],
    ]);
    expect(index.findings(M, 'v0.0.0-20240101000000-abcdefabcdef').map((f) => f.id)).toEqual(['GO-1', 'GO-3']);
    expect(index.findings('example.com/other', 'v1.0.0')).toEqual([]);
    expect(index.has(M)).toBe(true);
    expect(index.findings(M, 'not-a-version')).toEqual([]);
  });
});

describe('shape checks', () => {
  const b = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

  it('db.json needs an RFC 3339 modified time', () => {
    expect(parseDbMeta(b({ modified: '2024-01-01T00:00:00Z' }))).toEqual({ modified: '2024-01-01T00:00:00Z' });
    expect(() => parseDbMeta(b({ modified: 'yesterday' }))).toThrow(VulnDbError);
    expect(() => parseDbMeta(Buffer.from('<html>'))).toThrow(/not JSON/);
  });

  it('vulns.json ids are unique, usable as file names; modules.json names only listed entries', () => {
    const vulns = parseVulnsIndex(b([{ id: 'GO-1', modified: '2024-01-01T00:00:00Z', aliases: ['CVE-1'] }]));
    expect(vulns).toEqual([{ id: 'GO-1', modified: '2024-01-01T00:00:00Z', aliases: ['CVE-1'] }]);
    expect(() => parseVulnsIndex(b([{ id: '../etc/passwd', modified: '2024-01-01T00:00:00Z' }]))).toThrow(/unusable id/);
    expect(() => parseVulnsIndex(b([vulns[0], vulns[0]]))).toThrow(/twice/);
    const known = new Set(['GO-1']);
    expect(parseModulesIndex(b([{ path: M, vulns: [{ id: 'GO-1', modified: '2024-01-01T00:00:00Z', fixed: '1.2.0' }] }]), known)).toHaveLength(1);
    expect(() => parseModulesIndex(b([{ path: M, vulns: [{ id: 'GO-2', modified: '2024-01-01T00:00:00Z' }] }]), known)).toThrow(/does not list/);
  });

  it("an entry's id is its file name, and its ranges have the OSV shape", () => {
    const good = {
      id: 'GO-1',
      modified: '2024-01-01T00:00:00Z',
      affected: [{ package: { name: M, ecosystem: 'Go' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }],
    };
    expect(parseEntry(b(good), 'GO-1').affected).toEqual([{ module: M, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }]);
    expect(() => parseEntry(b(good), 'GO-2')).toThrow(/holds the entry "GO-1", not GO-2/);
    expect(() => parseEntry(b({ ...good, affected: [{ package: { ecosystem: 'Go' } }] }), 'GO-1')).toThrow(/names no module/);
    expect(() =>
      parseEntry(b({ ...good, affected: [{ package: { name: M, ecosystem: 'Go' }, ranges: [{ type: 'SEMVER', events: [{ fixed: 1 }] }] }] }), 'GO-1'),
    ).toThrow(/fixed is not a string/);
  });
});
