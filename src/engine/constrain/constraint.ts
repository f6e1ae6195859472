// Constrained decoding: `compileConstraint('json' | 'regex:PATTERN', vocabulary)` gives a Constraint
// that hands out the token mask of its current state and advances by the sampled token. The caller
// applies the mask before sampling (masked tokens count as -Infinity).
//
// Masks are cached per automaton state (by its mask key), shared by every Constraint compiled from
// the same spec against the same vocabulary: a second request with the same constraint starts warm.
import { RequestError } from '../errors.ts';
import { type CharAutomaton, stepText } from './automaton.ts';
import { JsonAutomaton, tokenReach } from './json-pda.ts';
import { compileRegex } from './regex-dfa.ts';
import { computeMask, maskWords } from './token-mask.ts';
import type { ConstraintVocabulary } from './vocabulary.ts';

/** Where the time of mask computation goes, for the lab. */
export interface ConstraintStats {
  /** mask() calls. */
  maskCalls: number;
  /** Calls answered from the cache. */
  cacheHits: number;
  /** Milliseconds spent in mask(), hits and misses together. */
  maskMs: number;
  /** Milliseconds of the latest mask() call. */
  lastMaskMs: number;
  /** Milliseconds of the slowest mask() call (a miss: a trie walk). */
  maxMaskMs: number;
}

export interface Constraint {
  /** The spec it was compiled from: 'json' or 'regex:PATTERN'. */
  readonly spec: string;
  /**
   * The tokens allowed next: bit i of word i >> 5 (ceil(vocab / 32) words). EOS is allowed exactly
   * when the text so far is complete. The array is shared with the cache: read it, never write it.
   * The same array comes back for the same state, so a caller may skip re-uploading it.
   */
  mask(): Uint32Array;
  /** Takes the sampled token; throws RequestError for a token the mask does not allow. */
  advance(token: number): void;
  /** Whether the text so far is complete (EOS is allowed). */
  readonly complete: boolean;
  /** Whether EOS was taken: the constraint allows nothing more. */
  readonly finished: boolean;
  /** The text of the tokens taken so far. */
  readonly text: string;
  readonly stats: ConstraintStats;
}

/** Specs compiled per vocabulary: a few recent ones, so repeated requests skip compilation. */
const maxCompiledSpecs = 8;
/** Memory for one spec's cached masks (49,152 tokens take 6 KiB a mask, so about 2,700 masks). */
const maskCacheBytes = 16 * 1024 * 1024;

interface Compiled<State> {
  automaton: CharAutomaton<State>;
  /** Mask per mask key, least recently used first. */
  masks: Map<string | number, Uint32Array>;
}

/** The end of the text so far, for error messages. */
const shownText = (text: string): string => JSON.stringify(text.length > 40 ? '…' + text.slice(-40) : text);

const compiledByVocabulary = new WeakMap<ConstraintVocabulary, Map<string, Compiled<unknown>>>();

/** Compiles `spec` ('json' or 'regex:PATTERN') against `vocabulary`; throws RequestError for a bad spec or pattern. */
export function compileConstraint(spec: string, vocabulary: ConstraintVocabulary): Constraint {
  let compiledSpecs = compiledByVocabulary.get(vocabulary);
  if (compiledSpecs === undefined) {
    compiledSpecs = new Map();
    compiledByVocabulary.set(vocabulary, compiledSpecs);
  }
  let compiled = compiledSpecs.get(spec);
  if (compiled === undefined) {
    compiled = { automaton: automatonFor(spec, vocabulary), masks: new Map() };
    if (compiledSpecs.size >= maxCompiledSpecs) compiledSpecs.delete(compiledSpecs.keys().next().value!);
  } else {
    compiledSpecs.delete(spec); // re-inserted below as the most recent
  }
  compiledSpecs.set(spec, compiled);
  return new AutomatonConstraint(spec, vocabulary, compiled);
}

