// The OpenAI wire format out: response bodies and stream chunks for both endpoints.
import type { Endpoint } from './openai-request.ts';

export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** What every body and chunk of one response shares. */
export interface ResponseHeader {
  id: string;
  /** Unix time (s) the request arrived. */
  created: number;
  model: string;
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: cachedTokens } };
}

export function completionId(endpoint: Endpoint, random: string): string {
  return `${endpoint === 'completions' ? 'cmpl' : 'chatcmpl'}-${random}`;
}

export function responseBody(endpoint: Endpoint, header: ResponseHeader, text: string, finishReason: FinishReason, counts: Usage) {
  if (endpoint === 'completions') {
    return { ...header, object: 'text_completion', choices: [{ index: 0, text, finish_reason: finishReason, logprobs: null }], usage: counts };
  }
  return { ...header, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finishReason, logprobs: null }], usage: counts };
}

/** A chat stream opens with the assistant's role and no text. */
export function roleChunk(header: ResponseHeader) {
  return { ...header, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }] };
}

/** A piece of text, or (with `finishReason`) the end of the choice. */
export function textChunk(endpoint: Endpoint, header: ResponseHeader, text: string, finishReason: FinishReason | null = null) {
  if (endpoint === 'completions') return { ...header, object: 'text_completion', choices: [{ index: 0, text, finish_reason: finishReason, logprobs: null }] };
  return { ...header, object: 'chat.completion.chunk', choices: [{ index: 0, delta: finishReason === null ? { content: text } : {}, finish_reason: finishReason, logprobs: null }] };
}

/** stream_options.include_usage: one last chunk with no choices and the usage. */
export function usageChunk(endpoint: Endpoint, header: ResponseHeader, counts: Usage) {
  return { ...header, object: endpoint === 'completions' ? 'text_completion' : 'chat.completion.chunk', choices: [], usage: counts };
}
