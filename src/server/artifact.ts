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
