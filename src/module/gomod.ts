// go.mod parsing as golang.org/x/mod/modfile does it: the same lexer (tokens, strings, // comments,
// "( ... )" blocks), the same comment attachment (which decides "// indirect", "// Deprecated:"
// and retraction rationales), and ParseLax's interpretation, which is what the go command applies
// to the go.mod of a dependency. An optional strict mode follows modfile.Parse instead.
import { isUtf8 } from 'node:buffer';
import { ModuleError } from './errors.js';
import { canonicalVersion, checkPathMajor, splitPathVersion } from './path.js';
import { compare } from './semver.js';
import { decodeUtf8Lossy, hasLoneSurrogate, quote, quoteRune, unquote } from './text.js';
import { isPrint, isSpace } from './unicode.js';

export interface GoModModule {
  path: string;
  /** The text of a "Deprecated:" paragraph in the comments on the module directive. */
  deprecated?: string;
}

export interface GoModRequire {
  path: string;
  /** Canonical (modfile canonicalizes "v1.2" to "v1.2.0"); "+incompatible" is kept. */
  version: string;
  /** The line carries a "// indirect" comment. */
  indirect: boolean;
}

export interface GoModExclude {
  path: string;
  version: string;
}

export interface GoModReplace {
  /** version is "" when the directive replaces every version. */
  old: { path: string; version: string };
  /** version is "" when the replacement is a directory. */
  new: { path: string; version: string };
}

export interface GoModRetract {
  /**
   * The interval is closed; low === high for a single version. The bounds are the strings the
   * file wrote (unquoted, not canonicalized): modfile keeps them as written, and comparisons
   * use semver order, where "v1.2" equals "v1.2.0".
   */
  low: string;
  high: string;
  /** The comments on the directive, "" if none. */
  rationale: string;
}

export interface GoModGodebug {
  key: string;
  value: string;
}

export interface GoModFile {
  module?: GoModModule;
  /** The go directive's version ("1.21", or with ParseLax's leniency "1.21" from "v1.21rc"). */
  go?: string;
  /** Strict mode only: ParseLax ignores toolchain, godebug, exclude, replace and tool. */
  toolchain?: string;
  godebug: GoModGodebug[];
  require: GoModRequire[];
  exclude: GoModExclude[];
  replace: GoModReplace[];
  retract: GoModRetract[];
  tool: string[];
  ignore: string[];
}

export interface ParseGoModOptions {
  /**
   * Follow modfile.Parse (the main module's rules: every directive interpreted, unknown ones and
   * malformed retractions are errors) instead of modfile.ParseLax (a dependency's rules).
   */
  strict?: boolean;
}

// ---- lexer ------------------------------------------------------------------------------------

interface Position {
  line: number;
  /** Rune (code point) in the line, starting at 1. */
  lineRune: number;
  /** Offset in the text. Go counts bytes; only the order matters, so UTF-16 units do as well. */
  offset: number;
}

interface Comment {
  start: Position;
  /** The comment including "//", without the line end; "" marks a blank line inside a block. */
  token: string;
}

interface Commented {
  before: Comment[];
  suffix: Comment[];
}

interface LineExpr extends Commented {
  kind: 'line';
  start: Position;
  end: Position;
  tokens: string[];
}

interface ParenExpr extends Commented {
  kind: 'paren';
  pos: Position;
}

interface BlockExpr extends Commented {
  kind: 'block';
  start: Position;
  tokens: string[];
  lparen: ParenExpr;
  lines: LineExpr[];
  rparen: ParenExpr;
}

interface CommentBlockExpr extends Commented {
  kind: 'comments';
  start: Position;
}

type Stmt = LineExpr | BlockExpr | CommentBlockExpr;

const EOF = -1;
const EOL_COMMENT = -2;
const IDENT = -3;
const STRING = -4;
const COMMENT = -5;

function isEOL(kind: number): boolean {
  return kind === EOF || kind === EOL_COMMENT || kind === 0x0a;
}

