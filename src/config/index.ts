export { loadConfig, ConfigError, schemaLeaves, envName, ENV_PREFIX, DEFAULT_CONFIG_FILE, DEFAULT_GOPROXY } from './load.js';
export type { Config, UpstreamSpec, UpstreamAuth, LoadOptions } from './load.js';
export { configSchema, parseListen } from './schema.js';
export type { Timeouts, Balance, ConfigInput } from './schema.js';
export { parseGoProxyList, formatGoProxyList, redactURL, GoProxyListError } from './goproxy.js';
export type { GoProxyEntry, Fallthrough } from './goproxy.js';
export { parseDuration, parseSize, formatDuration } from './units.js';
export { parseTrustedProxy } from './net.js';
