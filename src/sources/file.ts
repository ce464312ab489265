// A file:///abs/path GOPROXY: a folder in the download-cache layout (another gomodproxy's data
// folder, a GOMODCACHE/cache/download, an air-gapped copy).
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProxyError } from '../errors.js';
import { MAX_GOMOD_BYTES, MAX_INFO_BYTES, MAX_LIST_BYTES, type ModuleRef, type ModuleSource, type VersionRef, type ZipBody } from './types.js';

export class FileSource implements ModuleSource {
  readonly id: string;
  private readonly root: string;

  constructor(url: string) {
    this.id = url;
    this.root = fileURLToPath(url);
  }

  list(mod: ModuleRef): Promise<Buffer> {
    return this.read(`${mod.escaped}/@v/list`, MAX_LIST_BYTES, `${mod.path}: no list of versions`);
  }

  latest(mod: ModuleRef): Promise<Buffer> {
    return this.read(`${mod.escaped}/@latest`, MAX_INFO_BYTES, `${mod.path}@latest`);
  }

  info(mod: ModuleRef, v: VersionRef): Promise<Buffer> {
    return this.read(`${mod.escaped}/@v/${v.escaped}.info`, MAX_INFO_BYTES, `${mod.path}@${v.version}`);
  }

  mod(mod: ModuleRef, v: VersionRef): Promise<Buffer> {
    return this.read(`${mod.escaped}/@v/${v.escaped}.mod`, MAX_GOMOD_BYTES, `${mod.path}@${v.version}`);
  }

  async zip(mod: ModuleRef, v: VersionRef): Promise<ZipBody> {
    const file = this.file(`${mod.escaped}/@v/${v.escaped}.zip`);
    try {
      const st = await stat(file);
      return { stream: createReadStream(file), size: st.size };
    } catch (err) {
      throw this.error(err, `${mod.path}@${v.version}`);
    }
  }

  private file(rel: string): string {
    // Keys come from checked module paths; resolve and re-check anyway so nothing escapes the root.
    const full = path.resolve(this.root, rel);
    if (!full.startsWith(this.root + path.sep)) throw new ProxyError('bad-request', `invalid path ${rel}`);
    return full;
  }

  private async read(rel: string, max: number, what: string): Promise<Buffer> {
    try {
      const file = this.file(rel);
      const st = await stat(file);
      if (st.size > max) throw new ProxyError('upstream', `${this.id}: ${rel} is larger than the ${max}-byte limit`);
      return await readFile(file);
    } catch (err) {
      throw this.error(err, what);
    }
  }

  private error(err: unknown, what: string): ProxyError {
    if (err instanceof ProxyError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return new ProxyError('not-found', `not found: ${what} (not in ${this.id})`);
    // As the go command: a file it may not read is not "missing", it is an error.
    return new ProxyError('upstream', `cannot read ${what} from ${this.id} (${code ?? (err as Error).message}); check the folder's permissions`, {
      cause: err,
    });
  }
}

/** A source that answers "not here" to everything, with its own reason: `off`, or `direct` when no VCS source is configured. */
export class RefusingSource implements ModuleSource {
  constructor(
    readonly id: string,
    private readonly reason: (what: string) => string,
  ) {}
  private fail(what: string): Promise<never> {
    return Promise.reject(new ProxyError('not-found', this.reason(what)));
  }
  list(mod: ModuleRef): Promise<Buffer> {
    return this.fail(mod.path);
  }
  latest(mod: ModuleRef): Promise<Buffer> {
    return this.fail(`${mod.path}@latest`);
  }
  info(mod: ModuleRef, v: VersionRef): Promise<Buffer> {
    return this.fail(`${mod.path}@${v.version}`);
  }
  mod(mod: ModuleRef, v: VersionRef): Promise<Buffer> {
    return this.fail(`${mod.path}@${v.version}`);
  }
  zip(mod: ModuleRef, v: VersionRef): Promise<ZipBody> {
    return this.fail(`${mod.path}@${v.version}`);
  }
}

/** The `off` entry, in the go command's words. */
export const offSource = (): ModuleSource =>
  new RefusingSource('off', (what) => `module lookup disabled by upstream=off (${what} is not in gomodproxy's cache)`);

/** `direct` before a VCS source is configured: "not here", so the go command moves on to its own next entry. */
export const unconfiguredDirectSource = (): ModuleSource =>
  new RefusingSource(
    'direct',
    (what) =>
      `not found: ${what}: gomodproxy has no direct (version control) source configured; fetch it directly with GOPROXY=...,direct on the client or configure one on the proxy`,
  );