/** Identifier runes: anything printable except space and ( ) [ ] { } , (modfile's isIdent). */
function isIdent(cp: number): boolean {
  if (cp < 0x80) {
    if (cp <= 0x20 || cp === 0x7f) return false;
    switch (cp) {
      case 0x28:
      case 0x29:
      case 0x5b:
      case 0x5d:
      case 0x7b:
      case 0x7d:
      case 0x2c:
        return false;
      default:
        return true;
    }
  }
  return isPrint(cp) && !isSpace(cp);
}

function formatPos(file: string, pos: Position): string {
  return pos.lineRune > 1 ? `${file}:${pos.line}:${pos.lineRune}: ` : `${file}:${pos.line}: `;
}

/** A syntax error; it ends the parse, as modfile's panic does. */
class GoModSyntaxError extends Error {}

interface Token {
  kind: number;
  pos: Position;
  endPos: Position;
  text: string;
}

/** A block statement ("require (" ... ")") with no lines yet. */
function emptyBlock(start: Position, tokens: string[], lparenPos: Position, rparenPos: Position): BlockExpr {
  return {
    kind: 'block',
    start,
    tokens,
    lparen: { kind: 'paren', pos: lparenPos, before: [], suffix: [] },
    lines: [],
    rparen: { kind: 'paren', pos: rparenPos, before: [], suffix: [] },
    before: [],
    suffix: [],
  };
}

