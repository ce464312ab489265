// Push invalidation of mutable answers: an operator (gomodproxy invalidate, POST /-/api/invalidate)
// names modules by a GOPRIVATE-style pattern, optionally one version. The shared answers are
// dropped once, where they are kept (Redis or the store); every process (every instance, through
// the coordination) drops the same keys from its memory, and forgets the not-found answers it
// remembers for them. With a version, that version's artifacts also leave every memory cache:
// a version purged from the store then disappears from every instance at once.
import type { Logger } from 'pino';
import { MUTABLE_PREFIX } from '../cache/keys.js';
import type { AnswerStore, Coordination, Invalidation } from '../cluster/coordination.js';
import type { RememberedAnswers } from '../cluster/remembered.js';
import { ProxyError } from '../errors.js';
import { compilePrefixPatterns, escapePath, isValid, unescapePath, unescapeVersion } from '../module/index.js';

/** What a key names: the module, the version (of an artifact or a query) and whether it is a mutable answer. */
interface KeyParts {
  path: string;
  version?: string;
  mutable: boolean;
  /** list or @latest: changes with any version. */
  anyVersion: boolean;
}

export function keyParts(key: string): KeyParts | null {
  const mutable = key.startsWith(MUTABLE_PREFIX);
  const k = mutable ? key.slice(MUTABLE_PREFIX.length) : key;
  let escapedPath: string;
  let version: string | undefined;
  let anyVersion = false;
  if (k.endsWith('/@latest')) {
    escapedPath = k.slice(0, -'/@latest'.length);
    anyVersion = true;
  } else {
    const at = k.lastIndexOf('/@v/');
    if (at <= 0) return null;
    escapedPath = k.slice(0, at);
    const file = k.slice(at + 4);
    if (file === 'list') anyVersion = true;
    else {
      const dot = file.lastIndexOf('.');
      if (dot <= 0) return null;
      try {
        version = unescapeVersion(file.slice(0, dot));
      } catch {
        return null;
      }
    }
  }
  try {
    return { path: unescapePath(escapedPath), version, mutable, anyVersion };
  } catch {
    return null;
  }
}

/** Whether an invalidation drops the answer or artifact at key. */
export function invalidates(match: (path: string) => boolean, what: Invalidation, parts: KeyParts): boolean {
  if (!match(parts.path)) return false;
  if (parts.mutable) return what.version === undefined || parts.anyVersion || parts.version === what.version;
  // Immutable artifacts leave memory only when their version is named (a purge).
  return what.version !== undefined && parts.version === what.version;
}

/** Where the stored answers a pattern can match are: one module's folder for a plain module path, else all of them. */
function answersUnder(pattern: string): string {
  if (/[*?[\\,]/.test(pattern)) return MUTABLE_PREFIX;
  try {
    return `${MUTABLE_PREFIX}${escapePath(pattern.replace(/\/+$/, ''))}/`;
  } catch {
    // Not a module path itself (a host name such as example.com may still prefix some): look everywhere.
    return MUTABLE_PREFIX;
  }
}

/** Checks an operator's target: "example.com/m", "example.com/*", or one of them "@v1.2.3". */
export function parseInvalidation(arg: string): Invalidation {
  const at = arg.lastIndexOf('@');
  const pattern = at > 0 ? arg.slice(0, at) : arg;
  const version = at > 0 ? arg.slice(at + 1) : undefined;
  if (pattern === '' || /[\s,]/.test(pattern)) {
    throw new ProxyError(
      'bad-request',
      `invalid module pattern ${JSON.stringify(pattern)}: give one module path or GOPRIVATE-style glob, such as example.com/team/*`,
    );
  }
  if (version !== undefined && !isValid(version)) {
    throw new ProxyError('bad-request', `invalid version ${JSON.stringify(version)}: give a semantic version such as v1.2.3`);
  }
  return version === undefined ? { pattern } : { pattern, version };
}

/** What invalidation needs of a memory cache. */
export interface KeyedCache {
  keys(): IterableIterator<string>;
  delete(key: string): void;
}

export interface InvalidationDeps {
  coordination: Coordination;
  /** Where the shared mutable answers are kept. */
  answers: AnswerStore;
  memories: KeyedCache[];
  remembered: RememberedAnswers;
  log: Logger;
}

export class Invalidations {
  constructor(private readonly d: InvalidationDeps) {
    d.coordination.onInvalidate((what) => this.dropFromMemory(what));
  }

  /** Drops the stored answers, then tells every process. Resolves with how many stored answers went. */
  async invalidate(what: Invalidation): Promise<{ stored: number }> {
    const match = compilePrefixPatterns(what.pattern);
    let stored = 0;
    // A plain module path names one folder of answers (itself and the modules below it); a glob may match anywhere.
    const prefix = answersUnder(what.pattern);
    for await (const key of this.d.answers.keys(prefix)) {
      const parts = keyParts(key);
      if (!parts || !invalidates(match, what, parts)) continue;
      await this.d.answers.delete(key);
      stored++;
    }
    await this.d.coordination.invalidate(what);
    this.d.log.info({ pattern: what.pattern, version: what.version, stored }, 'invalidated');
    return { stored };
  }

  /**
   * Tells every process to drop what matches from its memory only: the stored answers stay, so
   * each reads the one just refreshed there (a sync job), not an older copy it remembers.
   */
  async dropFromMemories(what: Invalidation): Promise<void> {
    await this.d.coordination.invalidate(what);
  }

  /** In every process: what matches leaves the memory caches and the remembered answers. */
  private dropFromMemory(what: Invalidation): void {
    const match = compilePrefixPatterns(what.pattern);
    let dropped = 0;
    for (const memory of this.d.memories) {
      for (const key of [...memory.keys()]) {
        const parts = keyParts(key);
        if (parts && invalidates(match, what, parts)) {
          memory.delete(key);
          dropped++;
        }
      }
    }
    for (const key of [...this.d.remembered.keys()]) {
      const parts = keyParts(key);
      if (parts && match(parts.path) && (what.version === undefined || parts.anyVersion || parts.version === what.version)) this.d.remembered.delete(key);
    }
    this.d.log.debug({ pattern: what.pattern, version: what.version, dropped }, 'dropped invalidated answers from memory');
  }
}
