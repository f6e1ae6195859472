// npm run -s bench -- [--suite kernels|e2e|batching|sampling|speculative|all] [--quick] [--json FILE]
// Puts the kernels against the roofline: measures this adapter's memory bandwidth, then
//   kernels: every weight format x matvec variant at LLM shapes (GB/s, fraction of the probe,
//            error against the CPU reference), and how much faster q4_0 is than f32;
//   e2e:     prefill and decode tokens/second of stories260K and of synthetic weights at
//            SmolLM2-135M's shapes, with the bytes a decode step reads and the fraction of the
//            roofline that reaches;
//   batching: continuous batching at batch sizes 1...32 and two prompt lengths (per-user and total
//            tokens/s, TTFT, TPOT, KV bytes held and wasted, paged against contiguous), the batch-8
//            over batch-1 decode ratio, and the prefix cache on requests sharing a long prefix;
//   sampling: time per sampling step at vocabularies 512, 32000, 49152 and 151936: the GPU's
//            temperature sampler, its top-k/top-p sampler (threshold search), the same cuts off a
//            bitonic sort of the vocabulary (gpu-sort), and read-back + CPU;
//   speculative: greedy decode tokens/s with speculation off and with the prompt-lookup and q4_0
//            drafts at several draft lengths: acceptance rate, tokens per target pass, speed-up.
// --quick uses small shapes and a 2-layer synthetic model, so CI finishes it on a software adapter.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchBatching, type BatchBenchResult, type BatchPoint } from '../engine/bench/batch-bench.ts';
import { benchDecode, type DecodeBenchOptions, type DecodeResult } from '../engine/bench/decode-bench.ts';
import { benchSampling, type SamplingResult } from '../engine/bench/sampling-bench.ts';
import { benchSpeculative, type SpeculativePoint } from '../engine/bench/speculative-bench.ts';
import { benchMatvec, fastest, type MatrixShape, type MatvecResult } from '../engine/bench/matvec-bench.ts';
import type { AdapterReport } from '../engine/engine.ts';
import { createEngine } from '../engine/index.ts';
import type { FileSource } from '../engine/model/files.ts';
import { requestGpu, type GpuContext } from '../engine/gpu/device.ts';
import { KernelContext } from '../engine/gpu/kernel.ts';
import { measureBandwidth, type BandwidthResult } from '../engine/kernels/bandwidth.ts';
import { supportedFormats } from '../engine/kernels/matvec-variants.ts';
import type { WeightFormat } from '../engine/quant/formats.ts';
import { directorySource, openModelPath } from '../node/fs-source.ts';
import { nodeGpu } from '../node/gpu.ts';
import { parseOptions, UsageError } from './args.ts';
import { labModelsDir, makeModel } from './make-model.ts';

const usage = 'usage: npm run -s bench -- [--suite kernels|e2e|batching|sampling|speculative|all] [--quick] [--json FILE]';

const suites = ['kernels', 'e2e', 'batching', 'sampling', 'speculative', 'all'] as const;
type Suite = (typeof suites)[number];

interface Plan {
  shapes: MatrixShape[];
  /** The shape of the q4_0-versus-f32 comparison. */
  headline: MatrixShape;
  repetitions: number;
  warmup: number;
  /** Rotate weight copies through this many bytes (see MatvecBenchOptions); false: one copy. */
  defeatCaches: boolean;
  /** Layers of the synthetic SmolLM2-shape model (undefined: all 30). */
  syntheticLayers?: number;
  prompt: string;
  maxTokens: number;
  runs: number;
  batching: {
    batchSizes: number[];
    promptTokens: number[];
    maxTokens: number;
    /** Also run synthetic weights at SmolLM2-135M's shapes, whose weights dominate a step's traffic. */
    synthetic: boolean;
  };
  samplingVocabs: number[];
  speculative: {
    draftTokens: number[];
    maxTokens: number;
    /** Also run synthetic weights at SmolLM2-135M's shapes (f32 target, so the q4_0 draft reads 1/7 of its bytes). */
    synthetic: boolean;
  };
}

