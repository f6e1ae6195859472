// Every optimization switch the lab knows about, in plain words: what it changes and why that
// moves speed, memory or quality. Engine switches (EngineSettings) are drawn as controls in the
// Optimizations panel; request options that work like switches (a constraint on the output) are
// set with the request in the Generate controls and listed next to the engine switches.
import type { GenerateRequest } from '../engine/engine.ts';
import type { EngineSettings, SettingChoices } from '../engine/telemetry.ts';
import { bytesPerWeight, weightFormats, type WeightFormat } from '../engine/quant/formats.ts';

export type SettingKey = keyof EngineSettings;

interface SwitchText {
  title: string;
  /** One paragraph: what the switch changes and why that changes speed, memory or quality. */
  explanation: string;
}

/** A switch the engine honours: it maps to one EngineSettings field. */
export interface LandedSwitch extends SwitchText {
  key: SettingKey;
  landed: true;
  /** The EngineSettings field it sets (the same as `key`). */
  setting: SettingKey;
  /** Lower-case name used in chart marks: "weight format f32 → q4_0". */
  markName: string;
  /** Short notes shown under the values, in display order (values the engine offers that are missing here go last). */
  valueNotes: Readonly<Record<string, string>>;
  /** How a value is written where its raw form reads badly ("on" for true); the raw form otherwise. */
  valueLabels?: Readonly<Record<string, string>>;
}

/** An option of each request (GenerateRequest) rather than of the engine: set in the Generate controls. */
export interface RequestSwitch extends SwitchText {
  /** The GenerateRequest field it stands for. */
  key: keyof GenerateRequest & 'constraint';
  landed: true;
  setting: null;
  /** Short notes on its kinds of value, in display order. */
  valueNotes: Readonly<Record<string, string>>;
}

export type LabSwitch = LandedSwitch | RequestSwitch;

function weightNote(format: WeightFormat): string {
  const bytes = bytesPerWeight(format);
  const text = `${Number.isInteger(bytes) ? bytes : `≈${bytes.toFixed(2)}`} B/weight`;
  return format === 'f16-native' ? `${text}, f16 math` : text;
}