class Parser {
  private i = 0;
  private line = 1;
  private lineRune = 1;
  private tokenStart = 0;
  private tok: Token;
  /** End-of-line comments, attached to syntax after parsing. */
  readonly suffixComments: Comment[] = [];
  readonly stmts: Stmt[] = [];

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    this.tok = { kind: EOF, pos: this.pos(), endPos: this.pos(), text: '' };
    this.readToken();
  }

  private pos(): Position {
    return { line: this.line, lineRune: this.lineRune, offset: this.i };
  }

  private error(msg: string, at: Position = this.pos()): never {
    throw new GoModSyntaxError(formatPos(this.file, at) + msg);
  }

  private eof(): boolean {
    return this.i >= this.text.length;
  }

  private peekRune(): number {
    return this.i < this.text.length ? (this.text.codePointAt(this.i) as number) : 0;
  }

  private peekPrefix(prefix: string): boolean {
    return this.text.startsWith(prefix, this.i);
  }

  private readRune(): number {
    const cp = this.text.codePointAt(this.i) as number;
    this.i += cp > 0xffff ? 2 : 1;
    if (cp === 0x0a) {
      this.line++;
      this.lineRune = 1;
    } else {
      this.lineRune++;
    }
    return cp;
  }

  private startToken(): void {
    this.tokenStart = this.i;
    this.tok = { kind: EOF, pos: this.pos(), endPos: this.pos(), text: '' };
  }

  private endToken(kind: number): void {
    let text = this.text.slice(this.tokenStart, this.i);
    if (kind === COMMENT || kind === EOL_COMMENT) {
      if (text.endsWith('\r\n')) text = text.slice(0, -2);
      else if (text.endsWith('\n')) text = text.slice(0, -1);
    }
    this.tok.kind = kind;
    this.tok.text = text;
    this.tok.endPos = this.pos();
  }

  /** Whether anything but white space precedes offset on its line: then a comment there is a suffix. */
  private tokenBefore(offset: number): boolean {
    for (let k = offset - 1; k >= 0; k--) {
      const c = this.text.charCodeAt(k);
      if (c === 0x0a) return false;
      if (!isSpace(c)) return true;
    }
    return false;
  }

  private readToken(): void {
    while (!this.eof()) {
      const c = this.text.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0d) {
        this.i++;
        this.lineRune++;
        continue;
      }
      if (this.peekPrefix('//')) {
        this.startToken();
        const suffix = this.tokenBefore(this.i);
        const nl = this.text.indexOf('\n', this.i);
        if (nl >= 0) {
          this.i = nl + 1;
          this.line++;
          this.lineRune = 1;
        } else {
          while (!this.eof()) this.readRune();
        }
        if (!suffix) {
          // A comment alone on its line goes to the parser, which groups such comments itself.
          this.endToken(COMMENT);
          return;
        }
        this.endToken(EOL_COMMENT);
        this.suffixComments.push({ start: this.tok.pos, token: this.tok.text });
        return;
      }
      if (this.peekPrefix('/*')) this.error('mod files must use // comments (not /* */ comments)');
      break;
    }

    this.startToken();
    if (this.eof()) {
      this.endToken(EOF);
      return;
    }

    const c = this.peekRune();
    switch (c) {
      case 0x0a:
      case 0x28:
      case 0x29:
      case 0x5b:
      case 0x5d:
      case 0x7b:
      case 0x7d:
      case 0x2c:
        this.readRune();
        this.endToken(c);
        return;
      case 0x22:
      case 0x60: {
        this.readRune();
        for (;;) {
          if (this.eof()) this.error('unexpected EOF in string', this.tok.pos);
          if (this.peekRune() === 0x0a) this.error('unexpected newline in string');
          const r = this.readRune();
          if (r === c) break;
          if (r === 0x5c && c !== 0x60) {
            if (this.eof()) this.error('unexpected EOF in string', this.tok.pos);
            this.readRune();
          }
        }
        this.endToken(STRING);
        return;
      }
    }

    if (!isIdent(c)) this.error(`unexpected input character ${quoteRune(c)}`);
    while (isIdent(this.peekRune())) {
      if (this.peekPrefix('//')) break;
      if (this.peekPrefix('/*')) this.error('mod files must use // comments (not /* */ comments)');
      this.readRune();
    }
    this.endToken(IDENT);
  }

  private peek(): number {
    return this.tok.kind;
  }

  private lex(): Token {
    const t = this.tok;
    this.readToken();
    return t;
  }

  parseFile(): void {
    let cb: CommentBlockExpr | undefined;
    for (;;) {
      switch (this.peek()) {
        case 0x0a:
          this.lex();
          if (cb) {
            this.stmts.push(cb);
            cb = undefined;
          }
          break;
        case COMMENT: {
          const t = this.lex();
          cb ??= { kind: 'comments', start: t.pos, before: [], suffix: [] };
          cb.before.push({ start: t.pos, token: t.text });
          break;
        }
        case EOF:
          if (cb) this.stmts.push(cb);
          return;
        default:
          this.parseStmt();
          if (cb) {
            // Comment lines directly above a statement belong to it.
            (this.stmts[this.stmts.length - 1] as Stmt).before = cb.before;
            cb = undefined;
          }
      }
    }
  }

  private parseStmt(): void {
    const first = this.lex();
    const start = first.pos;
    let end = first.endPos;
    const tokens = [first.text];
    for (;;) {
      const t = this.lex();
      if (isEOL(t.kind)) {
        this.stmts.push({ kind: 'line', start, end, tokens, before: [], suffix: [] });
        return;
      }
      if (t.kind === 0x28) {
        const next = this.peek();
        if (isEOL(next)) {
          this.stmts.push(this.parseLineBlock(start, tokens, t));
          return;
        }
        if (next === 0x29) {
          const rparen = this.lex();
          if (isEOL(this.peek())) {
            this.lex();
            this.stmts.push(emptyBlock(start, tokens, t.pos, rparen.pos));
            return;
          }
          tokens.push(t.text, rparen.text);
        } else {
          tokens.push(t.text);
        }
        continue;
      }
      tokens.push(t.text);
      end = t.endPos;
    }
  }

  private parseLineBlock(start: Position, tokens: string[], lparen: Token): BlockExpr {
    // The closing paren's position is filled in when it is found.
    const block = emptyBlock(start, tokens, lparen.pos, lparen.pos);
    let comments: Comment[] = [];
    for (;;) {
      switch (this.peek()) {
        case EOL_COMMENT:
          this.lex();
          break;
        case 0x0a: {
          this.lex();
          // A blank line is kept as an empty comment, at most one in a row.
          const last = comments[comments.length - 1];
          if ((comments.length === 0 && block.lines.length > 0) || (last !== undefined && last.token !== '')) {
            comments.push({ start: { line: 0, lineRune: 0, offset: 0 }, token: '' });
          }
          break;
        }
        case COMMENT: {
          const t = this.lex();
          comments.push({ start: t.pos, token: t.text });
          break;
        }
        case EOF:
          this.error(`syntax error (unterminated block started at ${this.file}:${block.start.line}:${block.start.lineRune})`);
        case 0x29: {
          const rparen = this.lex();
          if (comments.length === 1 && (comments[0] as Comment).token === '') comments = [];
          block.rparen.before = comments;
          block.rparen.pos = rparen.pos;
          if (!isEOL(this.peek())) this.error('syntax error (expected newline after closing paren)');
          this.lex();
          return block;
        }
        default: {
          const line = this.parseLine();
          block.lines.push(line);
          line.before = comments;
          comments = [];
        }
      }
    }
  }

  private parseLine(): LineExpr {
    const first = this.lex();
    if (isEOL(first.kind)) this.error('internal parse error: parseLine at end of line');
    const start = first.pos;
    let end = first.endPos;
    const tokens = [first.text];
    for (;;) {
      const t = this.lex();
      if (isEOL(t.kind)) return { kind: 'line', start, end, tokens, before: [], suffix: [] };
      tokens.push(t.text);
      end = t.endPos;
    }
  }

  /**
   * Gives each end-of-line comment to the last single-line piece of syntax that ends before it
   * (modfile's assignComments; whole-line comments were attached by the parser already).
   */
  assignComments(): void {
    const post: (LineExpr | ParenExpr | BlockExpr | CommentBlockExpr)[] = [];
    for (const s of this.stmts) {
      if (s.kind === 'block') {
        post.push(s.lparen);
        for (const l of s.lines) post.push(l);
        post.push(s.rparen);
      }
      post.push(s);
    }
    const suffix = this.suffixComments;
    for (let k = post.length - 1; k >= 0 && suffix.length > 0; k--) {
      const x = post[k] as LineExpr | ParenExpr | BlockExpr | CommentBlockExpr;
      let startLine: number;
      let endLine: number;
      let endOffset: number;
      switch (x.kind) {
        case 'line':
          startLine = x.start.line;
          endLine = x.end.line;
          endOffset = x.end.offset;
          break;
        case 'paren':
          startLine = endLine = x.pos.line;
          endOffset = x.pos.offset + 1;
          break;
        case 'block':
          startLine = x.start.line;
          endLine = x.rparen.pos.line;
          endOffset = x.rparen.pos.offset + 1;
          break;
        case 'comments':
          startLine = endLine = x.start.line;
          endOffset = x.start.offset;
          break;
      }
      if (startLine !== endLine) continue;
      const taken: Comment[] = [];
      while (suffix.length > 0 && endOffset <= (suffix[suffix.length - 1] as Comment).start.offset) {
        taken.push(suffix.pop() as Comment);
      }
      if (taken.length > 0) x.suffix.push(...taken.reverse());
    }
  }
}

