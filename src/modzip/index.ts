// Module zip files: checking untrusted ones, creating them from a file tree, and the h1 hash.
export { checkModuleZip, type CheckedZip } from './check.js';
export { StreamingZipCheck } from './stream.js';
export { isVendoredPackage, planModuleZip, writeModuleZip, type ModuleZipOptions, type OmittedFile, type ZipPlan, type ZipSourceFile } from './create.js';
export { goModGoVersion, listModuleDir, type DirListing } from './dir.js';
export { hash1, hashGoMod, hashZipFile } from './dirhash.js';
export { ZipError } from './errors.js';
export { MAX_GO_MOD, MAX_LICENSE, MAX_ZIP_FILE, type ZipLimits } from './limits.js';
