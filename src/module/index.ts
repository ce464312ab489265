// The Go module domain: pure functions over module paths, versions, patterns and go.mod files,
// matching golang.org/x/mod (v0.43.0) and cmd/go. Nothing here does I/O.
export { ModuleError } from './errors.js';
export type { ModuleRef, VersionRef } from './refs.js';
export { escapePath, unescapePath, escapeVersion, unescapeVersion } from './escape.js';
export {
  canonicalVersion,
  check,
  checkFilePath,
  checkImportPath,
  checkPath,
  checkPathMajor,
  filePathError,
  isValidModulePath,
  matchPathMajor,
  modulePathError,
  pathMajorPrefix,
  splitGopkgIn,
  splitPathVersion,
} from './path.js';
export type { PathVersionSplit } from './path.js';
// Go's semver, both flat (isValid, compare, ...) and as a namespace (semver.compare) where a bare
// name like max or sort would read ambiguously.
export * as semver from './semver.js';
export { build, canonical, compare, compareVersions, isCanonical, isValid, major, majorMinor, max, prerelease, sort } from './semver.js';
export {
  decDecimal,
  incDecimal,
  isPseudoVersion,
  isZeroPseudoVersion,
  pseudoVersion,
  pseudoVersionBase,
  pseudoVersionRev,
  pseudoVersionTime,
  pseudoVersionTimestamp,
  zeroPseudoVersion,
} from './pseudo.js';
export { compilePrefixPatterns, matchPrefixPatterns, parsePatternAtVersion, pathMatch, patternAtVersionProblem } from './pattern.js';
export type { PatternAtVersion, PrefixMatcher } from './pattern.js';
export { isRetracted, modulePathOf, parseGoMod, retractionRationales } from './gomod.js';
export type { GoModExclude, GoModFile, GoModGodebug, GoModModule, GoModReplace, GoModRequire, GoModRetract, ParseGoModOptions } from './gomod.js';
