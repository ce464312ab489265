/**
 * Why a module zip was refused. The message is one line the go command can show a user
 * unchanged (the server sends it as a plain-text body, and the go command prints only the
 * first lines of such a body), so it never contains a line break, whatever the zip holds.
 */
export class ZipError extends Error {
  override readonly name = 'ZipError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(oneLine(message), options);
  }
}

/** Replaces every line break (including the Unicode ones) and other control characters by a space. */
export function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
}

/**
 * A double-quoted, escaped rendering of an untrusted string, in the spirit of Go's %q: a file
 * name taken from a zip may hold quotes, control characters or line breaks, and must neither
 * break the one-line message nor be confused with the text around it.
 */
export function quote(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
