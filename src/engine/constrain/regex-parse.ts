// Parses the regex subset that `--constrain regex:PATTERN` accepts into a syntax tree:
//   literals and escapes (\n \t \r \f \v \0 \xHH \uHHHH \u{H...} and escaped punctuation), `.`,
//   classes [a-z] [^...] with \d \w \s (and \D \W \S) inside or outside them, groups (...) and
//   (?:...), alternation |, and the quantifiers * + ? {n} {n,} {n,m} (a trailing lazy ? is read
//   and ignored: it changes which match a search finds, not which texts match).
// The whole output must match, so anchors are implicit: ^ is allowed only first and $ only last.
// Everything else (backreferences, lookaround, \b, flags) is rejected with its position, counted in
// code points from the start of the pattern.
import { RequestError } from '../errors.ts';
import {
  type CodePointSet,
  anyButLineTerminator,
  complement,
  digits,
  union,
  whitespace,
  wordChars,
} from './code-point-set.ts';

export type RegexNode =
  | { kind: 'chars'; set: CodePointSet }
  | { kind: 'sequence'; items: RegexNode[] }
  | { kind: 'choice'; options: RegexNode[] }
  /** max is Infinity for an unbounded repeat. */
  | { kind: 'repeat'; item: RegexNode; min: number; max: number };

/** Largest count a {n,m} quantifier may name: each repeat copies the automaton of its item. */
export const maxRepeatCount = 1000;

const classEscapes: Record<string, CodePointSet> = {
  d: digits,
  D: complement(digits),
  w: wordChars,
  W: complement(wordChars),
  s: whitespace,
  S: complement(whitespace),
};

const controlEscapes: Record<string, number> = { n: 0x0a, t: 0x09, r: 0x0d, f: 0x0c, v: 0x0b };

const isAsciiAlphanumeric = (char: string): boolean => /^[A-Za-z0-9]$/.test(char);
const isHexDigit = (char: string | undefined): boolean => char !== undefined && /^[0-9A-Fa-f]$/.test(char);

