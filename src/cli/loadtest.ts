// npm run -s loadtest -- --url URL --concurrency C --requests N [--prompt-tokens P] [--max-tokens M]
//                        [--temperature T] [--json FILE] [--api-key K] [--model NAME]
// A load generator for any OpenAI-compatible server: C clients send N streaming /v1/completions
// requests between them and time every token as it arrives. Reports time to first token (TTFT),
// time per output token after the first (TPOT) and end-to-end latency at p50/p90/p99, aggregate
// output tokens per second, and failures by HTTP status. Prompts are P words (about P tokens for
// English BPE vocabularies; the server's usage figures report the real count), different for every
// request so that a prefix cache cannot serve them whole. Without --model the first entry of
// GET /v1/models is used.
import { writeFileSync } from 'node:fs';
import { sseData } from '../server/sse-reader.ts';
import { numberOption, parseOptions, UsageError } from './args.ts';

const usage = `usage: npm run -s loadtest -- --url URL --concurrency C --requests N [--prompt-tokens P] [--max-tokens M]
                               [--temperature T] [--json FILE] [--api-key K] [--model NAME]`;

interface LoadSettings {
  /** The API root, ending in /v1. */
  api: string;
  model: string;
  concurrency: number;
  requests: number;
  promptTokens: number;
  maxTokens: number;
  temperature: number;
  apiKey: string | undefined;
}

/** One request as the client saw it (times in ms from its send). */
interface RequestRecord {
  /** 'ok', an HTTP status ('429'), 'network' (no response) or 'stream' (an error event or a cut stream). */
  status: string;
  ttftMs: number | null;
  tpotMs: number | null;
  latencyMs: number;
  promptTokens: number | null;
  outputTokens: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

export interface LoadReport {
  url: string;
  model: string;
  concurrency: number;
  requests: number;
  promptWords: number;
  maxTokens: number;
  succeeded: number;
  /** Failed requests by status: '429', '500', 'network', 'stream'. */
  errors: Record<string, number>;
  wallSeconds: number;
  outputTokens: number;
  /** Prompt tokens by the server's usage (null when it reports none). */
  meanPromptTokens: number | null;
  /** Output tokens of all requests over the wall time. */
  tokensPerSecond: number;
  requestsPerSecond: number;
  ttftMs: Percentiles | null;
  tpotMs: Percentiles | null;
  latencyMs: Percentiles | null;
}

const words = 'once upon a time there was a little girl named lily she loved to play in the park with her big red ball one day she saw a small dog under a tree and they became friends'.split(' ');

/** `count` words, starting at a different place for every request. */
function promptWords(count: number, index: number): string {
  return Array.from({ length: count }, (_, i) => words[(index * 7 + i) % words.length]).join(' ');
}

/** Linear interpolation between closest ranks (numpy's default), of a non-empty list. */
export function percentile(sorted: readonly number[], p: number): number {
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

function summarize(values: number[]): Percentiles | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length };
}

function headers(settings: Pick<LoadSettings, 'apiKey'>): Record<string, string> {
  return { 'Content-Type': 'application/json', ...(settings.apiKey && { Authorization: `Bearer ${settings.apiKey}` }) };
}

/** The API root for a server URL given with or without /v1. */
function apiRoot(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith('/v1') ? trimmed : `${trimmed}/v1`;
}

async function firstModel(api: string, apiKey: string | undefined): Promise<string> {
  const response = await fetch(`${api}/models`, { headers: headers({ apiKey }) });
  if (!response.ok) throw new Error(`GET ${api}/models answered ${response.status}: ${await response.text()}`);
  const list = (await response.json()) as { data?: Array<{ id?: unknown }> };
  const id = list.data?.[0]?.id;
  if (typeof id !== 'string') throw new Error(`GET ${api}/models lists no model: give --model`);
  return id;
}