// The cache holds automata of different state types; each Constraint only ever hands an automaton
// the states that automaton made, so widening to CharAutomaton<unknown> loses nothing.
function automatonFor(spec: string, vocabulary: ConstraintVocabulary): CharAutomaton<unknown> {
  if (spec === 'json') return new JsonAutomaton(tokenReach(vocabulary.texts)) as CharAutomaton<unknown>;
  if (spec.startsWith('regex:')) return compileRegex(spec.slice('regex:'.length)) as CharAutomaton<unknown>;
  throw new RequestError(`unknown constraint ${JSON.stringify(spec)}: use json or regex:PATTERN`);
}

class AutomatonConstraint<State> implements Constraint {
  readonly spec: string;
  readonly #vocabulary: ConstraintVocabulary;
  readonly #automaton: CharAutomaton<State>;
  readonly #masks: Map<string | number, Uint32Array>;
  readonly #maxCachedMasks: number;
  #state: State;
  #finished = false;
  #text = '';
  readonly #stats: ConstraintStats = { maskCalls: 0, cacheHits: 0, maskMs: 0, lastMaskMs: 0, maxMaskMs: 0 };

  constructor(spec: string, vocabulary: ConstraintVocabulary, compiled: Compiled<State>) {
    this.spec = spec;
    this.#vocabulary = vocabulary;
    this.#automaton = compiled.automaton;
    this.#masks = compiled.masks;
    this.#maxCachedMasks = Math.max(1, Math.floor(maskCacheBytes / (4 * maskWords(vocabulary.vocabSize))));
    this.#state = compiled.automaton.start;
  }

  get complete(): boolean {
    return !this.#finished && this.#automaton.accepting(this.#state);
  }

  get finished(): boolean {
    return this.#finished;
  }

  get text(): string {
    return this.#text;
  }

  get stats(): ConstraintStats {
    return { ...this.#stats };
  }

  mask(): Uint32Array {
    if (this.#finished) throw new RequestError(`constraint ${this.spec}: EOS was taken, no token may follow`);
    const started = performance.now();
    const key = this.#automaton.maskKey(this.#state);
    let mask = this.#masks.get(key);
    if (mask !== undefined) {
      this.#stats.cacheHits++;
      this.#masks.delete(key); // re-inserted below as the most recent
    } else {
      mask = computeMask(this.#automaton, this.#vocabulary, this.#state);
      if (mask.every((word) => word === 0)) {
        throw new RequestError(`constraint ${this.spec}: no token of the vocabulary can continue ${shownText(this.#text)}`);
      }
      if (this.#masks.size >= this.#maxCachedMasks) this.#masks.delete(this.#masks.keys().next().value!);
    }
    this.#masks.set(key, mask);
    const elapsed = performance.now() - started;
    this.#stats.maskCalls++;
    this.#stats.maskMs += elapsed;
    this.#stats.lastMaskMs = elapsed;
    this.#stats.maxMaskMs = Math.max(this.#stats.maxMaskMs, elapsed);
    return mask;
  }

  advance(token: number): void {
    if (this.#finished) throw new RequestError(`constraint ${this.spec}: EOS was taken, no token may follow`);
    if (token === this.#vocabulary.eosId) {
      if (!this.#automaton.accepting(this.#state)) {
        throw new RequestError(`constraint ${this.spec}: EOS is not allowed after the incomplete ${shownText(this.#text)}`);
      }
      this.#finished = true;
      return;
    }
    const text = this.#vocabulary.texts[token] ?? null;
    const next = text === null ? null : stepText(this.#automaton, this.#state, text);
    if (next === null) {
      const shown = text === null ? 'a token that is never allowed' : JSON.stringify(text);
      throw new RequestError(`constraint ${this.spec}: token ${token} (${shown}) is not allowed after ${shownText(this.#text)}`);
    }
    this.#state = next;
    this.#text += text;
  }
}
