import type { UpstreamSpec } from '../config/index.js';
import { FileSource, offSource, unconfiguredDirectSource } from './file.js';
import { ProxySource } from './proxy.js';
import type { ModuleSource } from './types.js';

export { SourceChain, Health } from './chain.js';
export type { ChainHooks, ChainResult, HealthPolicy, UpstreamOutcome, ChainMember } from './chain.js';
export { ProxySource } from './proxy.js';
export { FileSource, RefusingSource, offSource, unconfiguredDirectSource } from './file.js';
export * from './types.js';
export { GitSource, createDirectSource, type GitSourceOptions, type DirectConfig } from './git/index.js';
export { GoCmdSource, type GoCmdOptions } from './gocmd.js';

export interface SourceFactoryOptions {
  /** The VCS source for `direct`, when one is configured. */
  direct?: () => ModuleSource;
}

/** Builds the source an upstream entry names. */
export function makeSource(spec: UpstreamSpec, opts: SourceFactoryOptions = {}): ModuleSource {
  switch (spec.kind) {
    case 'off':
      return offSource();
    case 'direct':
      return opts.direct ? opts.direct() : unconfiguredDirectSource();
    case 'proxy':
      return spec.url.startsWith('file:') ? new FileSource(spec.url) : new ProxySource(spec);
  }
}
