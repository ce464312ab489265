// An Apache htpasswd file of bcrypt hashes. Weaker schemes (apr1/MD5, {SHA}, crypt, plain
// text) are refused when the file is loaded, naming each user and the command that fixes it:
// a proxy that quietly accepted them would make an offline attack on a leaked file cheap.
// The file is re-read when it changes, so adding a user needs no restart.
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { FileWatcher } from './watch.js';

export class HtpasswdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HtpasswdError';
  }
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

// Compared against when the user is unknown, so "no such user" takes as long as "wrong password"
// and timing does not reveal which user names exist. Cost 10, like htpasswd -B's default;
// precomputed so importing this module costs no bcrypt round.
const DUMMY_HASH = '$2b$10$oDVyIFhmqm1ssN17RrUaluBoGcp3lJHATsmcCNvunTwaBwHP9vCEC';

/** Names the weak scheme a line uses, for the refusal message. */
function schemeOf(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'MD5 (apr1)';
  if (hash.startsWith('{SHA}')) return 'SHA-1 ({SHA})';
  if (hash.startsWith('$1$')) return 'MD5-crypt ($1$)';
  if (hash.startsWith('$5$')) return 'SHA-256-crypt ($5$)';
  if (hash.startsWith('$6$')) return 'SHA-512-crypt ($6$)';
  if (hash.startsWith('$2')) return 'malformed bcrypt';
  if (/^[./A-Za-z0-9]{13}$/.test(hash)) return 'DES crypt (or plain text)';
  return 'plain text';
}

/** Parses htpasswd text; throws HtpasswdError listing every refused line. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  const problems: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      problems.push(`line ${i + 1} is not user:hash`);
      return;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const m = BCRYPT.exec(hash);
    if (!m) {
      problems.push(
        `user "${user}" (line ${i + 1}) has a ${schemeOf(hash)} password hash, which is refused as too weak; replace it with bcrypt: htpasswd -B ${file} ${user}`,
      );
      return;
    }
    if (Number(m[1]) < 4 || Number(m[1]) > 31) {
      problems.push(`user "${user}" (line ${i + 1}) has a bcrypt hash with an invalid cost ${m[1]}; re-create it: htpasswd -B ${file} ${user}`);
      return;
    }
    if (users.has(user)) {
      problems.push(`user "${user}" appears twice (line ${i + 1}); keep one line per user`);
      return;
    }
    users.set(user, hash);
  });
  if (problems.length > 0) {
    throw new HtpasswdError(`htpasswd file ${file}: ${problems.join('; ')}`);
  }
  return users;
}

export interface HtpasswdOptions {
  /** How often to look for changes; 0 turns polling off (check() still works). Default 2 s. */
  pollMs?: number;
  /** Called after a successful reload (the authenticator drops its cached results). */
  onReload?: () => void;
  /** A reload failed; the previous users stay in force. */
  onError?: (err: unknown) => void;
  /** Polls reload only a file unchanged for this long (default 300 ms); reloadIfChanged() does not wait. */
  settleMs?: number;
}

export class HtpasswdFile {
  private users: Map<string, string>;
  private readonly watcher: FileWatcher<Map<string, string>>;

  private constructor(
    readonly file: string,
    users: Map<string, string>,
    opts: HtpasswdOptions,
  ) {
    this.users = users;
    this.watcher = new FileWatcher(
      file,
      async () => parseHtpasswd(await readFile(file, 'utf8'), file),
      (next) => {
        this.users = next;
        opts.onReload?.();
      },
      (err) => opts.onError?.(err),
      // Operators edit this file by hand, in place: wait for the editor to finish writing.
      opts.settleMs ?? 300,
    );
  }

  /** Loads and checks the file; a missing file or any weak hash is an error that names the fix. */
  static async load(file: string, opts: HtpasswdOptions = {}): Promise<HtpasswdFile> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new HtpasswdError(
        `cannot read htpasswd file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; create it with htpasswd -B -c ${file} USER`,
      );
    }
    const h = new HtpasswdFile(file, parseHtpasswd(text, file), opts);
    await h.watcher.prime();
    h.watcher.start(opts.pollMs ?? 2000);
    return h;
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  get size(): number {
    return this.users.size;
  }

  /** Checks a password; unknown users cost the same time as wrong passwords. */
  async verify(user: string, password: string): Promise<boolean> {
    const hash = this.users.get(user);
    const ok = await bcrypt.compare(password, hash ?? DUMMY_HASH);
    // The file may have been reloaded during the slow compare (user removed, password changed):
    // the answer counts only if it was about the entry in force now.
    return ok && hash !== undefined && this.users.get(user) === hash;
  }

  /** Re-reads the file now if it changed (tests, and SIGHUP handlers). */
  reloadIfChanged(): Promise<boolean> {
    return this.watcher.check();
  }

  close(): void {
    this.watcher.stop();
  }
}
