// The models the lab offers. Paths are relative to the models directory the dev/preview server
// serves at /models/ (see vite.config.ts), or, for a model downloaded from the Hub or dropped onto
// the page, to its folder in the browser's model cache.
import type { CacheLocation, StoredModel } from '../engine/hub/cache-store.ts';
import { cacheLocation } from '../engine/hub/model-download.ts';

export interface ModelChoice {
  /** Stable key for the picker (the entry path). */
  id: string;
  label: string;
  /** File or folder the engine loads. */
  entry: string;
  /** Tokenizer file, when the model carries none of its own. */
  tokenizer?: string;
  /** Set for a stored model: its files are read from the browser's model cache. */
  cache?: CacheLocation;
}

/** Ids of models kept in the browser's model cache start with one of these (see hub/plan.ts and hub/local-files.ts). */
export function isStoredModelId(id: string): boolean {
  return /^(hub|url|local):/.test(id);
}

export function storedChoice(model: StoredModel): ModelChoice {
  const choice: ModelChoice = { id: model.id, label: `${model.label} (cached)`, entry: model.entry, cache: cacheLocation(model) };
  if (model.tokenizer) choice.tokenizer = model.tokenizer;
  return choice;
}

export const modelChoices: readonly ModelChoice[] = [
  { id: 'stories260K/stories260K.bin', label: 'stories260K — llama2.c .bin', entry: 'stories260K/stories260K.bin', tokenizer: 'stories260K/tok512.bin' },
  { id: 'stories260K/stories260K.gguf', label: 'stories260K — GGUF (embedded vocab)', entry: 'stories260K/stories260K.gguf' },
  { id: 'stories260K-hf', label: 'stories260K — Hugging Face safetensors', entry: 'stories260K-hf', tokenizer: 'stories260K/tok512.bin' },
];

export const defaultModelId = modelChoices[0].id;

/**
 * The picker's choices for this page, plus the one named by `?model=PATH` (and optional
 * `&tokenizer=PATH`, empty for none) when it is not a known model. Returns the id to select first
 * (which may be a stored model's id, not yet among the choices).
 */
export function choicesFromQuery(search: string): { choices: ModelChoice[]; selected: string } {
  const params = new URLSearchParams(search);
  const entry = params.get('model');
  const choices = [...modelChoices];
  if (!entry) return { choices, selected: defaultModelId };
  const known = choices.find((c) => c.id === entry);
  if (known) return { choices, selected: known.id };
  // A stored model: the lab finds it in the model cache when it starts.
  if (isStoredModelId(entry)) return { choices, selected: entry };
  const tokenizerParam = params.get('tokenizer');
  const tokenizer = tokenizerParam ?? (entry.endsWith('.gguf') ? undefined : 'stories260K/tok512.bin');
  const custom: ModelChoice = { id: entry, label: `${entry} (from the URL)`, entry };
  if (tokenizer) custom.tokenizer = tokenizer;
  choices.push(custom);
  return { choices, selected: custom.id };
}
