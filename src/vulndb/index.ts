// The Go vulnerability database: its files checked for shape, which versions an entry affects,
// and the mirror that keeps a copy in the store.
export { AffectedIndex, type Finding } from './affected.js';
export { VULNDB_PREFIX, VulnMirror, type VulnMirrorOptions, type VulnRefreshReport, type VulnSync } from './mirror.js';
export { VulnDbError, isSafeId, parseDbMeta, parseEntry, parseModulesIndex, parseVulnsIndex, type OsvEntry } from './schema.js';
