/** x/mod zip.MaxZipFile: the largest module zip, and the largest total of its contents, in bytes. */
export const MAX_ZIP_FILE = 500 << 20;
/** x/mod zip.MaxGoMod */
export const MAX_GO_MOD = 16 << 20;
/** x/mod zip.MaxLICENSE */
export const MAX_LICENSE = 16 << 20;

/**
 * Size limits for module zips. The defaults are the go command's; a smaller value makes us
 * stricter than the go command (useful for tests and for operators who want to refuse huge
 * modules), a larger one would let through zips the go command rejects.
 */
export interface ZipLimits {
  /** Largest zip file, in bytes. */
  maxZipSize?: number;
  /** Largest total of the files' uncompressed sizes, in bytes. */
  maxTotalSize?: number;
  /** Largest root go.mod, in bytes. */
  maxGoModSize?: number;
  /** Largest root LICENSE, in bytes. */
  maxLicenseSize?: number;
}

export interface ResolvedLimits {
  maxZipSize: number;
  maxTotalSize: number;
  maxGoModSize: number;
  maxLicenseSize: number;
}

export function resolveLimits(l: ZipLimits | undefined): ResolvedLimits {
  return {
    maxZipSize: l?.maxZipSize ?? MAX_ZIP_FILE,
    maxTotalSize: l?.maxTotalSize ?? MAX_ZIP_FILE,
    maxGoModSize: l?.maxGoModSize ?? MAX_GO_MOD,
    maxLicenseSize: l?.maxLicenseSize ?? MAX_LICENSE,
  };
}
