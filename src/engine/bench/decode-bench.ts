// End-to-end speed of one model: prefill and decode tokens/second through the real decode loop
// (runtime/generate.ts), and how close decoding comes to the memory roofline given the bytes the
// dispatch cost models say one decode step must read.
import type { GpuContext } from '../gpu/device.ts';
import { meanSd } from '../gpu/timing.ts';
import type { FileSource } from '../model/files.ts';
import { loadModel } from '../model/load.ts';
import { generate } from '../runtime/generate.ts';
import { GpuModel } from '../runtime/gpu-model.ts';
import type { WeightFormat } from '../quant/formats.ts';
import { loadTokenizer, type TokenizerFile } from '../tokenizer/load.ts';

export interface DecodeBenchOptions {
  /** Shown in results: "stories260K", "synthetic weights, SmolLM2-135M shapes". */
  label: string;
  files: FileSource;
  entry: string;
  tokenizer?: TokenizerFile;
  weightFormat: WeightFormat;
  prompt: string;
  /** Tokens to generate per timed run (fewer if the model stops at EOS). */
  maxTokens: number;
  /** Timed runs after one warm-up run. */
  runs: number;
  probeGBps: number;
}

export interface DecodeResult {
  model: string;
  format: string;
  promptTokens: number;
  generatedTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Standard deviation of decodeTokensPerSecond over the runs. */
  decodeSdTokensPerSecond: number;
  /** Weights and KV cache one decode step reads, at the runs' mean context length. */
  bytesPerToken: number;
  /** Time the roofline allows per token (bytesPerToken at the probe's bandwidth) over the measured time. */
  fractionOfRoofline: number;
}

export async function benchDecode(gpu: GpuContext, options: DecodeBenchOptions): Promise<DecodeResult> {
  const { model, vocabulary } = await loadModel(options.files, options.entry);
  const { tokenizer } = await loadTokenizer(options.files, options.entry, model, vocabulary, options.tokenizer);
  const gpuModel = await GpuModel.create(gpu, model, { weightFormat: options.weightFormat });
  try {
    const request = { prompt: options.prompt, maxTokens: options.maxTokens, temperature: 0, seed: 0 };
    // Warm-up: first submissions page in buffers and finish pipeline compilation.
    await generate(gpuModel, tokenizer, { ...request, maxTokens: 2 });
    const runs = [];
    for (let i = 0; i < options.runs; i++) runs.push(await generate(gpuModel, tokenizer, request));

    const { promptTokens, generatedTokens } = runs[0];
    if (generatedTokens < 2) throw new Error(`${options.label} stopped after ${generatedTokens} token(s): no decode step to time`);
    const decode = meanSd(runs.map((r) => r.decodeTokensPerSecond));
    const prefill = meanSd(runs.map((r) => (1000 * r.promptTokens) / r.prefillMs));
    // Decode step n (n = 1 .. generated - 1) attends over promptTokens + n positions.
    const bytesPerToken = gpuModel.bytesReadPerStep(promptTokens + generatedTokens / 2);
    const rooflineSeconds = bytesPerToken / (options.probeGBps * 1e9);
    return {
      model: options.label,
      format: options.weightFormat,
      promptTokens,
      generatedTokens,
      prefillTokensPerSecond: prefill.mean,
      decodeTokensPerSecond: decode.mean,
      decodeSdTokensPerSecond: decode.sd,
      bytesPerToken,
      fractionOfRoofline: rooflineSeconds * decode.mean,
    };
  } finally {
    gpuModel.destroy();
  }
}

