// One `git cat-file --batch` process serving a request's object reads (commits for their time,
// go.mod and LICENSE files, the blobs of a module zip) in order, instead of one git process per
// read. Answers arrive in the order asked; a blob can be read whole or streamed (never buffered),
// so a zip of any size passes through in bounded memory.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { notifySpawn } from './exec.js';

export interface CatObject {
  hash: string;
  type: string;
  size: number;
  data: Buffer;
}

interface Pending {
  /** Whole-object reads resolve with the data; streamed reads push into `out`. */
  resolve: (v: CatObject | null) => void;
  reject: (e: Error) => void;
  out?: PassThrough;
  /** Largest object accepted whole; bigger ones fail the read. */
  max: number;
}

export class CatFileBatch {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private readonly queue: Pending[] = [];
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes (plus the trailing newline) still to take for the object at the head of the queue. */
  private remaining = -1;
  private current: { hash: string; type: string; size: number; chunks: Buffer[] } | undefined;
  private failed: Error | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly timeoutMs: number,
  ) {}

  private start(): ChildProcessWithoutNullStreams {
    if (this.proc) return this.proc;
    notifySpawn('git', ['cat-file', '--batch'], this.env);
    const p = spawn('git', ['cat-file', '--batch'], { cwd: this.dir, env: this.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.proc = p;
    p.stdout.on('data', (b: Buffer) => this.onData(b));
    p.stderr.on('data', () => undefined);
    p.stdin.on('error', () => undefined);
    p.on('error', (e) => this.fail(e));
    p.on('close', () => this.fail(new Error('git cat-file --batch ended')));
    // A deadline for the whole session: nothing here should take long.
    this.timer = setTimeout(() => this.fail(new Error(`git cat-file --batch timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    this.timer.unref();
    return p;
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const q of this.queue.splice(0)) {
      q.out?.destroy(e);
      q.reject(e);
    }
    this.kill();
  }

  private kill(): void {
    if (this.timer) clearTimeout(this.timer);
    const p = this.proc;
    if (p?.pid !== undefined && p.exitCode === null) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  private ask(spec: string, pending: Pending): void {
    if (this.failed) {
      pending.reject(this.failed);
      return;
    }
    if (/[\n\r]/.test(spec)) {
      pending.resolve(null);
      return;
    }
    const p = this.start();
    this.queue.push(pending);
    p.stdin.write(`${spec}\n`);
  }

  /** The object spec names (a hash, "hash:path", "rev^{commit}"), or null if there is none. */
  read(spec: string, max = 64 << 20): Promise<CatObject | null> {
    return new Promise((resolve, reject) => this.ask(spec, { resolve, reject, max }));
  }

  /** The contents of blob hash as a stream (the read fails if it is missing or not a blob). */
  stream(hash: string): Readable {
    const out = new PassThrough();
    this.ask(hash, {
      resolve: (v) => {
        if (v === null) out.destroy(new Error(`git object ${hash} is missing`));
      },
      reject: (e) => out.destroy(e),
      out,
      max: Number.MAX_SAFE_INTEGER,
    });
    return out;
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length > 0) {
      const head = this.queue[0];
      if (!head) return;
      if (this.remaining < 0) {
        const nl = this.buf.indexOf(0x0a);
        if (nl < 0) return;
        const line = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        const f = line.split(' ');
        if (f.length !== 3 || !/^\d+$/.test(f[2] as string)) {
          // "<spec> missing" / "<spec> ambiguous"
          this.queue.shift();
          head.resolve(null);
          continue;
        }
        const size = Number(f[2]);
        this.current = { hash: f[0] as string, type: f[1] as string, size, chunks: [] };
        this.remaining = size + 1;
        if (!head.out && size > head.max) {
          this.fail(new Error(`git object ${f[0]} is larger than ${head.max} bytes`));
          return;
        }
        continue;
      }
      const cur = this.current as NonNullable<typeof this.current>;
      const take = Math.min(this.remaining, this.buf.length);
      const part = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      this.remaining -= take;
      // The final byte of each object is git's separating newline.
      const body = this.remaining === 0 ? part.subarray(0, part.length - 1) : part;
      if (head.out) {
        if (body.length > 0 && !head.out.destroyed && !head.out.write(body)) {
          // Backpressure: pause git until the zip writer has taken this file's bytes.
          this.proc?.stdout.pause();
          head.out.once('drain', () => this.proc?.stdout.resume());
          head.out.once('close', () => this.proc?.stdout.resume());
        }
      } else {
        cur.chunks.push(Buffer.from(body));
      }
      if (this.remaining === 0) {
        this.remaining = -1;
        this.queue.shift();
        if (head.out) {
          head.out.end();
          head.resolve({ hash: cur.hash, type: cur.type, size: cur.size, data: Buffer.alloc(0) });
        } else {
          head.resolve({ hash: cur.hash, type: cur.type, size: cur.size, data: Buffer.concat(cur.chunks) });
        }
        this.current = undefined;
      }
    }
  }

  /** Ends the process (pending reads fail). */
  close(): void {
    if (!this.proc) return;
    if (this.queue.length === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.proc.stdin.end();
      const p = this.proc;
      // It exits on EOF; make sure of it.
      setTimeout(() => {
        if (p.exitCode === null && p.pid !== undefined) {
          try {
            process.kill(-p.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }, 5_000).unref();
    } else {
      this.fail(new Error('git cat-file --batch closed'));
    }
  }
}
