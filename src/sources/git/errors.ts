// Failures of the git source, in the go command's words, with the class that decides the HTTP
// status: what the go command treats as "does not exist" (unknown revision, missing go.mod, no
// such repository, a version that is invalid for the module) answers 404 so the client may try
// its next GOPROXY entry; trouble reaching or reading the repository (network, authentication,
// timeouts, a failing git) is a 502/504 that names the cause.
import { ProxyError, type FailureKind } from '../../errors.js';
import { RunError } from './exec.js';

export type GitFailure = 'not-found' | 'upstream' | 'timeout' | 'internal';

export class GitSourceError extends Error {
  /**
   * A not-found that says only that a host could not be reached or was in trouble (cmd/go's
   * not-exist for a failed repository-root lookup), not what the host holds: it may not hold a
   * minute later, so caches keep it briefly.
   */
  readonly unreachable: boolean;

  constructor(
    readonly kind: GitFailure,
    message: string,
    options?: { cause?: unknown; unreachable?: boolean },
  ) {
    super(message, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'GitSourceError';
    this.unreachable = options?.unreachable ?? false;
  }
}

export function notExist(message: string): GitSourceError {
  return new GitSourceError('not-found', message);
}

/** A version that exists in some form but is not valid for the module (also "not here" for the client). */
export const invalid = notExist;

/** module.InvalidVersionError inside module.ModuleError: "path@v: invalid version: why". */
export function invalidVersion(path: string, version: string, err: unknown, pseudo = false): GitSourceError {
  const inner = messageOf(err);
  return new GitSourceError(kindOf(err), `${path}@${version}: invalid ${pseudo ? 'pseudo-version' : 'version'}: ${inner}`, { cause: err });
}

/** module.ModuleError without a version: "module path: why". */
export function moduleError(path: string, err: unknown): GitSourceError {
  return new GitSourceError(kindOf(err), `module ${path}: ${messageOf(err)}`, { cause: err });
}

/** Keeps err's class, prefixing its message. */
export function wrap(err: unknown, prefix: string): GitSourceError {
  return new GitSourceError(kindOf(err), `${prefix}${messageOf(err)}`, { cause: err });
}

export function kindOf(err: unknown): GitFailure {
  if (err instanceof GitSourceError) return err.kind;
  if (err instanceof RunError) return err.timedOut ? 'timeout' : 'upstream';
  // Anything else is a bug in this source: not a reason to send the client elsewhere.
  return 'internal';
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The ProxyError a source method throws. */
export function toProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const kind: FailureKind = kindOf(err);
  return new ProxyError(kind, messageOf(err), { cause: err });
}
