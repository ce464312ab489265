// Notices when a file another process may replace (htpasswd, tokens.json) has changed.
// Polling stat() is used rather than fs.watch: editors and our own writers replace files by
// rename, which detaches an inotify watch from the name, and network filesystems send no events.
//
// A file written in place (`cat new > htpasswd`, an editor that keeps the inode) passes through
// states nobody meant: empty after the truncation, then partly written. The file's mtime cannot
// tell those apart from a finished file: while the kernel truncates, stat() already reports the
// new size (0) but still the old mtime, for as long as the truncation takes (tens of ms on a
// busy disk), so "modified long ago" is what a half-written file looks like then (that race
// emptied the user list in a test polling every 20 ms). So a poll trusts only what it saw itself:
// a changed file is loaded once the same stamp has been seen for settleMs by this process's own
// clock, and the contents count only if the stamp after the read is the one before it.
import { stat } from 'node:fs/promises';

/** What identifies one version of a file; null when it does not exist. */
export type FileStamp = string | null;

export async function stampOf(file: string): Promise<FileStamp> {
  try {
    const st = await stat(file, { bigint: true });
    // ino changes on rename-replace; mtime and size catch in-place edits.
    return `${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Reads of a file that keeps changing under an explicit check(), before it gives up until the next one. */
const EXPLICIT_READS = 3;

export class FileWatcher<T> {
  private stamp: FileStamp | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The look a poll scheduled for when a changed file will have stood still for settleMs. */
  private followUp: NodeJS.Timeout | undefined;
  /** A changed stamp not loaded yet, and when this process first saw it. */
  private seen: { stamp: FileStamp; at: number } | undefined;
  private running: Promise<boolean> | undefined;

  /**
   * @param read reads and parses the file, changing nothing; a throw keeps the previous contents
   *   (reported to onError).
   * @param apply puts contents returned by read in force.
   * @param settleMs polls leave a changed file alone until they have seen it unchanged for this
   *   long, so a file an editor is writing in place is not read half-written (0: files are only
   *   ever replaced whole).
   */
  constructor(
    private readonly file: string,
    private readonly read: () => Promise<T>,
    private readonly apply: (contents: T) => void,
    private readonly onError: (err: unknown) => void,
    private readonly settleMs = 0,
  ) {}

  /** Records the stamp of the version just loaded, so the first poll does not reload it again. */
  async prime(): Promise<void> {
    this.stamp = await stampOf(this.file);
  }

  /** Polls every intervalMs without keeping the process alive. */
  start(intervalMs: number): void {
    if (this.timer || intervalMs <= 0) return;
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  /**
   * Reloads if the file changed since the last load; concurrent callers share one check.
   * Resolves true if it reloaded. `settle` (what polls do): load a changed file only once this
   * watcher has seen it unchanged for settleMs, and not if it changes while being read (a later
   * poll looks again). Without it (an operator's reload, an unknown token id), a changed file is
   * read at once, and read again if it changes meanwhile, a few times.
   */
  check(settle = false): Promise<boolean> {
    this.running ??= this.checkOnce(settle).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private poll(): void {
    this.check(true).catch(this.onError);
  }

  private async checkOnce(settle: boolean): Promise<boolean> {
    for (let reads = 1; ; reads++) {
      // Read before the stat: a process that runs late must not count its own delay as time
      // the file stood still.
      const t = Date.now();
      const before = await stampOf(this.file);
      if (before === this.stamp) {
        this.seen = undefined;
        return false;
      }
      if (settle && this.settleMs > 0) {
        if (this.seen?.stamp !== before) {
          this.seen = { stamp: before, at: Date.now() };
          this.lookAgainAfterSettling();
          return false;
        }
        if (t - this.seen.at < this.settleMs) return false;
      }
      let got: { ok: true; contents: T } | { ok: false; err: unknown };
      try {
        got = { ok: true, contents: await this.read() };
      } catch (err) {
        got = { ok: false, err };
      }
      // Contents (or a parse error) read while the file changed belong to no version of it.
      if ((await stampOf(this.file)) !== before) {
        if (settle || reads >= EXPLICIT_READS) return false;
        continue;
      }
      // Remember the stamp even for a broken file, so it is reported once, not every poll.
      this.stamp = before;
      this.seen = undefined;
      if (!got.ok) {
        // Keep serving the old contents.
        this.onError(got.err);
        return false;
      }
      this.apply(got.contents);
      return true;
    }
  }

  /** Polls are seconds apart; a change need not wait for the one after next to be loaded. */
  private lookAgainAfterSettling(): void {
    if (!this.timer) return;
    clearTimeout(this.followUp);
    this.followUp = setTimeout(() => this.poll(), this.settleMs + 1);
    this.followUp.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.followUp);
    this.timer = undefined;
    this.followUp = undefined;
  }
}
