// Checks on what a source sent, before anything is stored: a bad answer is never cached and
// the client gets a line that says which upstream sent what. (Zips are checked by modzip.)
import { ProxyError } from '../errors.js';
import { ModuleError, canonicalVersion, check, isPseudoVersion, isValid, parseGoMod } from '../module/index.js';
import type { ModuleRef } from '../sources/index.js';

export interface RevInfo {
  Version: string;
  Time?: string;
  Origin?: Record<string, unknown>;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Parses an .info answer. For an immutable request (`requested` set) the Version must be
 * exactly the one asked for, as the go command insists. Returns the parsed info and the bytes
 * to store: re-encoded with only the fields the go command reads, so upstream junk is dropped.
 */
export function checkInfo(data: Buffer, mod: ModuleRef, sourceId: string, requested?: string): { info: RevInfo; bytes: Buffer } {
  const bad = (why: string): ProxyError =>
    new ProxyError(
      'upstream',
      `upstream ${sourceId} sent an invalid .info for ${mod.path}${requested ? `@${requested}` : ''}: ${why}; gomodproxy did not cache it`,
    );
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    throw bad(looksLikeHTML(data) ? 'an HTML page instead of JSON' : 'not JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw bad('not a JSON object');
  const obj = value as Record<string, unknown>;
  const version = obj.Version;
  if (typeof version !== 'string' || !isValid(version)) throw bad(`Version ${JSON.stringify(version)} is not a valid semantic version`);
  if (canonicalVersion(version) !== version) throw bad(`Version ${version} is not canonical`);
  try {
    check(mod.path, version);
  } catch (err) {
    throw bad(err instanceof ModuleError ? err.message : `Version ${version} does not fit the module path`);
  }
  if (requested !== undefined && version !== requested) throw bad(`it describes ${version} instead of the requested ${requested}`);
  const info: RevInfo = { Version: version };
  if (obj.Time !== undefined) {
    if (typeof obj.Time !== 'string' || !RFC3339.test(obj.Time) || Number.isNaN(Date.parse(obj.Time)))
      throw bad(`Time ${JSON.stringify(obj.Time)} is not an RFC 3339 time`);
    info.Time = obj.Time;
  }
  if (obj.Origin !== undefined && obj.Origin !== null) {
    if (typeof obj.Origin !== 'object' || Array.isArray(obj.Origin)) throw bad('Origin is not an object');
    info.Origin = obj.Origin as Record<string, unknown>;
  }
  return { info, bytes: Buffer.from(JSON.stringify(info)) };
}

/** A .mod must be a go.mod file: UTF-8 text the go command's lax parser accepts. */
export function checkMod(data: Buffer, mod: ModuleRef, version: string, sourceId: string): void {
  if (looksLikeHTML(data)) {
    throw new ProxyError('upstream', `upstream ${sourceId} sent an HTML page instead of the go.mod of ${mod.path}@${version}; gomodproxy did not cache it`);
  }
  try {
    parseGoMod(data, `${mod.path}@${version}/go.mod`);
  } catch (err) {
    const why = err instanceof ModuleError ? err.message : String(err);
    throw new ProxyError('upstream', `upstream ${sourceId} sent an invalid go.mod for ${mod.path}@${version} (${why}); gomodproxy did not cache it`);
  }
}

/**
 * A list answer: one version per line (optionally followed by a time, which the go command
 * uses for its latest fallback, so it is kept). Lines that are not valid versions are dropped,
 * as the go command ignores them; an HTML page is refused. Returns lines keyed by version.
 */
export function checkList(data: Buffer, mod: ModuleRef, sourceId: string): Map<string, string> {
  if (looksLikeHTML(data)) {
    throw new ProxyError('upstream', `upstream ${sourceId} sent an HTML page instead of the version list of ${mod.path}; check the upstream URL`);
  }
  const lines = new Map<string, string>();
  for (const raw of data.toString('utf8').split('\n')) {
    const fields = raw.trim().split(/\s+/);
    const v = fields[0];
    if (v && !lines.has(v) && isValid(v) && canonicalVersion(v) === v) lines.set(v, fields.slice(0, 2).join(' '));
  }
  return lines;
}

export function isListableVersion(v: string): boolean {
  return !isPseudoVersion(v);
}

export function looksLikeHTML(data: Buffer): boolean {
  const head = data.subarray(0, 512).toString('latin1').trimStart().toLowerCase();
  return head.startsWith('<!doctype html') || head.startsWith('<html') || head.startsWith('<head') || head.startsWith('<body');
}
