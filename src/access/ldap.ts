// LDAP: the user's password is checked by binding as the user, either at a DN built from a
// template (uid={user},ou=people,...) or at the DN a service account finds (search-then-bind).
// Groups come from the user's memberOf attribute or from a group search. A server that cannot
// be reached is an outage (503 naming the server), never a 401: telling a user their password
// is wrong while the directory is down sends them to reset a password that is fine.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Client, InvalidCredentialsError, ResultCodeError, type Entry } from 'ldapts';
import type { LdapConfig } from '../config/schema.js';
import { ProxyError, errorMessage } from '../errors.js';

export interface LdapUser {
  dn: string;
  groups: string[];
}

export type LdapVerdict = { ok: true; user: LdapUser } | { ok: false; reason: 'bad-password' | 'unknown-user' };

/** RFC 4514: escapes a value placed into a DN, so a user name cannot add RDNs or change the base. */
export function escapeDnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    const code = c.charCodeAt(0);
    if (c === '\0') out += '\\00';
    else if (',+"\\<>;='.includes(c)) out += `\\${c}`;
    else if ((i === 0 && (c === ' ' || c === '#')) || (i === value.length - 1 && c === ' ')) out += `\\${c}`;
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return out;
}

/** RFC 4515: escapes a value placed into a search filter, so a user name cannot widen the search. */
export function escapeFilter(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The value of a DN's first RDN: cn=devs,ou=groups,... -> devs (memberOf values name groups this way). */
export function firstRdnValue(dn: string): string {
  let value = '';
  let seenEquals = false;
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i] as string;
    if (c === '\\' && i + 1 < dn.length) {
      const hex = dn.slice(i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        value += seenEquals ? String.fromCharCode(parseInt(hex, 16)) : '';
        i += 2;
      } else {
        value += seenEquals ? (dn[i + 1] as string) : '';
        i += 1;
      }
      continue;
    }
    if (!seenEquals) {
      if (c === '=') seenEquals = true;
      continue;
    }
    if (c === ',' || c === '+') break;
    value += c;
  }
  return value.trim();
}

function values(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  if (!key) return [];
  const v = entry[key];
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

export class LdapAuthenticator {
  private readonly tlsOptions: ConnectionOptions | undefined;

  constructor(private readonly cfg: LdapConfig) {
    if (cfg.caFile) {
      let ca: Buffer;
      try {
        ca = readFileSync(cfg.caFile);
      } catch (err) {
        throw new Error(`auth.ldap.caFile ${cfg.caFile} cannot be read: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
      }
      this.tlsOptions = { ca, minVersion: 'TLSv1.2' };
    } else {
      this.tlsOptions = { minVersion: 'TLSv1.2' };
    }
  }

  get url(): string {
    return this.cfg.url;
  }

  /**
   * Checks user and password against the directory. Resolves a verdict for a wrong password or an
   * unknown user; rejects with a 503 ProxyError when the directory cannot answer.
   */
  async verify(user: string, password: string): Promise<LdapVerdict> {
    // An empty password would be an "unauthenticated bind", which LDAP servers accept for any DN.
    if (password === '') return { ok: false, reason: 'bad-password' };
    if (user === '' || user.length > 256) return { ok: false, reason: 'unknown-user' };
    try {
      const dn = this.cfg.search ? await this.findUserDn(user) : this.templateDn(user);
      if (dn === null) return { ok: false, reason: 'unknown-user' };
      const client = this.client();
      try {
        await this.secure(client);
        try {
          await client.bind(dn, password);
        } catch (err) {
          if (err instanceof InvalidCredentialsError) return { ok: false, reason: 'bad-password' };
          throw err;
        }
        const groups = await this.groupsOf(client, dn, user);
        return { ok: true, user: { dn, groups } };
      } finally {
        await client.unbind().catch(() => undefined);
      }
    } catch (err) {
      throw this.outage(err);
    }
  }

  private templateDn(user: string): string {
    return (this.cfg.userDn as string).replaceAll('{user}', escapeDnValue(user));
  }

  /** Search-then-bind: the service account finds exactly one entry for the user. */
  private async findUserDn(user: string): Promise<string | null> {
    const s = this.cfg.search!;
    const client = this.client();
    try {
      await this.secure(client);
      try {
        await client.bind(s.bindDn, s.bindPassword);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) {
          throw new ProxyError(
            'unavailable',
            `LDAP server ${this.cfg.url} refused the service account ${s.bindDn}: check auth.ldap.search.bindDn and bindPassword`,
          );
        }
        throw err;
      }
      const { searchEntries } = await client.search(s.baseDn, {
        scope: 'sub',
        filter: s.filter.replaceAll('{user}', escapeFilter(user)),
        attributes: ['1.1'],
        sizeLimit: 2,
        timeLimit: Math.ceil(this.cfg.timeout / 1000),
      });
      // Two entries for one login name is a directory problem; refusing is the only safe answer.
      return searchEntries.length === 1 ? (searchEntries[0] as Entry).dn : null;
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** Reads groups on the connection bound as the user (who may read their own entry and the groups). */
  private async groupsOf(client: Client, dn: string, user: string): Promise<string[]> {
    const g = this.cfg.groups;
    if (g.from === 'none') return [];
    const timeLimit = Math.ceil(this.cfg.timeout / 1000);
    if (g.from === 'memberOf') {
      const { searchEntries } = await client.search(dn, { scope: 'base', attributes: ['memberOf'], timeLimit });
      const entry = searchEntries[0];
      return entry
        ? [
            ...new Set(
              values(entry, 'memberOf')
                .map(firstRdnValue)
                .filter((n) => n !== ''),
            ),
          ]
        : [];
    }
    const { searchEntries } = await client.search(g.baseDn as string, {
      scope: 'sub',
      filter: g.filter.replaceAll('{dn}', escapeFilter(dn)).replaceAll('{user}', escapeFilter(user)),
      attributes: [g.nameAttribute],
      sizeLimit: 1000,
      timeLimit,
    });
    return [...new Set(searchEntries.flatMap((e) => values(e, g.nameAttribute)))];
  }

  private client(): Client {
    return new Client({
      url: this.cfg.url,
      timeout: this.cfg.timeout,
      connectTimeout: this.cfg.timeout,
      // ldapts speaks TLS from the first byte whenever tlsOptions is set, even for ldap://:
      // pass them only for ldaps://; StartTLS gets them in secure().
      tlsOptions: this.cfg.url.startsWith('ldaps://') ? this.tlsOptions : undefined,
      strictDN: true,
    });
  }

  private async secure(client: Client): Promise<void> {
    if (this.cfg.startTls && this.cfg.url.startsWith('ldap://')) await client.startTLS(this.tlsOptions);
  }

  /** Anything but a definite "wrong credentials" is the directory failing us: 503 with the cause. */
  private outage(err: unknown): ProxyError {
    if (err instanceof ProxyError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    const what =
      err instanceof ResultCodeError
        ? `${err.name} (LDAP result ${err.code})`
        : code && code !== errorMessage(err)
          ? `${code} (${errorMessage(err)})`
          : errorMessage(err);
    const tls = typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|HOSTNAME/.test(code);
    const hint = tls
      ? "the directory's TLS certificate is not trusted: set auth.ldap.caFile to the CA that signed it"
      : 'the directory may be down or auth.ldap is misconfigured';
    return new ProxyError('unavailable', `cannot check credentials: LDAP server ${this.cfg.url} failed: ${what}; ${hint}`, { cause: err });
  }
}
