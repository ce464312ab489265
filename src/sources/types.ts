// Where modules come from. A source answers the GOPROXY questions for one module with raw
// bytes; checking those bytes (JSON shape, go.mod syntax, zip rules, checksums) happens once,
// on the miss path, whatever the source. Failures are ProxyErrors: not-found/gone mean
// "not here" (the chain may fall through), anything else is trouble with the source.
import type { Readable } from 'node:stream';
import type { ModuleRef, VersionRef } from '../module/index.js';

export type { ModuleRef, VersionRef } from '../module/index.js';

/** What a source is asked for; also the `kind` label of metrics and logs. */
export type RequestKind = 'list' | 'latest' | 'info' | 'query' | 'mod' | 'zip';

export interface FetchContext {
  /** Value for the loop-detection header: the chain of gomodproxy instances this request has passed, ours last. */
  via: string;
  signal?: AbortSignal;
  /** Takes one of the requesting client's upstream-fetch slots; call the result when the fetch is done. */
  fetchSlot?: () => Promise<() => void>;
}

export interface ZipBody {
  stream: Readable;
  /** From Content-Length when the source knows it. */
  size: number | undefined;
}

export interface ModuleSource {
  /** For logs, metrics and error lines: a redacted URL, "direct" or "off". */
  readonly id: string;
  list(mod: ModuleRef, ctx: FetchContext): Promise<Buffer>;
  latest(mod: ModuleRef, ctx: FetchContext): Promise<Buffer>;
  info(mod: ModuleRef, version: VersionRef, ctx: FetchContext): Promise<Buffer>;
  mod(mod: ModuleRef, version: VersionRef, ctx: FetchContext): Promise<Buffer>;
  zip(mod: ModuleRef, version: VersionRef, ctx: FetchContext): Promise<ZipBody>;
  close?(): Promise<void>;
}

/** Limits from cmd/go (modfetch): bigger answers are refused before they are stored. */
export const MAX_ZIP_BYTES = 500 << 20;
export const MAX_GOMOD_BYTES = 16 << 20;
export const MAX_INFO_BYTES = 1 << 20;
export const MAX_LIST_BYTES = 16 << 20;

/** Header that carries the instance chain, so a request that loops back to us is refused. */
export const VIA_HEADER = 'x-gomodproxy-via';
export const MAX_VIA_HOPS = 8;

/**
 * Drops a response body we will not read. undici's body emits "Request aborted" when destroyed,
 * and an unheard stream error would take the process down: listen first, then destroy.
 */
export function discard(stream: Readable): void {
  stream.on('error', () => undefined);
  stream.destroy();
}

/** Runs an upstream fetch inside the requesting client's fetch slot, when it has a limit. */
export async function withFetchSlot<T>(ctx: FetchContext, fetch: () => Promise<T>): Promise<T> {
  if (!ctx.fetchSlot) return fetch();
  const release = await ctx.fetchSlot();
  try {
    return await fetch();
  } finally {
    release();
  }
}
