// A module and a version as the protocol names them: as written, and case-encoded for paths and keys.

export interface ModuleRef {
  /** Module path as written in go.mod: github.com/Azure/go. */
  path: string;
  /** Case-encoded: github.com/!azure/go. */
  escaped: string;
}

export interface VersionRef {
  /** A canonical version, or for `.info` any query the go command sends (branch, hash). */
  version: string;
  escaped: string;
}
