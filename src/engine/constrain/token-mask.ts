// The token mask of one automaton state: bit i of word i >> 5 is set when token i may come next.
// The walk follows the vocabulary's trie and the automaton together; a refused character prunes
// its whole subtree, so the cost grows with the allowed prefixes, not with the vocabulary.
import type { CharAutomaton } from './automaton.ts';
import type { ConstraintVocabulary } from './vocabulary.ts';

export const maskWords = (vocabSize: number): number => (vocabSize + 31) >>> 5;

export function isAllowed(mask: Uint32Array, token: number): boolean {
  return ((mask[token >>> 5] >>> (token & 31)) & 1) === 1;
}

/** Tokens whose whole text the automaton accepts from `state`, plus EOS when `state` is accepting. */
export function computeMask<State>(automaton: CharAutomaton<State>, vocabulary: ConstraintVocabulary, state: State): Uint32Array {
  const { edgeStart, edgeChar, edgeNode, tokenStart, tokenIds } = vocabulary.trie;
  const mask = new Uint32Array(maskWords(vocabulary.vocabSize)); // (ceil(vocab / 32))
  const visit = (node: number, nodeState: State): void => {
    for (let edge = edgeStart[node]; edge < edgeStart[node + 1]; edge++) {
      const next = automaton.step(nodeState, edgeChar[edge]);
      if (next === null) continue;
      const child = edgeNode[edge];
      for (let i = tokenStart[child]; i < tokenStart[child + 1]; i++) mask[tokenIds[i] >>> 5] |= 1 << (tokenIds[i] & 31);
      visit(child, next);
    }
  };
  visit(0, state);
  if (automaton.accepting(state)) mask[vocabulary.eosId >>> 5] |= 1 << (vocabulary.eosId & 31);
  return mask;
}
