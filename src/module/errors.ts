/**
 * An invalid module path, version, pattern or go.mod. The message is worded as the go command
 * words it ("malformed module path ...", "version ... invalid: ...", "go.mod:3: ...") and is a
 * single line, so it can be shown to a Go user as the reason a request failed.
 */
export class ModuleError extends Error {
  override name = 'ModuleError';
  /** The module path concerned, when the error is about one. */
  readonly path: string | undefined;
  /** The version concerned, when the error is about one. */
  readonly version: string | undefined;

  constructor(message: string, options?: { path?: string; version?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.path = options?.path;
    this.version = options?.version;
  }
}
