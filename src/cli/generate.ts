// npm run -s generate -- --model PATH [--tokenizer PATH] [--prompt TEXT] [--max-tokens N]
//                        [--temperature T] [--seed S] [--max-context N] [--format F]
//                        [--matvec-variant V] [--sampler gpu|gpu-sort|cpu] [--json]
//                        [--prompts FILE | --batch N] [--kv paged|contiguous] [--page-size N]
//                        [--attention fused|splitK|unfused] [--no-prefix-cache]
//                        [--top-k K] [--top-p P] [--min-p M] [--repetition-penalty R]
//                        [--frequency-penalty F] [--presence-penalty N] [--constrain json|regex:PATTERN]
//                        [--speculative draft-q4|ngram|MODEL] [--draft-tokens K]
// PATH is a llama2.c .bin, a .gguf, or a Hugging Face folder. Streams text to stdout; with --json the
// last line of stdout is one JSON object with the tokens, text and timings.
// --prompts (one prompt per line) or --batch (N copies of --prompt, seeds S, S+1, ...) run all the
// prompts as one continuous batch; --kv then picks how sequences take KV pages (default paged).
// Without them, --kv paged runs the single generation through the paged, batched path.
// --speculative drafts K tokens per pass (default 4) with the same model in q4_0, with prompt lookup,
// or with the smaller model at MODEL (same tokenizer), and verifies them on the paged path.
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { BatchGenerateResult, Engine } from '../engine/engine.ts';
import { createEngine } from '../engine/index.ts';
import { blockSizes } from '../engine/kv/page-pool.ts';
import { directorySource, openModelPath } from '../node/fs-source.ts';
import { nodeGpu } from '../node/gpu.ts';
import type { MatvecVariantName } from '../engine/kernels/matvec.ts';
import { matvecVariants } from '../engine/kernels/matvec-variants.ts';
import { weightFormats, type WeightFormat } from '../engine/quant/formats.ts';
import { maxDraftTokens } from '../engine/runtime/speculative.ts';
import type { SamplerKind } from '../engine/telemetry.ts';
import { numberOption, parseOptions, UsageError } from './args.ts';

const usage = `usage: npm run -s generate -- --model PATH [--tokenizer PATH] [--prompt TEXT] [--max-tokens N]
                               [--temperature T] [--seed S] [--max-context N] [--json]
                               [--format ${weightFormats.join('|')}] [--matvec-variant ${matvecVariants.map((v) => v.name).join('|')}]
                               [--sampler gpu|gpu-sort|cpu] [--prompts FILE | --batch N] [--kv paged|contiguous]
                               [--page-size ${blockSizes.join('|')}] [--attention fused|splitK|unfused] [--no-prefix-cache]
                               [--top-k K] [--top-p P] [--min-p M] [--repetition-penalty R] [--frequency-penalty F] [--presence-penalty N]
                               [--constrain json|regex:PATTERN] [--speculative draft-q4|ngram|MODEL] [--draft-tokens K]`;

const attentions = ['fused', 'splitK', 'unfused'] as const;
const samplers: readonly SamplerKind[] = ['gpu', 'gpu-sort', 'cpu'];

