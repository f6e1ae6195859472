// A character-level pushdown automaton that accepts exactly one JSON value (RFC 8259): objects,
// arrays, strings with escapes (\uXXXX included), numbers, true/false/null. Three limits keep a
// sampled model from stalling on one token kind forever, and the stack from growing without bound:
//  - at most `maxWhitespaceRun` whitespace characters in a row between tokens (enough for a newline
//    and indentation three levels deep), and none after the top-level value: once the value is
//    complete no character is allowed, so the token mask leaves only EOS;
//  - numbers at most `maxNumberLength` characters long (a double never needs more than 24, as in
//    -2.2250738585072014e-308), so that a model repeating a digit must end the number;
//  - nesting at most `maxDepth` objects/arrays deep: a '{' or '[' past it is refused.
// Leading whitespace is allowed (within the run limit), as JSON.parse allows it.
//
// A state is a control word (mode, a small counter, a key flag) and the stack of open containers,
// a persistent linked list so that stepping never copies it. Stepping a character inside a string
// returns the same state object, so walking the token trie through a string allocates nothing.
import type { CharAutomaton } from './automaton.ts';

export const maxWhitespaceRun = 8;
export const maxNumberLength = 24;
export const maxDepth = 32;

const objectFrame = 0;
const arrayFrame = 1;

/** An open container; `below` is the one it sits in. */
interface Frame {
  readonly kind: typeof objectFrame | typeof arrayFrame;
  readonly below: Frame | null;
  /** Number of open containers including this one. */
  readonly depth: number;
}

export interface JsonState {
  /** mode | counter << 5 | inKey << 10 (see the mode list). */
  readonly control: number;
  /** The innermost open container, or null at the top level. */
  readonly stack: Frame | null;
}

// Modes. Counter: consecutive whitespace in the modes that allow it, hex digits read in stringHex,
// the length so far in the number modes, letters read in the literal modes. inKey: the string
// being read is an object key.
const value = 0; // a value must come next
const arrayFirst = 1; // after '[': a value or ']'
const objectFirst = 2; // after '{': a key or '}'
const objectKey = 3; // after ',' in an object: a key
const colon = 4; // after a key: ':'
const afterValue = 5; // a value ended: ',' or the closer of the container (nothing at the top level)
const string = 6;
const stringEscape = 7; // after '\'
const stringHex = 8; // in \uXXXX
const numberMinus = 9; // '-'
const numberZero = 10; // a leading '0' (no more integer digits may follow)
const numberInteger = 11;
const numberPoint = 12; // '.' needs a digit
const numberFraction = 13;
const numberExponent = 14; // 'e' needs a sign or digit
const numberExponentSign = 15; // the sign needs a digit
const numberExponentDigits = 16;
const literalTrue = 17;
const literalFalse = 18;
const literalNull = 19;

const literalText: Record<number, string> = { [literalTrue]: 'true', [literalFalse]: 'false', [literalNull]: 'null' };
const counterShift = 5;
const keyFlag = 1 << 10;

const control = (mode: number, counter = 0, inKey = false): number => mode | (counter << counterShift) | (inKey ? keyFlag : 0);
const modeOf = (word: number): number => word & 31;
const counterOf = (word: number): number => (word >>> counterShift) & 31;

const isWhitespace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHexDigit = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const simpleEscapes = new Set(Array.from('"\\/bfnrt', (char) => char.codePointAt(0)!));
const [quote, backslash, comma, colonChar, minus, zero, point] = Array.from('"\\,:-0.', (char) => char.codePointAt(0)!);
const [openBrace, closeBrace, openBracket, closeBracket] = Array.from('{}[]', (char) => char.codePointAt(0)!);
const [lowerE, upperE, plus, lowerU] = Array.from('eE+u', (char) => char.codePointAt(0)!);
const literalModeOf: Record<number, number> = { [0x74]: literalTrue, [0x66]: literalFalse, [0x6e]: literalNull }; // t f n

