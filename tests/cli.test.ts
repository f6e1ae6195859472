// The generate and record-trace commands as a user runs them: the --json line parses and holds the reference tokens;
// bad input exits non-zero with a message naming the file.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { LabTrace } from '../src/app/trace.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const stories = fileURLToPath(new URL('../../shared/models/stories260K/', import.meta.url));

function generate(...args: string[]) {
  return run(process.execPath, ['scripts/run-ts.mjs', 'src/cli/generate.ts', ...args], { cwd: root, timeout: 120_000 });
}

describe('npm run generate', () => {
  it('--json ends stdout with one JSON object holding the whole sequence and timings', async () => {
    const { stdout } = await generate('--model', `${stories}stories260K.bin`, '--max-tokens', '30', '--json');
    const lines = stdout.trim().split('\n');
    const result = JSON.parse(lines[lines.length - 1]);
    expect(result.tokens.slice(0, 8)).toEqual([1, 403, 407, 261, 378, 432, 383, 286]);
    expect(result.tokens).toHaveLength(31);
    expect(result.text.startsWith('Once upon a time, there was')).toBe(true);
    expect(result).toMatchObject({ promptTokens: 1, generatedTokens: 30 });
    for (const key of ['prefillMs', 'decodeMs', 'decodeTokensPerSecond']) expect(result[key]).toBeGreaterThan(0);
    expect(typeof result.adapter.vendor).toBe('string');
    expect(typeof result.adapter.features.subgroups).toBe('boolean');
  });

  it('streams text without --json', async () => {
    const { stdout } = await generate('--model', `${stories}stories260K.gguf`, '--prompt', 'Once upon a time', '--max-tokens', '12');
    expect(stdout.startsWith(', there was a little girl named Lily')).toBe(true);
  });

  it('names the missing file and exits 1', async () => {
    const error = await generate('--model', `${stories}missing.bin`).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 1 });
    expect((error as { stderr: string }).stderr).toContain(`${stories}missing.bin: not found`);
  });

  it('--sampler cpu draws the same tokens as the GPU sampler from the same seed; an unknown sampler is a usage error', async () => {
    const common = ['--model', `${stories}stories260K.bin`, '--prompt', 'Once upon a time', '--max-tokens', '20', '--temperature', '0.8', '--seed', '7', '--json'];
    const last = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);
    const gpu = last((await generate(...common)).stdout);
    const cpu = last((await generate(...common, '--sampler', 'cpu')).stdout);
    expect(cpu.sampler).toBe('cpu');
    expect(cpu.tokens).toEqual(gpu.tokens);
    const error = await generate('--model', `${stories}stories260K.bin`, '--sampler', 'fast').catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toContain('--sampler must be one of gpu, gpu-sort, cpu, got "fast"');
  });

  it('record-trace writes a LabTrace the lab can replay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-trace-'));
    try {
      const out = join(dir, 'trace.json');
      await run(process.execPath, ['scripts/run-ts.mjs', 'src/cli/record-trace.ts', '--model', `${stories}stories260K.bin`, '--out', out, '--max-tokens', '8'], { cwd: root, timeout: 240_000 });
      const trace = JSON.parse(await readFile(out, 'utf8')) as LabTrace;
      expect(trace.version).toBe(1);
      expect(trace.runs.map((r) => r.settings.weightFormat)).toEqual(['f32', 'q4_0']);
      expect(trace.runs[0].result!.generatedTokens).toBe(8);
      expect(trace.runs[0].result!.text.startsWith(', there was a little girl')).toBe(true);
      expect(trace.marks).toEqual([{ beforeRun: 1, label: 'weight format f32 → q4_0' }]);
      expect(trace.profile!.kernels.length).toBeGreaterThan(10);
      expect(trace.sweep.length).toBeGreaterThan(2);
      expect(trace.distributions[0].candidates).toHaveLength(20);
      expect(trace.workbench!.results.length).toBe(4);
      expect(trace.model.bandwidth.readGBps).toBeGreaterThan(0);
      expect(trace.batching!.points.map((p) => p.batchSize)).toEqual([1, 2, 4, 8]);
      expect(trace.kv!.step.pages.some((page) => page.owners.length > 0)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--prompts FILE runs every line as one batch; each sequence holds the tokens it gets alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-prompts-'));
    try {
      const file = join(dir, 'prompts.txt');
      const prompts = ['Once upon a time', 'The cat sat on the mat and', 'Lily went to the park'];
      await writeFile(file, `${prompts.join('\n')}\n\n`);
      const last = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);
      const batch = last((await generate('--model', `${stories}stories260K.bin`, '--prompts', file, '--max-tokens', '10', '--page-size', '8', '--json')).stdout);
      expect(batch.sequences.map((s: { prompt: string }) => s.prompt)).toEqual(prompts);
      for (const [i, s] of batch.sequences.entries()) {
        const alone = last((await generate('--model', `${stories}stories260K.bin`, '--prompt', prompts[i], '--max-tokens', '10', '--json')).stdout);
        expect(s.tokens).toEqual(alone.tokens);
        expect(s.text).toBe(alone.text);
        expect(s.ttftMs).toBeGreaterThan(0);
        expect(s.tpotMs).toBeGreaterThan(0);
      }
      expect(batch.aggregateTokensPerSecond).toBeGreaterThan(0);
      expect(batch.kv).toMatchObject({ mode: 'paged', pageSize: 8 });
      expect(batch.kv.reservedBytes).toBeGreaterThanOrEqual(batch.kv.liveBytes);
      expect(batch.kv.liveBytes).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--batch N runs N copies with seeds S, S+1, ...; --kv contiguous reserves the whole context for each', async () => {
    const last = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);
    const common = ['--model', `${stories}stories260K.bin`, '--prompt', 'Once upon a time', '--max-tokens', '8', '--temperature', '0.9', '--json'];
    const batch = last((await generate(...common, '--batch', '2', '--seed', '5', '--kv', 'contiguous', '--max-context', '64')).stdout);
    const seed6 = last((await generate(...common, '--seed', '6', '--max-context', '64')).stdout);
    expect(batch.sequences).toHaveLength(2);
    expect(batch.sequences[1].tokens).toEqual(seed6.tokens);
    // stories260K keeps 1,280 bytes of K/V per token: two sequences x 64 tokens reserved.
    expect(batch.kv).toMatchObject({ mode: 'contiguous', reservedBytes: 2 * 64 * 1280 });
    const error = await generate('--model', `${stories}stories260K.bin`, '--batch', '2', '--kv', 'ring').catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toContain('--kv must be paged or contiguous, got "ring"');
  });

  it('--speculative draft-q4 reports its acceptance and keeps the greedy tokens; it refuses a batch and too many draft tokens', async () => {
    const last = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);
    const common = ['--model', `${stories}stories260K.bin`, '--prompt', 'Once upon a time', '--max-tokens', '16', '--max-context', '64', '--json'];
    const plain = last((await generate(...common)).stdout);
    const speculative = last((await generate(...common, '--speculative', 'draft-q4', '--draft-tokens', '3')).stdout);
    expect(speculative.tokens).toEqual(plain.tokens);
    expect(speculative.speculative).toMatchObject({ draft: 'draft-q4', draftTokens: 3 });
    expect(speculative.speculative.accepted).toBeGreaterThan(0);
    expect(speculative.speculative.tokensPerTargetPass).toBeGreaterThan(1);
    const batch = await generate(...common, '--speculative', 'ngram', '--batch', '2').catch((e: { code: number; stderr: string }) => e);
    expect(batch).toMatchObject({ code: 2 });
    expect((batch as { stderr: string }).stderr).toContain('--speculative speeds up one sequence');
    const tooMany = await generate(...common, '--speculative', 'ngram', '--draft-tokens', '12').catch((e: { code: number; stderr: string }) => e);
    expect((tooMany as { stderr: string }).stderr).toContain('--draft-tokens must be a whole number from 1 to 8, got "12"');
  });

  it('rejects a bad option value with usage help', async () => {
    const error = await generate('--model', `${stories}stories260K.bin`, '--temperature', 'hot').catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 1 });
    expect((error as { stderr: string }).stderr).toContain('--temperature must be a number >= 0, got "hot"');
  });
});