/** The last JSON line of a batched run: one entry per sequence, then the batch's figures. */
function batchJson(result: BatchGenerateResult, engine: Engine) {
  const { sequences, aggregateTokensPerSecond, perUserTokensPerSecond, wallMs, steps, rows, maxBatch, kvPeak, prefix, attention } = result;
  return {
    sequences: sequences.map(({ prompt, tokens, text, promptTokens, generatedTokens, cachedTokens, ttftMs, tpotMs, stopReason }) => ({ prompt, tokens, text, promptTokens, generatedTokens, cachedTokens, ttftMs, tpotMs, stopReason })),
    aggregateTokensPerSecond,
    perUserTokensPerSecond,
    wallMs,
    steps,
    rows,
    maxBatch,
    kv: { mode: kvPeak.mode, pageSize: kvPeak.pageSize, reservedBytes: kvPeak.reservedBytes, liveBytes: kvPeak.liveBytes, wasteBytes: kvPeak.reservedBytes - kvPeak.liveBytes, poolPages: kvPeak.pageCount, pageBytes: kvPeak.pageBytes },
    prefixCache: prefix,
    attention,
    model: engine.model.source,
    weightFormat: engine.model.weightFormat,
    adapter: engine.adapter,
  };
}

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseOptions(args, {
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      prompt: { type: 'string', default: '' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      seed: { type: 'string' },
      'max-context': { type: 'string' },
      format: { type: 'string', default: 'f32' },
      'matvec-variant': { type: 'string' },
      sampler: { type: 'string', default: 'gpu' },
      prompts: { type: 'string' },
      batch: { type: 'string' },
      kv: { type: 'string' },
      'page-size': { type: 'string' },
      attention: { type: 'string', default: 'fused' },
      'no-prefix-cache': { type: 'boolean', default: false },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'min-p': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      'frequency-penalty': { type: 'string' },
      'presence-penalty': { type: 'string' },
      constrain: { type: 'string' },
      speculative: { type: 'string' },
      'draft-tokens': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (!values.model) throw new UsageError('--model is required');
    if (!weightFormats.includes(values.format as WeightFormat)) throw new UsageError(`--format must be one of ${weightFormats.join(', ')}, got "${values.format}"`);
    const variant = values['matvec-variant'];
    if (variant !== undefined && !matvecVariants.some((v) => v.name === variant)) {
      throw new UsageError(`--matvec-variant must be one of ${matvecVariants.map((v) => v.name).join(', ')}, got "${variant}"`);
    }
    if (!samplers.includes(values.sampler as SamplerKind)) throw new UsageError(`--sampler must be one of ${samplers.join(', ')}, got "${values.sampler}"`);
    if (values.kv !== undefined && values.kv !== 'paged' && values.kv !== 'contiguous') throw new UsageError(`--kv must be paged or contiguous, got "${values.kv}"`);
    if (!(attentions as readonly string[]).includes(values.attention!)) throw new UsageError(`--attention must be one of ${attentions.join(', ')}, got "${values.attention}"`);
    if (values.prompts !== undefined && values.batch !== undefined) throw new UsageError('--prompts and --batch each make a batch: give one of them');
    if (values.speculative !== undefined && (values.prompts !== undefined || values.batch !== undefined)) throw new UsageError('--speculative speeds up one sequence: give it without --prompts or --batch');
    if (values.speculative !== undefined && values.kv === 'contiguous') throw new UsageError('--speculative verifies drafts on the paged KV cache: drop --kv contiguous');
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }

  try {
    const maxTokens = numberOption(values['max-tokens'], 'max-tokens', 256, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0');
    const temperature = numberOption(values.temperature, 'temperature', 0, (n) => n >= 0, 'a number >= 0');
    const seed = numberOption(values.seed, 'seed', 0, (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'an integer in [0, 2^32)');
    const maxContext = numberOption(values['max-context'], 'max-context', 2048, (n) => Number.isInteger(n) && n >= 2, 'a whole number >= 2');
    const pageSize = numberOption(values['page-size'], 'page-size', 16, (n) => (blockSizes as readonly number[]).includes(n), `one of ${blockSizes.join(', ')}`);
    const copies = numberOption(values.batch, 'batch', 1, (n) => Number.isInteger(n) && n >= 1 && n <= 256, 'a whole number from 1 to 256');
    const batchPrompts = values.prompts !== undefined ? readPrompts(values.prompts) : values.batch !== undefined ? new Array<string>(copies).fill(values.prompt!) : null;
    if (batchPrompts && values.sampler === 'cpu') throw new UsageError('--sampler cpu samples one sequence at a time: a batch samples on the GPU');
    const speculative = values.speculative;
    const kv = (values.kv ?? (batchPrompts || speculative !== undefined ? 'paged' : 'contiguous')) as 'paged' | 'contiguous';
    const draftTokens = numberOption(values['draft-tokens'], 'draft-tokens', 4, (n) => Number.isInteger(n) && n >= 1 && n <= maxDraftTokens, `a whole number from 1 to ${maxDraftTokens}`);
    // Anything but the two built-in drafts is the path of a draft model.
    const draftModel = speculative !== undefined && speculative !== 'draft-q4' && speculative !== 'ngram' ? openModelPath(speculative) : undefined;
    const sampling = {
      topK: numberOption(values['top-k'], 'top-k', 0, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0 (0: off)'),
      topP: numberOption(values['top-p'], 'top-p', 1, (n) => n > 0 && n <= 1, 'in (0, 1] (1: off)'),
      minP: numberOption(values['min-p'], 'min-p', 0, (n) => n >= 0 && n <= 1, 'in [0, 1] (0: off)'),
      repetitionPenalty: numberOption(values['repetition-penalty'], 'repetition-penalty', 1, (n) => n > 0, 'a number > 0 (1: off)'),
      frequencyPenalty: numberOption(values['frequency-penalty'], 'frequency-penalty', 0, Number.isFinite, 'a number (0: off)'),
      presencePenalty: numberOption(values['presence-penalty'], 'presence-penalty', 0, Number.isFinite, 'a number (0: off)'),
    };
    const { files, entry } = openModelPath(values.model!);
    const tokenizer = values.tokenizer ? { files: directorySource(dirname(values.tokenizer)), path: basename(values.tokenizer) } : undefined;

    const engine = await createEngine({
      gpu: nodeGpu(),
      files,
      entry,
      tokenizer,
      maxContext,
      weightFormat: values.format as WeightFormat,
      matvecVariant: values['matvec-variant'] as MatvecVariantName | undefined,
      sampler: values.sampler as SamplerKind,
      kvCache: batchPrompts ? 'contiguous' : kv,
      pageSize,
      prefixCache: !values['no-prefix-cache'],
      attention: values.attention as (typeof attentions)[number],
      ...(speculative !== undefined && { speculative: draftModel ? 'draft-model' : (speculative as 'draft-q4' | 'ngram'), draftTokens, ...(draftModel && { draftModel }) }),
    });
    try {
      if (batchPrompts) {
        const requests = batchPrompts.map((prompt, i) => ({ prompt, maxTokens, temperature, seed: (seed + i) >>> 0, ...sampling }));
        const result = await engine.generateBatch({ requests, kv, pageSize, maxBatch: Math.min(requests.length, 32) });
        if (values.json) {
          console.log(JSON.stringify(batchJson(result, engine)));
        } else {
          result.sequences.forEach((s, i) => console.log(`--- sequence ${i} (seed ${requests[i].seed}) ---\n${s.prompt}${s.text}`));
          const { kvPeak } = result;
          console.error(
            `\n${result.sequences.length} sequences, ${result.aggregateTokensPerSecond.toFixed(1)} tokens/s in all, ${result.perUserTokensPerSecond.toFixed(1)} per user; ` +
              `KV ${kv}: ${kvPeak.reservedBytes} bytes reserved, ${kvPeak.liveBytes} live at the peak; prefix cache ${result.prefix.hitTokens} tokens hit, ${result.prefix.computedTokens} computed`,
          );
        }
        return 0;
      }
      const constraint = values.constrain;
      const result = await engine.generate({ prompt: values.prompt!, maxTokens, temperature, seed, ...sampling, ...(constraint !== undefined && { constraint }) }, (event) => {
        if (!values.json) process.stdout.write(event.text);
      });
      if (values.json) {
        const { tokens, text, promptTokens, generatedTokens, prefillMs, decodeMs, decodeTokensPerSecond, stopReason, constraint: constraintReport, speculative: speculativeReport } = result;
        const { source, tokenizer: tokenizerName, weightFormat, matvecVariant, settings } = engine.model;
        console.log(JSON.stringify({ tokens, text, promptTokens, generatedTokens, prefillMs, decodeMs, decodeTokensPerSecond, stopReason, ...(constraintReport && { constraint: constraintReport }), ...(speculativeReport && { speculative: speculativeReport }), model: source, tokenizer: tokenizerName, weightFormat, matvecVariant, sampler: settings.sampler, adapter: engine.adapter }));
      } else {
        process.stdout.write('\n');
        const rate = result.decodeTokensPerSecond.toFixed(1);
        console.error(`\n${result.generatedTokens} tokens, prefill ${result.prefillMs.toFixed(1)} ms, decode ${rate} tokens/s on ${engine.adapter.description || engine.adapter.vendor}`);
        const c = result.constraint;
        if (c) {
          const perStep = c.maskCalls > 0 ? c.maskMs / c.maskCalls : 0;
          console.error(`constraint ${c.spec}: ${c.complete ? 'complete' : 'NOT complete (stopped early)'}; ${c.maskCalls} masks (${c.cacheHits} cached), ${perStep.toFixed(3)} ms each on average, ${c.maxMaskMs.toFixed(2)} ms at most`);
        }
        const sp = result.speculative;
        if (sp) {
          console.error(
            `speculative (${sp.draft}, ${sp.draftTokens} per pass): ${sp.accepted}/${sp.proposed} guesses accepted (${(100 * sp.acceptanceRate).toFixed(1)}%), ` +
              `${sp.tokensPerTargetPass.toFixed(2)} tokens per target pass over ${sp.targetPasses} passes; drafting ${sp.draftMs.toFixed(1)} ms, verifying ${sp.verifyMs.toFixed(1)} ms`,
          );
        }
      }
    } finally {
      engine.dispose();
    }
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}

/** One prompt per non-empty line (a trailing newline adds none). */
function readPrompts(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --prompts ${path}: ${(error as Error).message}`);
  }
  const prompts = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (prompts.length === 0) throw new UsageError(`--prompts ${path} holds no prompt (one per line)`);
  return prompts;
}