export const labSwitches: readonly LabSwitch[] = [
  {
    key: 'weightFormat',
    landed: true,
    setting: 'weightFormat',
    markName: 'weight format',
    title: 'Weight format',
    explanation:
      'Producing one token multiplies every weight matrix by a single vector, and each weight takes part in exactly one multiply-add, so the step is limited by how fast the GPU can read the weights rather than by arithmetic. Fewer bytes per weight therefore means proportionally less time per token and less GPU memory: f16 halves f32, q8_0 keeps an 8-bit level per weight plus one f16 scale for each block of 32, and q4_0 does the same with 4-bit levels. What you give up is precision: the kernel multiplies with rounded weights, the logits shift slightly, and at 4 bits the greedy text can start to differ. f16-native reads the same bytes as f16 but does its arithmetic in half precision, which the adapter must support (shader-f16).',
    valueNotes: Object.fromEntries(weightFormats.map((f) => [f, weightNote(f)])),
  },
  {
    key: 'matvecVariant',
    landed: true,
    setting: 'matvecVariant',
    markName: 'matvec variant',
    title: 'Matvec kernel variant',
    explanation:
      'The same matrix-vector product can be divided among GPU threads in different ways. naive hands each output row to one thread: no synchronisation, but long serial loops. splitK lets a whole workgroup share a row and adds the partial sums in workgroup memory; subgroup adds them with subgroup operations and a single barrier; multiRow gives each workgroup several rows and reads wide vectors. Which one wins depends on the adapter (a CPU-emulated GPU pays dearly for barriers, a real one needs many threads in flight to saturate memory), so auto times them when the model loads and keeps the fastest. The tokens are the same up to the order of floating-point additions; only speed changes.',
    valueNotes: { auto: 'fastest when loaded', naive: 'thread per row', splitK: 'workgroup per row', subgroup: 'subgroupAdd', multiRow: 'rows per workgroup' },
  },
  {
    key: 'sampler',
    landed: true,
    setting: 'sampler',
    markName: 'sampler',
    title: 'Sampler',
    explanation:
      'After the last layer the model has one score per vocabulary entry. With the GPU sampler a small kernel picks the next token where the scores already are, and only its 4-byte id travels back to the page. With the CPU sampler every step copies the whole score vector back (4 bytes per vocabulary entry) and picks the token in TypeScript, so each token waits for a larger readback; the cost grows with the vocabulary and is easy to see on models with tens of thousands of tokens. At temperature 0 both pick the highest score. gpu finds the top-k and top-p cutoffs by searching for a threshold, never ordering the vocabulary; gpu-sort orders the whole vocabulary on the GPU with a bitonic sort (about log² n passes over it) and reads the cutoffs off the sorted list, so it picks the very same token and shows what that ordering costs. Only gpu runs with the paged KV cache.',
    valueNotes: { gpu: '4 B read back', 'gpu-sort': 'bitonic sort, same token', cpu: 'all logits read back' },
  },
  {
    key: 'kvCache',
    landed: true,
    setting: 'kvCache',
    markName: 'KV cache',
    title: 'KV cache',
    explanation:
      'Every token the model has read leaves a key and a value vector in each layer, and every new token attends to all of them. The contiguous cache sets aside room for the whole context in one block before the first token, so nothing has to be looked up, but a short answer leaves most of that room empty and no other sequence can use it. The paged cache hands out small fixed-size pages as tokens arrive and keeps a table from positions to pages: memory follows the tokens actually held, the prompt is prefilled in chunks through the matrix-matrix kernel instead of one token at a time, and requests that start with the same text can share pages. The price is one table lookup per page read. Here a paged generation runs through the batched model with a batch of one; the CPU sampler and distribution inspection read the single-sequence model\'s logits, so they need the contiguous cache, and turning paging on puts the sampler back on the GPU.',
    valueNotes: { contiguous: 'whole context reserved', paged: 'pages as tokens arrive' },
  },
  {
    key: 'pageSize',
    landed: true,
    setting: 'pageSize',
    markName: 'page size',
    title: 'KV page size',
    explanation:
      'The unit the paged cache allocates in, counted in tokens. A sequence wastes at most the unused tail of its last page, so 8-token pages waste least; 32-token pages mean shorter page tables and longer runs of keys read together. Only whole pages can be shared through the prefix cache, so smaller pages also let shorter common beginnings be reused. It applies to paged generations and to every batched run (the Batching and KV-cache panels).',
    valueNotes: { '8': 'least waste', '16': 'balanced', '32': 'shortest tables' },
  },
  {
    key: 'prefixCache',
    landed: true,
    setting: 'prefixCache',
    markName: 'prefix cache',
    title: 'Prefix cache',
    explanation:
      'Keys and values depend only on the tokens before them, so two prompts that begin with the same tokens compute identical entries for that beginning. With the prefix cache on, the full pages of earlier prompts are kept and handed to a later request that starts the same way: its prefill skips those tokens, the time to its first token drops, and the shared pages are stored once however many sequences read them. Pages that only the cache holds are given back when the pool runs short. It works with the paged cache only, and on whole pages only.',
    valueNotes: { true: 'reuse shared beginnings', false: 'always prefill' },
    valueLabels: { true: 'on', false: 'off' },
  },
  {
    key: 'attention',
    landed: true,
    setting: 'attention',
    markName: 'attention',
    title: 'Paged attention kernel',
    explanation:
      'How attention over the paged cache is computed. fused does scores, softmax and the weighted sum of values in one kernel, keeping a running maximum and sum (online softmax) so the scores never go to memory. splitK cuts each sequence\'s cached tokens into chunks that separate workgroups handle at once and merges their partial results in a small second kernel, which keeps more of the GPU busy when a few sequences have long contexts. unfused writes every score to memory, normalises them in a second kernel and weights the values in a third: the textbook order, paying extra memory traffic that grows with the context. All three give the same tokens up to rounding; only speed changes.',
    valueNotes: { fused: 'one pass, online softmax', splitK: 'chunks, then a merge', unfused: 'scores → softmax → sum' },
  },
  {
    key: 'speculative',
    landed: true,
    setting: 'speculative',
    markName: 'speculative',
    title: 'Speculative decoding',
    explanation:
      'A decode step reads every weight to produce a single token, so the GPU mostly waits on memory. Speculative decoding lets a cheap draft guess the next few tokens, then runs the model once over all of them as a small batch: the weights are read once for the whole guess, and each guessed token the model agrees with is a token gained for that one read. The acceptance rule compares the draft\'s probabilities with the model\'s and, when it rejects a guess, draws the replacement from what is left of the model\'s distribution, so the text follows the model exactly as plain sampling would (at temperature 0, the same greedy text). Rejected tokens are rolled back by handing their KV pages back, which is why it needs the paged KV cache: turning it on pages the cache. draft-q4 drafts with the same model in 4-bit weights, ngram looks the next tokens up where the last few tokens occurred earlier in the text (no second model at all), and draft-model uses a smaller model with the same tokenizer.',
    valueNotes: { off: 'one token per pass', 'draft-q4': 'same model, 4-bit', ngram: 'prompt lookup', 'draft-model': 'smaller model' },
  },
  {
    key: 'draftTokens',
    landed: true,
    setting: 'draftTokens',
    markName: 'draft tokens',
    title: 'Draft tokens per pass',
    explanation:
      'How many tokens the draft proposes before the model checks them. More tokens per check means more tokens per read of the weights when the draft guesses well, but the chance that a whole run of guesses survives falls with its length, and every rejected guess is drafting and verifying work thrown away. A draft that agrees with the model most of the time earns longer runs; a poor one is better kept short. It matters only while speculative decoding is on.',
    // A pass yields the accepted guesses plus the model's own next token.
    valueNotes: Object.fromEntries([1, 2, 3, 4, 5, 6, 7, 8].map((k) => [String(k), `≤ ${k + 1} tokens/pass`])),
  },
  {
    key: 'constraint',
    landed: true,
    setting: null,
    title: 'Constrained decoding',
    explanation:
      'A constraint makes the output follow a grammar: JSON, or a regular expression. The grammar is compiled into an automaton over characters (with a stack for JSON\'s nesting), and for each state of it the lab works out once which vocabulary tokens could continue a valid output. Before every sampling step that token mask goes to the GPU, and the sampler treats every other token as impossible, so the text always parses however the model would have continued. The cost is computing masks for states not seen before and one small upload per step; the run\'s stats show the mask time, which must stay small next to the step. It is set per request, with the other generation options.',
    valueNotes: { '': 'off', json: 'valid JSON', 'regex:PATTERN': 'matches the pattern' },
  },
];