const plans: Record<'full' | 'quick', Plan> = {
  full: {
    // Llama-7B attention and FFN projections, stories15M's and SmolLM2-135M's classifiers.
    shapes: [
      { rows: 4096, cols: 4096 },
      { rows: 11008, cols: 4096 },
      { rows: 4096, cols: 11008 },
      { rows: 32000, cols: 288 },
      { rows: 49152, cols: 576 },
    ],
    headline: { rows: 4096, cols: 4096 },
    repetitions: 20,
    warmup: 3,
    defeatCaches: true,
    prompt: 'Once upon a time, there was a little girl named Lily. She loved to play outside.',
    maxTokens: 64,
    runs: 3,
    batching: { batchSizes: [1, 2, 4, 8, 16, 32], promptTokens: [16, 128], maxTokens: 64, synthetic: true },
    samplingVocabs: [512, 32000, 49152, 151936],
    speculative: { draftTokens: [2, 4, 8], maxTokens: 128, synthetic: true },
  },
  quick: {
    shapes: [
      { rows: 512, cols: 64 },
      { rows: 1024, cols: 1024 },
      { rows: 2048, cols: 512 },
    ],
    headline: { rows: 1024, cols: 1024 },
    repetitions: 3,
    warmup: 1,
    // A smoke test: one copy of each matrix, which may be served from a cache.
    defeatCaches: false,
    // All 30 layers take minutes per run on a software adapter; 2 keep every width.
    syntheticLayers: 2,
    prompt: 'Once upon a time',
    maxTokens: 6,
    runs: 1,
    batching: { batchSizes: [1, 2, 4], promptTokens: [8], maxTokens: 4, synthetic: false },
    samplingVocabs: [512, 32000],
    speculative: { draftTokens: [4], maxTokens: 24, synthetic: false },
  },
};

export interface BenchReport {
  adapter: AdapterReport;
  probeGBps: number;
  probe: BandwidthResult;
  kernels: MatvecResult[];
  /** The q4_0-versus-f32 comparison at the plan's headline shape (absent without both formats). */
  headline?: { rows: number; cols: number; f32: { variant: string; ms: number }; q4_0: { variant: string; ms: number }; speedup: number };
  e2e: DecodeResult[];
  batching: BatchBenchResult[];
  sampling: SamplingResult[];
  speculative: Array<{ model: string; points: SpeculativePoint[] }>;
}

