// npm run -s generate -- --model PATH [--tokenizer PATH] [--prompt TEXT] [--max-tokens N]
//                        [--temperature T] [--seed S] [--max-context N] [--format F]
//                        [--matvec-variant V] [--sampler gpu|cpu] [--json]
// PATH is a llama2.c .bin, a .gguf, or a Hugging Face folder. Streams text to stdout; with --json the
// last line of stdout is one JSON object with the tokens, text and timings.
import { basename, dirname } from 'node:path';
import { createEngine } from '../engine/index.ts';
import { directorySource, openModelPath } from '../node/fs-source.ts';
import { nodeGpu } from '../node/gpu.ts';
import type { MatvecVariantName } from '../engine/kernels/matvec.ts';
import { matvecVariants } from '../engine/kernels/matvec-variants.ts';
import { weightFormats, type WeightFormat } from '../engine/quant/formats.ts';
import { numberOption, parseOptions, UsageError } from './args.ts';

const usage = `usage: npm run -s generate -- --model PATH [--tokenizer PATH] [--prompt TEXT] [--max-tokens N]
                               [--temperature T] [--seed S] [--max-context N] [--json]
                               [--format ${weightFormats.join('|')}] [--matvec-variant ${matvecVariants.map((v) => v.name).join('|')}]
                               [--sampler gpu|cpu]`;

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
    if (values.sampler !== 'gpu' && values.sampler !== 'cpu') throw new UsageError(`--sampler must be gpu or cpu, got "${values.sampler}"`);
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }

  try {
    const maxTokens = numberOption(values['max-tokens'], 'max-tokens', 256, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0');
    const temperature = numberOption(values.temperature, 'temperature', 0, (n) => n >= 0, 'a number >= 0');
    const seed = numberOption(values.seed, 'seed', 0, (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'an integer in [0, 2^32)');
    const maxContext = numberOption(values['max-context'], 'max-context', 2048, (n) => Number.isInteger(n) && n >= 2, 'a whole number >= 2');
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
      sampler: values.sampler as 'gpu' | 'cpu',
    });
    try {
      const result = await engine.generate({ prompt: values.prompt!, maxTokens, temperature, seed }, (event) => {
        if (!values.json) process.stdout.write(event.text);
      });
      if (values.json) {
        const { tokens, text, promptTokens, generatedTokens, prefillMs, decodeMs, decodeTokensPerSecond, stopReason } = result;
        const { source, tokenizer: tokenizerName, weightFormat, matvecVariant, settings } = engine.model;
        console.log(JSON.stringify({ tokens, text, promptTokens, generatedTokens, prefillMs, decodeMs, decodeTokensPerSecond, stopReason, model: source, tokenizer: tokenizerName, weightFormat, matvecVariant, sampler: settings.sampler, adapter: engine.adapter }));
      } else {
        process.stdout.write('\n');
        const rate = result.decodeTokensPerSecond.toFixed(1);
        console.error(`\n${result.generatedTokens} tokens, prefill ${result.prefillMs.toFixed(1)} ms, decode ${rate} tokens/s on ${engine.adapter.description || engine.adapter.vendor}`);
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
