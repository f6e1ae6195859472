// Sets of Unicode code points as sorted inclusive ranges: the alphabet of the regex automaton.
// A class like [^"] covers about a million code points, but it is only two ranges.

export const maxCodePoint = 0x10ffff;

/** Inclusive [first, last]. */
export type CodePointRange = readonly [first: number, last: number];

/** Sorted, disjoint and non-adjacent ranges (so two equal sets have equal range lists). */
export type CodePointSet = readonly CodePointRange[];

/** The set covering all the given ranges, in any order, overlapping or not. */
export function codePointSet(ranges: readonly CodePointRange[]): CodePointSet {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [first, last] of sorted) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && first <= previous[1] + 1) previous[1] = Math.max(previous[1], last);
    else merged.push([first, last]);
  }
  return merged;
}

export function union(...sets: CodePointSet[]): CodePointSet {
  return codePointSet(sets.flat());
}

/** Every code point not in `set`. */
export function complement(set: CodePointSet): CodePointSet {
  const gaps: CodePointRange[] = [];
  let next = 0;
  for (const [first, last] of set) {
    if (first > next) gaps.push([next, first - 1]);
    next = last + 1;
  }
  if (next <= maxCodePoint) gaps.push([next, maxCodePoint]);
  return gaps;
}

export function contains(set: CodePointSet, codePoint: number): boolean {
  let low = 0;
  let high = set.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    if (codePoint < set[middle][0]) high = middle - 1;
    else if (codePoint > set[middle][1]) low = middle + 1;
    else return true;
  }
  return false;
}

const single = (char: string): CodePointRange => [char.codePointAt(0)!, char.codePointAt(0)!];
const span = (first: string, last: string): CodePointRange => [first.codePointAt(0)!, last.codePointAt(0)!];

/** `\d`: the ASCII digits, as in JavaScript regexes. */
export const digits = codePointSet([span('0', '9')]);

/** `\w`: ASCII letters, digits and underscore, as in JavaScript regexes. */
export const wordChars = codePointSet([span('a', 'z'), span('A', 'Z'), span('0', '9'), single('_')]);

/** `\s`: JavaScript's whitespace and line terminators. */
export const whitespace = codePointSet([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);

/** `.`: any code point but a line terminator, as in JavaScript regexes without the s flag. */
export const anyButLineTerminator = complement(codePointSet([single('\n'), single('\r'), [0x2028, 0x2029]]));
