// The Go vulnerability database's files (go.dev/security/vuln/database#api), checked for shape
// before anything is stored: index/db.json (when it last changed), index/vulns.json (every entry
// with its modified time), index/modules.json (which entries name which module, with the fix),
// and ID/<id>.json (an OSV entry). The checks are what govulncheck relies on: valid JSON of the
// right shape, times it can parse, an entry whose id is its file name, indexes that agree.

export class VulnDbError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VulnDbError';
  }
}

export interface DbMeta {
  modified: string;
}

export interface VulnsIndexEntry {
  id: string;
  modified: string;
  aliases?: string[];
}

export interface ModulesIndexEntry {
  path: string;
  vulns: { id: string; modified: string; fixed?: string }[];
}

export interface OsvEvent {
  introduced?: string;
  fixed?: string;
}

export interface OsvRange {
  type: string;
  events: OsvEvent[];
}

export interface OsvAffected {
  module: string;
  ranges: OsvRange[];
}

/** What this proxy keeps of an OSV entry: enough to tell which versions it affects, and to name it. */
export interface OsvEntry {
  id: string;
  modified: string;
  aliases: string[];
  summary: string | undefined;
  withdrawn: boolean;
  affected: OsvAffected[];
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** Entry ids become file names: nothing that could climb out of ID/. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isSafeId(id: string): boolean {
  return SAFE_ID.test(id) && !id.includes('..');
}

function json(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    throw new VulnDbError(`${what} is not JSON`);
  }
}

function time(v: unknown, what: string): string {
  if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) throw new VulnDbError(`${what} is not an RFC 3339 time: ${JSON.stringify(v)}`);
  return v;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new VulnDbError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new VulnDbError(`${what} is not a JSON array`);
  return v;
}

function id(v: unknown, what: string): string {
  if (typeof v !== 'string' || !isSafeId(v)) throw new VulnDbError(`${what} has an unusable id ${JSON.stringify(v)}`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  const a = arr(v, what);
  if (!a.every((x) => typeof x === 'string')) throw new VulnDbError(`${what} must hold strings only`);
  return a as string[];
}

export function parseDbMeta(data: Buffer): DbMeta {
  const o = obj(json(data, 'index/db.json'), 'index/db.json');
  return { modified: time(o.modified, 'index/db.json modified') };
}

export function parseVulnsIndex(data: Buffer): VulnsIndexEntry[] {
  const seen = new Set<string>();
  return arr(json(data, 'index/vulns.json'), 'index/vulns.json').map((x, i) => {
    const o = obj(x, `index/vulns.json[${i}]`);
    const entry: VulnsIndexEntry = { id: id(o.id, `index/vulns.json[${i}]`), modified: time(o.modified, `index/vulns.json[${i}].modified`) };
    if (seen.has(entry.id)) throw new VulnDbError(`index/vulns.json lists ${entry.id} twice`);
    seen.add(entry.id);
    if (o.aliases !== undefined) entry.aliases = strings(o.aliases, `index/vulns.json ${entry.id} aliases`);
    return entry;
  });
}

/** Checks modules.json, and that it names only entries vulns.json lists. */
export function parseModulesIndex(data: Buffer, known: ReadonlySet<string>): ModulesIndexEntry[] {
  return arr(json(data, 'index/modules.json'), 'index/modules.json').map((x, i) => {
    const o = obj(x, `index/modules.json[${i}]`);
    if (typeof o.path !== 'string' || o.path === '' || /\s/.test(o.path)) throw new VulnDbError(`index/modules.json[${i}] has no module path`);
    const path = o.path;
    const vulns = arr(o.vulns, `index/modules.json ${path} vulns`).map((y, j) => {
      const v = obj(y, `index/modules.json ${path} vulns[${j}]`);
      const vid = id(v.id, `index/modules.json ${path} vulns[${j}]`);
      if (!known.has(vid)) throw new VulnDbError(`index/modules.json names ${vid} for ${path}, which index/vulns.json does not list`);
      const out: ModulesIndexEntry['vulns'][number] = { id: vid, modified: time(v.modified, `index/modules.json ${path} ${vid} modified`) };
      if (v.fixed !== undefined) {
        if (typeof v.fixed !== 'string') throw new VulnDbError(`index/modules.json ${path} ${vid} fixed is not a string`);
        out.fixed = v.fixed;
      }
      return out;
    });
    return { path, vulns };
  });
}

/** Checks an OSV entry read from ID/<expectedId>.json. */
export function parseEntry(data: Buffer, expectedId: string): OsvEntry {
  const what = `ID/${expectedId}.json`;
  const o = obj(json(data, what), what);
  if (o.id !== expectedId) throw new VulnDbError(`${what} holds the entry ${JSON.stringify(o.id)}, not ${expectedId}`);
  const modified = time(o.modified, `${what} modified`);
  if (o.summary !== undefined && typeof o.summary !== 'string') throw new VulnDbError(`${what} summary is not a string`);
  if (o.details !== undefined && typeof o.details !== 'string') throw new VulnDbError(`${what} details is not a string`);
  if (o.withdrawn !== undefined && o.withdrawn !== null) time(o.withdrawn, `${what} withdrawn`);
  const affected = arr(o.affected ?? [], `${what} affected`).map((x, i) => {
    const a = obj(x, `${what} affected[${i}]`);
    const pkg = obj(a.package, `${what} affected[${i}].package`);
    if (typeof pkg.name !== 'string' || pkg.name === '') throw new VulnDbError(`${what} affected[${i}] names no module`);
    if (typeof pkg.ecosystem !== 'string') throw new VulnDbError(`${what} affected[${i}] has no ecosystem`);
    const ranges = arr(a.ranges ?? [], `${what} affected[${i}].ranges`).map((r, j) => {
      const rr = obj(r, `${what} affected[${i}].ranges[${j}]`);
      if (typeof rr.type !== 'string') throw new VulnDbError(`${what} affected[${i}].ranges[${j}] has no type`);
      const events = arr(rr.events, `${what} affected[${i}].ranges[${j}].events`).map((e, k) => {
        const ev = obj(e, `${what} affected[${i}].ranges[${j}].events[${k}]`);
        const out: OsvEvent = {};
        for (const key of ['introduced', 'fixed'] as const) {
          if (ev[key] === undefined) continue;
          if (typeof ev[key] !== 'string') throw new VulnDbError(`${what} affected[${i}].ranges[${j}].events[${k}].${key} is not a string`);
          out[key] = ev[key];
        }
        return out;
      });
      return { type: rr.type, events };
    });
    return { module: pkg.name, ranges };
  });
  return {
    id: expectedId,
    modified,
    aliases: strings(o.aliases, `${what} aliases`),
    summary: typeof o.summary === 'string' ? o.summary : undefined,
    withdrawn: o.withdrawn !== undefined && o.withdrawn !== null,
    affected,
  };
}
