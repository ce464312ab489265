// Who requires a module, among the cached ones: read from every cached go.mod once (on first
// use, in the background), then kept from the .mod files stored after that. Edges are per
// module, not per version (the newest requiring version is kept), so memory grows with modules
// and their requirements, not with versions. A dependent whose requiring versions were all
// removed is dropped when asked for (the index no longer has it) or at the next rebuild.
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { artifactKey } from '../cache/keys.js';
import type { StoreChange } from '../cluster/coordination.js';
import { escapePath, escapeVersion, parseGoMod, semver } from '../module/index.js';
import type { ModuleIndex } from './modules.js';

const MOD_MAX_BYTES = 16 << 20;

export class Dependents {
  /** required module -> dependent module -> newest dependent version that requires it. */
  private edges = new Map<string, Map<string, string>>();
  private building: Promise<void> | null = null;
  private built = false;

  constructor(
    private readonly store: BlobStore,
    private readonly index: ModuleIndex,
    private readonly log: Logger,
  ) {}

  /** Those requiring `path`, in path order; null while the first reading is under way. */
  of(path: string): { path: string; version: string }[] | null {
    if (!this.built) {
      void this.ready();
      return null;
    }
    const m = this.edges.get(path);
    if (!m) return [];
    return [...m.entries()]
      .filter(([dep]) => this.index.module(dep) !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([dep, version]) => ({ path: dep, version }));
  }

  ready(): Promise<void> {
    if (this.built) return Promise.resolve();
    this.building ??= this.build().finally(() => {
      this.building = null;
    });
    return this.building;
  }

  /** A .mod stored here or elsewhere: its requirements join the graph (once the graph exists). */
  apply(changes: readonly StoreChange[]): void {
    if (!this.built) return;
    for (const c of changes) {
      if (c.kind !== 'mod' || c.size === null) continue;
      void this.read(c.module, c.version).catch(() => undefined);
    }
  }

  private async build(): Promise<void> {
    await this.index.ready();
    const started = Date.now();
    this.edges = new Map();
    const work: { path: string; version: string }[] = [];
    for (const { path } of this.index.search('', { offset: 0, limit: Number.MAX_SAFE_INTEGER }).modules) {
      for (const v of this.index.versions(path)) if (v.mod !== undefined) work.push({ path, version: v.version });
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < work.length) {
        const w = work[next++] as { path: string; version: string };
        await this.read(w.path, w.version).catch(() => undefined);
      }
    };
    // Few at a time: this runs beside the pages and the hot path, and is not in a hurry.
    await Promise.all(Array.from({ length: 4 }, worker));
    this.built = true;
    this.log.info({ modFiles: work.length, ms: Date.now() - started }, 'read the requirements of every cached go.mod');
  }

  private async read(path: string, version: string): Promise<void> {
    const got = await this.store.getBuffer(artifactKey(escapePath(path), escapeVersion(version), 'mod'), MOD_MAX_BYTES);
    if (!got) return;
    const f = parseGoMod(got.data, `${path}@${version}/go.mod`);
    for (const r of f.require) {
      let m = this.edges.get(r.path);
      if (!m) this.edges.set(r.path, (m = new Map()));
      const had = m.get(path);
      if (had === undefined || semver.compare(version, had) > 0) m.set(path, version);
    }
  }
}
