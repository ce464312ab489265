// Notices when a file another process may replace (htpasswd, tokens.json) has changed.
// Polling stat() is used rather than fs.watch: editors and our own writers replace files by
// rename, which detaches an inotify watch from the name, and network filesystems send no events.
import { stat } from 'node:fs/promises';

/** What identifies one version of a file; null when it does not exist. */
export type FileStamp = string | null;

export async function stampOf(file: string): Promise<FileStamp> {
  return (await look(file)).stamp;
}

async function look(file: string): Promise<{ stamp: FileStamp; mtimeMs: number }> {
  try {
    const st = await stat(file, { bigint: true });
    // ino changes on rename-replace; mtime and size catch in-place edits.
    return { stamp: `${st.ino}:${st.size}:${st.mtimeNs}`, mtimeMs: Number(st.mtimeMs) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { stamp: null, mtimeMs: 0 };
    throw err;
  }
}

export class FileWatcher {
  private stamp: FileStamp | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;

  /**
   * @param onChange reloads the file; a throw keeps the previous contents (reported to onError).
   * @param settleMs polls leave a file alone until it has not changed for this long, so a file
   *   an editor is writing in place is not read half-written (0: files are only ever replaced whole).
   */
  constructor(
    private readonly file: string,
    private readonly onChange: () => Promise<void>,
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
    this.timer = setInterval(() => {
      this.check(true).catch(this.onError);
    }, intervalMs);
    this.timer.unref();
  }

  /**
   * Reloads if the file changed since the last load; concurrent callers share one check.
   * Resolves true if it reloaded. `settle`: skip a file changed less than settleMs ago.
   */
  check(settle = false): Promise<boolean> {
    this.running ??= this.checkOnce(settle).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async checkOnce(settle: boolean): Promise<boolean> {
    const { stamp: now, mtimeMs } = await look(this.file);
    if (now === this.stamp) return false;
    if (settle && this.settleMs > 0 && Date.now() - mtimeMs < this.settleMs) return false; // next poll
    try {
      await this.onChange();
      this.stamp = now;
      return true;
    } catch (err) {
      // Keep serving the old contents; remember the stamp so a broken file is reported once, not every poll.
      this.stamp = now;
      this.onError(err);
      return false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