// ---- interpretation ---------------------------------------------------------------------------

const GO_VERSION_RE = /^([1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?([a-z]+[0-9]+)?$/;
const LAX_GO_VERSION_RE = /^v?(([1-9][0-9]*)\.(0|[1-9][0-9]*))([^0-9][^\n]*)$/;
const TOOLCHAIN_RE = /^default$|^go1($|\.)/;
const DEPRECATED_RE = /(?:^|\n\n)Deprecated: *([\s\S]*?)(?:$|\n\n)/;

/** An error in one directive, worded as modfile words it; the caller adds "file:line: ". */
class DirectiveError extends Error {}

function directivePrefix(verb: string, modPath: string): string {
  if (modPath !== '') return `${verb} ${modPath}: `;
  return verb !== '' ? `${verb}: ` : '';
}

function trimSpace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isSpace(s.codePointAt(a) as number)) a++;
  while (b > a && isSpace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

function fields(s: string): string[] {
  const out: string[] = [];
  let start = -1;
  for (let k = 0; k < s.length; k++) {
    const sp = isSpace(s.charCodeAt(k));
    if (sp && start >= 0) {
      out.push(s.slice(start, k));
      start = -1;
    } else if (!sp && start < 0) {
      start = k;
    }
  }
  if (start >= 0) out.push(s.slice(start));
  return out;
}

function trimCommentMarker(token: string): string {
  return token.startsWith('//') ? token.slice(2) : token;
}

function isIndirect(line: LineExpr): boolean {
  const first = line.suffix[0];
  if (first === undefined) return false;
  const f = fields(trimCommentMarker(first.token));
  return (f.length === 1 && f[0] === 'indirect') || (f.length > 1 && f[0] === 'indirect;');
}

/** The comments on a directive, or on its block when the line itself has none. */
function directiveComment(block: BlockExpr | undefined, line: LineExpr): string {
  let c: Commented = line;
  if (block !== undefined && line.before.length === 0 && line.suffix.length === 0) c = block;
  const lines: string[] = [];
  for (const com of [...c.before, ...c.suffix]) {
    if (!com.token.startsWith('//')) continue; // blank line marker
    lines.push(trimSpace(com.token.slice(2)));
  }
  return lines.join('\n');
}

/** Unquotes a path or version token: "..." is a Go string; other quotes are reserved. */
function parseString(tok: string): { value: string } | { error: string } {
  if (tok.startsWith('"')) {
    const v = unquote(tok);
    return v === undefined ? { error: 'invalid syntax' } : { value: v };
  }
  if (/["'`]/.test(tok)) return { error: 'unquoted string cannot contain quote' };
  return { value: tok };
}

/**
 * A version token: unquoted and, unless raw (retract keeps what was written), canonicalized.
 * Throws DirectiveError with modfile's wording.
 */
function parseVersion(verb: string, modPath: string, tok: string, raw: boolean): string {
  const s = parseString(tok);
  if ('error' in s) throw new DirectiveError(`${directivePrefix(verb, modPath)}version ${quote(tok)} invalid: ${s.error}`);
  if (raw) return s.value;
  const cv = canonicalVersion(s.value);
  if (cv === '') {
    throw new DirectiveError(`${directivePrefix(verb, modPath)}version ${quote(s.value)} invalid: must be of the form v1.2.3`);
  }
  return cv;
}

function parseVersionInterval(verb: string, args: string[]): { low: string; high: string; used: number } {
  const t = args;
  if (t.length === 0 || t[0] === '(') throw new DirectiveError("expected '[' or version");
  if (t[0] !== '[') {
    const v = parseVersion(verb, '', t[0] as string, true);
    return { low: v, high: v, used: 1 };
  }
  if (t.length < 2) throw new DirectiveError("expected version after '['");
  const low = parseVersion(verb, '', t[1] as string, true);
  if (t.length < 3 || t[2] !== ',') throw new DirectiveError("expected ',' after version");
  if (t.length < 4) throw new DirectiveError("expected version after ','");
  const high = parseVersion(verb, '', t[3] as string, true);
  if (t.length < 5 || t[4] !== ']') throw new DirectiveError("expected ']' after version");
  return { low, high, used: 5 };
}

/** modfile.IsDirectoryPath: rooted or ./ ../ paths, in Unix or Windows spelling. */
function isDirectoryPath(ns: string): boolean {
  return (
    ns === '.' ||
    ns.startsWith('./') ||
    ns.startsWith('.\\') ||
    ns === '..' ||
    ns.startsWith('../') ||
    ns.startsWith('..\\') ||
    ns.startsWith('/') ||
    ns.startsWith('\\') ||
    (ns.length >= 2 && /^[A-Za-z]:/.test(ns))
  );
}

/** The path's major suffix, or undefined for a malformed one ("x/v1"): modfile's "invalid module path". */
function modulePathMajor(s: string): string | undefined {
  const split = splitPathVersion(s);
  return split.ok ? split.pathMajor : undefined;
}

function pathMajorMismatch(v: string, pathMajor: string): string | undefined {
  try {
    checkPathMajor(v, pathMajor);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

class Interpreter {
  readonly f: GoModFile = { godebug: [], require: [], exclude: [], replace: [], retract: [], tool: [], ignore: [] };
  readonly errors: string[] = [];

  constructor(
    private readonly file: string,
    private readonly strict: boolean,
  ) {}

  add(block: BlockExpr | undefined, line: LineExpr, verb: string, args: string[]): void {
    // A dependency's go.mod may use directives from a newer Go, or ones that only matter in the
    // main module: ParseLax interprets only what a dependency contributes.
    if (!this.strict && verb !== 'go' && verb !== 'module' && verb !== 'retract' && verb !== 'require' && verb !== 'ignore') {
      return;
    }
    const at = formatPos(this.file, line.start);
    const fail = (msg: string): void => {
      this.errors.push(at + msg);
    };
    try {
      this.interpret(block, line, verb, args, fail);
    } catch (err) {
      if (err instanceof DirectiveError) fail(err.message);
      else throw err;
    }
  }

  private interpret(block: BlockExpr | undefined, line: LineExpr, verb: string, args: string[], fail: (msg: string) => void): void {
    const f = this.f;
    switch (verb) {
      case 'go': {
        if (f.go !== undefined) return fail('repeated go statement');
        if (args.length !== 1) return fail('go directive expects exactly one argument');
        let v = args[0] as string;
        if (!GO_VERSION_RE.test(v)) {
          const m = this.strict ? null : LAX_GO_VERSION_RE.exec(v);
          if (m === null) return fail(`invalid go version '${v}': must match format 1.23.0`);
          v = m[1] as string;
        }
        f.go = v;
        return;
      }
      case 'toolchain': {
        if (f.toolchain !== undefined) return fail('repeated toolchain statement');
        if (args.length !== 1) return fail('toolchain directive expects exactly one argument');
        const name = args[0] as string;
        if (!TOOLCHAIN_RE.test(name)) {
          return fail(`invalid toolchain version '${name}': must match format go1.23.0 or default`);
        }
        f.toolchain = name;
        return;
      }
      case 'module': {
        if (f.module !== undefined) return fail('repeated module statement');
        const m = DEPRECATED_RE.exec(directiveComment(block, line));
        const mod: GoModModule = { path: '' };
        // An empty "Deprecated:" paragraph deprecates nothing: the go command tests for "".
        if (m !== null && m[1] !== '') mod.deprecated = m[1] as string;
        f.module = mod;
        if (args.length !== 1) return fail('usage: module module/path');
        const s = parseString(args[0] as string);
        if ('error' in s) return fail(`invalid quoted string: ${s.error}`);
        mod.path = s.value;
        return;
      }
      case 'godebug': {
        const arg = args[0];
        if (args.length !== 1 || arg === undefined || /["`',]/.test(arg)) return fail('usage: godebug key=value');
        const eq = arg.indexOf('=');
        if (eq < 0) return fail('usage: godebug key=value');
        f.godebug.push({ key: arg.slice(0, eq), value: arg.slice(eq + 1) });
        return;
      }
      case 'require':
      case 'exclude': {
        if (args.length !== 2) return fail(`usage: ${verb} module/path v1.2.3`);
        const s = parseString(args[0] as string);
        if ('error' in s) return fail(`invalid quoted string: ${s.error}`);
        const v = parseVersion(verb, s.value, args[1] as string, false);
        const pathMajor = modulePathMajor(s.value);
        if (pathMajor === undefined) return fail('invalid module path');
        const mismatch = pathMajorMismatch(v, pathMajor);
        if (mismatch !== undefined) return fail(directivePrefix(verb, s.value) + mismatch);
        if (verb === 'require') f.require.push({ path: s.value, version: v, indirect: isIndirect(line) });
        else f.exclude.push({ path: s.value, version: v });
        return;
      }
      case 'replace':
        return this.replace(args, fail);
      case 'retract': {
        const rationale = directiveComment(block, line);
        let vi: { low: string; high: string; used: number };
        try {
          vi = parseVersionInterval(verb, args);
        } catch (err) {
          // Only the main module's retractions are checked: a dependency may use interval syntax
          // from a newer Go, and its other directives must still be usable.
          if (this.strict) throw err;
          return;
        }
        if (vi.used < args.length && this.strict) {
          return fail(`unexpected token after version: ${quote(args[vi.used] as string)}`);
        }
        f.retract.push({ low: vi.low, high: vi.high, rationale });
        return;
      }
      case 'tool':
      case 'ignore': {
        if (args.length !== 1) return fail(`${verb} directive expects exactly one argument`);
        const s = parseString(args[0] as string);
        if ('error' in s) return fail(`invalid quoted string: ${s.error}`);
        (verb === 'tool' ? f.tool : f.ignore).push(s.value);
        return;
      }
      default:
        return fail(`unknown directive: ${verb}`);
    }
  }

  private replace(args: string[], fail: (msg: string) => void): void {
    const verb = 'replace';
    const arrow = args.length >= 2 && args[1] === '=>' ? 1 : 2;
    if (args.length < arrow + 2 || args.length > arrow + 3 || args[arrow] !== '=>') {
      // modfile breaks this line in two ("\n\t or ..."); ours stay on one line.
      return fail(`usage: ${verb} module/path [v1.2.3] => other/module v1.4 or ${verb} module/path [v1.2.3] => ../local/directory`);
    }
    const s = parseString(args[0] as string);
    if ('error' in s) return fail(`invalid quoted string: ${s.error}`);
    const pathMajor = modulePathMajor(s.value);
    if (pathMajor === undefined) return fail(directivePrefix(verb, s.value) + 'invalid module path');
    let v = '';
    if (arrow === 2) {
      v = parseVersion(verb, s.value, args[1] as string, false);
      const mismatch = pathMajorMismatch(v, pathMajor);
      if (mismatch !== undefined) return fail(directivePrefix(verb, s.value) + mismatch);
    }
    const ns = parseString(args[arrow + 1] as string);
    if ('error' in ns) return fail(`invalid quoted string: ${ns.error}`);
    let nv = '';
    if (args.length === arrow + 2) {
      if (!isDirectoryPath(ns.value)) {
        if (ns.value.includes('@')) {
          return fail("replacement module must match format 'path version', not 'path@version'");
        }
        return fail('replacement module without version must be directory path (rooted or starting with . or ..)');
      }
      // modfile checks this only where the path separator is "/", as on the servers we run on.
      if (ns.value.includes('\\')) {
        return fail('replacement directory appears to be Windows path (on a non-windows system)');
      }
    }
    if (args.length === arrow + 3) {
      nv = parseVersion(verb, ns.value, args[arrow + 2] as string, false);
      if (isDirectoryPath(ns.value)) return fail(`replacement module directory path ${quote(ns.value)} cannot have version`);
    }
    this.f.replace.push({ old: { path: s.value, version: v }, new: { path: ns.value, version: nv } });
  }
}

const KNOWN_BLOCKS = new Set(['module', 'godebug', 'require', 'exclude', 'replace', 'retract', 'tool', 'ignore']);

/** Line and rune column of a text offset, for errors found before lexing. */
function positionOf(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let k = text.indexOf('\n'); k >= 0 && k < offset; k = text.indexOf('\n', k + 1)) {
    line++;
    lineStart = k + 1;
  }
  let lineRune = 1;
  for (let k = lineStart; k < offset; k++) {
    const c = text.charCodeAt(k);
    if (!(c >= 0xdc00 && c <= 0xdfff)) lineRune++;
  }
  return { line, lineRune, offset };
}

/**
 * The text of a go.mod. Bytes are taken as modfile takes them (anything goes in comments and
 * quoted strings); only a JavaScript string holding a lone surrogate, which no bytes can encode,
 * is refused.
 */
function goModText(data: Buffer | string, file: string): string {
  let text: string;
  if (typeof data === 'string') {
    text = data;
    if (hasLoneSurrogate(text)) {
      let k = 0;
      for (; k < text.length; k++) {
        const c = text.charCodeAt(k);
        if (c >= 0xd800 && c <= 0xdbff) {
          const d = text.charCodeAt(k + 1);
          if (d >= 0xdc00 && d <= 0xdfff) {
            k++;
            continue;
          }
          break;
        }
        if (c >= 0xdc00 && c <= 0xdfff) break;
      }
      throw new ModuleError(formatPos(file, positionOf(text, k)) + 'invalid UTF-8 encoding');
    }
  } else {
    // The go command's lexer works on bytes and accepts any in comments and quoted strings; so do
    // we (decoding bad bytes to U+FFFD only changes text that no rule reads), or a module the go
    // command can use would be refused here.
    text = isUtf8(data) ? data.toString('utf8') : decodeUtf8Lossy(data);
  }
  return text;
}

/**
 * Parses a go.mod file the way the go command parses a dependency's (modfile.ParseLax with no
 * version fixer), or with options.strict like modfile.Parse. Throws ModuleError naming file:line
 * for syntax errors and invalid directives; several
 * directive errors are joined with "; " to keep the message on one line.
 */
export function parseGoMod(data: Buffer | string, file = 'go.mod', options: ParseGoModOptions = {}): GoModFile {
  const strict = options.strict ?? false;
  const text = goModText(data, file);
  let parser: Parser;
  try {
    parser = new Parser(text, file);
    parser.parseFile();
  } catch (err) {
    if (err instanceof GoModSyntaxError) throw new ModuleError(err.message);
    throw err;
  }
  parser.assignComments();

  const interp = new Interpreter(file, strict);
  for (const x of parser.stmts) {
    if (x.kind === 'line') {
      interp.add(undefined, x, x.tokens[0] as string, x.tokens.slice(1));
    } else if (x.kind === 'block') {
      if (x.tokens.length > 1 || !KNOWN_BLOCKS.has(x.tokens[0] as string)) {
        if (strict) interp.errors.push(formatPos(file, x.start) + `unknown block type: ${x.tokens.join(' ')}`);
        continue;
      }
      for (const l of x.lines) interp.add(x, l, x.tokens[0] as string, l.tokens);
    }
  }
  if (interp.errors.length > 0) throw new ModuleError(interp.errors.join('; '));
  return interp.f;
}

/**
 * The module path a go.mod declares, or "" (modfile.ModulePath): a line-based scan that tolerates
 * everything else being malformed, for when only the path matters.
 */
export function modulePathOf(data: Buffer | string): string {
  const text = typeof data === 'string' ? data : isUtf8(data) ? data.toString('utf8') : decodeUtf8Lossy(data);
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    let line = nl < 0 ? text.slice(start) : text.slice(start, nl);
    start = nl < 0 ? text.length : nl + 1;
    const comment = line.indexOf('//');
    if (comment >= 0) line = line.slice(0, comment);
    line = trimSpace(line);
    if (!line.startsWith('module')) continue;
    line = line.slice('module'.length);
    const n = line.length;
    line = trimSpace(line);
    // "modulex" is not a module line, and "module" alone names nothing.
    if (line.length === n || line.length === 0) continue;
    if (line.startsWith('"') || line.startsWith('`')) return unquote(line) ?? '';
    return line;
  }
  return '';
}

/** Reports whether version falls in one of the retracted intervals (bounds included, semver order). */
export function isRetracted(version: string, retracts: readonly Pick<GoModRetract, 'low' | 'high'>[]): boolean {
  return retracts.some((r) => compare(r.low, version) <= 0 && compare(version, r.high) <= 0);
}

/** The rationales of the intervals that retract version, in file order (empty if not retracted). */
export function retractionRationales(version: string, retracts: readonly GoModRetract[]): string[] {
  return retracts.filter((r) => compare(r.low, version) <= 0 && compare(version, r.high) <= 0 && r.rationale !== '').map((r) => r.rationale);
}