export async function main(args: string[]): Promise<number> {
  let suite: Suite;
  let plan: Plan;
  let jsonPath: string | undefined;
  try {
    const values = parseOptions(args, {
      suite: { type: 'string', default: 'all' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (!(suites as readonly string[]).includes(values.suite!)) throw new UsageError(`--suite must be one of ${suites.join(', ')}, got "${values.suite}"`);
    suite = values.suite as Suite;
    plan = plans[values.quick ? 'quick' : 'full'];
    jsonPath = values.json;
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }

  try {
    const gpu = await requestGpu(nodeGpu());
    try {
      const report = await runBench(gpu, suite, plan);
      if (jsonPath) await writeFile(jsonPath, JSON.stringify(report, null, 2) + '\n');
    } finally {
      gpu.device.destroy();
    }
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}

async function runBench(gpu: GpuContext, suite: Suite, plan: Plan): Promise<BenchReport> {
  const a = gpu.adapter;
  console.log(`adapter: ${a.description || a.device || a.vendor} (${a.vendor}, ${a.architecture})${a.isFallbackAdapter ? ' - a software adapter: these are CPU timings' : ''}`);
  if (a.isFallbackAdapter && plan === plans.full) console.log('the full suite is meant for GPUs and runs for hours on a software adapter: --quick is the one for it');
  const kc = new KernelContext(gpu);
  const probe = await measureBandwidth(kc);
  console.log(`roofline probe: read ${fixed(probe.readGBps)} GB/s, copy ${fixed(probe.copyGBps)} GB/s (${mib(probe.bytes)} buffer, ${probe.method} timing)\n`);
  const report: BenchReport = { adapter: a, probeGBps: probe.readGBps, probe, kernels: [], e2e: [], batching: [], sampling: [], speculative: [] };

  if (suite === 'kernels' || suite === 'all') {
    const table = new Table([['matvec', 11], ['format', 10], ['variant', 8], ['ms', 9], ['± sd', 9], ['GB/s', 7], ['of probe', 8], ['max |err|', 9]]);
    report.kernels = await benchMatvec(kc, plan.shapes, {
      probeGBps: probe.readGBps,
      workingSetBytes: plan.defeatCaches ? probe.bytes : 0,
      repetitions: plan.repetitions,
      warmup: plan.warmup,
      onResult: (r) => table.row([`${r.rows}x${r.cols}`, r.format, r.variant, fixed(r.ms), fixed(r.sdMs), fixed(r.gbps), percent(r.fractionOfProbe), r.maxAbsError.toExponential(1)]),
    });
    report.headline = headline(report.kernels, plan.headline);
    const h = report.headline;
    if (h) console.log(`\nat ${h.rows}x${h.cols} the best q4_0 (${h.q4_0.variant}, ${fixed(h.q4_0.ms)} ms) is ${h.speedup.toFixed(2)}x as fast as the best f32 (${h.f32.variant}, ${fixed(h.f32.ms)} ms)\n`);
  }

  if (suite === 'e2e' || suite === 'all') {
    const table = new Table([['model', 55], ['format', 6], ['prompt', 6], ['generated', 9], ['prefill tok/s', 13], ['decode tok/s', 15], ['MB/token', 8], ['of roofline', 11]]);
    const show = (r: DecodeResult) => {
      report.e2e.push(r);
      table.row([r.model, r.format, `${r.promptTokens}`, `${r.generatedTokens}`, fixed(r.prefillTokensPerSecond), plan.runs > 1 ? `${fixed(r.decodeTokensPerSecond)} ± ${fixed(r.decodeSdTokensPerSecond)}` : fixed(r.decodeTokensPerSecond), fixed(r.bytesPerToken / 1e6), percent(r.fractionOfRoofline)]);
    };
    const common = { prompt: plan.prompt, maxTokens: plan.maxTokens, runs: plan.runs, probeGBps: probe.readGBps };
    const formats = supportedFormats(gpu.adapter);
    const stories = openModelPath(join(labModelsDir(), 'stories260K', 'stories260K.bin'));
    for (const weightFormat of formats) show(await benchDecode(gpu, { ...common, weightFormat, label: 'stories260K', ...stories }));
    for (const result of await benchSynthetic(gpu, common, formats, plan.syntheticLayers)) show(result);
  }

  if (suite === 'sampling' || suite === 'all') {
    console.log('\nsampling: one step at temperature 1 with top-k 40 and top-p 0.9; gpu = threshold search, gpu-sort = bitonic sort, cpu = read the logits back and sample them in TypeScript');
    const table = new Table([['vocab', 6], ['variant', 15], ['ms', 9], ['± sd', 9], ['read back', 10], ['timing', 9]]);
    report.sampling = await benchSampling(gpu, {
      vocabs: plan.samplingVocabs,
      filters: { topK: 40, topP: 0.9, minP: 0 },
      temperature: 1,
      repetitions: plan.repetitions,
      warmup: plan.warmup,
      onResult: (r) => table.row([`${r.vocab}`, r.variant, fixed(r.ms), fixed(r.sdMs), `${r.readBackBytes} B`, r.method]),
    });
  }

  if (suite === 'batching' || suite === 'all') {
    const stories = openModelPath(join(labModelsDir(), 'stories260K', 'stories260K.bin'));
    report.batching.push(await benchBatchingOn('stories260K', stories, plan));
    if (plan.batching.synthetic) {
      await withSyntheticModel(plan.syntheticLayers, async (label, files) => {
        for (const weightFormat of ['f32', 'q4_0'] as const) report.batching.push(await benchBatchingOn(label, { files, entry: '' }, plan, weightFormat));
      });
    }
  }
  if (suite === 'speculative' || suite === 'all') {
    const stories = openModelPath(join(labModelsDir(), 'stories260K', 'stories260K.bin'));
    report.speculative.push(await benchSpeculativeOn('stories260K', stories, plan));
    if (plan.speculative.synthetic) {
      await withSyntheticModel(plan.syntheticLayers, async (label, files) => {
        report.speculative.push(await benchSpeculativeOn(label, { files, entry: '' }, plan));
      });
    }
  }
  return report;
}

/** The speculative suite on one model (f32 weights, greedy, paged KV). */
async function benchSpeculativeOn(label: string, model: { files: FileSource; entry: string }, plan: Plan): Promise<{ model: string; points: SpeculativePoint[] }> {
  console.log(`\nspeculative decoding: ${label}, f32 target, greedy (every configuration run twice, the second timed)`);
  const table = new Table([['draft', 8], ['k', 2], ['decode tok/s', 12], ['speed-up', 8], ['accepted', 8], ['tokens/pass', 11], ['drafting', 8]]);
  const engine = await createEngine({ gpu: nodeGpu(), ...model });
  try {
    const points = await benchSpeculative(engine, {
      drafts: ['ngram', 'draft-q4'],
      draftTokens: plan.speculative.draftTokens,
      prompt: plan.prompt,
      maxTokens: plan.speculative.maxTokens,
      temperature: 0,
      onPoint: (p) => table.row([p.draft, p.draftTokens > 0 ? `${p.draftTokens}` : '-', fixed(p.decodeTokensPerSecond), `${p.speedup.toFixed(2)}x`, p.draft === 'off' ? '-' : percent(p.acceptanceRate), fixed(p.tokensPerTargetPass), percent(p.draftShare)]),
    });
    return { model: label, points };
  } finally {
    engine.dispose();
  }
}

/** The batching suite on one model: a table of points, then the batch-8 ratio and the prefix cache. */
async function benchBatchingOn(label: string, model: { files: FileSource; entry: string }, plan: Plan, weightFormat: WeightFormat = 'f32'): Promise<BatchBenchResult> {
  console.log(`\nbatching: ${label}, ${weightFormat} (paged KV, 16-token pages, every point run twice and the second timed)`);
  const table = new Table([['batch', 5], ['prompt', 6], ['total tok/s', 11], ['decode tok/s', 12], ['per user', 8], ['TTFT ms', 8], ['TPOT ms', 8], ['KV held', 9], ['KV waste', 9], ['contig. held', 12], ['contig. waste', 13]]);
  const engine = await createEngine({ gpu: nodeGpu(), ...model, weightFormat });
  try {
    const result = await benchBatching(engine, {
      ...plan.batching,
      pageSize: 16,
      onPoint: (p: BatchPoint) =>
        table.row([`${p.batchSize}`, `${p.promptTokens}`, fixed(p.aggregateTokensPerSecond), fixed(p.decodeTokensPerSecond), fixed(p.perUserTokensPerSecond), fixed(p.ttftMs), fixed(p.tpotMs), kib(p.kvReservedBytes), kib(p.kvWasteBytes), kib(p.contiguousReservedBytes), kib(p.contiguousWasteBytes)]),
    });
    for (const { promptTokens, ratio } of result.batch8Speedup) console.log(`decode tokens/s at batch 8 over batch 1 (${promptTokens}-token prompt): ${ratio.toFixed(2)}x (target on a discrete GPU: >= 5x)`);
    const p = result.prefix;
    console.log(`prefix cache: ${p.requests} requests sharing ${p.sharedPrefixTokens} prompt tokens: ${p.hitTokens} tokens served from the cache, ${p.computedTokens} computed; TTFT ${fixed(p.ttftWithCacheMs)} ms with the cache, ${fixed(p.ttftWithoutCacheMs)} ms without`);
    return result;
  } finally {
    engine.dispose();
  }
}

/** Generates SmolLM2-135M-shape weights into a temporary folder, benchmarks them in each format, deletes them. */
async function benchSynthetic(
  gpu: GpuContext,
  common: Pick<DecodeBenchOptions, 'prompt' | 'maxTokens' | 'runs' | 'probeGBps'>,
  formats: readonly WeightFormat[],
  layers?: number,
): Promise<DecodeResult[]> {
  const results: DecodeResult[] = [];
  await withSyntheticModel(layers, async (label, files) => {
    for (const weightFormat of formats) results.push(await benchDecode(gpu, { ...common, weightFormat, label, files, entry: '' }));
  });
  return results;
}

/** Writes SmolLM2-135M-shape weights to a temporary Hugging Face folder for `use`, then deletes them. */
async function withSyntheticModel(layers: number | undefined, use: (label: string, files: FileSource) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lab-bench-'));
  try {
    const made = await makeModel({ like: 'smollm2-135m', out: dir, format: 'hf', dtype: 'bf16', layers });
    const shapes = 'synthetic weights, SmolLM2-135M shapes';
    await use(made.config.nLayers === made.fullLayers ? shapes : `${shapes} (${made.config.nLayers} of ${made.fullLayers} layers)`, directorySource(made.model));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function headline(results: readonly MatvecResult[], shape: MatrixShape): BenchReport['headline'] {
  const f32 = fastest(results, 'f32', shape);
  const q4 = fastest(results, 'q4_0', shape);
  if (!f32 || !q4) return undefined;
  return { ...shape, f32: { variant: f32.variant, ms: f32.ms }, q4_0: { variant: q4.variant, ms: q4.ms }, speedup: f32.ms / q4.ms };
}

// ---------------------------------------------------------------------------------------------
// Output

/** Prints rows as they come, so a long run shows progress; a cell wider than its column pushes the rest right. */
class Table {
  private readonly widths: number[];

  constructor(columns: [header: string, width: number][]) {
    this.widths = columns.map(([header, width]) => Math.max(header.length, width));
    this.row(columns.map(([header]) => header));
  }

  row(cells: string[]): void {
    console.log(cells.map((cell, i) => cell.padEnd(this.widths[i])).join('  ').trimEnd());
  }
}

function fixed(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(2) : value.toPrecision(3);
}

function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} KiB`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}
