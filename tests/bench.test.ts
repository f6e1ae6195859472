// The bench command as a user runs it: `bench --quick --json FILE` on the CI adapter writes a
// report with the probe, every supported format x variant, the q4_0-versus-f32 comparison, both
// end-to-end models, batching, sampling and speculative decoding, all with sane numbers.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

const positive = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value > 0;

describe('npm run bench -- --quick --json FILE', () => {
  it('reports the roofline, every kernel variant and both models', { timeout: 300_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-test-'));
    try {
      const file = join(dir, 'bench.json');
      const { stdout } = await run(process.execPath, ['scripts/run-ts.mjs', 'src/cli/bench.ts', '--quick', '--json', file], { cwd: root, timeout: 290_000 });
      const report = JSON.parse(await readFile(file, 'utf8'));

      expect(typeof report.adapter.vendor).toBe('string');
      expect(positive(report.probeGBps)).toBe(true);
      expect(report.probe).toMatchObject({ readGBps: report.probeGBps, method: 'timestamp' });

      // SwiftShader: f32, f16, q8_0, q4_0 (no shader-f16) x naive, splitK, subgroup, multiRow, at 3 shapes.
      expect(new Set(report.kernels.map((k: { format: string }) => k.format))).toEqual(new Set(['f32', 'f16', 'q8_0', 'q4_0']));
      expect(new Set(report.kernels.map((k: { variant: string }) => k.variant))).toEqual(new Set(['naive', 'splitK', 'subgroup', 'multiRow']));
      expect(report.kernels).toHaveLength(4 * 4 * 3);
      for (const k of report.kernels) {
        expect(k).toMatchObject({ op: 'matvec' });
        for (const key of ['rows', 'cols', 'ms', 'gbps', 'fractionOfProbe']) expect(positive(k[key]), `${key} of ${JSON.stringify(k)}`).toBe(true);
        expect(k.fractionOfProbe).toBeCloseTo(k.gbps / report.probeGBps, 6);
        // Against the reference on the same dequantized weights: only f32 rounding differs.
        expect(k.maxAbsError).toBeGreaterThanOrEqual(0);
        expect(k.maxAbsError).toBeLessThan(1e-3);
      }
      expect(report.headline).toMatchObject({ rows: 1024, cols: 1024 });
      expect(report.headline.speedup).toBeCloseTo(report.headline.f32.ms / report.headline.q4_0.ms, 6);
      expect(stdout).toMatch(/at 1024x1024 the best q4_0 \(\w+, [\d.]+ ms\) is [\d.]+x as fast as the best f32/);

      const synthetic = 'synthetic weights, SmolLM2-135M shapes (2 of 30 layers)';
      const formats = ['f32', 'f16', 'q8_0', 'q4_0'];
      expect(report.e2e.map((e: { model: string; format: string }) => `${e.model} ${e.format}`)).toEqual([
        ...formats.map((f) => `stories260K ${f}`),
        ...formats.map((f) => `${synthetic} ${f}`),
      ]);
      for (const e of report.e2e) {
        for (const key of ['decodeTokensPerSecond', 'prefillTokensPerSecond', 'bytesPerToken', 'fractionOfRoofline']) expect(positive(e[key]), `${key} of ${e.model}`).toBe(true);
      }
      // stories260K's decode step reads its ~1 MB of f32 weights plus a little KV cache; q4_0
      // matrices take 0.5625 bytes a weight, so its steps read under a fifth of that.
      expect(report.e2e[0].bytesPerToken).toBeGreaterThan(1.0e6);
      expect(report.e2e[0].bytesPerToken).toBeLessThan(1.2e6);
      expect(report.e2e[3].bytesPerToken).toBeLessThan(report.e2e[0].bytesPerToken / 5);

      // Batching (quick: stories260K at batch 1, 2, 4): a point per size, paged KV holding far
      // less than contiguous allocation would, and the prefix cache serving the shared prompt.
      expect(report.batching).toHaveLength(1);
      const batching = report.batching[0];
      expect(batching.points.map((p: { batchSize: number }) => p.batchSize)).toEqual([1, 2, 4]);
      for (const p of batching.points) {
        for (const key of ['aggregateTokensPerSecond', 'decodeTokensPerSecond', 'perUserTokensPerSecond', 'ttftMs', 'tpotMs', 'kvReservedBytes', 'kvLiveBytes']) expect(positive(p[key]), `${key} at batch ${p.batchSize}`).toBe(true);
        expect(p.generatedTokens).toBe(4 * p.batchSize);
        expect(p.kvReservedBytes).toBeGreaterThanOrEqual(p.kvLiveBytes);
        expect(p.contiguousReservedBytes).toBeGreaterThan(10 * p.kvReservedBytes);
      }
      expect(batching.prefix.hitTokens).toBeGreaterThanOrEqual(3 * 16);
      expect(batching.prefix.computedTokens).toBeGreaterThan(0);
      expect(stdout).toMatch(/prefix cache: 4 requests sharing \d+ prompt tokens/);

      // Sampling (quick: vocab 512 and 32000): each variant timed, the CPU one reading every logit back.
      expect(report.sampling.map((r: { vocab: number; variant: string }) => `${r.vocab} ${r.variant}`)).toEqual(
        [512, 32000].flatMap((v) => [`${v} gpu-temperature`, `${v} gpu`, `${v} gpu-sort`, `${v} cpu`]),
      );
      for (const r of report.sampling) {
        expect(positive(r.ms), `${r.vocab} ${r.variant}`).toBe(true);
        expect(r.readBackBytes).toBe(r.variant === 'cpu' ? 4 * r.vocab : 4);
      }

      // Speculative (quick: stories260K, k = 4): the baseline, then each draft with its acceptance.
      expect(report.speculative).toHaveLength(1);
      const speculative = report.speculative[0];
      expect(speculative.points.map((p: { draft: string; draftTokens: number }) => `${p.draft} ${p.draftTokens}`)).toEqual(['off 0', 'ngram 4', 'draft-q4 4']);
      const [baseline, , q4] = speculative.points;
      expect(baseline.speedup).toBe(1);
      for (const p of speculative.points) {
        expect(positive(p.decodeTokensPerSecond), p.draft).toBe(true);
        expect(p.speedup).toBeCloseTo(p.decodeTokensPerSecond / baseline.decodeTokensPerSecond, 6);
        expect(p.tokensPerTargetPass).toBeGreaterThanOrEqual(1);
        expect(p.tokensPerTargetPass).toBeLessThanOrEqual(p.draftTokens + 1);
      }
      // q4_0 guesses stories260K's greedy tokens most of the time.
      expect(q4.acceptanceRate).toBeGreaterThan(0.5);
      expect(q4.tokensPerTargetPass).toBeGreaterThan(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
