// Constrained decoding: the regex DFA and the JSON pushdown automaton against tables of texts (and
// against RegExp / JSON.parse on random texts), the trie-walked token masks against a brute force
// over the whole vocabulary, and masked sampling from stories260K and over the SmolLM2 vocabulary,
// whose every completed output must parse or match.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CharAutomaton, stepText } from '../src/engine/constrain/automaton.ts';
import { compileConstraint } from '../src/engine/constrain/constraint.ts';
import { JsonAutomaton, maxDepth, maxNumberLength, maxWhitespaceRun } from '../src/engine/constrain/json-pda.ts';
import { compileRegex } from '../src/engine/constrain/regex-dfa.ts';
import { isAllowed, maskWords } from '../src/engine/constrain/token-mask.ts';
import { type ConstraintVocabulary, buildConstraintVocabulary } from '../src/engine/constrain/vocabulary.ts';
import { RequestError } from '../src/engine/errors.ts';
import { loadModelDescription } from '../src/engine/model/load.ts';
import type { ModelDescription } from '../src/engine/model/types.ts';
import { ReferenceModel } from '../src/engine/reference/forward.ts';
import { seededValues, uniform } from '../src/engine/reference/rng.ts';
import { sampleToken } from '../src/engine/reference/sample.ts';
import { HuggingFaceTokenizer } from '../src/engine/tokenizer/huggingface.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import type { Tokenizer } from '../src/engine/tokenizer/types.ts';
import { directorySource } from '../src/node/fs-source.ts';

const modelsDir = new URL('../../shared/models/', import.meta.url);
const models = directorySource(fileURLToPath(modelsDir));
const smolDir = new URL('smollm2-135m-tokenizer/', modelsDir);

/** Whether the automaton accepts the whole of `text`. */
function accepts<State>(automaton: CharAutomaton<State>, text: string): boolean {
  const state = stepText(automaton, automaton.start, text);
  return state !== null && automaton.accepting(state);
}

/** A deterministic draw in [0, n) from (seed, counter). */
const pick = (n: number, seed: number, counter: number): number => Math.floor(uniform(seed, counter) * n);

function randomText(alphabet: string[], maxLength: number, seed: number, counter: number): string {
  const length = pick(maxLength + 1, seed, counter * 101);
  return Array.from({ length }, (_, i) => alphabet[pick(alphabet.length, seed, counter * 101 + i + 1)]).join('');
}

// ----------------------------------------------------------------------------
// regex

