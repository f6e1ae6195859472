// The OpenAI wire format in: a request body (already JSON-parsed) becomes the one shape the server
// runs, or an ApiError that names the offending field. Features the batched engine cannot honour
// (n > 1, logprobs, tools, penalties) are refused with a 400 instead of being quietly ignored.
import type { ChatMessage } from '../engine/tokenizer/chat-template.ts';
import { invalidRequest } from './api-error.ts';

export type Endpoint = 'completions' | 'chat.completions';

export type PromptInput =
  | { kind: 'text'; text: string }
  /** A completions prompt given as token ids (as vLLM and OpenAI accept). */
  | { kind: 'tokens'; tokens: number[] }
  | { kind: 'chat'; messages: ChatMessage[] };

export interface CompletionParams {
  endpoint: Endpoint;
  model: string;
  input: PromptInput;
  /** max_tokens (or max_completion_tokens) as given; null: the endpoint's default (defaultMaxTokens). */
  maxTokens: number | null;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** The sampler's seed (taken modulo 2^32); null: a fresh random one. */
  seed: number | null;
  /** Texts that end the completion; the matched text is not returned. */
  stop: string[];
  stream: boolean;
  /** stream_options.include_usage: the stream ends with a chunk carrying usage. */
  includeUsage: boolean;
}

/**
 * Tokens generated when the request names no max_tokens, capped by what the context leaves: 16 for
 * the legacy completions endpoint (OpenAI's default), the rest of the context for chat.
 */
export function defaultMaxTokens(endpoint: Endpoint, contextLeft: number): number {
  return endpoint === 'completions' ? Math.min(16, contextLeft) : contextLeft;
}
/** OpenAI's default temperature. */
const defaultTemperature = 1;
const maxStopSequences = 4;

type Body = Record<string, unknown>;

export function parseJsonBody(text: string): Body {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw invalidRequest(`the request body is not valid JSON: ${(error as Error).message}`, null, 'invalid_json');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidRequest('the request body must be a JSON object', null, 'invalid_json');
  return body as Body;
}

export function parseCompletionRequest(body: Body): CompletionParams {
  refuseUnsupported(body, 'completions');
  return {
    ...commonParams(body, 'completions'),
    input: completionPrompt(body.prompt),
    maxTokens: maxTokens(body, 'max_tokens'),
  };
}

export function parseChatRequest(body: Body): CompletionParams {
  refuseUnsupported(body, 'chat.completions');
  const param = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  return { ...commonParams(body, 'chat.completions'), input: { kind: 'chat', messages: chatMessages(body.messages) }, maxTokens: maxTokens(body, param) };
}

function commonParams(body: Body, endpoint: Endpoint): Omit<CompletionParams, 'input' | 'maxTokens'> {
  if (typeof body.model !== 'string' || body.model === '') throw invalidRequest('you must provide a model parameter (GET /v1/models lists them)', 'model', 'missing_required_parameter');
  const stream = optional(body.stream, 'stream', (v): v is boolean => typeof v === 'boolean', 'true or false') ?? false;
  const streamOptions = optional(body.stream_options, 'stream_options', (v): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v), 'an object');
  if (streamOptions && !stream) throw invalidRequest('stream_options is only allowed when stream is true', 'stream_options');
  const includeUsage = optional(streamOptions?.include_usage, 'stream_options.include_usage', (v): v is boolean => typeof v === 'boolean', 'true or false') ?? false;
  return {
    endpoint,
    model: body.model,
    temperature: optional(body.temperature, 'temperature', (v): v is number => typeof v === 'number' && v >= 0 && v <= 2, 'a number from 0 to 2') ?? defaultTemperature,
    topP: optional(body.top_p, 'top_p', (v): v is number => typeof v === 'number' && v > 0 && v <= 1, 'a number in (0, 1]') ?? 1,
    seed: optional(body.seed, 'seed', (v): v is number => Number.isSafeInteger(v), 'an integer') ?? null,
    stop: stopSequences(body.stop),
    stream,
    includeUsage,
  };
}

/** A field that may be absent or null; present, it must pass `check`. */
function optional<T>(value: unknown, param: string, check: (v: unknown) => v is T, rule: string): T | undefined {
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw invalidRequest(`${param} must be ${rule}, got ${JSON.stringify(value)}`, param);
  return value;
}

