// Every optimization switch the lab knows about, in plain words: what it changes and why that
// moves speed, memory or quality. Only switches the engine honours now (EngineSettings) are
// `landed` and shown as controls; the others are listed so the page can say what is coming,
// never drawn as toggles that do nothing.
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
}

/** A switch whose engine part has not landed: listed, never rendered as a control. */
export interface PendingSwitch extends SwitchText {
  key: string;
  landed: false;
  setting: null;
  /** The issue that brings it to the engine. */
  comingWith: 'paged-KV' | 'sampling';
}

export type LabSwitch = LandedSwitch | PendingSwitch;

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
      'After the last layer the model has one score per vocabulary entry. With the GPU sampler a small kernel picks the next token where the scores already are, and only its 4-byte id travels back to the page. With the CPU sampler every step copies the whole score vector back (4 bytes per vocabulary entry) and picks the token in TypeScript, so each token waits for a larger readback; the cost grows with the vocabulary and is easy to see on models with tens of thousands of tokens. At temperature 0 both pick the highest score.',
    valueNotes: { gpu: '4 B read back', cpu: 'all logits read back' },
  },
  {
    key: 'attention',
    landed: false,
    setting: null,
    comingWith: 'paged-KV',
    title: 'Fused attention',
    explanation:
      'Unfused attention is three passes: scores of the query against every cached key are written to memory, read back for the softmax, and read again to weight the values. A fused kernel keeps the scores in workgroup memory and does all three in one pass, saving traffic that grows with the context length.',
  },
  {
    key: 'kvLayout',
    landed: false,
    setting: null,
    comingWith: 'paged-KV',
    title: 'Paged KV cache',
    explanation:
      'A contiguous cache reserves room for the whole context up front for every sequence. A paged cache hands out fixed-size pages as a sequence grows, so memory follows the tokens actually held and more sequences fit at once, at the price of one page-table lookup per access.',
  },
  {
    key: 'pageSize',
    landed: false,
    setting: null,
    comingWith: 'paged-KV',
    title: 'KV page size',
    explanation:
      'Large pages mean fewer page-table lookups and longer contiguous reads; small pages waste less room in the last, partly filled page of each sequence.',
  },
  {
    key: 'batchSize',
    landed: false,
    setting: null,
    comingWith: 'paged-KV',
    title: 'Batch size',
    explanation:
      'Decoding several sequences together reads each weight once for all of them, turning the matrix-vector products into small matrix products: tokens per second across the batch rise until arithmetic or KV-cache memory runs out, while each sequence waits a little longer per token.',
  },
  {
    key: 'prefixCache',
    landed: false,
    setting: null,
    comingWith: 'paged-KV',
    title: 'Prefix cache',
    explanation:
      'Keeps the KV entries of a prompt prefix that later requests share, so they skip prefilling it: the time to the first token drops, and the cached pages hold memory while they wait to be reused.',
  },
  {
    key: 'speculative',
    landed: false,
    setting: null,
    comingWith: 'sampling',
    title: 'Speculative decoding',
    explanation:
      'A cheap draft proposes several tokens and the model checks them all in one pass: every accepted token shares one read of the weights, and rejected ones are work thrown away.',
  },
  {
    key: 'constrained',
    landed: false,
    setting: null,
    comingWith: 'sampling',
    title: 'Constrained decoding',
    explanation:
      'Before sampling, a grammar masks every token that could not continue valid output, so the text is guaranteed to parse (JSON, say) for a small cost per step.',
  },
];

export const landedSwitches: readonly LandedSwitch[] = labSwitches.filter((s): s is LandedSwitch => s.landed);
export const pendingSwitches: readonly PendingSwitch[] = labSwitches.filter((s): s is PendingSwitch => !s.landed);

export function landedSwitch(key: SettingKey): LandedSwitch {
  const found = landedSwitches.find((s) => s.key === key);
  if (!found) throw new RangeError(`no switch for engine setting "${key}"`);
  return found;
}

/** The label of a tokens/sec chart mark: "weight format f32 → q4_0". */
export function describeChange(key: SettingKey, from: string, to: string): string {
  return `${landedSwitch(key).markName} ${from} → ${to}`;
}

/** One value of a switch as the adapter offers it. */
export interface SwitchOption {
  value: string;
  /** Short note from the catalog ('' when it has none). */
  note: string;
  available: boolean;
  /** Why the adapter cannot run it (only when unavailable). */
  reason?: string;
}

/**
 * The values of a switch on this adapter, available and unavailable, in the catalog's order
 * (values the catalog does not know keep the engine's order, after the known ones).
 */
export function switchOptions(key: SettingKey, choices: SettingChoices): SwitchOption[] {
  const { valueNotes } = landedSwitch(key);
  const { available, unavailable } = choices[key];
  const options: SwitchOption[] = [
    ...available.map((value) => ({ value, note: valueNotes[value] ?? '', available: true })),
    ...unavailable.map(({ value, reason }) => ({ value, note: valueNotes[value] ?? '', available: false, reason })),
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
