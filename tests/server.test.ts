// The OpenAI-compatible server against the official openai client and raw HTTP, on stories260K:
// greedy text equals generate()'s, streamed or not; 32 concurrent streams each get their own text
// and leave no pages held; a client that leaves mid-stream frees its pages; a full queue answers
// 429 while admitted requests finish; bad requests get OpenAI-style errors; a failed GPU answers
// 500. Then a model with a chat template: chat streams, and a conversation's second turn reuses
// the first turn's pages with the same text as without the prefix cache.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../src/engine/index.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import { loadServingModel, type ServingModel } from '../src/server/serving-model.ts';
import { sseData } from '../src/server/sse-reader.ts';
import { StopText } from '../src/server/stop-text.ts';
import type { RequestTimeline } from '../src/engine/timeline.ts';
import { memorySource } from './helpers/memory-source.ts';
import { randomModel, tinyConfig, writeHuggingFace } from './helpers/model-files.ts';
import { loadStories, metrics, modelsDir, post, waitFor } from './helpers/server.ts';

const apiKey = 'test-key';
const model = 'stories260K';
const subjects = ['The cat', 'Tom', 'Lily', 'A big dog', 'The little bird', 'Mom', 'The sun', 'Ben and Sue'];
const actions = ['went to', 'saw a', 'wanted to', 'was very'];
/** 32 different prompts. */
const prompts = subjects.flatMap((s) => actions.map((a) => `${s} ${a}`));