export const landedSwitches: readonly LandedSwitch[] = labSwitches.filter((s): s is LandedSwitch => s.setting !== null);
export const requestSwitches: readonly RequestSwitch[] = labSwitches.filter((s): s is RequestSwitch => s.setting === null);

export function landedSwitch(key: SettingKey): LandedSwitch {
  const found = landedSwitches.find((s) => s.key === key);
  if (!found) throw new RangeError(`no switch for engine setting "${key}"`);
  return found;
}

/** A setting's value as the switch writes it: "on" for prefix cache true, "16" for a page size. */
export function valueLabel(key: SettingKey, value: EngineSettings[SettingKey]): string {
  const text = String(value);
  return landedSwitch(key).valueLabels?.[text] ?? text;
}

/** The label of a tokens/sec chart mark: "weight format f32 → q4_0", "prefix cache on → off". */
export function describeChange(key: SettingKey, from: EngineSettings[SettingKey], to: EngineSettings[SettingKey]): string {
  return `${landedSwitch(key).markName} ${valueLabel(key, from)} → ${valueLabel(key, to)}`;
}

/**
 * The settings change a switch's radio value stands for (radio values are text: "16", "true").
 * Throws a RangeError for text that is no value of that setting's type.
 */
export function settingChange(key: SettingKey, text: string): Partial<EngineSettings> {
  switch (key) {
    case 'pageSize': {
      const size = Number(text);
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(size)) throw new RangeError(`page size must be a whole number of tokens, got "${text}"`);
      return { pageSize: size };
    }
    case 'prefixCache':
      if (text !== 'true' && text !== 'false') throw new RangeError(`prefix cache must be true or false, got "${text}"`);
      return { prefixCache: text === 'true' };
    case 'sampler':
      if (text !== 'gpu' && text !== 'gpu-sort' && text !== 'cpu') throw new RangeError(`sampler must be gpu, gpu-sort or cpu, got "${text}"`);
      return { sampler: text };
    case 'kvCache':
      if (text !== 'contiguous' && text !== 'paged') throw new RangeError(`KV cache must be contiguous or paged, got "${text}"`);
      return { kvCache: text };
    case 'attention':
      if (text !== 'fused' && text !== 'splitK' && text !== 'unfused') throw new RangeError(`attention must be fused, splitK or unfused, got "${text}"`);
      return { attention: text };
    case 'speculative':
      if (text !== 'off' && text !== 'draft-q4' && text !== 'ngram' && text !== 'draft-model') throw new RangeError(`speculative must be off, draft-q4, ngram or draft-model, got "${text}"`);
      return { speculative: text };
    case 'draftTokens': {
      const count = Number(text);
      if (!/^\d+$/.test(text) || count < 1 || count > 8) throw new RangeError(`draft tokens must be a whole number from 1 to 8, got "${text}"`);
      return { draftTokens: count };
    }
    case 'weightFormat':
    case 'matvecVariant':
      return { [key]: text };
  }
}

