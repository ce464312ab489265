// Shared pieces of the sumdb tests: the Go checksum database server (test/gotools/sumdbserver) and an
// in-memory SumdbOps that talks to it.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { SumdbOps } from '../../src/sumdb/index.js';
import { goTool } from '../helpers/gotools.js';
import { registerCleanup } from '../helpers/tmp.js';

export interface GoSumdbServer {
  readonly url: string;
  readonly vkey: string;
  readonly name: string;
  /** Appends records for these go.sum lines; returns the tree size and each module version's record id. */
  add(lines: string | readonly string[]): Promise<{ size: number; ids: Record<string, number> }>;
  /** Rewrites record `record` (default 0) so that earlier trees are no longer prefixes of the log. */
  fork(record?: number): Promise<{ size: number }>;
  /** Paths the database was asked for so far. */
  requests(): Promise<string[]>;
  get(path: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** Starts the Go checksum database on 127.0.0.1:0; it is stopped by cleanupAll (or close()). */
export async function startGoSumdb(name = 'sumdb.test'): Promise<GoSumdbServer> {
  const bin = await goTool('sumdbserver');
  const child = spawn(bin, ['-name', name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  registerCleanup(close);
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (line) => {
      rl.close();
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`sumdbserver exited (${code}) before starting: ${stderr}`)));
  });
  const info = JSON.parse(first) as { url: string; vkey: string; name: string };
  const call = async (method: string, path: string, body?: string): Promise<Buffer> => {
    const res = await fetch(info.url + path, { method, body });
    const data = Buffer.from(await res.arrayBuffer());
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${data.toString().trim()}`), { status: res.status });
    return data;
  };
  return {
    ...info,
    async add(lines) {
      const text = typeof lines === 'string' ? lines : lines.join('\n');
      return JSON.parse((await call('POST', '/-/add', text)).toString()) as { size: number; ids: Record<string, number> };
    },
    async fork(record = 0) {
      return JSON.parse((await call('POST', `/-/fork?record=${record}`)).toString()) as { size: number };
    },
    async requests() {
      return JSON.parse((await call('GET', '/-/log')).toString()) as string[];
    },
    get: (path) => call('GET', path),
    close,
  };
}

/** go.sum lines for a made-up module version (the hashes need not match any real content). */
export function sumLines(path: string, version: string, salt = ''): string[] {
  const h = (s: string): string => `h1:${Buffer.from(s.padEnd(32, '.').slice(0, 32)).toString('base64')}`;
  return [`${path} ${version} ${h(`${path}${version}${salt}zip`)}`, `${path} ${version}/go.mod ${h(`${path}${version}${salt}mod`)}`];
}

/** SumdbOps over maps, reading remote paths through `remote` (the Go server by default). */
export class MemoryOps implements SumdbOps {
  readonly config: Map<string, Buffer>;
  readonly cache: Map<string, Buffer>;
  readonly remoteReads: string[] = [];
  readonly logs: string[] = [];
  readonly securityErrors: string[] = [];
  /** Every successful config write, in order. */
  readonly configWrites: Buffer[] = [];
  /** Config writes refused because the stored value had changed. */
  conflicts = 0;
  /** Delay before a config write, to widen races in concurrency tests. */
  writeDelayMs = 0;
  /** Runs (once) before the next config write: lets a test interleave another writer deterministically. */
  beforeNextWrite: (() => Promise<void>) | null = null;

  constructor(
    private readonly remote: (path: string) => Promise<Buffer>,
    shared?: { config?: Map<string, Buffer>; cache?: Map<string, Buffer> },
  ) {
    this.config = shared?.config ?? new Map();
    this.cache = shared?.cache ?? new Map();
  }

  static forUrl(url: string, shared?: { config?: Map<string, Buffer>; cache?: Map<string, Buffer> }): MemoryOps {
    return new MemoryOps(async (path) => {
      const res = await fetch(url + path);
      const data = Buffer.from(await res.arrayBuffer());
      if (!res.ok) throw Object.assign(new Error(`${res.status} ${res.statusText}: ${data.toString().trim()}`), { status: res.status });
      return data;
    }, shared);
  }

  async readRemote(path: string): Promise<Buffer> {
    this.remoteReads.push(path);
    return this.remote(path);
  }
  async readConfig(file: string): Promise<Buffer> {
    return this.config.get(file) ?? Buffer.alloc(0);
  }
  async writeConfig(file: string, oldValue: Buffer, newValue: Buffer): Promise<boolean> {
    if (this.writeDelayMs > 0) await new Promise((r) => setTimeout(r, this.writeDelayMs));
    const hook = this.beforeNextWrite;
    this.beforeNextWrite = null;
    if (hook) await hook();
    const cur = this.config.get(file) ?? Buffer.alloc(0);
    if (!cur.equals(oldValue)) {
      this.conflicts++;
      return false;
    }
    this.config.set(file, newValue);
    this.configWrites.push(newValue);
    return true;
  }
  async readCache(file: string): Promise<Buffer | null> {
    return this.cache.get(file) ?? null;
  }
  async writeCache(file: string, data: Buffer): Promise<void> {
    this.cache.set(file, data);
  }
  log(msg: string): void {
    this.logs.push(msg);
  }
  securityError(msg: string): void {
    this.securityErrors.push(msg);
  }
}
