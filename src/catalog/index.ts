// The catalog: what the store holds (the module index, who requires what), when each artifact was
// last served, what is pinned, and the garbage collection that keeps the store within its bounds.
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
export { ServedRecorder, SERVED_PREFIX, SERVED_FOLDED_KEY, readServedTimes, foldServedTimes } from './served.js';
export type { ServedOwner, ServedRecordFile, ServedTimes } from './served.js';
export { PinStore, PINS_KEY, compilePins, parsePin } from './pins.js';
export type { Pin, PinMatcher } from './pins.js';
export { GarbageCollector, GcBusyError, GC_LOCK_KEY, GC_REPORT_KEY, listModuleData } from './gc.js';
export type { GcDeps, GcFileKind, GcPolicy, GcRemoved, GcRemovedEntry, GcReport, GcRunOptions, GcStatus, GcTrigger, KeptReason } from './gc.js';
export { scheduleGc, type ScheduledGc } from './gc-schedule.js';
