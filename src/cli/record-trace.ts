// npm run -s record-trace -- [--model PATH] [--out FILE] [--max-tokens N]
// Records a lab session on this machine's adapter as a LabTrace (src/app/trace.ts): generations in
// f32 and then q4_0 (a switch flip between them), a per-kernel step profile, a prompt-length sweep,
// the sampling distributions of a short run, the matvec workbench, a batching sweep (batch sizes 1,
// 2, 4, 8) and the KV-cache pool of a mixed batch at its fullest step. The lab replays it
// (?trace=/traces/NAME.json) for a room whose machine has a weak GPU, and the panel tests render it.
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { AbComparison, BatchSweep, KvSnapshot, LabTrace, PagedStep, PromptSweepPoint, RunRecord, SwitchMark } from '../app/trace.ts';
import { fullerStep, mixedBatch, pagedStep, sweepBatch, sweepPoint, warmUpBatch } from '../app/batch-runs.ts';
import { settingsLabel, tpotMs } from '../app/run-stats.ts';
import type { Engine } from '../engine/engine.ts';
import { createEngine } from '../engine/index.ts';
import type { StepDistribution } from '../engine/telemetry.ts';
import { openModelPath } from '../node/fs-source.ts';
import { nodeGpu } from '../node/gpu.ts';
import { labModelsDir } from './make-model.ts';
import { numberOption, parseOptions, UsageError } from './args.ts';

const usage = 'usage: npm run -s record-trace -- [--model PATH] [--out FILE] [--max-tokens N]';
const prompt = 'Once upon a time';

async function run(engine: Engine, id: number, maxTokens: number, inspect = 0): Promise<{ record: RunRecord; distributions: StepDistribution[] }> {
  const stepMs: number[] = [];
  const distributions: StepDistribution[] = [];
  const started = performance.now();
  let ttftMs: number | null = null;
  const result = await engine.generate({ prompt, maxTokens, temperature: 0, seed: 42, inspect }, (event) => {
    ttftMs ??= performance.now() - started;
    stepMs.push(event.stepMs);
    if (event.distribution) distributions.push(event.distribution);
  });
  const settings = engine.model.settings;
  return { record: { id, label: settingsLabel(settings, engine.model), settings, bytesPerToken: engine.model.memory.bytesPerToken, prompt, stepMs, ttftMs, result }, distributions };
}

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseOptions(args, {
      model: { type: 'string', default: resolve(labModelsDir(), 'stories260K/stories260K.bin') },
      out: { type: 'string', default: 'static/traces/stories260K.json' },
      'max-tokens': { type: 'string' },
      help: { type: 'boolean', default: false },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n${usage}`);
      return 2;
    }
    throw error;
  }
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', 120, (n) => Number.isInteger(n) && n > 1, 'a whole number > 1');
  const { files, entry } = await openModelPath(values.model);
  const engine = await createEngine({ gpu: nodeGpu(), files, entry, maxContext: 512, onProgress: (m) => console.error(`… ${m}`) });
  try {
    const runs: RunRecord[] = [];
    const marks: SwitchMark[] = [];
    console.error('… generating in f32');
    runs.push((await run(engine, 1, maxTokens)).record);
    await engine.reconfigure({ weightFormat: 'q4_0' });
    marks.push({ beforeRun: runs.length, label: 'weight format f32 → q4_0' });
    console.error('… generating in q4_0');
    runs.push((await run(engine, 2, maxTokens)).record);
    const ab: AbComparison = { prompt, a: runs[0], b: runs[1] };

    console.error('… profiling one decode step');
    const profile = await engine.profileStep({ position: 64 });
    console.error('… sweeping prompt lengths');
    const sweep: PromptSweepPoint[] = [];
    for (const words of [1, 8, 32, 96, 192]) {
      const text = Array.from({ length: words }, (_, i) => ['Once', 'upon', 'a', 'time', 'there', 'was', 'a', 'girl'][i % 8]).join(' ');
      const result = await engine.generate({ prompt: words === 1 ? '' : text, maxTokens: 16, temperature: 0, seed: 0 });
      const tpot = tpotMs(result);
      if (tpot !== null) sweep.push({ promptTokens: result.promptTokens, ttftMs: result.prefillMs, tpotMs: tpot });
    }
    console.error('… inspecting the sampling distribution');
    const { distributions } = await run(engine, 3, 24, 20);
    console.error('… running the workbench');
    const workbench = await engine.runWorkbench({ op: 'matvec', format: 'q4_0', rows: 288, cols: 288, repetitions: 5 });
    console.error('… sweeping batch sizes');
    const settings = engine.model.settings;
    const batchTokens = Math.min(maxTokens, 24);
    const generation = { prompt, maxTokens: batchTokens, temperature: 0, seed: 42, chat: false };
    const batching: BatchSweep = { prompt, maxTokens: batchTokens, settings, points: [] };
    const batchSizes = [1, 2, 4, 8];
    await engine.generateBatch(warmUpBatch(batchSizes[batchSizes.length - 1], generation, settings));
    for (const batchSize of batchSizes) batching.points.push(sweepPoint(batchSize, await engine.generateBatch(sweepBatch(batchSize, generation, settings))));
    console.error('… running a mixed batch for the KV-cache panel');
    const mixed = mixedBatch(settings, 'paged', 0, 42);
    let fullest: PagedStep | null = null;
    const mixedResult = await engine.generateBatch(mixed, {
      step: (event) => {
        const step = pagedStep(event);
        if (step) fullest = fullerStep(fullest, step);
      },
    });
    if (!fullest) throw new Error('the mixed batch reported no step with its pages');
    const kv: KvSnapshot = {
      requests: mixed.requests.map((r) => ({ prompt: r.prompt, maxTokens: r.maxTokens })),
      maxBatch: mixedResult.maxBatch,
      step: fullest,
      state: 'finished',
      prefix: mixedResult.prefix,
    };

    const trace: LabTrace = {
      version: 1,
      recordedAt: new Date().toISOString(),
      adapter: engine.adapter,
      // The model's file name, not this machine's path to it.
      model: { ...engine.model, source: engine.model.source.replace(`${dirname(resolve(values.model))}/`, '') },
      runs,
      marks,
      profile,
      sweep,
      distributions,
      workbench,
      ab,
      batching,
      kv,
    };
    await mkdir(dirname(values.out), { recursive: true });
    await writeFile(values.out, `${JSON.stringify(trace, null, 1)}\n`);
    console.log(`wrote ${values.out} (${basename(values.model)} on ${engine.adapter.description}): ${runs.map((r) => `${r.label} ${r.result!.decodeTokensPerSecond.toFixed(1)} tok/s`).join(', ')}`);
    return 0;
  } finally {
    engine.dispose();
  }
}
