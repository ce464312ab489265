// Version queries as the go command resolves them against a proxy (cmd/go/internal/modload/query.go;
// GO-MODULES.md §1.3, §4): `latest`, a shorthand (`v1`, `v1.2`) and comparisons (`<v1.3.0`,
// `>=v1.2.0`) choose among the module's version list; anything else (a branch, a tag, a commit,
// `v1.2.3+meta`) is the upstream's to resolve through an `.info` request. Pure: the caller fetches.
import { compare, isPseudoVersion, isValid, prerelease, sort } from '../module/index.js';
import { isExact } from './prefetch-input.js';

export type Query =
  | { kind: 'exact'; version: string }
  | { kind: 'latest' }
  | { kind: 'prefix'; prefix: string }
  | { kind: 'compare'; op: '<' | '<=' | '>' | '>='; bound: string }
  | { kind: 'revision'; rev: string };

/** The queries that choose from the list. */
export type ListQuery = Extract<Query, { kind: 'latest' | 'prefix' | 'compare' }>;

export class QueryError extends Error {}

/** `v1` and `v1.2`: shorthands for "the highest v1.x.y", "the highest v1.2.y". */
function isSemverPrefix(v: string): boolean {
  return /^v\d+(\.\d+)?$/.test(v);
}

export function classifyQuery(modulePath: string, q: string): Query {
  if (isExact(modulePath, q)) return { kind: 'exact', version: q };
  if (q === 'latest') return { kind: 'latest' };
  const m = /^(<=|>=|<|>)(.*)$/.exec(q);
  if (m) {
    const bound = m[2] as string;
    if (!isValid(bound)) throw new QueryError(`invalid semantic version ${JSON.stringify(bound)} in range ${JSON.stringify(q)}`);
    if (isSemverPrefix(bound)) throw new QueryError(`ambiguous semantic version ${JSON.stringify(bound)} in range ${JSON.stringify(q)}`);
    return { kind: 'compare', op: m[1] as '<' | '<=' | '>' | '>=', bound };
  }
  if (isValid(q) && isSemverPrefix(q)) return { kind: 'prefix', prefix: q };
  return { kind: 'revision', rev: q };
}

export function matchesQuery(q: ListQuery, v: string): boolean {
  switch (q.kind) {
    case 'latest':
      return true;
    case 'prefix':
      // As matchSemverPrefix: a release whose version continues the prefix at a dot.
      return v.length > q.prefix.length && v.startsWith(`${q.prefix}.`) && prerelease(v) === '';
    case 'compare': {
      const d = compare(v, q.bound);
      return q.op === '<' ? d < 0 : q.op === '<=' ? d <= 0 : q.op === '>' ? d > 0 : d >= 0;
    }
  }
}

/** The list's versions that match, retracted ones and pseudo-versions (which a proxy's list omits) left out, lowest first. */
export function candidates(q: ListQuery, versions: readonly string[], retracted: (v: string) => boolean): string[] {
  return sort(versions.filter((v) => isValid(v) && !isPseudoVersion(v) && matchesQuery(q, v) && !retracted(v)));
}

/**
 * The go command's `+incompatible` rule: once the highest compatible candidate has a go.mod of
 * its own, the module has opted into modules, and +incompatible versions are no longer chosen
 * (unless the query itself names one). Returns the compatible candidate to ask about, if any.
 */
export function incompatibleProbe(q: ListQuery, cands: readonly string[]): string | undefined {
  if (q.kind === 'compare' && q.bound.endsWith('+incompatible')) return undefined;
  if (!cands.some((v) => v.endsWith('+incompatible'))) return undefined;
  return cands.filter((v) => !v.endsWith('+incompatible')).pop();
}

/**
 * Releases before pre-releases; among them the highest, or the lowest for `>` and `>=` (the
 * version nearest the bound).
 */
export function choose(q: ListQuery, cands: readonly string[]): string | undefined {
  const lower = q.kind === 'compare' && (q.op === '>' || q.op === '>=');
  const releases = cands.filter((v) => prerelease(v) === '');
  const pool = releases.length > 0 ? releases : [...cands];
  return lower ? pool[0] : pool[pool.length - 1];
}

/** The version whose go.mod says what is retracted: @latest before retractions (highest release, else pre-release). */
export function retractionSource(versions: readonly string[]): string | undefined {
  return choose(
    { kind: 'latest' },
    candidates({ kind: 'latest' }, versions, () => false),
  );
}