async function timeline(url: string, id: string): Promise<RequestTimeline> {
  const response = await fetch(`${url}/v1/requests/${id}/timeline`, { headers: { Authorization: `Bearer ${apiKey}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as RequestTimeline;
}

describe('OpenAI-compatible server (stories260K)', () => {
  let serving: ServingModel;
  let engine: Engine;
  let server: RunningServer;
  let client: OpenAI;
  const logged: string[] = [];
  /** generate()'s greedy text for a prompt. */
  const reference = async (prompt: string, maxTokens: number) => (await engine.generate({ prompt, maxTokens, temperature: 0, seed: 0 })).text;

  beforeAll(async () => {
    serving = await loadStories(32);
    engine = await createEngine({ gpu: nodeGpu(), files: directorySource(modelsDir), entry: 'stories260K/stories260K.bin', maxContext: 512 });
    server = await startServer({ serving, maxBatch: 32, maxQueue: 64, apiKey, log: (line) => logged.push(line) });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.close();
    serving?.dispose();
    engine?.dispose();
  });

  it("answers the openai client with generate()'s greedy text; the streamed chunks concatenate to it", async () => {
    const expected = await engine.generate({ prompt: 'Once upon a time', maxTokens: 12, temperature: 0, seed: 0 });
    const whole = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
    expect(whole.choices[0].text).toBe(expected.text);
    expect(whole.choices[0].finish_reason).toBe('length');
    expect(whole.usage).toEqual({ prompt_tokens: expected.promptTokens, completion_tokens: 12, total_tokens: expected.promptTokens + 12, prompt_tokens_details: { cached_tokens: 0 } });

    const stream = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const pieces: string[] = [];
    const finishes: Array<string | null> = [];
    let usage;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        if (choice.text) pieces.push(choice.text);
        finishes.push(choice.finish_reason);
      }
      usage = chunk.usage ?? usage;
    }
    expect(pieces.join('')).toBe(expected.text);
    expect(pieces.length).toBeGreaterThan(5); // a chunk per token, not one at the end
    expect(finishes.at(-1)).toBe('length');
    expect(usage?.completion_tokens).toBe(12);

    // The request's timeline: contiguous stages from arrival to response, one entry per token.
    const t = await timeline(server.url, whole.id);
    expect(t).toMatchObject({ id: whole.id, endpoint: 'completions', stream: false, finished: true, outcome: 'length', promptTokens: expected.promptTokens, cachedPromptTokens: 0, computedPromptTokens: expected.promptTokens });
    expect(t.stages.map((s) => s.name)).toEqual(['parse', 'tokenize', 'queue', 'prefill', 'decode', 'respond']);
    t.stages.slice(1).forEach((s, i) => expect(s.startMs).toBe(t.stages[i].endMs));
    expect(t.stages.find((s) => s.name === 'prefill')!.endMs).toBe(t.tokens[0].atMs);
    expect(t.tokens.map((x) => x.token)).toEqual(expected.tokens.slice(expected.promptTokens));
    expect(t.tokens.map((x) => x.text).join('')).toBe(expected.text);
    for (const x of t.tokens) {
      expect(x.stepMs).toBeGreaterThan(0);
      expect(x.batchRows).toBeGreaterThanOrEqual(1);
    }
  });

  it('ends at a stop string without returning it, streamed or not', async () => {
    const text = await reference('Once upon a time', 12);
    const cut = text.indexOf(' little');
    expect(cut).toBeGreaterThan(0);
    const whole = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0, stop: [' little', 'zebra'] });
    expect(whole.choices[0]).toMatchObject({ text: text.slice(0, cut), finish_reason: 'stop' });
    expect(whole.usage!.completion_tokens).toBeLessThan(12);
    const stream = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0, stop: ' little', stream: true });
    let streamed = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0].text;
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    expect(streamed).toBe(text.slice(0, cut));
    expect(finish).toBe('stop');
  });

  it('serves 32 concurrent streaming clients, each with its single-client greedy text, and holds no pages afterwards', async () => {
    const expected: string[] = [];
    for (const prompt of prompts) expected.push(await reference(prompt, 4));
    const ids: string[] = [];
    const texts = await Promise.all(
      prompts.map(async (prompt) => {
        let text = '';
        for await (const chunk of await client.completions.create({ model, prompt, max_tokens: 4, temperature: 0, stream: true })) {
          ids.push(chunk.id);
          text += chunk.choices[0]?.text ?? '';
        }
        return text;
      }),
    );
    expect(texts).toEqual(expected);
    // They ran as a batch: some step carried rows of many sequences.
    const rows = (await timeline(server.url, ids[0])).tokens.map((t) => t.batchRows);
    expect(Math.max(...rows)).toBeGreaterThan(8);
    const after = await metrics(server.url);
    expect(after.get('lab_kv_pages_used')).toBe(0);
    expect(after.get('lab_running_sequences')).toBe(0);
    expect(after.get('lab_queue_depth')).toBe(0);
    expect(after.get('lab_kv_pages_free')! + after.get('lab_kv_pages_cached')!).toBe(after.get('lab_kv_pages_total'));
    expect(after.get('lab_time_to_first_token_seconds_count')).toBeGreaterThanOrEqual(32);
    expect(after.get('lab_generated_tokens_total')).toBeGreaterThanOrEqual(32 * 4);
    expect(after.get('lab_tokens_per_second')).toBeGreaterThan(0);
  });

  it('cancels the sequence of a client that disconnects mid-stream and frees its pages', async () => {
    const leave = new AbortController();
    const response = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: 300, temperature: 0, stream: true }),
      signal: leave.signal,
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    let id = '';
    let received = 0;
    for await (const data of sseData(response.body!)) {
      id = (JSON.parse(data) as { id: string }).id;
      if (++received === 3) break;
    }
    const during = await metrics(server.url);
    expect(during.get('lab_running_sequences')).toBe(1);
    expect(during.get('lab_kv_pages_used')).toBeGreaterThan(0);
    leave.abort();
    await waitFor('the pages to come back', async () => (await metrics(server.url)).get('lab_kv_pages_used') === 0);
    const after = await metrics(server.url);
    expect(after.get('lab_running_sequences')).toBe(0);
    expect(after.get('lab_requests_total{route="/v1/completions",status="499"}')).toBe(1);
    const t = await timeline(server.url, id);
    expect(t.outcome).toBe('cancelled');
    expect(t.tokens.length).toBeLessThan(300);
  });

  it('answers malformed bodies, unknown models, over-long prompts and bad keys with the right status and an OpenAI error body', async () => {
    const completions = `${server.url}/v1/completions`;
    const expectError = async (response: Response, status: number, code: string, message: RegExp) => {
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await response.json()) as { error: { message: string; type: string; code: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message).toMatch(message);
      expect(typeof body.error.type).toBe('string');
    };
    await expectError(await post(completions, '{"model": "stories260K", "prompt": ', apiKey), 400, 'invalid_json', /not valid JSON/);
    await expectError(await post(completions, '[1, 2]', apiKey), 400, 'invalid_json', /must be a JSON object/);
    await expectError(await post(completions, { model }, apiKey), 400, 'missing_required_parameter', /prompt must be/);
    await expectError(await post(completions, { model, prompt: 'Hi', max_tokens: 0 }, apiKey), 400, 'invalid_value', /max_tokens must be a whole number >= 1/);
    await expectError(await post(completions, { model, prompt: 'Hi', temperature: 7 }, apiKey), 400, 'invalid_value', /temperature must be a number from 0 to 2/);
    await expectError(await post(completions, { model, prompt: 'Hi', n: 3 }, apiKey), 400, 'unsupported_parameter', /n is not supported/);
    await expectError(await post(completions, { model, prompt: 'Hi', max_tokens: 600 }, apiKey), 400, 'context_length_exceeded', /the context holds 512 tokens.*ask for at most/);
    await expectError(await post(completions, { model, prompt: 'the dog ran '.repeat(200) }, apiKey), 400, 'context_length_exceeded', /the prompt is \d+ tokens but this server's context holds 512/);
    await expectError(await post(`${server.url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'Hi' }] }, apiKey), 400, 'no_chat_template', /has no chat template/);
    await expectError(await post(completions, { model: 'gpt-4o', prompt: 'Hi' }, apiKey), 404, 'model_not_found', /'gpt-4o' does not exist/);
    await expectError(await post(completions, { model, prompt: 'Hi' }), 401, 'invalid_api_key', /didn't provide an API key/);
    await expectError(await post(completions, { model, prompt: 'Hi' }, 'wrong-key'), 401, 'invalid_api_key', /incorrect API key/);
    await expectError(await fetch(completions, { headers: { Authorization: `Bearer ${apiKey}` } }), 405, 'method_not_allowed', /takes POST/);
    await expectError(await fetch(`${server.url}/v2/anything`), 404, 'unknown_url', /no route/);

    // The openai client raises its typed errors from these answers.
    await expect(client.completions.create({ model: 'gpt-4o', prompt: 'Hi' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
    await expect(wrongKey.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    // None of it hurt the server.
    expect((await client.models.list()).data.map((m) => m.id)).toEqual([model]);
    expect(logged).toEqual([]);
  });

  it('refuses requests past the queue with 429 and Retry-After while the admitted ones finish', async () => {
    // The model is idle between tests, so a second server may drive it for a while.
    const small = await startServer({ serving, maxBatch: 2, maxQueue: 2 });
    try {
      const responses = await Promise.all(prompts.slice(0, 8).map((prompt) => post(`${small.url}/v1/completions`, { model, prompt, max_tokens: 6, temperature: 0 })));
      const statuses = responses.map((r) => r.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(4);
      expect(statuses.filter((s) => s === 429)).toHaveLength(4);
      for (const response of responses) {
        const body = (await response.json()) as { choices?: Array<{ text: string }>; error?: { code: string } };
        if (response.status === 429) {
          expect(response.headers.get('retry-after')).toBe('1');
          expect(body.error!.code).toBe('queue_full');
        } else {
          expect(body.choices![0].text.length).toBeGreaterThan(0);
        }
      }
      const counts = await metrics(small.url);
      expect(counts.get('lab_requests_total{route="/v1/completions",status="429"}')).toBe(4);
      expect(counts.get('lab_kv_pages_used')).toBe(0);
    } finally {
      await small.close();
    }
  });

  it('lists the kept requests newest first, and lets pages of other origins read the timelines and models', async () => {
    const older = await client.completions.create({ model, prompt: 'Tom went to', max_tokens: 1, temperature: 0 });
    const newer = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 2, temperature: 0 });
    const response = await fetch(`${server.url}/v1/requests`, { headers: { Authorization: `Bearer ${apiKey}`, Origin: 'http://lab.example' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const list = (await response.json()) as { object: string; data: Array<Record<string, unknown>> };
    expect(list.object).toBe('list');
    expect(list.data.slice(0, 2).map((r) => r.id)).toEqual([newer.id, older.id]);
    expect(list.data[0]).toEqual({
      id: newer.id,
      endpoint: 'completions',
      stream: false,
      arrivedAt: expect.any(Number),
      finished: true,
      outcome: 'length',
      promptTokens: newer.usage!.prompt_tokens,
      generatedTokens: 2,
    });
    expect(list.data[0].arrivedAt as number).toBeGreaterThanOrEqual(list.data[1].arrivedAt as number);
    expect(list.data[1]).toMatchObject({ id: older.id, generatedTokens: 1 });

    // The browser's preflight for a GET with the key: no key of its own, answered before the key check.
    for (const path of ['/v1/requests', `/v1/requests/${newer.id}/timeline`, '/v1/models']) {
      const preflight = await fetch(`${server.url}${path}`, { method: 'OPTIONS', headers: { Origin: 'http://lab.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
      expect(preflight.headers.get('access-control-allow-methods')).toBe('GET');
      expect(preflight.headers.get('access-control-allow-headers')).toBe('Authorization');
    }
    // A refusal is readable too, so the page can say why; the completions stay same-origin.
    const refused = await fetch(`${server.url}/v1/requests`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect((await fetch(`${server.url}/v1/models`, { headers: { Authorization: `Bearer ${apiKey}` } })).headers.get('access-control-allow-origin')).toBe('*');
    const completions = await fetch(`${server.url}/v1/completions`, { method: 'OPTIONS', headers: { Authorization: `Bearer ${apiKey}` } });
    expect(completions.status).toBe(405);
    expect(completions.headers.get('access-control-allow-origin')).toBeNull();
  });

  // Last: it destroys the model's GPU device.
  it('answers 500 with an error body when the GPU fails, logs it, and keeps serving other routes', async () => {
    serving.gpu.device.destroy();
    const response = await post(`${server.url}/v1/completions`, { model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 }, apiKey);
    expect(response.status).toBe(500);
    const body = (await response.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe('server_error');
    expect(body.error.message.length).toBeGreaterThan(0);
    expect(logged.some((line) => line.startsWith('server error:'))).toBe(true);
    expect((await client.models.list()).data).toHaveLength(1);
    expect((await metrics(server.url)).get('lab_requests_total{route="/v1/completions",status="500"}')).toBe(1);
  });
});

describe('chat completions (a model with a chat template)', () => {
  const read = (url: string) => readFileSync(fileURLToPath(new URL(url, import.meta.url)), 'utf8');
  // SmolLM2's tokenizer and chat template with tiny random layers.
  const config = tinyConfig({ vocabSize: 49152, bosTokenId: 1, eosTokenId: 2, maxSeqLen: 128 });
  const folder = writeHuggingFace(randomModel(config, 3));
  const files = memorySource({
    'chat/tokenizer.json': read('../../shared/models/smollm2-135m-tokenizer/tokenizer.json'),
    'chat/tokenizer_config.json': read('./fixtures/chat-tokenizer/tokenizer_config.json'),
    'chat/config.json': folder['config.json'],
    'chat/model.safetensors': folder['model.safetensors'],
  });
  let serving: ServingModel;
  let cached: RunningServer;
  let uncached: RunningServer;

  beforeAll(async () => {
    serving = await loadServingModel({ gpu: nodeGpu(), files, entry: 'chat', name: 'tiny-chat', maxBatch: 2 });
    cached = await startServer({ serving, maxBatch: 2, maxQueue: 4 });
    uncached = await startServer({ serving, maxBatch: 2, maxQueue: 4, prefixCache: false });
  });

  afterAll(async () => {
    await cached?.close();
    await uncached?.close();
    serving?.dispose();
  });

  it("streams a reply that concatenates to the whole one; the second turn reuses the first turn's pages and reads the same as without the cache", async () => {
    const client = new OpenAI({ baseURL: `${cached.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const first = [{ role: 'user' as const, content: 'Hi there! Can you tell me a short story about a cat?' }];
    const reply = await client.chat.completions.create({ model: 'tiny-chat', messages: first, max_tokens: 6, temperature: 0 });
    expect(reply.object).toBe('chat.completion');
    expect(reply.choices[0].message.role).toBe('assistant');
    expect(reply.usage!.prompt_tokens).toBeGreaterThan(32);

    const stream = await client.chat.completions.create({ model: 'tiny-chat', messages: first, max_tokens: 6, temperature: 0, stream: true });
    const deltas: string[] = [];
    let role: string | undefined;
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role;
      deltas.push(chunk.choices[0]?.delta.content ?? '');
    }
    expect(role).toBe('assistant');
    expect(deltas.join('')).toBe(reply.choices[0].message.content);

    const second = [...first, { role: 'assistant' as const, content: reply.choices[0].message.content! }, { role: 'user' as const, content: 'And then what happened?' }];
    const withCache = await client.chat.completions.create({ model: 'tiny-chat', messages: second, max_tokens: 6, temperature: 0 });
    const plain = new OpenAI({ baseURL: `${uncached.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const withoutCache = await plain.chat.completions.create({ model: 'tiny-chat', messages: second, max_tokens: 6, temperature: 0 });
    expect(withCache.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(16);
    expect(withoutCache.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(withCache.usage!.prompt_tokens).toBe(withoutCache.usage!.prompt_tokens);
    expect(withCache.choices[0].message.content).toBe(withoutCache.choices[0].message.content);
    const t = await timeline(cached.url, withCache.id);
    expect(t.cachedPromptTokens).toBe(withCache.usage!.prompt_tokens_details!.cached_tokens);
    expect(t.computedPromptTokens).toBe(withCache.usage!.prompt_tokens - t.cachedPromptTokens!);
  });
});

describe('StopText', () => {
  it('holds a tail that may grow into a stop string, releases it when it does not, and cuts at the earliest stop', () => {
    const stop = new StopText([' little', 'girl']);
    expect(stop.push(', there was a')).toBe(', there was a');
    expect(stop.push(' lit')).toBe('');
    expect(stop.push('er')).toBe(' liter');
    expect(stop.push(' li')).toBe('');
    expect(stop.push('ttle girl')).toBe('');
    expect(stop.stopped).toBe(true);
    expect(stop.push('more')).toBe('');

    const earliest = new StopText(['girl', ' a ']);
    expect(earliest.push('was a girl')).toBe('was');
    const unfinished = new StopText(['END']);
    expect(unfinished.push('the EN')).toBe('the ');
    expect(unfinished.flush()).toBe('EN');
    expect(unfinished.stopped).toBe(false);
  });
});
