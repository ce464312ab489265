import { quote } from './errors.js';
import { cleanPath, strToFold } from './gopath.js';

/**
 * x/mod's collisionChecker: names equal under Unicode case folding, a name used both as a file
 * and as a directory, and repeated files. Parents are recorded as directories, so "a" (file) and
 * "A/b" clash. Returns the problem, or undefined.
 */
export class CollisionChecker {
  private readonly seen = new Map<string, { path: string; isDir: boolean }>();

  check(p: string, isDir: boolean): string | undefined {
    for (;;) {
      const fold = strToFold(p);
      const other = this.seen.get(fold);
      if (other) {
        if (p !== other.path) return `case-insensitive file name collision: ${quote(other.path)} and ${quote(p)}`;
        if (isDir !== other.isDir) return `entry ${quote(p)} is both a file and a directory`;
        if (!isDir) return `multiple entries for file ${quote(p)}`;
        // The same directory again (as the parent of many files) is fine.
      } else {
        this.seen.set(fold, { path: p, isDir });
      }
      const slash = p.lastIndexOf('/');
      const parent = cleanPath(slash < 0 ? '' : p.slice(0, slash + 1));
      if (parent === '.' || parent === p) return undefined;
      p = parent;
      isDir = true;
    }
  }
}