export function parseRegex(pattern: string): RegexNode {
  const chars = Array.from(pattern); // one entry per code point
  let pos = 0;
  let end = chars.length;

  const fail = (problem: string, at = pos): RequestError =>
    new RequestError(`invalid regex ${JSON.stringify(pattern)}: ${problem} at position ${at}`);
  const peek = (): string | undefined => (pos < end ? chars[pos] : undefined);

  // Anchors: the automaton always matches the whole output, so ^ and $ are accepted where they say so.
  if (chars[0] === '^') pos = 1;
  if (end > pos && chars[end - 1] === '$') {
    let backslashes = 0;
    while (end - 2 - backslashes >= pos && chars[end - 2 - backslashes] === '\\') backslashes++;
    if (backslashes % 2 === 0) end--;
  }

  function parseChoice(): RegexNode {
    const options = [parseSequence()];
    while (peek() === '|') {
      pos++;
      options.push(parseSequence());
    }
    return options.length === 1 ? options[0] : { kind: 'choice', options };
  }

  function parseSequence(): RegexNode {
    const items: RegexNode[] = [];
    for (let char = peek(); char !== undefined && char !== '|' && char !== ')'; char = peek()) {
      items.push(parseQuantified(parseAtom()));
    }
    return items.length === 1 ? items[0] : { kind: 'sequence', items };
  }

  function parseQuantified(item: RegexNode): RegexNode {
    const start = pos;
    let bounds: { min: number; max: number } | null;
    switch (peek()) {
      case '*':
        bounds = { min: 0, max: Infinity };
        pos++;
        break;
      case '+':
        bounds = { min: 1, max: Infinity };
        pos++;
        break;
      case '?':
        bounds = { min: 0, max: 1 };
        pos++;
        break;
      case '{':
        bounds = parseBraces();
        break;
      default:
        bounds = null;
    }
    if (bounds === null) return item;
    if (peek() === '?') pos++; // lazy: same set of matching texts
    if (peek() === '*' || peek() === '+' || peek() === '?' || peek() === '{') throw fail('a quantifier cannot follow another quantifier');
    if (bounds.min > bounds.max) throw fail(`{${bounds.min},${bounds.max}} has its minimum above its maximum`, start);
    return { kind: 'repeat', item, ...bounds };
  }

  /** {n}, {n,} or {n,m} at pos. */
  function parseBraces(): { min: number; max: number } {
    const start = pos;
    pos++; // {
    const min = parseCount(start);
    let max = min;
    if (peek() === ',') {
      pos++;
      max = peek() === '}' ? Infinity : parseCount(start);
    }
    if (peek() !== '}') throw fail('a { must start a quantifier {n}, {n,} or {n,m} (write \\{ for the character)', start);
    pos++;
    return { min, max };
  }

  function parseCount(quantifierStart: number): number {
    const start = pos;
    while (peek() !== undefined && /^[0-9]$/.test(peek()!)) pos++;
    if (pos === start) throw fail('a { must start a quantifier {n}, {n,} or {n,m} (write \\{ for the character)', quantifierStart);
    const count = Number(chars.slice(start, pos).join(''));
    if (count > maxRepeatCount) throw fail(`repeat count ${count} is above the limit of ${maxRepeatCount}`, start);
    return count;
  }

  function parseAtom(): RegexNode {
    const start = pos;
    const char = chars[pos++];
    switch (char) {
      case '(':
        return parseGroup(start);
      case '[':
        return { kind: 'chars', set: parseClass(start) };
      case '.':
        return { kind: 'chars', set: anyButLineTerminator };
      case '\\': {
        const escaped = parseEscape();
        return { kind: 'chars', set: typeof escaped === 'number' ? [[escaped, escaped]] : escaped };
      }
      case '*':
      case '+':
      case '?':
        throw fail(`nothing to repeat before ${char}`, start);
      case '{':
        throw fail('nothing to repeat before {', start);
      case '}':
      case ']':
        throw fail(`unmatched ${char} (write \\${char} for the character)`, start);
      case '^':
      case '$':
        throw fail(`${char} is only allowed at the ${char === '^' ? 'start' : 'end'} (the whole output must match)`, start);
      default: {
        const codePoint = char.codePointAt(0)!;
        return { kind: 'chars', set: [[codePoint, codePoint]] };
      }
    }
  }

  function parseGroup(start: number): RegexNode {
    if (peek() === '?') {
      if (chars[pos + 1] !== ':') throw fail('only (?:...) groups are supported (no lookaround or named groups)', start);
      pos += 2;
    }
    const inner = parseChoice();
    if (peek() !== ')') throw fail('unclosed group', start);
    pos++;
    return inner;
  }

  /** The body of [...] after its [, up to and including the ]. */
  function parseClass(start: number): CodePointSet {
    const negated = peek() === '^';
    if (negated) pos++;
    const members: CodePointSet[] = [];
    for (;;) {
      const char = peek();
      if (char === undefined) throw fail('unclosed character class', start);
      if (char === ']') break;
      const first = parseClassAtom();
      // A range needs single characters on both sides; '-' next to a class escape or before ']' is literal.
      if (typeof first === 'number' && peek() === '-' && chars[pos + 1] !== undefined && chars[pos + 1] !== ']' && pos + 1 < end) {
        const dash = pos;
        pos++;
        const last = parseClassAtom();
        if (typeof last !== 'number') throw fail('a range cannot end with a class escape', dash);
        if (last < first) throw fail('range out of order', dash);
        members.push([[first, last]]);
      } else {
        members.push(typeof first === 'number' ? [[first, first]] : first);
      }
    }
    pos++; // ]
    if (members.length === 0) throw fail('empty character class', start);
    const set = union(...members);
    return negated ? complement(set) : set;
  }

  /** One class member: a code point, or a set from a class escape. */
  function parseClassAtom(): number | CodePointSet {
    const char = chars[pos++];
    if (char === '\\') return parseEscape();
    return char.codePointAt(0)!;
  }

  /** The escape after a backslash: a code point, or a set for \d \w \s and their negations. */
  function parseEscape(): number | CodePointSet {
    const start = pos - 1;
    const char = peek();
    if (char === undefined) throw fail('the pattern ends with a lone backslash', start);
    pos++;
    if (char in classEscapes) return classEscapes[char];
    if (char in controlEscapes) return controlEscapes[char];
    if (char === '0' && !/^[0-9]$/.test(peek() ?? '')) return 0;
    if (char === 'x') return parseHex(2, start);
    if (char === 'u') {
      if (peek() !== '{') return parseHex(4, start);
      pos++;
      const codePoint = parseHexUntilBrace(start);
      if (codePoint > 0x10ffff) throw fail('\\u{...} is above U+10FFFF', start);
      return codePoint;
    }
    if (/^[1-9]$/.test(char)) throw fail('backreferences are not supported', start);
    if (char === 'b' || char === 'B') throw fail('word boundaries are not supported', start);
    if (isAsciiAlphanumeric(char)) throw fail(`unknown escape \\${char}`, start);
    return char.codePointAt(0)!; // escaped punctuation or any other non-alphanumeric character
  }

  function parseHex(count: number, start: number): number {
    const digitsText = chars.slice(pos, pos + count);
    if (digitsText.length < count || !digitsText.every(isHexDigit) || pos + count > end) {
      throw fail(`\\${count === 2 ? 'x' : 'u'} needs ${count} hex digits`, start);
    }
    pos += count;
    return parseInt(digitsText.join(''), 16);
  }

  function parseHexUntilBrace(start: number): number {
    const first = pos;
    while (isHexDigit(peek())) pos++;
    if (pos === first || peek() !== '}') throw fail('\\u{...} needs hex digits and a closing }', start);
    const codePoint = parseInt(chars.slice(first, pos).join(''), 16);
    pos++;
    return codePoint;
  }

  const tree = parseChoice();
  if (pos < end) throw fail('unmatched )'); // parseChoice stops only at the end or at a ')'
  return tree;
}
