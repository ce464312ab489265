// The catalog: what the store holds and what is done with it (the module index).
export {
  ModuleIndex,
  changeOfKey,
  originBytes,
  originKey,
  parseOrigin,
  storeChange,
  type IndexTotals,
  type IndexedModule,
  type IndexedVersion,
  type ModuleIndexOptions,
  type ModuleSummary,
  type VersionOrigin,
} from './modules.js';
export { Dependents } from './dependents.js';