describe('regex DFA', () => {
  const cases: { pattern: string; accept: string[]; reject: string[] }[] = [
    {
      pattern: '[0-9]{3}-[0-9]{4}',
      accept: ['555-1234', '000-0000', '909-9090'],
      reject: ['', '55-1234', '5555-1234', '555-123', '555-12345', '555 1234', 'abc-defg', '555-1234\n'],
    },
    { pattern: '(cat|dog)s?', accept: ['cat', 'dog', 'cats', 'dogs'], reject: ['', 'ca', 'cow', 'catdog', 'catss', 'cats?'] },
    { pattern: '[^a-c\\d]+', accept: ['xyz', 'é日本', ' ', 'D-'], reject: ['', 'a', 'xb', 'x1', '9'] },
    { pattern: 'a{2,4}b{2,}c?', accept: ['aabb', 'aaaabbbbbc', 'aaabbc'], reject: ['abb', 'aaaaabb', 'aab', 'aabbcc', ''] },
    { pattern: '\\w+@\\w+\\.(com|org)', accept: ['a@b.com', 'x_1@mail.org'], reject: ['@b.com', 'a@b.net', 'a b@c.com', 'a@b.comm'] },
    { pattern: '(ab|a)*c', accept: ['c', 'abc', 'aac', 'abaabc'], reject: ['', 'b', 'bc', 'abca', 'ab'] },
    { pattern: 'a.c', accept: ['abc', 'a.c', 'a日c', 'a🦙c'], reject: ['a\nc', 'ac', 'abbc'] },
    { pattern: '\\u{1F999}|\\x41|\\u00e9', accept: ['🦙', 'A', 'é'], reject: ['a', '', '🦙A'] },
    { pattern: '[\\s,]*x[+*?{}.]', accept: ['x+', ' ,\t x{', 'x.'], reject: ['x', 'xx', ' y+', 'x-'] },
    { pattern: '^\\$[0-9]+(\\.[0-9]{2})?$', accept: ['$5', '$10.25'], reject: ['5', '$', '$1.2', '$1.234', '$1.25$'] },
    { pattern: '(?:a|b){3}', accept: ['aaa', 'bab'], reject: ['aa', 'abab', 'abc'] },
    { pattern: '[a-]z[-a]', accept: ['az-', '-za'], reject: ['bzb', 'za'] },
    { pattern: '', accept: [''], reject: ['a', ' '] },
  ];

  for (const { pattern, accept, reject } of cases) {
    it(`matches whole texts for /${pattern}/`, () => {
      const dfa = compileRegex(pattern);
      for (const text of accept) expect(accepts(dfa, text), `${JSON.stringify(text)} should match`).toBe(true);
      for (const text of reject) expect(accepts(dfa, text), `${JSON.stringify(text)} should not match`).toBe(false);
      // Random texts over the pattern's own characters agree with RegExp (u flag: code points, as here).
      const regExp = new RegExp(`^(?:${pattern})$`, 'u');
      const alphabet = [...new Set([...accept.join(''), ...reject.join(''), 'a', '0', ' '])];
      for (let i = 0; i < 400; i++) {
        const text = randomText(alphabet, 8, 7, i);
        expect(accepts(dfa, text), JSON.stringify(text)).toBe(regExp.test(text));
      }
    });
  }

  it('rejects bad or unsupported patterns with the position of the problem', () => {
    const bad: [pattern: string, message: RegExp][] = [
      ['[0-9', /unclosed character class at position 0/],
      ['ab(cd', /unclosed group at position 2/],
      ['ab)', /unmatched \) at position 2/],
      ['*a', /nothing to repeat before \* at position 0/],
      ['a**', /quantifier cannot follow another quantifier at position 2/],
      ['a{2', /a \{ must start a quantifier .* at position 1/],
      ['a{5,2}', /minimum above its maximum at position 1/],
      ['a{1001}', /above the limit of 1000 at position 2/],
      ['[z-a]', /range out of order at position 2/],
      ['[]', /empty character class at position 0/],
      ['(a)\\1', /backreferences are not supported at position 3/],
      ['(?=a)b', /only \(\?:\.\.\.\) groups are supported .* at position 0/],
      ['a\\bc', /word boundaries are not supported at position 1/],
      ['\\q', /unknown escape \\q at position 0/],
      ['a^b', /\^ is only allowed at the start .* at position 1/],
      ['x\\', /lone backslash at position 1/],
      ['\\x4', /\\x needs 2 hex digits at position 0/],
      ['日本]', /unmatched \] .* at position 2/],
    ];
    for (const [pattern, message] of bad) {
      expect(() => compileRegex(pattern), pattern).toThrow(RequestError);
      expect(() => compileRegex(pattern), pattern).toThrow(message);
    }
    expect(() => compileRegex('[^\\s\\S]')).toThrow(/matches no text/);
  });

  it('drops states that cannot reach a match, so every step keeps a match possible', () => {
    // (ab|ac)d: after "a" both branches live; "ax" is refused at once rather than read into a dead state.
    const dfa = compileRegex('a(b|c)d');
    expect(stepText(dfa, dfa.start, 'a')).not.toBeNull();
    expect(stepText(dfa, dfa.start, 'ax')).toBeNull();
    expect(stepText(dfa, dfa.start, 'abd')).not.toBeNull();
    expect(stepText(dfa, dfa.start, 'abdd')).toBeNull();
    expect(dfa.stateCount).toBe(5); // start, a, a(b|c), a(b|c)d, and nothing dead
  });
});

// ----------------------------------------------------------------------------
// JSON

