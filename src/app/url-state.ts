// The lab's whole configuration in the page's query string, so a link reproduces a setup (model,
// switches, prompt, open panels, presenter step, replayed trace). Parsing never throws: a value
// that does not parse is dropped and the page falls back to its default. `model` and `tokenizer`
// keep the names models.ts's `choicesFromQuery` reads.
import { blockSizes } from '../engine/kv/page-pool.ts';
import type { EngineSettings } from '../engine/telemetry.ts';
import { defaultModelId } from './models.ts';

export interface LabUrlState {
  /** Model entry path (a known model's id or any path under /models/). */
  model?: string;
  /** Tokenizer path for a model from the URL; '' means the model carries its own. */
  tokenizer?: string;
  settings: Partial<EngineSettings>;
  prompt?: string;
  maxTokens?: number;
  temperature?: number;
  seed?: number;
  /** The request's cuts: top-k (0 off), top-p (1 off), min-p (0 off). */
  topK?: number;
  topP?: number;
  minP?: number;
  /** The request's constraint: 'json' or 'regex:PATTERN' ('' off). */
  constraint?: string;
  /** Ids of the panels shown, in order. */
  panels?: string[];
  presenter?: boolean;
  /** Presenter step (0-based). */
  step?: number;
  /** Path or URL of a recorded LabTrace to replay. */
  trace?: string;
}

/** What the page uses when the URL says nothing: such values are left out of formatted URLs. */
export const urlDefaults = {
  model: defaultModelId,
  settings: { weightFormat: 'f32', matvecVariant: 'auto', sampler: 'gpu', kvCache: 'contiguous', pageSize: 16, prefixCache: true, attention: 'fused', speculative: 'off', draftTokens: 4 } satisfies EngineSettings,
  prompt: '',
  maxTokens: 200,
  temperature: 0,
  seed: 42,
  topK: 0,
  topP: 1,
  minP: 0,
  constraint: '',
  presenter: false,
  step: 0,
} as const;

// Weight formats and matvec variants are checked only for shape here: which ones exist on this
// adapter is known once the engine reports its SettingChoices, and the page checks them there.
const settingValue = /^[A-Za-z0-9_.-]{1,32}$/;
const panelId = /^[A-Za-z0-9_-]{1,40}$/;

/** A whole number in [min, max] or undefined ("12abc", "1e400", "3.5" are all dropped). */
function wholeNumber(text: string | null, min: number, max: number): number | undefined {
  if (text === null || !/^-?\d+$/.test(text.trim())) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) && value >= min && value <= max ? value : undefined;
}

function finiteNumber(text: string | null, min: number, max: number): number | undefined {
  if (text === null || text.trim() === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) && value >= min && value <= max ? value : undefined;
}

function flag(text: string | null): boolean | undefined {
  if (text === '1' || text === 'true' || text === '') return true;
  if (text === '0' || text === 'false') return false;
  return undefined;
}

