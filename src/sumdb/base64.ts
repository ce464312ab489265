// Node's Buffer.from(s, 'base64') accepts almost anything (URL alphabet, missing padding, junk after the
// data). Keys, signatures and hashes must be decoded as strictly as Go's base64.StdEncoding does, or two
// implementations could disagree on whether a note is well-formed.
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes standard, padded base64 as Go's base64.StdEncoding.DecodeString does; null if malformed. */
export function decodeStdBase64(s: string): Buffer | null {
  // Go skips CR and LF anywhere in the input; everything else must be in the alphabet.
  const clean = s.includes('\r') || s.includes('\n') ? s.replace(/[\r\n]/g, '') : s;
  if (!STD_BASE64.test(clean)) return null;
  return Buffer.from(clean, 'base64');
}
