// Streaming a large body to a client without letting slow clients cost memory or fast clients
// time. Bytes are read by position into two buffers of one modest size that the response owns,
// and a buffer is read into again only once the socket has taken what was written from it. A
// client that keeps up gets one piece read while the other is written; a slow one (its kernel
// buffer full) holds one piece and nothing read ahead. Per-connection memory is then bounded by
// the piece, whatever the file and however many slow readers there are, and the server's
// event-loop turns stay short while many clients arrive at once.
import type { ServerResponse } from 'node:http';

/** 64 KiB: Node's own default for file streams; larger pieces only lengthen the turns that serve them. */
export const PIECE_BYTES = 64 << 10;

export interface PositionalSource {
  /** Up to buf.length bytes at `position` into buf; 0 at the end. */
  read(buf: Buffer, position: number): Promise<number>;
}

/**
 * Writes the source's bytes from position 0 to `res` (the caller ends the response). Resolves
 * with the bytes sent; stops early, without error, once `stop()` says the client went away.
 * `progress.sent` follows along, for the caller's account of a transfer that fails midway.
 */
export async function sendFromSource(
  res: ServerResponse,
  src: PositionalSource,
  stop: () => boolean,
  progress: { sent: number } = { sent: 0 },
): Promise<number> {
  const bufs: (Buffer | undefined)[] = [undefined, undefined];
  const flushed: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  let pos = 0;
  let i = 0;
  for (;;) {
    // This buffer may be refilled only once the socket has taken its previous bytes.
    await flushed[i];
    if (stop()) return pos;
    const buf = (bufs[i] ??= Buffer.allocUnsafe(PIECE_BYTES));
    const n = await src.read(buf, pos);
    if (n === 0 || stop()) return pos;
    pos += n;
    progress.sent = pos;
    let done!: () => void;
    flushed[i] = new Promise<void>((resolve) => {
      done = resolve;
    });
    const onClose = (): void => done();
    res.once('close', onClose);
    const more = res.write(n === buf.length ? buf : buf.subarray(0, n), () => {
      res.off('close', onClose);
      done();
    });
    if (!more) {
      // The client is not keeping up: hold only this piece until it is taken, read nothing ahead,
      // and let the other buffer go (a slow reader keeps one piece, not two).
      bufs[i ^ 1] = undefined;
      await flushed[i];
    }
    i ^= 1;
  }
}
