// Helpers for the server tests: the stories260K serving model, /metrics as numbers, raw requests,
// and the serve command run as a user runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { directorySource } from '../../src/node/fs-source.ts';
import { nodeGpu } from '../../src/node/gpu.ts';
import { loadServingModel, type ServingModel } from '../../src/server/serving-model.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const modelsDir = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
export const storiesBin = `${modelsDir}stories260K/stories260K.bin`;

/** stories260K as the server runs it, its pool sized for `maxBatch` whole contexts of `maxContext` tokens. */
export function loadStories(maxBatch: number, maxContext = 512): Promise<ServingModel> {
  return loadServingModel({ gpu: nodeGpu(), files: directorySource(modelsDir), entry: 'stories260K/stories260K.bin', name: 'stories260K', maxBatch, maxContext });
}

/** GET /metrics as `name{labels}` → value (comments skipped). */
export async function metrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** Polls `check` until it holds (or throws after `timeoutMs`). */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A POST of `body` (an object, sent as JSON, or raw text) with an optional key. */
export function post(url: string, body: unknown, apiKey?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(apiKey && { Authorization: `Bearer ${apiKey}` }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export interface ServeProcess {
  url: string;
  process: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
}

/** `npm run serve -- ARGS` as a child process, resolved once it prints the URL it serves at. */
export function startServeCli(args: string[]): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['scripts/run-ts.mjs', 'src/cli/serve.ts', ...args], { cwd: repoRoot });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      stdout += data;
      const url = /serving \S+ at (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url) resolve({ url, process: child, stderr: () => stderr });
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code} before listening:\n${stderr}`)));
  });
}
