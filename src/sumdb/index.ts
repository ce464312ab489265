// The checksum database: signed notes, the transparency log and its tiles, GOSUMDB settings, and a
// verifying client. Other folders use this door only.
export { SumdbError, SumdbForkError } from './errors.js';
export type { SumdbErrorCode } from './errors.js';
export { NoteError, generateKey, isValidName, keyHash, newEd25519VerifierKey, newSigner, newVerifier, openNote, sign } from './note.js';
export type { Note, NoteErrorKind, Signature, Signer, Verifier, Verifiers } from './note.js';
export {
  HASH_SIZE,
  checkRecord,
  checkTree,
  emptyHash,
  formatRecord,
  formatTree,
  hashFromTile,
  isValidRecordText,
  newTiles,
  nodeHash,
  parseRecord,
  parseTilePath,
  parseTree,
  proveRecord,
  proveTree,
  readTileData,
  recordHash,
  splitStoredHashIndex,
  storedHashCount,
  storedHashIndex,
  storedHashes,
  storedHashesForRecordHash,
  tileForIndex,
  tileHashReader,
  tilePath,
  treeHash,
} from './tlog.js';
export type { Hash, HashReader, RecordProof, Tile, TileReader, Tree, TreeProof } from './tlog.js';
export { GO_SUMDB_KEY, GO_SUMDB_NAME, parseGosumdb } from './gosumdb.js';
export type { GosumdbSetting } from './gosumdb.js';
export { SumdbClient, escapeModulePath, escapeVersion } from './client.js';
export type { SignedTree, SumdbClientOptions, SumdbOps } from './client.js';