/**
 * Why a value cannot be combined with the other switches as they stand (the engine refuses the
 * pair), or null. The CPU sampler reads the single-sequence model's logits, which a paged
 * generation (run by the batched model) does not produce, and the sort sampler has no batched
 * form. The other way round is allowed: the engine puts the sampler back on gpu when the cache
 * turns paged.
 */
export function settingConflict(key: SettingKey, text: string, settings: EngineSettings): string | null {
  return key === 'sampler' && text !== 'gpu' && settings.kvCache === 'paged' ? 'needs the contiguous KV cache' : null;
}

/** A constraint as the request control and the Optimizations panel write it: "off", "json", "regex [0-9]+". */
export function constraintLabel(constraint: string): string {
  if (constraint === '') return 'off';
  return constraint.startsWith('regex:') ? `regex ${constraint.slice('regex:'.length)}` : constraint;
}

/** Every switch whose value differs between two settings, as one mark label: "KV cache contiguous → paged, sampler cpu → gpu". */
export function describeChanges(from: EngineSettings, to: EngineSettings): string {
  return landedSwitches
    .filter((s) => from[s.key] !== to[s.key])
    .map((s) => describeChange(s.key, from[s.key], to[s.key]))
    .join(', ');
}

/** One value of a switch as the adapter offers it. */
export interface SwitchOption {
  /** The value as text (the radio's value): "q4_0", "16", "true". */
  value: string;
  /** How the value is shown ("on" for true). */
  label: string;
  /** Short note from the catalog ('' when it has none). */
  note: string;
  available: boolean;
  /** Why it cannot be chosen: the adapter lacks something, or another switch rules it out (only when unavailable). */
  reason?: string;
}

/**
 * The values of a switch on this adapter, available and unavailable, in the catalog's order
 * (values the catalog does not know keep the engine's order, after the known ones). With
 * `settings`, a value the other switches rule out (settingConflict) is unavailable too.
 */
export function switchOptions(key: SettingKey, choices: SettingChoices, settings?: EngineSettings): SwitchOption[] {
  const { valueNotes, valueLabels } = landedSwitch(key);
  const { available, unavailable } = choices[key];
  const option = (text: string, reason: string | null): SwitchOption => {
    const base = { value: text, label: valueLabels?.[text] ?? text, note: valueNotes[text] ?? '' };
    return reason === null ? { ...base, available: true } : { ...base, available: false, reason };
  };
  const options: SwitchOption[] = [
    ...available.map((value) => option(String(value), settings ? settingConflict(key, String(value), settings) : null)),
    ...unavailable.map(({ value, reason }) => option(value, reason)),
  ];
  const order = Object.keys(valueNotes);
  const rank = (value: string) => {
    const i = order.indexOf(value);
    return i < 0 ? order.length : i;
  };
  // Array.prototype.sort is stable: unknown values keep the engine's order.
  return options.sort((a, b) => rank(a.value) - rank(b.value));
}

/** The figures of one side of a switch flip, for the before → after line. */
export interface FlipMeasurement {
  /** e.g. "f32" or "run 3 · f32 · auto · gpu sampler". */
  label: string;
  /** Decode speed; null when no generation ran with these settings yet. */
  tokensPerSecond: number | null;
  /** Weights resident on the GPU. */
  weightBytes: number;
  /** Bytes one decode step reads (MemoryReport.bytesPerToken). */
  bytesPerToken: number;
}
