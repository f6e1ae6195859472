// Compiles a regex into a DFA over code points. Thompson's construction turns the syntax tree into
// an NFA with epsilon moves; the subset construction turns that into a DFA whose edges are code
// point intervals (a class like [^"] stays two intervals, however many characters it covers). States
// that cannot reach acceptance are then dropped, so a step the DFA allows always keeps a full match
// possible: the token mask never lets a model walk into a dead end.
import { RequestError } from '../errors.ts';
import type { CharAutomaton } from './automaton.ts';
import { type CodePointSet, contains, maxCodePoint } from './code-point-set.ts';
import { type RegexNode, parseRegex } from './regex-parse.ts';

/** Limits that turn a pathological pattern into a RequestError instead of a hung tab. */
export const maxNfaStates = 200_000;
export const maxDfaStates = 10_000;

// ----------------------------------------------------------------------------
// NFA (Thompson's construction)

interface CharEdge {
  set: CodePointSet;
  target: number;
}

class Nfa {
  /** Epsilon moves of each state. */
  readonly epsilons: number[][] = [];
  /** The single character edge a Thompson state may have. */
  readonly charEdges: (CharEdge | null)[] = [];

  constructor(readonly pattern: string) {}

  addState(): number {
    if (this.epsilons.length >= maxNfaStates) {
      throw new RequestError(`regex ${JSON.stringify(this.pattern)} is too large: its automaton passes ${maxNfaStates} states`);
    }
    this.epsilons.push([]);
    this.charEdges.push(null);
    return this.epsilons.length - 1;
  }

  /** Adds states for `node`; returns its entry and exit. */
  build(node: RegexNode): { start: number; end: number } {
    switch (node.kind) {
      case 'chars': {
        const start = this.addState();
        const end = this.addState();
        this.charEdges[start] = { set: node.set, target: end };
        return { start, end };
      }
      case 'sequence': {
        const start = this.addState();
        let end = start;
        for (const item of node.items) {
          const part = this.build(item);
          this.epsilons[end].push(part.start);
          end = part.end;
        }
        return { start, end };
      }
      case 'choice': {
        const start = this.addState();
        const end = this.addState();
        for (const option of node.options) {
          const part = this.build(option);
          this.epsilons[start].push(part.start);
          this.epsilons[part.end].push(end);
        }
        return { start, end };
      }
      case 'repeat':
        return this.#buildRepeat(node.item, node.min, node.max);
    }
  }

  /** `min` required copies of the item, then either a loop (max Infinity) or max - min optional copies. */
  #buildRepeat(item: RegexNode, min: number, max: number): { start: number; end: number } {
    const start = this.addState();
    let current = start;
    for (let i = 0; i < min; i++) {
      const copy = this.build(item);
      this.epsilons[current].push(copy.start);
      current = copy.end;
    }
    const end = this.addState();
    this.epsilons[current].push(end);
    if (max === Infinity) {
      const loop = this.build(item);
      this.epsilons[current].push(loop.start);
      this.epsilons[loop.end].push(loop.start, end);
    } else {
      for (let i = min; i < max; i++) {
        const copy = this.build(item);
        this.epsilons[current].push(copy.start);
        current = copy.end;
        this.epsilons[current].push(end);
      }
    }
    return { start, end };
  }

  /** The sorted set of states reachable from `states` by epsilon moves alone. */
  closure(states: Iterable<number>): number[] {
    const seen = new Set<number>();
    const pending = [...states];
    while (pending.length > 0) {
      const state = pending.pop()!;
      if (seen.has(state)) continue;
      seen.add(state);
      pending.push(...this.epsilons[state]);
    }
    return [...seen].sort((a, b) => a - b);
  }
}

// ----------------------------------------------------------------------------
// DFA (subset construction)

/** Transitions of one DFA state: interval i covers code points starts[i] .. starts[i+1]-1 (the last runs to U+10FFFF). */
interface Intervals {
  starts: number[];
  /** Next state per interval, -1 for none. */
  targets: number[];
}

