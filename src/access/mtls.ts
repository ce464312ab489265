// TLS client certificates: the TLS layer has already checked the chain against the configured
// CA (credentialsOf passes a certificate on only when socket.authorized); here a verified
// certificate becomes a user, named by its subject CN or a subjectAltName, with groups from
// the configured table.
import type { PeerCertificate } from 'node:tls';
import type { MtlsConfig } from '../config/schema.js';
import type { Principal } from './types.js';

/**
 * Splits Node's subjectaltname string ("DNS:a.example, email:x@y, URI:spiffe://t/w") into
 * [type, value] pairs. Node quotes a value that contains a comma or quote as a JSON string
 * (URI:"https://x/a,b"), so quoted values are decoded rather than split.
 */
export function parseSubjectAltName(san: string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (!san) return out;
  let i = 0;
  while (i < san.length) {
    while (san[i] === ' ' || san[i] === ',') i++;
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (san[i] === '"') {
      let j = i + 1;
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(i, j + 1)) as string;
      } catch {
        value = san.slice(i + 1, j);
      }
      i = j + 1;
    } else {
      const comma = san.indexOf(',', i);
      const end = comma < 0 ? san.length : comma;
      value = san.slice(i, end);
      i = end;
    }
    out.push([type, value]);
  }
  return out;
}

const SAN_TYPE: Record<Exclude<MtlsConfig['userFrom'], 'cn'>, string> = { email: 'email', uri: 'URI', dns: 'DNS' };

export class MtlsMapper {
  constructor(private readonly cfg: MtlsConfig) {}

  /** The user a verified certificate names; null when it lacks the configured field. */
  userOf(cert: PeerCertificate): string | null {
    if (this.cfg.userFrom === 'cn') {
      const cn: unknown = cert.subject?.CN;
      const first = Array.isArray(cn) ? (cn[0] as unknown) : cn;
      return typeof first === 'string' && first !== '' ? first : null;
    }
    const want = SAN_TYPE[this.cfg.userFrom];
    const hit = parseSubjectAltName(cert.subjectaltname).find(([t]) => t === want);
    return hit && hit[1] !== '' ? hit[1] : null;
  }

  /** A principal for a verified certificate, or null when the certificate names nobody. */
  principalOf(cert: PeerCertificate): Principal | null {
    const name = this.userOf(cert);
    if (name === null) return null;
    const groups = Object.hasOwn(this.cfg.groups, name) ? [...(this.cfg.groups[name] as string[])] : [];
    return { name, groups, scopes: [], method: 'mtls' };
  }
}
