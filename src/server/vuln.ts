// The Go vulnerability database protocol under vulndb.path (default /vuln/): index/db.json,
// index/modules.json, index/vulns.json and ID/<id>.json, each also as .json.gz, from the
// mirror in the store. govulncheck asks for the .json.gz and gunzips the body itself, so that
// answer is the gzip file as it is (Content-Type application/gzip, no Content-Encoding, which
// Go's HTTP client would undo first); a .json goes out gzip-encoded to clients that accept it.
import { ProxyError } from '../errors.js';
import { VULNDB_PREFIX, type VulnMirror } from '../vulndb/index.js';
import { etagMatches, httpDate, sendBody, type Exchange } from './respond.js';
import type { BlobStore } from '../cache/blobstore.js';

const ENDPOINT = /^(index\/(?:db|modules|vulns)|ID\/[A-Za-z0-9][A-Za-z0-9._-]{0,127})\.json(\.gz)?$/;
const MAX_FILE = 128 << 20;

export interface VulnServiceDeps {
  mirror: VulnMirror;
  store: BlobStore;
  offline: boolean;
}

export class VulnService {
  constructor(private readonly d: VulnServiceDeps) {}

  /** `rest` is what follows the configured path (no leading slash), query string included. */
  async serve(ex: Exchange, rest: string): Promise<void> {
    ex.kind = 'vuln';
    const method = ex.req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      ex.res.setHeader('Allow', 'GET, HEAD');
      throw new ProxyError('method', `method ${method} is not allowed; the vulnerability database answers GET and HEAD`);
    }
    const q = rest.indexOf('?');
    const path = q < 0 ? rest : rest.slice(0, q);
    const m = ENDPOINT.exec(path);
    if (!m || path.includes('..')) {
      throw new ProxyError(
        'not-found',
        `not found: ${path} is not a file of the Go vulnerability database (index/db.json, index/modules.json, index/vulns.json, ID/<id>.json, each also .json.gz)`,
      );
    }
    const refreshed = await this.d.mirror.beforeRead();
    if (!this.d.mirror.held) {
      if (this.d.offline) {
        throw new ProxyError(
          'not-found',
          'not found: gomodproxy is offline and holds no copy of the vulnerability database; bring a data folder with vulndb/ from a connected gomodproxy',
        );
      }
      throw new ProxyError(
        'upstream',
        `the vulnerability database is not mirrored yet: ${refreshed?.reason ?? 'its first refresh has not finished'}; retry later`,
      );
    }
    const gz = m[2] !== undefined;
    const wantsGzip = !gz && /\bgzip\b/.test(String(ex.req.headers['accept-encoding'] ?? ''));
    const key = `${VULNDB_PREFIX}${m[1] as string}.json${gz || wantsGzip ? '.gz' : ''}`;
    const got = await this.d.store.getBuffer(key, MAX_FILE);
    if (!got) throw new ProxyError('not-found', `not found: the vulnerability database has no ${m[1] as string}.json`);
    // The .json.gz blob has its own validator, so the encoded and plain answers never share one.
    const etag = got.stat.etag;
    const headers = ['Cache-Control', 'no-cache', 'Last-Modified', httpDate(got.stat.mtimeMs), 'ETag', etag];
    if (!gz) headers.push('Vary', 'Accept-Encoding');
    if (etagMatches(ex.req.headers['if-none-match'], etag)) {
      ex.cache = 'hit';
      ex.res.writeHead(304, headers);
      ex.res.end();
      ex.finish(304, 0);
      return;
    }
    ex.cache = 'hit';
    headers.push('Content-Type', gz ? 'application/gzip' : 'application/json', 'Content-Length', String(got.data.length));
    if (wantsGzip) headers.push('Content-Encoding', 'gzip');
    sendBody(ex, 200, headers, got.data);
  }
}
