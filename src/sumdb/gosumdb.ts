// GOSUMDB-style settings, read as cmd/go reads them (modfetch/sumdb.go, modfetch/key.go):
// "off", or a verifier key (or the name of a database whose key is built in), optionally followed by
// the URL to reach it at.
import { SumdbError } from './errors.js';
import { newVerifier } from './note.js';

/** The published key of the Go project's checksum database. */
export const GO_SUMDB_NAME = 'sum.golang.org';
export const GO_SUMDB_KEY = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';

/** Databases the go command knows by name. */
const KNOWN: Readonly<Record<string, string>> = { [GO_SUMDB_NAME]: GO_SUMDB_KEY };
/** Names that are another address of a known database (reachable where the main one is not). */
const ALIASES: Readonly<Record<string, string>> = { 'sum.golang.google.cn': GO_SUMDB_NAME };

export interface GosumdbSetting {
  /** The database name, from its key: where it is found unless `url` says otherwise. */
  readonly name: string;
  readonly verifierKey: string;
  /** An explicit base URL (no trailing slash). Without one, the database is reached at https://<name> or through a proxy. */
  readonly url?: string;
}

const FORMS = 'use "off", a known database name (sum.golang.org), or "<verifier key> [<url>]"';

/** Hides URL credentials, which must never reach a log line. */
function redact(s: string): string {
  return s.replace(/\/\/[^/@\s]*@/g, '//***@');
}

function invalid(setting: string, why: string): SumdbError {
  return new SumdbError('config', `invalid GOSUMDB ${JSON.stringify(redact(setting))}: ${redact(why)}; ${FORMS}`);
}

/**
 * Checks that a database name is "host[/path]", as cmd/go does: the name becomes part of URLs
 * (https://<name>/lookup/..., <proxy>/sumdb/<name>/...) so it must not carry a scheme, user, query,
 * fragment, escapes or a trailing slash.
 */
function isValidDbName(name: string): boolean {
  if (name.endsWith('/')) return false;
  const slash = name.indexOf('/');
  const host = slash < 0 ? name : name.slice(0, slash);
  const path = slash < 0 ? '' : name.slice(slash);
  const hostOk = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/.test(host);
  const pathOk = /^(?:\/[A-Za-z0-9._~\-$&,;=:@]+)*$/.test(path);
  return hostOk && pathOk;
}

/** Parses a GOSUMDB value; throws a one-line {@link SumdbError} (code `config`) that says how to fix it. */
export function parseGosumdb(setting: string): GosumdbSetting | 'off' {
  let value = setting.trim();
  if (value === 'off') return 'off';
  const alias = ALIASES[value];
  if (alias !== undefined) value = `${alias} https://${value}`;

  const fields = value.split(/\s+/).filter((f) => f !== '');
  if (fields.length === 0) throw invalid(setting, 'empty');
  if (fields.length > 2) throw invalid(setting, 'too many fields');
  const verifierKey = KNOWN[fields[0]!] ?? fields[0]!;
  if (!verifierKey.includes('+')) {
    throw invalid(setting, `${JSON.stringify(fields[0])} is neither a known database nor a verifier key <name>+<hash>+<key>`);
  }
  let name: string;
  try {
    name = newVerifier(verifierKey).name;
  } catch (err) {
    throw invalid(setting, err instanceof Error ? err.message : String(err));
  }
  if (!isValidDbName(name)) throw invalid(setting, `database name ${JSON.stringify(name)} must be host[/path]`);

  if (fields.length === 1) return { name, verifierKey };
  const rawUrl = fields[1]!;
  let u: URL;
  try {
    u = new URL(rawUrl);
  } catch {
    throw invalid(setting, `${JSON.stringify(rawUrl)} is not a URL`);
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.host === '' || u.search !== '' || u.hash !== '') {
    throw invalid(setting, `URL ${JSON.stringify(rawUrl)} must be http:// or https:// with a host and no query`);
  }
  if (u.username !== '' || u.password !== '') {
    throw invalid(setting, `URL ${JSON.stringify(rawUrl)} must not carry credentials`);
  }
  return { name, verifierKey, url: rawUrl.replace(/\/+$/, '') };
}