/** How far a single token can reach into the stack: the most closers ('}' ']') and openers ('{' '[') one token's text holds. */
export interface TokenReach {
  closers: number;
  openers: number;
}

/** The reach of the longest-reaching tokens among `texts` (null texts are never allowed, so they do not count). */
export function tokenReach(texts: readonly (string | null)[]): TokenReach {
  const reach = { closers: 0, openers: 0 };
  for (const text of texts) {
    if (text === null) continue;
    let closers = 0;
    let openers = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i); // the brackets are ASCII, so UTF-16 units will do
      if (c === closeBrace || c === closeBracket) closers++;
      else if (c === openBrace || c === openBracket) openers++;
    }
    reach.closers = Math.max(reach.closers, closers);
    reach.openers = Math.max(reach.openers, openers);
  }
  return reach;
}

export class JsonAutomaton implements CharAutomaton<JsonState> {
  readonly start: JsonState = { control: control(value), stack: null };
  readonly #reach: TokenReach;

  constructor(reach: TokenReach) {
    this.#reach = reach;
  }

  step(state: JsonState, c: number): JsonState | null {
    const word = state.control;
    const mode = modeOf(word);
    switch (mode) {
      case value:
        return isWhitespace(c) ? this.#whitespace(state) : this.#startValue(state.stack, c);
      case arrayFirst:
        if (c === closeBracket) return this.#close(state.stack!);
        return isWhitespace(c) ? this.#whitespace(state) : this.#startValue(state.stack, c);
      case objectFirst:
        if (c === closeBrace) return this.#close(state.stack!);
        return this.#startKey(state, c);
      case objectKey:
        return this.#startKey(state, c);
      case colon:
        if (c === colonChar) return { control: control(value), stack: state.stack };
        return isWhitespace(c) ? this.#whitespace(state) : null;
      case afterValue:
        return this.#afterValue(state, c);
      case string:
        if (c === quote) return { control: (word & keyFlag) !== 0 ? control(colon) : control(afterValue), stack: state.stack };
        if (c === backslash) return { control: control(stringEscape, 0, (word & keyFlag) !== 0), stack: state.stack };
        return c < 0x20 ? null : state; // control characters must be escaped
      case stringEscape:
        if (simpleEscapes.has(c)) return { control: control(string, 0, (word & keyFlag) !== 0), stack: state.stack };
        return c === lowerU ? { control: control(stringHex, 0, (word & keyFlag) !== 0), stack: state.stack } : null;
      case stringHex: {
        if (!isHexDigit(c)) return null;
        const read = counterOf(word) + 1;
        return { control: control(read === 4 ? string : stringHex, read === 4 ? 0 : read, (word & keyFlag) !== 0), stack: state.stack };
      }
      case numberMinus:
        if (c === zero) return this.#extendNumber(state, numberZero);
        return isDigit(c) ? this.#extendNumber(state, numberInteger) : null;
      case numberZero:
      case numberInteger:
        if (isDigit(c) && mode === numberInteger) return this.#extendNumber(state, numberInteger);
        if (c === point) return this.#extendNumber(state, numberPoint);
        if (c === lowerE || c === upperE) return this.#extendNumber(state, numberExponent);
        return this.#afterNumber(state.stack, c);
      case numberPoint:
        return isDigit(c) ? this.#extendNumber(state, numberFraction) : null;
      case numberFraction:
        if (isDigit(c)) return this.#extendNumber(state, numberFraction);
        if (c === lowerE || c === upperE) return this.#extendNumber(state, numberExponent);
        return this.#afterNumber(state.stack, c);
      case numberExponent:
        if (c === plus || c === minus) return this.#extendNumber(state, numberExponentSign);
        return isDigit(c) ? this.#extendNumber(state, numberExponentDigits) : null;
      case numberExponentSign:
        return isDigit(c) ? this.#extendNumber(state, numberExponentDigits) : null;
      case numberExponentDigits:
        return isDigit(c) ? this.#extendNumber(state, numberExponentDigits) : this.#afterNumber(state.stack, c);
      default: {
        // literalTrue, literalFalse, literalNull: the counter is how many letters were read
        const text = literalText[mode];
        const read = counterOf(word);
        if (c !== text.codePointAt(read)) return null;
        return { control: read + 1 === text.length ? control(afterValue) : control(mode, read + 1), stack: state.stack };
      }
    }
  }