function maxTokens(body: Body, param: 'max_tokens' | 'max_completion_tokens'): number | null {
  return optional(body[param], param, (v): v is number => Number.isInteger(v) && (v as number) >= 1, 'a whole number >= 1') ?? null;
}

function stopSequences(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list) || list.length > maxStopSequences || list.some((s) => typeof s !== 'string' || s === '')) {
    throw invalidRequest(`stop must be a non-empty string or a list of up to ${maxStopSequences} of them, got ${JSON.stringify(stop)}`, 'stop');
  }
  return list as string[];
}

function completionPrompt(prompt: unknown): PromptInput {
  const isTokens = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t) && t >= 0);
  if (typeof prompt === 'string') return { kind: 'text', text: prompt };
  if (isTokens(prompt)) return { kind: 'tokens', tokens: prompt };
  // A list of prompts is a batch in OpenAI's API; one request runs one prompt here.
  if (Array.isArray(prompt) && prompt.length === 1) return completionPrompt(prompt[0]);
  if (Array.isArray(prompt) && prompt.length > 1) throw invalidRequest(`prompt must be one prompt per request here, got a list of ${prompt.length}`, 'prompt');
  throw invalidRequest('prompt must be a string or a non-empty list of token ids', 'prompt', prompt === undefined ? 'missing_required_parameter' : 'invalid_value');
}

const chatRoles: Record<string, ChatMessage['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };

function chatMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalidRequest('messages must be a non-empty list of { role, content }', 'messages', messages === undefined ? 'missing_required_parameter' : 'invalid_value');
  }
  return messages.map((message, i) => {
    const param = `messages[${i}]`;
    if (typeof message !== 'object' || message === null) throw invalidRequest(`${param} must be an object with role and content`, param);
    const { role, content } = message as Body;
    const mapped = typeof role === 'string' ? chatRoles[role] : undefined;
    if (!mapped) throw invalidRequest(`${param}.role must be system, developer, user or assistant, got ${JSON.stringify(role)}`, `${param}.role`);
    return { role: mapped, content: messageText(content, `${param}.content`) };
  });
}

/** Content is a string or a list of text parts (images and audio have no place in a text model). */
function messageText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        const { type, text } = (part ?? {}) as Body;
        if (type !== 'text' || typeof text !== 'string') throw invalidRequest(`${param}[${i}] must be { type: "text", text }: this model reads text only`, `${param}[${i}]`);
        return text;
      })
      .join('');
  }
  throw invalidRequest(`${param} must be a string or a list of text parts`, param);
}

/** Options whose non-default values ask for something the server does not do. */
function refuseUnsupported(body: Body, endpoint: Endpoint): void {
  const refuse = (param: string, why: string) => {
    throw invalidRequest(`${param} is not supported here: ${why}`, param, 'unsupported_parameter');
  };
  const set = (v: unknown) => v !== undefined && v !== null;
  if (set(body.n) && body.n !== 1) refuse('n', 'one choice per request');
  if (set(body.best_of) && body.best_of !== 1) refuse('best_of', 'one choice per request');
  if (body.echo === true) refuse('echo', 'the prompt is not returned');
  if (set(body.suffix) && body.suffix !== '') refuse('suffix', 'insertion is not available');
  if (endpoint === 'completions' ? set(body.logprobs) : body.logprobs === true || set(body.top_logprobs)) refuse('logprobs', 'the batched sampler picks tokens on the GPU and reads back only the token');
  for (const param of ['frequency_penalty', 'presence_penalty'] as const) {
    if (set(body[param]) && body[param] !== 0) refuse(param, 'penalties need per-sequence token counts, which the batched sampler does not keep');
  }
  if (set(body.logit_bias) && Object.keys(body.logit_bias as object).length > 0) refuse('logit_bias', 'the batched sampler has no per-token bias');
  if (Array.isArray(body.tools) && body.tools.length > 0) refuse('tools', 'tool calling is not available');
  if (Array.isArray(body.functions) && body.functions.length > 0) refuse('functions', 'function calling is not available');
  const format = body.response_format as Body | undefined;
  if (set(format) && format!.type !== 'text') refuse('response_format', 'only text responses');
}
