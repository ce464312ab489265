// Network settings' syntax, shared by the schema (to reject a bad value at start, naming where it
// came from) and the server (to use it).
import { isIP } from 'node:net';

/**
 * One trustedProxies entry: an address or a CIDR range. Throws an Error naming the entry for
 * anything else; in particular a range needs a whole prefix length in range ("10.0.0.0/" would
 * otherwise read as /0 and trust every address).
 */
export function parseTrustedProxy(entry: string): { address: string; family: 'ipv4' | 'ipv6'; prefix?: number } {
  const slash = entry.indexOf('/');
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(addr);
  if (version === 0) throw new Error(`"${entry}" is not an IP address or CIDR range (e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8)`);
  const family = version === 6 ? 'ipv6' : 'ipv4';
  if (slash < 0) return { address: addr, family };
  const bits = entry.slice(slash + 1);
  const max = version === 6 ? 128 : 32;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    throw new Error(`"${entry}" needs a prefix length from 0 to ${max} after the "/"`);
  }
  return { address: addr, family, prefix: Number(bits) };
}
