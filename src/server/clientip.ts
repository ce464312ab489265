// Who is on the other end: the socket's address, or, when the socket belongs to a reverse proxy
// we trust, the address it reports in X-Forwarded-For. Headers from anyone else are ignored,
// so a client cannot pick its own address for rate limits and the audit log.
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

export class ClientAddresses {
  private readonly trusted: BlockList | null;

  constructor(trustedProxies: string[]) {
    if (trustedProxies.length === 0) {
      this.trusted = null;
      return;
    }
    const list = new BlockList();
    for (const entry of trustedProxies) {
      const [addr, bits] = entry.split('/');
      const family = isIP(addr ?? '');
      if (family === 0) throw new Error(`trustedProxies: "${entry}" is not an IP address or CIDR range`);
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(addr as string, type);
      else list.addSubnet(addr as string, Number(bits), type);
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
    const hops = value.split(',').map((h) => h.trim()).filter((h) => h !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] as string;
      if (isIP(hop) === 0) return remote;
      if (!this.isTrusted(hop)) return hop;
    }
    return hops[0] ?? remote;
  }

  /** https when the connection is TLS, or a trusted proxy says its client used TLS. */
  protocol(req: IncomingMessage): 'http' | 'https' {
    if ((req.socket as { encrypted?: boolean }).encrypted) return 'https';
    if (!this.isTrusted(req.socket.remoteAddress ?? '')) return 'http';
    const proto = req.headers['x-forwarded-proto'];
    return typeof proto === 'string' && proto.split(',')[0]?.trim().toLowerCase() === 'https' ? 'https' : 'http';
  }
}
