// The .info answer, byte for byte as the go command writes it into its download cache
// (modfetch writeDiskStat): {"Version","Time","Origin"} with the Origin cleaned of what only
// matters for re-checking a query (TagPrefix, TagSum, RepoSum; Ref for pseudo-versions).
import { isPseudoVersion } from '../../module/index.js';
import type { Origin } from './codehost.js';
import type { RevInfo } from './resolve.js';

/** time.Time's JSON form for a UTC time in whole seconds (RFC 3339). */
export function goTime(t: Date): string {
  return t.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** encoding/json escapes these even inside strings. */
function goJSON(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function cleanOrigin(origin: Origin, version: string): Origin {
  // Field order is the Go struct's: VCS, URL, Subdir, Hash, TagPrefix, TagSum, Ref, RepoSum.
  const o: Origin = {};
  if (origin.VCS) o.VCS = origin.VCS;
  if (origin.URL) o.URL = origin.URL;
  if (origin.Subdir) o.Subdir = origin.Subdir;
  if (origin.Hash) o.Hash = origin.Hash;
  if (origin.Ref && !isPseudoVersion(version)) o.Ref = origin.Ref;
  return o;
}

export function infoJSON(r: RevInfo): Buffer {
  const body: { Version: string; Time: string; Origin?: Origin } = { Version: r.version, Time: goTime(r.time) };
  const o = cleanOrigin(r.origin, r.version);
  if (Object.keys(o).length > 0) body.Origin = o;
  return Buffer.from(goJSON(body));
}