describe('JSON pushdown automaton', () => {
  const json = new JsonAutomaton({ closers: 0, openers: 0 });

  const valid = [
    '0',
    '-0',
    '12',
    '-3.25e+10',
    '1E5',
    '0.5e-0',
    'true',
    'false',
    'null',
    '""',
    '"a\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\uD83E\\uDD99"',
    '"日本 🦙"',
    '[]',
    '{}',
    '[1,[2,[3,[]]],{"a":{"b":null}}]',
    '  {"a" : [1, 2, {"b": null}], "c":"d"}',
    '{\n  "key": [\n    true,\n    false\n  ]\n}',
    '[' + ' '.repeat(maxWhitespaceRun) + '1]',
    '['.repeat(maxDepth) + ']'.repeat(maxDepth),
    '-2.2250738585072014e-308',
    '[' + '9'.repeat(maxNumberLength) + ']',
  ];
  const incomplete = ['', ' ', '{', '[1,', '{"a"', '{"a":', '"abc', '"\\u00', 'tru', '-', '1.', '1e', '1e+', '[[]'];
  const refused: [text: string, at: number][] = [
    ['01', 1],
    ['[1,]', 3],
    ['{"a"}', 4],
    ['{,}', 1],
    ['{"a":1,}', 7],
    ['"\\x"', 2],
    ['"\\u00g0"', 5],
    ['[1 2]', 3],
    ['nul ', 3],
    ['trUe', 2],
    ['"a\nb"', 2],
    ['{} {}', 2],
    ['1 ', 1],
    ['"done",', 6],
    ['.5', 0],
    ['+1', 0],
    ['-a', 1],
    ['1.e3', 2],
    ['[' + ' '.repeat(maxWhitespaceRun + 1) + '1]', maxWhitespaceRun + 1],
    ['['.repeat(maxDepth + 1), maxDepth],
    ['9'.repeat(maxNumberLength + 1), maxNumberLength],
    ['9'.repeat(maxNumberLength - 1) + '.5', maxNumberLength - 1], // no room left for a digit after '.'
    ["{'a':1}", 1],
  ];

  it('accepts valid JSON documents', () => {
    for (const text of valid) expect(accepts(json, text), JSON.stringify(text)).toBe(true);
  });

  it('reads valid prefixes without accepting them', () => {
    for (const text of incomplete) {
      const state = stepText(json, json.start, text);
      expect(state, JSON.stringify(text)).not.toBeNull();
      expect(json.accepting(state!), JSON.stringify(text)).toBe(false);
    }
  });

  it('refuses an invalid document at its first wrong character', () => {
    for (const [text, at] of refused) {
      const chars = Array.from(text);
      expect(stepText(json, json.start, chars.slice(0, at).join('')), `${JSON.stringify(text)} before ${at}`).not.toBeNull();
      expect(stepText(json, json.start, chars.slice(0, at + 1).join('')), `${JSON.stringify(text)} at ${at}`).toBeNull();
    }
  });

  it('agrees with JSON.parse on random texts and random values', () => {
    const alphabet = [...'{}[]",:0123-.eE+tfnrulsa\\ \n'];
    let parsed = 0;
    for (let i = 0; i < 20000; i++) {
      const text = randomText(alphabet, 7, 11, i);
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      // Outside the automaton's documented limits: whitespace after the value, long whitespace runs.
      const withinLimits = !/\s$/.test(text) && !new RegExp(`\\s{${maxWhitespaceRun + 1}}`).test(text);
      if (parses) parsed++;
      expect(accepts(json, text), JSON.stringify(text)).toBe(parses && withinLimits);
    }
    expect(parsed).toBeGreaterThan(200); // the random texts include plenty of valid ones

    const randomValue = (seed: number, counter: number, depth: number): unknown => {
      const kind = pick(depth > 2 ? 4 : 6, seed, counter);
      const child = (k: number) => randomValue(seed, counter * 7 + k + 1, depth + 1);
      return [
        () => (uniform(seed, counter + 1) - 0.5) * 10 ** pick(12, seed, counter + 2),
        () => 'str "q" \\ \u0001 日本'.slice(pick(12, seed, counter + 3)),
        () => [true, false, null][pick(3, seed, counter + 4)],
        () => pick(1000, seed, counter + 5),
        () => Array.from({ length: pick(4, seed, counter + 6) }, (_, k) => child(k)),
        () => Object.fromEntries(Array.from({ length: pick(4, seed, counter + 6) }, (_, k) => [`k${k}`, child(k)])),
      ][kind]();
    };
    for (let i = 0; i < 300; i++) {
      const value = randomValue(3, i * 1000, 0);
      expect(accepts(json, JSON.stringify(value)), JSON.stringify(value)).toBe(true);
      expect(accepts(json, JSON.stringify(value, null, 2)), JSON.stringify(value, null, 2)).toBe(true); // depth <= 3: runs <= 7
    }
  });
});

