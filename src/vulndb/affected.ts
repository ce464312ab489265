// Which module versions an OSV entry affects, as golang.org/x/vuln decides it (internal/semver
// Affects and ContainsSemver): OSV versions carry no "v"; no ranges, or no SEMVER range, means
// every version; within a range, events sorted by version switch "affected" on at an
// introduced and off at a fixed. Built once per snapshot into a map by module, so a lookup on
// the request path is one Map.get and a few comparisons.
import { compare, isValid } from '../module/index.js';
import type { OsvEntry, OsvRange } from './schema.js';

/** One known vulnerability of a module version. */
export interface Finding {
  id: string;
  aliases: string[];
  summary: string | null;
  /** The first version that fixes it for this version (with "v"), or null when none does yet. */
  fixed: string | null;
}

interface Advisory {
  id: string;
  aliases: string[];
  summary: string | null;
  ranges: OsvRange[];
}

function v(osv: string): string {
  const s = osv.startsWith('v') ? osv : osv.startsWith('go') ? `v${osv.slice(2)}` : `v${osv}`;
  return s;
}

function less(a: string, b: string): boolean {
  return compare(v(a), v(b)) < 0;
}

/** The range's answer for `version`: undefined when it does not contain it, else the fix that ends it (or null). */
function containing(r: OsvRange, version: string): string | null | undefined {
  if (r.events.length === 0) return null;
  const events = [...r.events].sort((e1, e2) => {
    if (e1.introduced === '0') return -1;
    if (e2.introduced === '0') return 1;
    const a = e1.fixed ?? e1.introduced ?? '';
    const b = e2.fixed ?? e2.introduced ?? '';
    return compare(v(a), v(b));
  });
  let affected = false;
  for (const e of events) {
    if (!affected && e.introduced !== undefined) {
      affected = e.introduced === '0' || !less(version, e.introduced);
    } else if (affected && e.fixed !== undefined) {
      if (less(version, e.fixed)) return v(e.fixed);
      affected = false;
    }
  }
  return affected ? null : undefined;
}

/** Whether (and until which fix) an advisory's ranges contain `version`. */
function affects(ranges: readonly OsvRange[], version: string): { fixed: string | null } | null {
  const semver = ranges.filter((r) => r.type === 'SEMVER');
  if (semver.length === 0) return { fixed: null };
  for (const r of semver) {
    const c = containing(r, version);
    if (c !== undefined) return { fixed: c };
  }
  return null;
}

export class AffectedIndex {
  private readonly byModule = new Map<string, Advisory[]>();

  constructor(entries: Iterable<OsvEntry>) {
    for (const e of entries) {
      // A withdrawn entry is no known vulnerability (govulncheck reports none for it either).
      if (e.withdrawn) continue;
      for (const a of e.affected) {
        let list = this.byModule.get(a.module);
        if (!list) {
          list = [];
          this.byModule.set(a.module, list);
        }
        list.push({ id: e.id, aliases: e.aliases, summary: e.summary ?? null, ranges: a.ranges });
      }
    }
    for (const list of this.byModule.values()) list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Whether the database names the module at all (the cheap test before a version check). */
  has(modulePath: string): boolean {
    return this.byModule.has(modulePath);
  }

  get modules(): number {
    return this.byModule.size;
  }

  /** The known vulnerabilities of module@version, by id. */
  findings(modulePath: string, version: string): Finding[] {
    const list = this.byModule.get(modulePath);
    if (!list || !isValid(version)) return [];
    const out: Finding[] = [];
    for (const a of list) {
      const hit = affects(a.ranges, version);
      if (hit) out.push({ id: a.id, aliases: a.aliases, summary: a.summary, fixed: hit.fixed });
    }
    return out;
  }
}