function subsetConstruction(nfa: Nfa, nfaStart: number, nfaAccept: number): { transitions: Intervals[]; accepting: boolean[] } {
  const transitions: Intervals[] = [];
  const accepting: boolean[] = [];
  const members: number[][] = [];
  const idOf = new Map<string, number>();
  const stateFor = (nfaStates: number[]): number => {
    const key = nfaStates.join(',');
    let id = idOf.get(key);
    if (id === undefined) {
      if (members.length >= maxDfaStates) {
        throw new RequestError(`regex ${JSON.stringify(nfa.pattern)} is too complex: its DFA passes ${maxDfaStates} states`);
      }
      id = members.length;
      idOf.set(key, id);
      members.push(nfaStates);
      accepting.push(nfaStates.includes(nfaAccept));
    }
    return id;
  };

  stateFor(nfa.closure([nfaStart]));
  for (let id = 0; id < members.length; id++) {
    const edges = members[id].map((state) => nfa.charEdges[state]).filter((edge): edge is CharEdge => edge !== null);
    // Cut the code points at every range boundary: within one piece, every edge either covers all of it or none.
    const cuts = new Set<number>([0]);
    for (const { set } of edges) {
      for (const [first, last] of set) {
        cuts.add(first);
        if (last < maxCodePoint) cuts.add(last + 1);
      }
    }
    const starts: number[] = [];
    const targets: number[] = [];
    for (const start of [...cuts].sort((a, b) => a - b)) {
      const reached = edges.filter(({ set }) => contains(set, start)).map(({ target }) => target);
      const target = reached.length === 0 ? -1 : stateFor(nfa.closure(reached));
      if (targets.length > 0 && targets[targets.length - 1] === target) continue; // same as the piece before: widen it
      starts.push(start);
      targets.push(target);
    }
    transitions.push({ starts, targets });
  }
  return { transitions, accepting };
}

/** Which states can reach an accepting state (walking the transitions backwards from them). */
function liveStates(transitions: Intervals[], accepting: boolean[]): boolean[] {
  const predecessors: number[][] = transitions.map(() => []);
  transitions.forEach(({ targets }, state) => {
    for (const target of targets) if (target >= 0) predecessors[target].push(state);
  });
  const live = accepting.slice();
  const pending = accepting.flatMap((isAccepting, state) => (isAccepting ? [state] : []));
  while (pending.length > 0) {
    for (const predecessor of predecessors[pending.pop()!]) {
      if (!live[predecessor]) {
        live[predecessor] = true;
        pending.push(predecessor);
      }
    }
  }
  return live;
}

// ----------------------------------------------------------------------------
// the automaton

const asciiSize = 128;

/** A regex as a CharAutomaton whose states are DFA state numbers (start 0); every state is live. */
export class RegexAutomaton implements CharAutomaton<number> {
  readonly start = 0;
  readonly stateCount: number;
  readonly #accepting: boolean[];
  readonly #ascii: Int32Array; // (state, 128) next state for each ASCII code point, -1 for none
  readonly #starts: Int32Array[]; // per state: first code point of each interval
  readonly #targets: Int32Array[]; // per state: next state of each interval, -1 for none

  constructor(transitions: Intervals[], accepting: boolean[]) {
    this.stateCount = transitions.length;
    this.#accepting = accepting;
    this.#starts = transitions.map(({ starts }) => Int32Array.from(starts));
    this.#targets = transitions.map(({ targets }) => Int32Array.from(targets));
    this.#ascii = new Int32Array(this.stateCount * asciiSize);
    for (let state = 0; state < this.stateCount; state++) {
      for (let char = 0; char < asciiSize; char++) this.#ascii[state * asciiSize + char] = this.#search(state, char);
    }
  }

  step(state: number, codePoint: number): number | null {
    const next = codePoint < asciiSize ? this.#ascii[state * asciiSize + codePoint] : this.#search(state, codePoint);
    return next < 0 ? null : next;
  }

  accepting(state: number): boolean {
    return this.#accepting[state];
  }

  maskKey(state: number): number {
    return state;
  }

  /** Binary search for the interval holding `codePoint`. */
  #search(state: number, codePoint: number): number {
    const starts = this.#starts[state];
    let low = 0;
    let high = starts.length - 1; // starts[0] is 0, so some interval holds every code point
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (starts[middle] <= codePoint) low = middle;
      else high = middle - 1;
    }
    return this.#targets[state][low];
  }
}

/** Parses and compiles `pattern`; throws RequestError for an unsupported or invalid pattern, or one no text matches. */
export function compileRegex(pattern: string): RegexAutomaton {
  const nfa = new Nfa(pattern);
  const { start, end } = nfa.build(parseRegex(pattern));
  const { transitions, accepting } = subsetConstruction(nfa, start, end);

  // Keep live states only, renumbered in order (so the start stays 0); edges into dead states go.
  const live = liveStates(transitions, accepting);
  if (!live[0]) throw new RequestError(`regex ${JSON.stringify(pattern)} matches no text`);
  const newId: number[] = [];
  let count = 0;
  for (const isLive of live) newId.push(isLive ? count++ : -1);
  const kept = transitions.flatMap(({ starts, targets }, state) => {
    if (!live[state]) return [];
    const intervals: Intervals = { starts: [], targets: [] };
    starts.forEach((first, i) => {
      const target = targets[i] < 0 ? -1 : newId[targets[i]];
      if (intervals.targets.length > 0 && intervals.targets[intervals.targets.length - 1] === target) return;
      intervals.starts.push(first);
      intervals.targets.push(target);
    });
    return [intervals];
  });
  return new RegexAutomaton(
    kept,
    accepting.filter((_, state) => live[state]),
  );
}
