// Pins: module patterns garbage collection never evicts. They come from the config (gc.pin) and
// from operators at run time (the admin API), and the latter live in the store (state/pins.json),
// so every worker, every instance and the gc command see the same ones. A pin is one GOPRIVATE-
// style glob or module path prefix, as GOPRIVATE matches them, optionally @<version>.
import type { BlobStore } from '../cache/blobstore.js';
import type { Coordination } from '../cluster/coordination.js';
import { ProxyError } from '../errors.js';
import { ModuleError, compilePrefixPatterns, parsePatternAtVersion, type PatternAtVersion } from '../module/index.js';

export const PINS_KEY = 'state/pins.json';
const MAX_PINS_BYTES = 4 << 20;
const MAX_NOTE_CHARS = 1000;

export interface Pin {
  /** As given, normalized: "example.com/team/*", "example.com/m@v1.2.3". */
  pattern: string;
  note?: string;
  /** config: gc.pin (changed only there); api: added at run time. */
  source: 'config' | 'api';
  /** Who added it (api pins). */
  by?: string;
  /** When it was added (api pins), RFC 3339. */
  at?: string;
}

/** Which pin keeps a module version, if any. */
export type PinMatcher = (modulePath: string, version: string) => Pin | null;

interface PinsFile {
  format: 1;
  pins: Omit<Pin, 'source'>[];
}

/** Reads an operator's pattern, or a 400 that says what is wrong with it. */
export function parsePin(text: string): PatternAtVersion & { normalized: string } {
  try {
    const p = parsePatternAtVersion(text.trim());
    return { ...p, normalized: p.version === undefined ? p.pattern : `${p.pattern}@${p.version}` };
  } catch (err) {
    if (err instanceof ModuleError) throw new ProxyError('bad-request', err.message);
    throw err;
  }
}

export class PinStore {
  private readonly configPins: Pin[];

  constructor(
    private readonly store: BlobStore,
    private readonly coordination: Pick<Coordination, 'tryLock'>,
    configPatterns: readonly string[] = [],
  ) {
    this.configPins = configPatterns.map((p) => ({ pattern: parsePin(p).normalized, source: 'config' }));
  }

  /** Every pin: the config's first, then those added at run time. */
  async list(): Promise<Pin[]> {
    const stored = await this.read();
    return [...this.configPins, ...stored.pins.map((p): Pin => ({ ...p, source: 'api' }))];
  }

  /** Adds a pin (or gives an existing one a new note); `created` is false when it was there already. */
  async add(text: string, opts: { note?: string; by?: string } = {}): Promise<{ pin: Pin; created: boolean }> {
    const { normalized } = parsePin(text);
    if (opts.note !== undefined && opts.note.length > MAX_NOTE_CHARS)
      throw new ProxyError('bad-request', `the note is longer than ${MAX_NOTE_CHARS} characters`);
    const fromConfig = this.configPins.find((p) => p.pattern === normalized);
    if (fromConfig) return { pin: fromConfig, created: false };
    return this.update((file) => {
      const existing = file.pins.find((p) => p.pattern === normalized);
      if (existing) {
        if (opts.note !== undefined) existing.note = opts.note;
        return { pin: { ...existing, source: 'api' }, created: false };
      }
      const pin: Omit<Pin, 'source'> = { pattern: normalized, at: new Date().toISOString() };
      if (opts.note !== undefined) pin.note = opts.note;
      if (opts.by !== undefined) pin.by = opts.by;
      file.pins.push(pin);
      return { pin: { ...pin, source: 'api' }, created: true };
    });
  }

  /** Removes a pin added at run time; null when there is none. A config pin is refused: it would come back at the next start. */
  async remove(text: string): Promise<Pin | null> {
    const { normalized } = parsePin(text);
    if (this.configPins.some((p) => p.pattern === normalized)) {
      throw new ProxyError('conflict', `${normalized} is pinned by gc.pin in the configuration; remove it there (and restart) to unpin it`);
    }
    return this.update((file) => {
      const i = file.pins.findIndex((p) => p.pattern === normalized);
      if (i < 0) return null;
      const [gone] = file.pins.splice(i, 1);
      return gone ? { ...gone, source: 'api' } : null;
    });
  }

  /** The pins as they are now, compiled once for a collection. */
  async matcher(): Promise<PinMatcher> {
    return compilePins(await this.list());
  }

  private async read(): Promise<PinsFile> {
    const got = await this.store.getBuffer(PINS_KEY, MAX_PINS_BYTES);
    if (!got) return { format: 1, pins: [] };
    let v: unknown;
    try {
      v = JSON.parse(got.data.toString('utf8'));
    } catch {
      // Never evict on a guess: a pin file that cannot be read stops the collection.
      throw new Error(`${PINS_KEY} in ${this.store.description} is not valid JSON; fix or remove it`);
    }
    const pins = (v as { pins?: unknown }).pins;
    if (!Array.isArray(pins)) throw new Error(`${PINS_KEY} in ${this.store.description} has no "pins" list; fix or remove it`);
    return { format: 1, pins: pins.filter((p): p is Omit<Pin, 'source'> => typeof (p as { pattern?: unknown })?.pattern === 'string') };
  }

  /** Read, change, write under a lock shared with every process and instance, so no update is lost. */
  private async update<T>(change: (file: PinsFile) => T): Promise<T> {
    for (let i = 0; i < 400; i++) {
      const lock = await this.coordination.tryLock(PINS_KEY);
      if (!lock) {
        await new Promise((res) => setTimeout(res, 25));
        continue;
      }
      try {
        const file = await this.read();
        const before = JSON.stringify(file);
        const result = change(file);
        const after = JSON.stringify(file);
        if (after !== before) await this.store.put(PINS_KEY, Buffer.from(`${after}\n`));
        return result;
      } finally {
        await lock.release();
      }
    }
    throw new ProxyError('unavailable', 'the pins are being changed by another process; retry');
  }
}

/** Compiles pins for matching: a glob (GOPRIVATE semantics: it covers the modules below it), and the version if the pin names one. */
export function compilePins(pins: readonly Pin[]): PinMatcher {
  const compiled = pins.map((pin) => {
    const p = parsePatternAtVersion(pin.pattern);
    return { pin, match: compilePrefixPatterns(p.pattern), version: p.version };
  });
  return (modulePath, version) => compiled.find((c) => (c.version === undefined || c.version === version) && c.match(modulePath))?.pin ?? null;
}