// ----------------------------------------------------------------------------
// token masks

/** Token ids that spell `text`, longest known text first (any split will do: the constraint sees only texts). */
function greedyTokens(vocabulary: ConstraintVocabulary, text: string): number[] {
  const ids: number[] = [];
  for (let at = 0; at < text.length; ) {
    let length = Math.min(text.length - at, 16);
    while (vocabulary.texts.indexOf(text.slice(at, at + length)) < 0) length--;
    ids.push(vocabulary.texts.indexOf(text.slice(at, at + length)));
    at += length;
  }
  return ids;
}

/** The mask by brute force: each token's text fed through the automaton, character by character. */
function bruteForceMask<State>(automaton: CharAutomaton<State>, vocabulary: ConstraintVocabulary, state: State): Uint32Array {
  const mask = new Uint32Array(maskWords(vocabulary.vocabSize));
  vocabulary.texts.forEach((text, id) => {
    if (text !== null && stepText(automaton, state, text) !== null) mask[id >>> 5] |= 1 << (id & 31);
  });
  if (automaton.accepting(state)) mask[vocabulary.eosId >>> 5] |= 1 << (vocabulary.eosId & 31);
  return mask;
}

const allowedIds = (mask: Uint32Array, vocabSize: number): number[] =>
  Array.from({ length: vocabSize }, (_, id) => id).filter((id) => isAllowed(mask, id));