/** Sends one streaming completion and times its tokens: each chunk with text counts as a token's arrival. */
async function timedRequest(settings: LoadSettings, index: number): Promise<RequestRecord> {
  const started = performance.now();
  const failed = (status: string): RequestRecord => ({ status, ttftMs: null, tpotMs: null, latencyMs: performance.now() - started, promptTokens: null, outputTokens: 0 });
  let response: Response;
  try {
    response = await fetch(`${settings.api}/completions`, {
      method: 'POST',
      headers: headers(settings),
      body: JSON.stringify({
        model: settings.model,
        prompt: promptWords(settings.promptTokens, index),
        max_tokens: settings.maxTokens,
        temperature: settings.temperature,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
  } catch {
    return failed('network');
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    return failed(String(response.status));
  }
  let firstAt: number | null = null;
  let lastAt = 0;
  let chunks = 0;
  let done = false;
  let reported: { prompt_tokens?: number; completion_tokens?: number } | null = null;
  try {
    for await (const data of sseData(response.body)) {
      if (data === '[DONE]') {
        done = true;
        break;
      }
      const chunk = JSON.parse(data) as { error?: unknown; choices?: Array<{ text?: string }>; usage?: { prompt_tokens?: number; completion_tokens?: number } | null };
      if (chunk.error) return failed('stream');
      if (chunk.usage) reported = chunk.usage;
      if (chunk.choices?.some((c) => c.text)) {
        const now = performance.now();
        firstAt ??= now;
        lastAt = now;
        chunks++;
      }
    }
  } catch {
    return failed('stream');
  }
  if (!done) return failed('stream');
  const outputTokens = reported?.completion_tokens ?? chunks;
  return {
    status: 'ok',
    ttftMs: firstAt === null ? null : firstAt - started,
    tpotMs: firstAt !== null && outputTokens > 1 ? (lastAt - firstAt) / (outputTokens - 1) : null,
    latencyMs: performance.now() - started,
    promptTokens: reported?.prompt_tokens ?? null,
    outputTokens,
  };
}

async function runLoad(settings: LoadSettings): Promise<LoadReport> {
  const records: RequestRecord[] = [];
  let next = 0;
  const started = performance.now();
  const client = async () => {
    while (next < settings.requests) records.push(await timedRequest(settings, next++));
  };
  await Promise.all(Array.from({ length: Math.min(settings.concurrency, settings.requests) }, client));
  const wallSeconds = (performance.now() - started) / 1000;
  const ok = records.filter((r) => r.status === 'ok');
  const errors: Record<string, number> = {};
  for (const r of records) if (r.status !== 'ok') errors[r.status] = (errors[r.status] ?? 0) + 1;
  const outputTokens = ok.reduce((sum, r) => sum + r.outputTokens, 0);
  const prompts = ok.map((r) => r.promptTokens).filter((n): n is number => n !== null);
  return {
    url: settings.api,
    model: settings.model,
    concurrency: settings.concurrency,
    requests: settings.requests,
    promptWords: settings.promptTokens,
    maxTokens: settings.maxTokens,
    succeeded: ok.length,
    errors,
    wallSeconds,
    outputTokens,
    meanPromptTokens: prompts.length > 0 ? prompts.reduce((a, b) => a + b, 0) / prompts.length : null,
    tokensPerSecond: outputTokens / wallSeconds,
    requestsPerSecond: ok.length / wallSeconds,
    ttftMs: summarize(ok.map((r) => r.ttftMs).filter((v): v is number => v !== null)),
    tpotMs: summarize(ok.map((r) => r.tpotMs).filter((v): v is number => v !== null)),
    latencyMs: summarize(ok.map((r) => r.latencyMs)),
  };
}

function printReport(report: LoadReport): void {
  const row = (name: string, p: Percentiles | null) => `${name.padEnd(14)}${p ? [p.p50, p.p90, p.p99, p.mean].map((v) => v.toFixed(1).padStart(10)).join('') : '        (none)'}`;
  const failures = Object.entries(report.errors).map(([status, n]) => `${n} × ${status}`);
  console.log(
    [
      `${report.url} (${report.model}): ${report.requests} requests, ${report.concurrency} at a time, ${report.promptWords}-word prompts, up to ${report.maxTokens} tokens`,
      `succeeded ${report.succeeded}, failed ${failures.length > 0 ? failures.join(', ') : 'none'}`,
      `${report.outputTokens} output tokens in ${report.wallSeconds.toFixed(2)} s: ${report.tokensPerSecond.toFixed(1)} tokens/s, ${report.requestsPerSecond.toFixed(2)} requests/s` +
        (report.meanPromptTokens !== null ? `; prompts ${report.meanPromptTokens.toFixed(1)} tokens on average` : ''),
      `${'ms'.padEnd(14)}${['p50', 'p90', 'p99', 'mean'].map((h) => h.padStart(10)).join('')}`,
      row('TTFT', report.ttftMs),
      row('TPOT', report.tpotMs),
      row('latency', report.latencyMs),
    ].join('\n'),
  );
}

export async function main(args: string[]): Promise<number> {
  let values;
  let settings: Omit<LoadSettings, 'model'> & { model: string | undefined };
  try {
    values = parseOptions(args, {
      url: { type: 'string' },
      concurrency: { type: 'string' },
      requests: { type: 'string' },
      'prompt-tokens': { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      json: { type: 'string' },
      'api-key': { type: 'string' },
      model: { type: 'string' },
      help: { type: 'boolean', default: false },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (!values.url) throw new UsageError('--url is required');
    if (!/^https?:\/\//.test(values.url)) throw new UsageError(`--url must start with http:// or https://, got "${values.url}"`);
    const whole = (n: number) => Number.isInteger(n) && n >= 1;
    settings = {
      api: apiRoot(values.url),
      model: values.model,
      concurrency: numberOption(values.concurrency, 'concurrency', 1, whole, 'a whole number >= 1'),
      requests: numberOption(values.requests, 'requests', 1, whole, 'a whole number >= 1'),
      promptTokens: numberOption(values['prompt-tokens'], 'prompt-tokens', 32, whole, 'a whole number >= 1'),
      maxTokens: numberOption(values['max-tokens'], 'max-tokens', 64, whole, 'a whole number >= 1'),
      temperature: numberOption(values.temperature, 'temperature', 0, (n) => n >= 0 && n <= 2, 'a number from 0 to 2'),
      apiKey: values['api-key'],
    };
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  try {
    const model = settings.model ?? (await firstModel(settings.api, settings.apiKey));
    const report = await runLoad({ ...settings, model });
    printReport(report);
    if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
    // Failures are results (429s under overload are the point of some runs); none succeeding is not.
    return report.succeeded > 0 ? 0 : 1;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}
