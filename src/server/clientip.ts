// Who is on the other end: the socket's address, or, when the socket belongs to a reverse proxy
// we trust, the address it reports in X-Forwarded-For. Headers from anyone else are ignored,
// so a client cannot pick its own address for rate limits and the audit log. (X-Forwarded-Proto
// is not used: gomodproxy builds no absolute URLs, so it never needs to know the client's scheme.)
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { parseTrustedProxy } from '../config/index.js';

/** An X-Forwarded-For hop as an address: plain, or with a port as some proxies write it (1.2.3.4:5678, [2001:db8::1]:5678). */
function hopAddress(hop: string): string | null {
  if (isIP(hop) !== 0) return hop;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/.exec(hop);
  if (v6 && isIP(v6[1] as string) === 6) return v6[1] as string;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop);
  if (v4 && isIP(v4[1] as string) === 4) return v4[1] as string;
  return null;
}

export class ClientAddresses {
  private readonly trusted: BlockList | null;

  constructor(trustedProxies: string[]) {
    if (trustedProxies.length === 0) {
      this.trusted = null;
      return;
    }
    const list = new BlockList();
    for (const entry of trustedProxies) {
      const { address, family, prefix } = parseTrustedProxy(entry.trim());
      if (prefix === undefined) list.addAddress(address, family);
      else list.addSubnet(address, prefix, family);
    }
    this.trusted = list;
  }

  private isTrusted(addr: string): boolean {
    if (!this.trusted) return false;
    const plain = addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
    const family = isIP(plain);
    return family !== 0 && this.trusted.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** The client's address: the nearest hop in X-Forwarded-For that is not one of our trusted proxies. */
  of(req: IncomingMessage): string {
    const remote = req.socket.remoteAddress ?? '';
    if (!this.trusted || !this.isTrusted(remote)) return remote;
    const header = req.headers['x-forwarded-for'];
    const value = Array.isArray(header) ? header.join(',') : header;
    if (!value) return remote;
    const hops = value
      .split(',')
      .map((h) => h.trim())
      .filter((h) => h !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hopAddress(hops[i] as string);
      // Not an address ("unknown", garbage): nothing further left can be believed.
      if (hop === null) return remote;
      if (!this.isTrusted(hop)) return hop;
    }
    return hopAddress(hops[0] as string) ?? remote;
  }
}