const structural = /[{}[\]",:\\]/;

/**
 * Random walks through allowed tokens; at every step the constraint's mask (trie walk, or cache)
 * must equal the brute force from an automaton stepped alongside. Half the picks favour tokens with
 * structural characters, so the walks reach nesting, escapes and closers and not only long strings.
 */
function checkMasksOnWalks<State>(spec: string, automaton: CharAutomaton<State>, vocabulary: ConstraintVocabulary, steps: number): number {
  let checked = 0;
  let seed = 0;
  while (checked < steps) {
    seed++;
    const constraint = compileConstraint(spec, vocabulary);
    let state = automaton.start;
    for (let step = 0; step < 40 && checked < steps; step++) {
      const mask = constraint.mask();
      expect(Array.from(mask), `${spec} after ${JSON.stringify(constraint.text)}`).toEqual(Array.from(bruteForceMask(automaton, vocabulary, state)));
      checked++;
      const allowed = allowedIds(mask, vocabulary.vocabSize);
      const favoured = allowed.filter((id) => structural.test(vocabulary.texts[id] ?? ''));
      const pool = favoured.length > 0 && uniform(seed, 2 * step) < 0.5 ? favoured : allowed;
      const token = pool[pick(pool.length, seed, 2 * step + 1)];
      if (token === vocabulary.eosId) break;
      constraint.advance(token);
      state = stepText(automaton, state, vocabulary.texts[token]!)!;
    }
  }
  return checked;
}

async function loadTok512(): Promise<Tokenizer> {
  return parseLlama2cTokenizer(await models.read('stories260K/tok512.bin'), 'tok512.bin', 512);
}

async function loadSmolTokenizer(): Promise<Tokenizer> {
  const readJson = async (name: string): Promise<unknown> => JSON.parse(await readFile(new URL(name, smolDir), 'utf8'));
  const config = (await readJson('config.json')) as { bos_token_id: number; eos_token_id: number };
  return new HuggingFaceTokenizer(await readJson('tokenizer.json'), { fileName: 'tokenizer.json', bosId: config.bos_token_id, eosId: config.eos_token_id });
}

describe('constraint vocabulary', () => {
  it('reads what each tok512 token appends, leaving out control and partial UTF-8 byte tokens', async () => {
    const tokenizer = await loadTok512();
    const vocabulary = buildConstraintVocabulary(tokenizer);
    expect(vocabulary.texts.slice(0, 3)).toEqual([null, null, null]); // <unk>, BOS, EOS
    expect(vocabulary.texts[3 + 0x41]).toBe('A'); // byte token <0x41>
    expect(vocabulary.texts[3 + 0x7b]).toBe('{');
    for (let byte = 0x80; byte <= 0xff; byte++) expect(vocabulary.texts[3 + byte]).toBeNull(); // part of a character
    // Pieces keep their leading space: "Once" follows other text as " Once".
    const ids = tokenizer.encode('Once upon a time', { bos: false });
    expect(ids.map((id) => vocabulary.texts[id]).join('')).toBe(' Once upon a time');
    expect(vocabulary.texts.filter((text) => text === null)).toHaveLength(3 + 128);
  });

  it('reads what each SmolLM2 token appends, leaving out special and partial UTF-8 byte tokens', async () => {
    const tokenizer = await loadSmolTokenizer();
    const vocabulary = buildConstraintVocabulary(tokenizer);
    expect(tokenizer.encode('Hello, world!', { bos: false }).map((id) => vocabulary.texts[id])).toEqual(['Hello', ',', ' world', '!']);
    expect(vocabulary.texts.slice(0, 17)).toEqual(Array(17).fill(null)); // <|endoftext|>, <|im_start|>, <|im_end|>, ...
    const byteTokens = tokenizer.encode('🦙', { bos: false }); // no whole token: bytes that only make a character together
    expect(byteTokens.length).toBeGreaterThan(1);
    for (const id of byteTokens) expect(vocabulary.texts[id]).toBeNull();
  });
});

describe('token masks', () => {
  let tok512: ConstraintVocabulary;
  let smol: ConstraintVocabulary;
  beforeAll(async () => {
    tok512 = buildConstraintVocabulary(await loadTok512());
    smol = buildConstraintVocabulary(await loadSmolTokenizer());
  });

  it('equal the brute force over the vocabulary in random reachable states (tok512)', () => {
    expect(checkMasksOnWalks('json', new JsonAutomaton({ closers: 0, openers: 0 }), tok512, 300)).toBe(300);
    const pattern = '[0-9]{3}-[0-9]{4}|(the|a) [a-z ]{1,12}\\.';
    expect(checkMasksOnWalks(`regex:${pattern}`, compileRegex(pattern), tok512, 150)).toBe(150);
  });

  it('equal the brute force over the vocabulary in random reachable states (SmolLM2)', () => {
    expect(checkMasksOnWalks('json', new JsonAutomaton({ closers: 0, openers: 0 }), smol, 60)).toBe(60);
    const pattern = '[0-9]{3}-[0-9]{4}|(the|a) [a-z ]{1,12}\\.';
    expect(checkMasksOnWalks(`regex:${pattern}`, compileRegex(pattern), smol, 30)).toBe(30);
  });

  it('keeps masks exact where states differ only deep in the stack (SmolLM2)', () => {
    const json = new JsonAutomaton({ closers: 0, openers: 0 });
    // Same control state and top frame, different containers underneath: a token like "}]}" or "},"
    // reads them, so the cached mask of one must not answer for the other.
    // Near the depth limit, the depth itself decides whether a token like "[[" may open more.
    const stacks = ['[{"a":[', '{"x":[{"a":[', '[[', '', '[[[[', '['.repeat(maxDepth - 2), '['.repeat(maxDepth - 4)];
    const prefixes = stacks.flatMap((stack) => [`${stack}{"b":1`, `${stack}{"b":`]);
    for (const prefix of prefixes) {
      const constraint = compileConstraint('json', smol);
      for (const id of greedyTokens(smol, prefix)) constraint.advance(id);
      expect(constraint.text).toBe(prefix);
      const state = stepText(json, json.start, prefix)!;
      expect(Array.from(constraint.mask()), prefix).toEqual(Array.from(bruteForceMask(json, smol, state)));
    }
  });

  it('allows EOS exactly when the text is complete, and only EOS after a complete JSON value', () => {
    const constraint = compileConstraint('json', tok512);
    const brace = tok512.texts.indexOf('{');
    const close = tok512.texts.indexOf('}');
    expect(constraint.complete).toBe(false);
    expect(isAllowed(constraint.mask(), tok512.eosId)).toBe(false);
    constraint.advance(brace);
    constraint.advance(close);
    expect(constraint.complete).toBe(true);
    expect(allowedIds(constraint.mask(), tok512.vocabSize)).toEqual([tok512.eosId]);
    constraint.advance(tok512.eosId);
    expect(constraint.finished).toBe(true);
    expect(() => constraint.mask()).toThrow(/EOS was taken/);
  });

  it('refuses tokens the mask does not allow, EOS before the end, and unknown specs', () => {
    const constraint = compileConstraint('regex:[0-9]{3}', tok512);
    const letter = tok512.texts.indexOf('a');
    expect(isAllowed(constraint.mask(), letter)).toBe(false);
    expect(() => constraint.advance(letter)).toThrow(RequestError);
    expect(() => constraint.advance(letter)).toThrow(/token \d+ \("a"\) is not allowed after ""/);
    expect(() => constraint.advance(tok512.eosId)).toThrow(/EOS is not allowed/);
    expect(() => constraint.advance(1)).toThrow(/never allowed/); // BOS
    expect(() => compileConstraint('yaml', tok512)).toThrow(/unknown constraint "yaml"/);
    expect(() => compileConstraint('regex:(', tok512)).toThrow(RequestError);
  });

  it('shares cached masks between constraints of the same spec and counts the hits', () => {
    const spec = 'regex:x[0-9]{2}'; // used by no other test, so its cache starts empty
    const first = compileConstraint(spec, smol);
    const mask = first.mask();
    first.mask();
    expect(first.stats).toMatchObject({ maskCalls: 2, cacheHits: 1 });
    expect(first.stats.maskMs).toBeGreaterThanOrEqual(first.stats.lastMaskMs);
    const second = compileConstraint(spec, smol);
    expect(second.mask()).toBe(mask); // the same array: a caller may skip the upload
    expect(second.stats).toMatchObject({ maskCalls: 1, cacheHits: 1 });
    expect(allowedIds(mask, smol.vocabSize).map((id) => smol.texts[id])).toEqual(
      smol.texts.filter((text) => text !== null && /^x[0-9]{0,2}$/.test(text)),
    );
  });
});


// ----------------------------------------------------------------------------
// masked sampling

/** Single-character texts that close any open JSON text soonest, in the order tried (see closeIds). */
const closerTexts = ['"', ']', '}', ':', '0', 'r', 'u', 'e', 'a', 'l', 's'];

interface Generation {
  /** The tokens after the prompt, EOS included when taken. */
  tokens: number[];
  /** How many were sampled (the rest were forced by the closer). */
  sampled: number;
  text: string;
  finished: boolean;
}

/** A copy of `logits` with every token the mask does not allow at -Infinity, as the GPU sampler treats it. */
function applyMask(logits: Float32Array, mask: Uint32Array): Float32Array {
  const masked = logits.slice();
  for (let id = 0; id < masked.length; id++) if (!isAllowed(mask, id)) masked[id] = -Infinity;
  return masked;
}

/**
 * Samples under the constraint: the logits of disallowed tokens become -Infinity, then the reference
 * sampler picks at temperature 1 with the draw uniform(seed, position). After `budget` sampled tokens
 * an unfinished JSON text is closed by taking, each step, the first allowed of EOS and `closerTexts`
 * (the shortest way out: close strings and containers, finish numbers and literals).
 */
function generateConstrained(
  spec: string,
  vocabulary: ConstraintVocabulary,
  nextLogits: (previous: number | null) => Float32Array,
  firstPosition: number,
  seed: number,
  budget: number,
): Generation {
  const constraint = compileConstraint(spec, vocabulary);
  const closers = [vocabulary.eosId, ...closerTexts.map((text) => vocabulary.texts.indexOf(text))];
  expect(closers).not.toContain(-1);
  const tokens: number[] = [];
  let sampled = 0;
  let previous: number | null = null;
  while (!constraint.finished && tokens.length < budget + 4 * maxDepth) {
    const mask = constraint.mask();
    let token: number;
    if (sampled < budget) {
      const masked = applyMask(nextLogits(previous), mask);
      token = sampleToken(masked, 1, uniform(seed, firstPosition + tokens.length));
      sampled++;
    } else {
      token = closers.find((id) => isAllowed(mask, id))!;
    }
    constraint.advance(token);
    tokens.push(token);
    previous = token;
  }
  return { tokens, sampled, text: constraint.text, finished: constraint.finished };
}

describe('masked sampling', () => {
  describe('stories260K (CPU reference forward pass)', () => {
    let model: ModelDescription;
    let tokenizer: Tokenizer;
    let vocabulary: ConstraintVocabulary;
    beforeAll(async () => {
      model = await loadModelDescription(models, 'stories260K/stories260K.bin');
      tokenizer = await loadTok512();
      vocabulary = buildConstraintVocabulary(tokenizer);
    });

    /** Generation after a prompt, the model's logits feeding the masked sampler. */
    const generate = (spec: string, seed: number, budget: number): { generation: Generation; prompt: number[] } => {
      const prompt = tokenizer.encode('Once upon a time', { bos: true });
      const reference = new ReferenceModel(model);
      let logits: Float32Array = new Float32Array(0);
      prompt.forEach((token, pos) => {
        logits = reference.forward(token, pos);
      });
      let pos = prompt.length;
      const nextLogits = (previous: number | null): Float32Array => (previous === null ? logits : reference.forward(previous, pos++));
      return { generation: generateConstrained(spec, vocabulary, nextLogits, prompt.length, seed, budget), prompt };
    };

    it('gives JSON that parses, for every seed', () => {
      const seeds = 12;
      let completedBySampling = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const { generation, prompt } = generate('json', seed, 48);
        expect(generation.finished, generation.text).toBe(true);
        expect(() => JSON.parse(generation.text), generation.text).not.toThrow();
        // The text the constraint saw is the text the tokenizer decodes after the prompt.
        expect(tokenizer.decode([...prompt, ...generation.tokens])).toBe(tokenizer.decode(prompt) + generation.text);
        if (generation.sampled === generation.tokens.length) completedBySampling++;
      }
      expect(completedBySampling).toBeGreaterThanOrEqual(10); // 12 of 12 when written: digits repeat up to maxNumberLength, then EOS
    });

    it('gives text that fully matches the regex, for every seed', () => {
      for (const pattern of ['[0-9]{3}-[0-9]{4}', '(Yes|No)\\. [A-Z][a-z]{2,10}']) {
        const whole = new RegExp(`^(?:${pattern})$`, 'u');
        for (let seed = 1; seed <= 8; seed++) {
          const { generation } = generate(`regex:${pattern}`, seed, 40);
          expect(generation.sampled, generation.text).toBe(generation.tokens.length); // ended by sampling EOS
          expect(generation.finished).toBe(true);
          expect(generation.text).toMatch(whole);
        }
      }
    });
  });

  describe('SmolLM2 tokenizer (seeded random logits)', () => {
    let vocabulary: ConstraintVocabulary;
    beforeAll(async () => {
      vocabulary = buildConstraintVocabulary(await loadSmolTokenizer());
    });

    /** Seeded logits in [-4, 4): one random vector per seed, rotated by a random offset at each step. */
    const randomLogits = (seed: number): ((previous: number | null) => Float32Array) => {
      const n = vocabulary.vocabSize;
      const base = seededValues(n, seed).map((value) => 4 * value);
      const logits = new Float32Array(n);
      let step = 0;
      return () => {
        const offset = pick(n, seed + 1000, step++);
        logits.set(base.subarray(offset));
        logits.set(base.subarray(0, offset), n - offset);
        return logits;
      };
    };

    it('gives JSON that parses, for every seed', () => {
      const seeds = 20;
      let completedBySampling = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const generation = generateConstrained('json', vocabulary, randomLogits(seed), 0, seed, 48);
        expect(generation.finished, generation.text).toBe(true);
        expect(() => JSON.parse(generation.text), generation.text).not.toThrow();
        if (generation.sampled === generation.tokens.length) completedBySampling++;
      }
      // 7 of 20 when written: random logits seldom pick one of the few tokens that close a string.
      expect(completedBySampling).toBeGreaterThanOrEqual(5);
    });

    it('gives text that fully matches the regex, for every seed', () => {
      for (let seed = 1; seed <= 10; seed++) {
        const generation = generateConstrained('regex:[0-9]{3}-[0-9]{4}', vocabulary, randomLogits(seed), 0, seed, 40);
        expect(generation.sampled).toBe(generation.tokens.length);
        expect(generation.text).toMatch(/^[0-9]{3}-[0-9]{4}$/);
      }
    });
  });
});
