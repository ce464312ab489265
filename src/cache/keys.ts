// Store keys. Module paths and versions are used in their escaped (case-encoded) forms, as
// the go command's download cache does, so keys are safe on case-insensitive file systems.

export type ArtifactExt = 'info' | 'mod' | 'zip';

export function artifactKey(escapedPath: string, escapedVersion: string, ext: ArtifactExt): string {
  return `${escapedPath}/@v/${escapedVersion}.${ext}`;
}

/** The zip's h1: hash, as the go command keeps it beside the zip. */
export function zipHashKey(escapedPath: string, escapedVersion: string): string {
  return `${escapedPath}/@v/${escapedVersion}.ziphash`;
}

/** The versions held locally (those with a .mod), as the go command's cache keeps them. */
export function localListKey(escapedPath: string): string {
  return `${escapedPath}/@v/list`;
}

/**
 * Mutable answers live under a top-level folder whose name has no dot, so it can never be a
 * module path (the first element of a module path must contain a dot).
 */
export const MUTABLE_PREFIX = 'mutable/';

export function mutableListKey(escapedPath: string): string {
  return `${MUTABLE_PREFIX}${escapedPath}/@v/list`;
}

export function mutableLatestKey(escapedPath: string): string {
  return `${MUTABLE_PREFIX}${escapedPath}/@latest`;
}

export function mutableQueryKey(escapedPath: string, escapedQuery: string): string {
  return `${MUTABLE_PREFIX}${escapedPath}/@v/${escapedQuery}.info`;
}

/** State that is not a cache of anything (instance id, sumdb tree heads). */
export const STATE_PREFIX = 'state/';