export function parseUrlState(search: string): LabUrlState {
  const params = new URLSearchParams(search);
  const state: LabUrlState = { settings: {} };

  const model = params.get('model');
  if (model) state.model = model;
  const tokenizer = params.get('tokenizer');
  if (tokenizer !== null) state.tokenizer = tokenizer;

  const weightFormat = params.get('weightFormat');
  if (weightFormat !== null && settingValue.test(weightFormat)) state.settings.weightFormat = weightFormat;
  const matvecVariant = params.get('matvecVariant');
  if (matvecVariant !== null && settingValue.test(matvecVariant)) state.settings.matvecVariant = matvecVariant;
  const sampler = params.get('sampler');
  if (sampler === 'gpu' || sampler === 'gpu-sort' || sampler === 'cpu') state.settings.sampler = sampler;
  const kvCache = params.get('kvCache');
  if (kvCache === 'contiguous' || kvCache === 'paged') state.settings.kvCache = kvCache;
  const pageSize = wholeNumber(params.get('pageSize'), 1, 1024);
  if (pageSize !== undefined && (blockSizes as readonly number[]).includes(pageSize)) state.settings.pageSize = pageSize;
  const prefixCache = flag(params.get('prefixCache'));
  if (prefixCache !== undefined) state.settings.prefixCache = prefixCache;
  const attention = params.get('attention');
  if (attention === 'fused' || attention === 'splitK' || attention === 'unfused') state.settings.attention = attention;
  const speculative = params.get('speculative');
  if (speculative === 'off' || speculative === 'draft-q4' || speculative === 'ngram' || speculative === 'draft-model') state.settings.speculative = speculative;
  const draftTokens = wholeNumber(params.get('draftTokens'), 1, 8);
  if (draftTokens !== undefined) state.settings.draftTokens = draftTokens;

  const prompt = params.get('prompt');
  if (prompt !== null) state.prompt = prompt;
  const maxTokens = wholeNumber(params.get('maxTokens'), 1, 1 << 20);
  if (maxTokens !== undefined) state.maxTokens = maxTokens;
  const temperature = finiteNumber(params.get('temperature'), 0, 100);
  if (temperature !== undefined) state.temperature = temperature;
  // The sampler's seed is a u32.
  const seed = wholeNumber(params.get('seed'), 0, 2 ** 32 - 1);
  if (seed !== undefined) state.seed = seed;
  const topK = wholeNumber(params.get('topK'), 0, 1 << 20);
  if (topK !== undefined) state.topK = topK;
  // The engine takes top-p in (0, 1] and min-p in [0, 1].
  const topP = finiteNumber(params.get('topP'), 0, 1);
  if (topP !== undefined && topP > 0) state.topP = topP;
  const minP = finiteNumber(params.get('minP'), 0, 1);
  if (minP !== undefined) state.minP = minP;
  // The engine compiles the pattern; here only its form is checked.
  const constraint = params.get('constraint');
  if (constraint === 'json' || (constraint !== null && /^regex:.+/s.test(constraint))) state.constraint = constraint;

  const panels = params.get('panels');
  if (panels !== null) state.panels = panels.split(',').filter((id) => panelId.test(id));
  const presenter = flag(params.get('presenter'));
  if (presenter !== undefined) state.presenter = presenter;
  const step = wholeNumber(params.get('step'), 0, 10_000);
  if (step !== undefined) state.step = step;
  const trace = params.get('trace');
  if (trace) state.trace = trace;
  return state;
}

/** Query-string encoding that leaves '/', ',' and ':' readable (all legal in a query value). */
function encode(text: string): string {
  return encodeURIComponent(text).replace(/%2F/gi, '/').replace(/%2C/gi, ',').replace(/%3A/gi, ':');
}

/** "?model=…&weightFormat=q4_0…" with defaults left out; '' when everything is default. */
export function formatUrlState(state: LabUrlState): string {
  const pairs: Array<[string, string]> = [];
  const add = (name: string, value: string | number | undefined, fallback?: string | number) => {
    if (value !== undefined && value !== fallback) pairs.push([name, String(value)]);
  };
  add('model', state.model, urlDefaults.model);
  add('tokenizer', state.tokenizer);
  add('weightFormat', state.settings.weightFormat, urlDefaults.settings.weightFormat);
  add('matvecVariant', state.settings.matvecVariant, urlDefaults.settings.matvecVariant);
  add('sampler', state.settings.sampler, urlDefaults.settings.sampler);
  add('kvCache', state.settings.kvCache, urlDefaults.settings.kvCache);
  add('pageSize', state.settings.pageSize, urlDefaults.settings.pageSize);
  if (state.settings.prefixCache !== undefined && state.settings.prefixCache !== urlDefaults.settings.prefixCache) pairs.push(['prefixCache', state.settings.prefixCache ? '1' : '0']);
  add('attention', state.settings.attention, urlDefaults.settings.attention);
  add('speculative', state.settings.speculative, urlDefaults.settings.speculative);
  add('draftTokens', state.settings.draftTokens, urlDefaults.settings.draftTokens);
  add('prompt', state.prompt, urlDefaults.prompt);
  add('maxTokens', state.maxTokens, urlDefaults.maxTokens);
  add('temperature', state.temperature, urlDefaults.temperature);
  add('seed', state.seed, urlDefaults.seed);
  add('topK', state.topK, urlDefaults.topK);
  add('topP', state.topP, urlDefaults.topP);
  add('minP', state.minP, urlDefaults.minP);
  add('constraint', state.constraint, urlDefaults.constraint);
  add('panels', state.panels?.join(','));
  if (state.presenter !== undefined && state.presenter !== urlDefaults.presenter) pairs.push(['presenter', state.presenter ? '1' : '0']);
  add('step', state.step, urlDefaults.step);
  add('trace', state.trace);
  return pairs.length === 0 ? '' : `?${pairs.map(([name, value]) => `${name}=${encode(value)}`).join('&')}`;
}
