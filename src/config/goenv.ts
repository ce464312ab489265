// The go command's own settings as the go command sees them: a variable set (non-empty) in the
// environment, else the line in the go env file that `go env -w` writes. Operators set GOPROXY,
// GOPRIVATE and the like with `go env -w` and expect a server on the same account to agree with
// their go command, so the server reads that file too, without running a go binary (it must not
// need a toolchain). The rules follow cmd/go/internal/cfg (EnvFile, readEnvFile, Getenv) and
// os.UserConfigDir:
// - the file is $GOENV when set; GOENV=off means no file; else <user config dir>/go/env, the user
//   config dir being $XDG_CONFIG_HOME (absolute only) or $HOME/.config on Unix,
//   $HOME/Library/Application Support on macOS, %AppData% on Windows;
// - an empty variable in the environment does not hide the file's value (Getenv reads the file
//   when os.Getenv is ""), and a missing or unreadable file is no error;
// - the file is lines of KEY=VALUE, cut at the first '='; lines without '=' or not starting with
//   an upper-case letter are ignored; values are taken as they are (no quotes, no trimming); a
//   later line for the same key wins.
// GOROOT/go.env (the toolchain's defaults) is not read: finding GOROOT needs the toolchain, and its
// upstream defaults are gomodproxy's own.
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Where a go setting was found. */
export type GoEnvOrigin = { from: 'go-env'; name: string } | { from: 'go-env-file'; name: string; file: string };

export interface GoEnvValue {
  value: string;
  origin: GoEnvOrigin;
}

export interface GoEnv {
  /** The go env file consulted, if any (it need not exist). */
  readonly file: string | undefined;
  /** Why no file is consulted, when none is. */
  readonly noFile: string | undefined;
  /** Something about the file the operator should know (it exists but cannot be read). */
  readonly warnings: readonly string[];
  /** The setting as the go command would see it, or undefined when neither place sets it. */
  get(name: string): GoEnvValue | undefined;
}

export interface GoEnvOptions {
  platform?: NodeJS.Platform;
  /** Reads the file; default readFileSync. Throws as fs does (ENOENT for a missing file). */
  readFile?: (file: string) => string;
}

/** The go env file the go command would read, or why there is none. */
export function goEnvFile(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): { file: string } | { none: string } {
  const goenv = env.GOENV;
  if (goenv) return goenv === 'off' ? { none: 'GOENV=off' } : { file: goenv };
  const join = platform === 'win32' ? path.win32.join : path.posix.join;
  let dir: string;
  switch (platform) {
    case 'win32':
      if (!env.AppData) return { none: '%AppData% is not defined' };
      dir = env.AppData;
      break;
    case 'darwin':
      if (!env.HOME) return { none: '$HOME is not defined' };
      dir = `${env.HOME}/Library/Application Support`;
      break;
    default: {
      const xdg = env.XDG_CONFIG_HOME;
      if (xdg) {
        if (!path.posix.isAbsolute(xdg)) return { none: 'the path in $XDG_CONFIG_HOME is relative' };
        dir = xdg;
      } else if (env.HOME) {
        dir = `${env.HOME}/.config`;
      } else {
        return { none: 'neither $XDG_CONFIG_HOME nor $HOME is defined' };
      }
    }
  }
  return { file: join(dir, 'go', 'env') };
}

/** KEY=VALUE lines as cmd/go reads them. */
export function parseGoEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    const first = line.charCodeAt(0);
    if (eq < 0 || first < 0x41 || first > 0x5a) continue;
    out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

export function readGoEnv(env: NodeJS.ProcessEnv, opts: GoEnvOptions = {}): GoEnv {
  const where = goEnvFile(env, opts.platform);
  const warnings: string[] = [];
  let values = new Map<string, string>();
  if ('file' in where) {
    try {
      values = parseGoEnvFile((opts.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(where.file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The go command ignores a file it cannot read, and so do we; only a missing one is normal.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        warnings.push(
          `cannot read the go env file ${where.file} (${code ?? (err as Error).message}); its settings (go env -w) are ignored, as the go command ignores them`,
        );
      }
    }
  }
  const file = 'file' in where ? where.file : undefined;
  return {
    file,
    noFile: 'none' in where ? where.none : undefined,
    warnings,
    get(name) {
      const fromEnv = env[name];
      if (fromEnv) return { value: fromEnv, origin: { from: 'go-env', name } };
      const fromFile = values.get(name);
      if (fromFile !== undefined && fromFile !== '' && file !== undefined) return { value: fromFile, origin: { from: 'go-env-file', name, file } };
      return undefined;
    },
  };
}
