/**
 * What went wrong, coarsely, so callers (the proxy's HTTP layer, the CLI) can choose a status or an exit
 * code without parsing messages:
 * - `config`: a GOSUMDB setting or key is malformed (the operator must fix configuration);
 * - `input`: a module path or version that cannot be looked up (the request is bad);
 * - `not-found`: the database does not know the module version (it answered 404 or 410);
 * - `remote`: the database could not be reached or answered with an error;
 * - `malformed`: the database answered with something that does not parse;
 * - `verification`: the answer parsed but failed a signature, inclusion or tile check;
 * - `fork`: the database signed two inconsistent histories (see {@link SumdbForkError}).
 */
export type SumdbErrorCode = 'config' | 'input' | 'not-found' | 'remote' | 'malformed' | 'verification' | 'fork';

/**
 * An error to show to a Go user: the message is one line that says what happened and what to do.
 * Lower-level causes (network errors, x/mod-style parse errors) are kept in `cause`.
 */
export class SumdbError extends Error {
  override readonly name: string = 'SumdbError';
  readonly code: SumdbErrorCode;

  constructor(code: SumdbErrorCode, message: string, options?: { cause?: unknown }) {
    // A multi-line message would be cut by the go command (it shows the first lines of a plain-text body).
    super(message.replace(/\s*\n\s*/g, ' '), options);
    this.code = code;
  }
}

/**
 * The database signed two tree heads that cannot both be true: the older tree is not a prefix of the
 * newer one. Either the database is misbehaving or someone between us and it is forging answers.
 * `proof` holds the full report in the format of x/mod's sumdb client ("SECURITY ERROR ..."): both
 * signed notes and the hashes that demonstrate the inconsistency, so it can be checked without the
 * misbehaving server.
 */
export class SumdbForkError extends SumdbError {
  override readonly name: string = 'SumdbForkError';
  readonly oldNote: Buffer;
  readonly newNote: Buffer;
  readonly proof: string;

  constructor(dbName: string, oldNote: Buffer, newNote: Buffer, proof: string) {
    super(
      'fork',
      `SECURITY ERROR: checksum database ${dbName} signed two inconsistent trees (misbehavior or an attack); ` +
        'stop using it, keep the saved notes and the proof, and report them to the database operator',
    );
    this.oldNote = oldNote;
    this.newNote = newNote;
    this.proof = proof;
  }
}
