// What a constraint's character-level automaton offers the token-mask walk: a start state, a step
// per code point, and acceptance. States are immutable values, so one state can be stepped along
// many trie branches.

export interface CharAutomaton<State> {
  readonly start: State;
  /**
   * The state after reading `codePoint`, or null when no accepted text continues this way. Every
   * non-null state can still reach acceptance, so a token is allowed exactly when its whole text
   * steps to non-null states.
   */
  step(state: State, codePoint: number): State | null;
  /** Whether the text read so far is a whole accepted text (so EOS may end it here). */
  accepting(state: State): boolean;
  /**
   * Equal keys promise equal acceptance and that each token's text is allowed from both states or
   * from neither, so such states share one cached mask.
   */
  maskKey(state: State): string | number;
}

/** Steps `text` code point by code point from `state`; null as soon as a step is refused. */
export function stepText<State>(automaton: CharAutomaton<State>, state: State, text: string): State | null {
  let current: State | null = state;
  for (const char of text) {
    current = automaton.step(current, char.codePointAt(0)!);
    if (current === null) return null;
  }
  return current;
}
