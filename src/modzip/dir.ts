// A module's files from a directory on disk, as golang.org/x/mod/zip.CreateFromDir lists them
// (listFilesInDir): a filepath.Walk in byte order that does not follow symbolic links, skipping
// VCS directories (.bzr .git .hg .svn), directories holding a go.mod (other modules), vendored
// packages and anything that is not a regular file. The rest of the rules (and the errors that
// make a tree unusable) are zip.Create's, which planModuleZip and writeModuleZip apply.
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { parseGoMod } from '../module/index.js';
import { isVendoredPackage, type OmittedFile, type ZipSourceFile } from './create.js';
import { goLang } from './gopath.js';

export interface DirListing {
  /** The regular files that zip.Create gets, in walk order. */
  files: ZipSourceFile[];
  /** What the walk itself left out, with x/mod's reasons (zip.Create may leave out more). */
  omitted: OmittedFile[];
  /** The root go.mod's `go` version, for ModuleZipOptions.goVersion; undefined without one. */
  goVersion: string | undefined;
  /** The root go.mod's bytes, when it is a file that can be read. */
  goMod: Buffer | undefined;
}

const VCS_DIRS = new Set(['.bzr', '.git', '.hg', '.svn']);

/**
 * Lists `dir` as CreateFromDir does. One deliberate difference: a `dir` that is itself a
 * symbolic link is followed (x/mod's Walk would see one irregular file and make an empty zip,
 * which nobody who names a folder means).
 */
export async function listModuleDir(dir: string): Promise<DirListing> {
  const root = await realpath(dir);
  const goMod = await readFile(path.join(root, 'go.mod')).catch(() => undefined);
  const goVersion = goModGoVersion(goMod);
  const lang = goLang(goVersion);
  const files: ZipSourceFile[] = [];
  const omitted: OmittedFile[] = [];

  const walk = async (abs: string, rel: string): Promise<void> => {
    const names = (await readdir(abs)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const full = path.join(abs, name);
      const slash = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(full);
      if (isVendoredPackage(slash, lang)) {
        // Omitted, yet walked on: x/mod does not skip the directory, and its files are vendored too.
        omitted.push({ name: slash, reason: 'file is in vendor directory' });
        if (st.isDirectory()) await walk(full, slash);
        continue;
      }
      if (st.isDirectory()) {
        if (VCS_DIRS.has(name)) {
          omitted.push({ name: slash, reason: 'directory is a version control repository' });
          continue;
        }
        const sub = await lstat(path.join(full, 'go.mod')).catch(() => null);
        if (sub && !sub.isDirectory()) {
          omitted.push({ name: slash, reason: 'directory is in another module' });
          continue;
        }
        await walk(full, slash);
        continue;
      }
      if (!st.isFile()) {
        omitted.push({ name: slash, reason: 'not a regular file' });
        continue;
      }
      files.push({ name: slash, mode: 'file', size: st.size, open: () => createReadStream(full) });
    }
  };
  await walk(root, '');
  return { files, omitted, goVersion, goMod };
}

/** x/mod's parseGoVers: the lax parser's `go` line, nothing when the file does not parse. */
export function goModGoVersion(goMod: Buffer | undefined): string | undefined {
  if (!goMod) return undefined;
  try {
    return parseGoMod(goMod, 'go.mod').go;
  } catch {
    return undefined;
  }
}