  accepting(state: JsonState): boolean {
    if (state.stack !== null) return false;
    const mode = modeOf(state.control);
    return mode === afterValue || mode === numberZero || mode === numberInteger || mode === numberFraction || mode === numberExponentDigits;
  }

  /**
   * A token pops at most `closers` containers, and a character after its last pop may look at the
   * container then on top (',' differs in arrays and objects; at the top level nothing follows). So
   * the top closers + 1 frames decide the mask, along with the exact depth wherever the token's
   * openers could reach the depth limit.
   */
  maskKey(state: JsonState): string {
    const { closers, openers } = this.#reach;
    let frames = '';
    for (let frame = state.stack; frame !== null && frames.length <= closers; frame = frame.below) frames += frame.kind;
    const depth = state.stack?.depth ?? 0;
    return `${state.control}/${frames}` + (depth + openers >= maxDepth ? `/${depth}` : '');
  }

  #whitespace(state: JsonState): JsonState | null {
    const run = counterOf(state.control) + 1;
    if (run > maxWhitespaceRun) return null;
    return { control: (state.control & ~(31 << counterShift)) | (run << counterShift), stack: state.stack };
  }

  #startKey(state: JsonState, c: number): JsonState | null {
    if (c === quote) return { control: control(string, 0, true), stack: state.stack };
    return isWhitespace(c) ? this.#whitespace(state) : null;
  }

  #startValue(stack: Frame | null, c: number): JsonState | null {
    if (c === openBrace || c === openBracket) {
      const depth = (stack?.depth ?? 0) + 1;
      if (depth > maxDepth) return null;
      const kind = c === openBrace ? objectFrame : arrayFrame;
      return { control: control(kind === objectFrame ? objectFirst : arrayFirst), stack: { kind, below: stack, depth } };
    }
    if (c === quote) return { control: control(string), stack };
    if (c === minus) return { control: control(numberMinus, 1), stack };
    if (c === zero) return { control: control(numberZero, 1), stack };
    if (isDigit(c)) return { control: control(numberInteger, 1), stack };
    const literal = literalModeOf[c];
    return literal === undefined ? null : { control: control(literal, 1), stack };
  }

  #afterValue(state: JsonState, c: number): JsonState | null {
    const stack = state.stack;
    if (stack === null) return null; // the top-level value is complete: only EOS may follow
    if (isWhitespace(c)) return this.#whitespace(state);
    if (c === comma) return { control: control(stack.kind === objectFrame ? objectKey : value), stack };
    if (c === (stack.kind === objectFrame ? closeBrace : closeBracket)) return this.#close(stack);
    return null;
  }

  /**
   * One more character of a number, in `mode`. The counter holds the number's length; a mode that
   * still needs a digit ('-', '.', 'e', the exponent's sign) must leave room for it, so that every
   * state stays completable.
   */
  #extendNumber(state: JsonState, mode: number): JsonState | null {
    const length = counterOf(state.control) + 1;
    const needsDigit = mode === numberMinus || mode === numberPoint || mode === numberExponent || mode === numberExponentSign;
    if (length + (needsDigit ? 1 : 0) > maxNumberLength) return null;
    return { control: control(mode, length), stack: state.stack };
  }

  /** A number ends at the first character that cannot continue it; that character is read as after any value. */
  #afterNumber(stack: Frame | null, c: number): JsonState | null {
    return this.#afterValue({ control: control(afterValue), stack }, c);
  }

  /** Pops `stack`'s container: the container is now a complete value. */
  #close(stack: Frame): JsonState {
    return { control: control(afterValue), stack: stack.below };
  }
}
