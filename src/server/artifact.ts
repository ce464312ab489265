// What the artifact paths pass between them: the request, and a blob held in memory with its headers.
import type { MemoryEntry } from '../cache/memory.js';
import type { ModuleRef, VersionRef } from '../module/index.js';
import type { ArtifactKind } from './protocol.js';
import type { Route } from './routes.js';

export interface ArtifactRequest {
  kind: ArtifactKind;
  mod: ModuleRef;
  version: VersionRef;
  route: Route;
}

/** A blob held in memory with its response headers built once. */
export interface ArtifactEntry extends MemoryEntry {
  headers: string[];
  notModified: string[];
}

/**
 * Told of every artifact this process commits to the store (with its size and the source it
 * came from) or removes from it (size null): the module index and the other processes hear it.
 */
export type StoreListener = (mod: ModuleRef, version: string, kind: 'info' | 'mod' | 'zip', size: number | null, source?: string) => void;
