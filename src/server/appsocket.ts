// The app answering its own process over a private unix socket: how `gomodproxy prefetch` and
// the server's jobs ask for module files. Going through HTTP, not a function call, is what makes
// every fetch take the path a client's miss takes (streaming into the store while the checks run,
// the one line a failure is answered with), with nothing of it copied. The socket lives in a
// fresh folder only this user can enter (mkdtemp makes it 0700).
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type RequestListener, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { processAlive } from '../cluster/filelock.js';

/** One answer: its status and body (a body must be read to the end or its request aborted). */
export interface AppResponse {
  status: number;
  body: AsyncIterable<Uint8Array>;
}

/** Something that answers module-file requests as the proxy does (GET /<module>/@v/...). */
export interface AppRequester {
  get(path: string, signal?: AbortSignal): Promise<AppResponse>;
}

export class AppSocket implements AppRequester {
  private constructor(
    /** The listening side, for a caller that shuts the app down with it. */
    readonly server: Server,
    private readonly pool: Pool,
    private readonly dir: string,
  ) {}

  /**
   * Listens with `handle` on a new socket; `connections` bounds the requests in flight at once.
   * The folder's name carries the pid, so that what a killed process left is removed here.
   */
  static async open(handle: RequestListener, connections: number, name = 'gomodproxy-app-'): Promise<AppSocket> {
    await removeLeftovers(name);
    const dir = await mkdtemp(path.join(os.tmpdir(), `${name}${process.pid}-`));
    const socketPath = path.join(dir, 'app.sock');
    const server = createServer({ keepAlive: true, requestTimeout: 0 }, handle);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    // The app bounds every upstream wait itself (timeouts.*); this side only reads what it sends.
    const pool = new Pool('http://gomodproxy.invalid', { socketPath, connections, headersTimeout: 0, bodyTimeout: 0 });
    return new AppSocket(server, pool, dir);
  }

  async get(p: string, signal?: AbortSignal): Promise<AppResponse> {
    const res = await this.pool.request({ path: p, method: 'GET', signal });
    return { status: res.statusCode, body: res.body };
  }

  /** Closes the client side only: the caller stops the server (app.shutdown drains it first). */
  async closeClient(): Promise<void> {
    await this.pool.close();
  }

  /** Closes both sides (requests in flight are cut) and removes the socket's folder. */
  async close(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.removeFolder();
  }

  async removeFolder(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Removes the socket folders of processes that are gone (killed before they could remove them). */
async function removeLeftovers(name: string): Promise<void> {
  const tmp = os.tmpdir();
  const entries = await readdir(tmp).catch(() => []);
  for (const e of entries) {
    const m = e.startsWith(name) ? /^(\d+)-[^/]+$/.exec(e.slice(name.length)) : null;
    if (!m || processAlive(Number(m[1]))) continue;
    await rm(path.join(tmp, e), { recursive: true, force: true }).catch(() => undefined);
  }
}
