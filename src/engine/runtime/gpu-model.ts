// A model resident on the GPU: weights, KV cache and scratch buffers, and the dispatch lists of one
// forward step, all created once. A decode step writes 12 bytes of step uniforms (and the token id
// during prefill), encodes the prebuilt dispatches into one command buffer and submits it once.
import type { GpuContext } from '../gpu/device.ts';
import { encodeDispatches, KernelContext, type Dispatch, type KernelContextOptions } from '../gpu/kernel.ts';
import { packParams, paramsByteLength, stepLayout } from '../gpu/params.ts';
import { attentionCost, createAttention } from '../kernels/attention.ts';
import { createAdd, createBiasAdd, createSwiglu } from '../kernels/elementwise.ts';
import { createEmbedding } from '../kernels/embedding.ts';
import type { MatvecVariantName } from '../kernels/matvec.ts';
import { createFormatMatvec, tuneMatvec, type TuningStore } from '../kernels/matvec-variants.ts';
import type { WeightFormat } from '../quant/formats.ts';
import { createRmsnorm } from '../kernels/rmsnorm.ts';
import { createRope, ropeTable } from '../kernels/rope.ts';
import { createArgmax, createFilteredSample, createTemperatureSample, filtersLayout } from '../kernels/sample.ts';
import { createSortedSample, sortedLength } from '../kernels/sample-sort.ts';
import { penaltiesActive, tokenCounts, type SamplingFilters, type SamplingPenalties } from '../reference/sample.ts';
import { RequestError } from '../errors.ts';
import { layerTensor, type ModelConfig, type ModelDescription } from '../model/types.ts';
import type { MemoryReport } from '../telemetry.ts';
import { GpuAllocator, uploadWeights, type GpuWeights } from './weights.ts';

export interface GpuModelOptions {
  /** Cap on the KV cache length (default 2048, never above the model's maxSeqLen). */
  maxContext?: number;
  /**
   * Format of the projection and classifier weights (default f32). The token embedding stays f32:
   * the gather reads one row per token, so its format barely moves the bytes per token. A tied
   * classifier is packed into its own buffer unless the format is f32.
   */
  weightFormat?: WeightFormat;
  /** Force a matvec variant instead of the one the on-device tuning run picks. */
  matvecVariant?: MatvecVariantName;
  /** Where tuning results persist between sessions (the browser passes localStorage). */
  tuningStore?: TuningStore;
  /** Edited WGSL to compile instead of shaders/<family>.wgsl (checked by the workbench first). */
  shaderSources?: KernelContextOptions['sources'];
  /**
   * Largest buffer one weight tensor may take, below the adapter's limits: a bigger matrix or
   * embedding is split by rows across buffers (runtime/weights.ts). Tests force splitting with it.
   */
  maxBindingBytes?: number;
}

/** How long putting the model on the GPU took (see LoadReport). */
export interface GpuLoadTimes {
  uploadBytes: number;
  uploadMs: number;
  compileMs: number;
}

/**
 * argmax: greedy. temperature: softmax(logits / T). filtered: penalties and/or top-k, top-p, min-p
 * (temperature 0 there is the penalized argmax); its settings go to the GPU once per generation
 * through GpuModel.prepareFiltered. sorted: the same choice as filtered from a bitonic sort of the
 * vocabulary (sampler 'gpu-sort'; GpuModel.prepareSorted builds it first).
 */
export type Sampler = SingleDispatchSampler | { kind: 'sorted'; temperature: number; seed: number };
/** The samplers that run as one dispatch. */
export type SingleDispatchSampler = { kind: 'argmax' } | { kind: 'temperature'; temperature: number; seed: number } | { kind: 'filtered'; temperature: number; seed: number };

/** Scratch memory of one forward step (the GPU twin of llama2.c's RunState). */
interface RunState {
  x: GPUBuffer; // (dim) residual stream
  xb: GPUBuffer; // (dim) normalized input of a block
  xb2: GPUBuffer; // (dim) block output before the residual add
  q: GPUBuffer; // (nHeads * headDim)
  k: GPUBuffer; // (kvDim)
  v: GPUBuffer; // (kvDim)
  att: GPUBuffer; // (nHeads * headDim) attention output
  scores: GPUBuffer; // (nHeads, maxSeq) attention scratch
  hb: GPUBuffer; // (hiddenDim) gate, then silu(gate) * up
  hb2: GPUBuffer; // (hiddenDim) up
  logits: GPUBuffer; // (vocab)
  keyCache: GPUBuffer; // (layer, maxSeq, kvDim)
  valueCache: GPUBuffer; // (layer, maxSeq, kvDim)
  ropeTable: GPUBuffer; // (maxSeq, headDim/2, 2)
  step: GPUBuffer; // Step uniform: pos, seed, temperature
  token: GPUBuffer; // (1) u32: the token being processed; the sampler overwrites it with the next one
  filters: GPUBuffer; // Filters uniform of the filtered sampler
  counts: GPUBuffer; // (vocab) u32 occurrences of each token, for the penalties
  allowed: GPUBuffer; // (ceil(vocab / 32)) u32 bitset of the tokens a constraint allows
}

export class GpuModel {
  /** Dispatches in the order they run: embedding and every layer (each prefill token runs these)... */
  readonly bodyDispatches: readonly Dispatch[];
  /** ...then the final norm and classifier (only where a next token is wanted). */
  readonly headDispatches: readonly Dispatch[];
  private readonly staging: GPUBuffer[];
  private readonly buffers: GPUBuffer[];

  private constructor(
    readonly gpu: GpuContext,
    readonly config: ModelConfig,
    readonly contextLength: number,
    readonly weightBytes: number,
    readonly weightFormat: WeightFormat,
    /** The matvec variant every projection runs. */
    readonly matvecVariant: string,
    /** Bytes of each kind this model allocated on the GPU. */
    readonly memory: MemoryReport,
    readonly loadTimes: GpuLoadTimes,
    /** The weights on the GPU; the batched model borrows them (destroyed with this model). */
    readonly weights: GpuWeights,
    private readonly state: RunState,
    dispatches: { body: Dispatch[]; head: Dispatch[]; argmax: Dispatch; temperature: Dispatch; filtered: Dispatch },
    buffers: GPUBuffer[],
    /** Compiles what is built after load (the sort-based sampler). */
    private readonly kernels: KernelContext,
  ) {
    this.bodyDispatches = dispatches.body;
    this.headDispatches = dispatches.head;
    this.argmax = dispatches.argmax;
    this.temperatureSample = dispatches.temperature;
    this.filteredSample = dispatches.filtered;
    this.buffers = buffers;
    const device = gpu.device;
    // Two read-back slots so step n+1 can be queued while step n's token is still being mapped.
    this.staging = [0, 1].map((i) =>
      device.createBuffer({ label: `token.readback.${i}`, size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    );
    this.logitsStaging = device.createBuffer({ label: 'logits.readback', size: 4 * config.vocabSize, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  private readonly logitsStaging: GPUBuffer;

  private readonly argmax: Dispatch;
  private readonly temperatureSample: Dispatch;
  private readonly filteredSample: Dispatch;
  /** The sort-based sampler's dispatches, once prepareSorted has built them. */
  private sortedSample: readonly Dispatch[] | null = null;
  private sortedSampleBuilt: Promise<void> | null = null;
  // Staging for the per-step uniform and prefill token (writeBuffer copies them at once).
  private readonly stepBytes = new ArrayBuffer(paramsByteLength(stepLayout));
  private readonly tokenWord = new Uint32Array(1);

  static async create(gpu: GpuContext, model: ModelDescription, options: GpuModelOptions = {}): Promise<GpuModel> {
    const c = model.config;
    const device = gpu.device;
    const maxSeq = Math.min(c.maxSeqLen, options.maxContext ?? 2048);
    const format = options.weightFormat ?? 'f32';
    const kvDim = c.nKvHeads * c.headDim;
    const qDim = c.nHeads * c.headDim;
    const allocator = new GpuAllocator(device);
    const allocate = (label: string, bytes: number, usage?: number) => allocator.allocate(label, bytes, usage);

    try {
      const weights = await uploadWeights(gpu, model, format, allocator, { maxBindingBytes: options.maxBindingBytes });
      const { matrixBytes, embeddingBytes, vectorBytes, uploadMs } = weights;
      const weightBytes = matrixBytes + embeddingBytes + vectorBytes;
      const w = (name: string) => weights.get(name);

      const compileStarted = performance.now();
      const kc = new KernelContext(gpu, { sources: options.shaderSources });
      const variant = options.matvecVariant ?? (await tuneMatvec(kc, format, { rows: c.hiddenDim, cols: c.dim }, options.tuningStore)).variant;
      // One dispatch per part of a matrix split across buffers, each writing its rows of `out`.
      // Dispatches are labelled by tensor (a tied classifier's parts are the embedding's buffers).
      const matvec = (name: string, x: GPUBuffer, out: GPUBuffer) => {
        const parts = weights.parts(name);
        return Promise.all(parts.map((part, i) => createFormatMatvec(kc, parts.length > 1 ? `${name}.part${i}` : name, { weight: part.buffer, x, out }, part.shape, variant, part.firstRow)));
      };

      const s: RunState = {
        x: await allocate('x', 4 * c.dim),
        xb: await allocate('xb', 4 * c.dim),
        xb2: await allocate('xb2', 4 * c.dim),
        q: await allocate('q', 4 * qDim),
        k: await allocate('k', 4 * kvDim),
        v: await allocate('v', 4 * kvDim),
        att: await allocate('att', 4 * qDim),
        scores: await allocate('scores', 4 * c.nHeads * maxSeq),
        hb: await allocate('hb', 4 * c.hiddenDim),
        hb2: await allocate('hb2', 4 * c.hiddenDim),
        logits: await allocate('logits', 4 * c.vocabSize),
        keyCache: await allocate('keyCache', 4 * c.nLayers * maxSeq * kvDim),
        valueCache: await allocate('valueCache', 4 * c.nLayers * maxSeq * kvDim),
        ropeTable: await allocate('ropeTable', 4 * maxSeq * c.headDim),
        step: await allocate('step', paramsByteLength(stepLayout), GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        token: await allocate('token', 4),
        filters: await allocate('filters', paramsByteLength(filtersLayout), GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        counts: await allocate('counts', 4 * c.vocabSize),
        allowed: await allocate('allowed', 4 * Math.ceil(c.vocabSize / 32)),
      };
      device.queue.writeBuffer(s.ropeTable, 0, ropeTable(maxSeq, c.headDim, c.ropeTheta, c.ropeScaling));

      const embeddingParts = weights.parts('tokenEmbedding');
      const body: Promise<Dispatch | Dispatch[]>[] = embeddingParts.map((part, i) =>
        createEmbedding(kc, embeddingParts.length > 1 ? `embedding.part${i}` : 'embedding', { token: s.token, table: part.buffer, out: s.x }, c.dim, c.vocabSize, { firstRow: part.firstRow, rows: part.shape.rows }),
      );
      for (let l = 0; l < c.nLayers; l++) {
        const t = (name: Parameters<typeof layerTensor>[1]) => w(layerTensor(l, name));
        const at = `layers.${l}`;
        const cacheOffset = l * maxSeq * kvDim;
        body.push(
          // attention rmsnorm
          createRmsnorm(kc, `${at}.attnNorm`, { x: s.x, weight: t('attnNorm'), out: s.xb }, c.dim, c.rmsEps),
          // q, k, v projections
          matvec(layerTensor(l, 'wq'), s.xb, s.q),
          matvec(layerTensor(l, 'wk'), s.xb, s.k),
          matvec(layerTensor(l, 'wv'), s.xb, s.v),
          // Qwen2: the projections' biases
          ...(c.attentionBias
            ? [
                createBiasAdd(kc, `${at}.bq`, s.q, t('bq'), qDim),
                createBiasAdd(kc, `${at}.bk`, s.k, t('bk'), kvDim),
                createBiasAdd(kc, `${at}.bv`, s.v, t('bv'), kvDim),
              ]
            : []),
          // RoPE on q and k; k and v go into the cache at this position
          createRope(kc, `${at}.rope`, { step: s.step, ropeTable: s.ropeTable, q: s.q, k: s.k, v: s.v, keyCache: s.keyCache, valueCache: s.valueCache }, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, cacheOffset }),
          // multi-head attention over the cache
          createAttention(kc, `${at}.attention`, { step: s.step, q: s.q, keyCache: s.keyCache, valueCache: s.valueCache, scores: s.scores, out: s.att }, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, maxSeq, cacheOffset }),
          // output projection, residual connection back into x
          matvec(layerTensor(l, 'wo'), s.att, s.xb2),
          createAdd(kc, `${at}.attnResidual`, s.x, s.xb2, c.dim),
          // ffn rmsnorm
          createRmsnorm(kc, `${at}.ffnNorm`, { x: s.x, weight: t('ffnNorm'), out: s.xb }, c.dim, c.rmsEps),
          // w2(silu(w1(x)) * w3(x))
          matvec(layerTensor(l, 'w1'), s.xb, s.hb),
          matvec(layerTensor(l, 'w3'), s.xb, s.hb2),
          createSwiglu(kc, `${at}.swiglu`, s.hb, s.hb2, c.hiddenDim),
          matvec(layerTensor(l, 'w2'), s.hb, s.xb2),
          // residual connection
          createAdd(kc, `${at}.ffnResidual`, s.x, s.xb2, c.dim),
        );
      }
      const head = [
        // final rmsnorm, then the classifier into logits
        createRmsnorm(kc, 'finalNorm', { x: s.x, weight: w('finalNorm'), out: s.xb }, c.dim, c.rmsEps),
        matvec('classifier', s.xb, s.logits),
      ];
      const sampleBuffers = { logits: s.logits, token: s.token, step: s.step };
      const [bodyDispatches, headDispatches, argmax, temperature, filtered] = await Promise.all([
        Promise.all(body).then((list) => list.flat()),
        Promise.all(head).then((list) => list.flat()),
        createArgmax(kc, 'argmax', sampleBuffers, c.vocabSize),
        createTemperatureSample(kc, 'sampleTemperature', sampleBuffers, c.vocabSize),
        createFilteredSample(kc, 'sampleFiltered', { ...sampleBuffers, filters: s.filters, counts: s.counts, allowed: s.allowed }, c.vocabSize),
      ]);
      const compileMs = performance.now() - compileStarted;
      const kvCacheBytes = s.keyCache.size + s.valueCache.size;
      const scratch = Object.values(s).filter((b) => b !== s.keyCache && b !== s.valueCache);
      const memory: MemoryReport = {
        matrixBytes,
        embeddingBytes,
        vectorBytes,
        kvCacheBytes,
        kvBytesPerToken: 2 * 4 * c.nLayers * kvDim,
        activationBytes: scratch.reduce((bytes, b) => bytes + b.size, 0),
        contextLength: maxSeq,
        bytesPerToken: decodeBytesRead(c, maxSeq, [...bodyDispatches, ...headDispatches], 1),
      };
      const loadTimes = { uploadBytes: weightBytes, uploadMs, compileMs };
      return new GpuModel(gpu, c, maxSeq, weightBytes, format, variant, memory, loadTimes, weights, s, { body: bodyDispatches, head: headDispatches, argmax, temperature, filtered }, allocator.created, kc);
    } catch (error) {
      allocator.destroyAll();
      throw error;
    }
  }

  /**
   * Queues one forward step at `pos`. `token` is written to the token buffer first (prefill);
   * without it the step consumes the token the previous step's sampler left there. With a sampler,
   * the next token is chosen on the GPU and copied into read-back `slot` (see readToken).
   */
  submitStep(pos: number, token: number | null, sampler: Sampler | null, slot = 0, withLogits = false): void {
    this.writeStepInputs(pos, token, sampler);
    const { device } = this.gpu;
    const s = this.state;
    const encoder = device.createCommandEncoder({ label: `step ${pos}` });
    const pass = encoder.beginComputePass({ label: `forward ${pos}` });
    encodeDispatches(pass, this.bodyDispatches);
    if (sampler || withLogits) encodeDispatches(pass, this.headDispatches);
    if (sampler) encodeDispatches(pass, this.samplerDispatches(sampler));
    pass.end();
    if (sampler) encoder.copyBufferToBuffer(s.token, 0, this.staging[slot], 0, 4);
    if (withLogits) encoder.copyBufferToBuffer(s.logits, 0, this.logitsStaging, 0, this.logitsStaging.size);
    device.queue.submit([encoder.finish()]);
  }

  /**
   * Writes the step uniform (position, sampler seed and temperature) and, when given, the token the
   * step embeds. Queue writes land before the next submit, so the profiler can time dispatches alone.
   */
  writeStepInputs(pos: number, token: number | null, sampler: Sampler | null = null): void {
    if (!Number.isInteger(pos) || pos < 0 || pos >= this.contextLength) throw new RequestError(`position ${pos} is outside the context of ${this.contextLength} tokens`);
    const { device } = this.gpu;
    const temperature = sampler && sampler.kind !== 'argmax' ? sampler.temperature : 0;
    const seed = sampler && sampler.kind !== 'argmax' ? sampler.seed >>> 0 : 0;
    device.queue.writeBuffer(this.state.step, 0, packParams(stepLayout, { pos, seed, temperature }, this.stepBytes));
    if (token !== null) {
      this.tokenWord[0] = token;
      device.queue.writeBuffer(this.state.token, 0, this.tokenWord);
    }
  }

  /** The sampler's dispatch that ends a sampled step. */
  samplerDispatch(sampler: SingleDispatchSampler): Dispatch {
    return sampler.kind === 'argmax' ? this.argmax : sampler.kind === 'temperature' ? this.temperatureSample : this.filteredSample;
  }

  /** The sampler's dispatches that end a sampled step (the sorted sampler's sort passes and pick). */
  samplerDispatches(sampler: Sampler): readonly Dispatch[] {
    if (sampler.kind !== 'sorted') return [this.samplerDispatch(sampler)];
    if (!this.sortedSample) throw new Error('the sorted sampler runs only after prepareSorted()');
    return this.sortedSample;
  }

  /**
   * Builds the sort-based sampler on first use: its sorted keys and ids, 8 bytes per entry of the
   * vocabulary padded to a power of two (not in `memory`, which is fixed at load), and its passes.
   * Its cuts, penalties and mask come from prepareFiltered and writeAllowed, as the filtered sampler's.
   */
  prepareSorted(): Promise<void> {
    this.sortedSampleBuilt ??= this.buildSorted().catch((error: unknown) => {
      this.sortedSampleBuilt = null;
      throw error;
    });
    return this.sortedSampleBuilt;
  }

  private async buildSorted(): Promise<void> {
    const allocator = new GpuAllocator(this.gpu.device);
    const vocab = this.config.vocabSize;
    const s = this.state;
    try {
      const keys = await allocator.allocate('sortedKeys', 4 * sortedLength(vocab), GPUBufferUsage.STORAGE);
      const ids = await allocator.allocate('sortedIds', 4 * sortedLength(vocab), GPUBufferUsage.STORAGE);
      const buffers = { logits: s.logits, token: s.token, step: s.step, filters: s.filters, counts: s.counts, allowed: s.allowed, keys, ids };
      this.sortedSample = await createSortedSample(this.kernels, 'sampleSorted', buffers, vocab);
      this.buffers.push(...allocator.created);
    } catch (error) {
      allocator.destroyAll();
      throw error;
    }
  }

  /**
   * Sets the filtered sampler's cuts and penalties for a generation, counting `tokens` (the prompt)
   * as seen; `masked` makes it read the allowed-token bitset (writeAllowed before each sampled step).
   */
  prepareFiltered(filters: SamplingFilters, penalties: SamplingPenalties, tokens: readonly number[], masked = false): void {
    const { device } = this.gpu;
    const penalize = penaltiesActive(penalties);
    device.queue.writeBuffer(this.state.filters, 0, packParams(filtersLayout, { ...filters, ...penalties, penalize: penalize ? 1 : 0, masked: masked ? 1 : 0 }));
    if (penalize) device.queue.writeBuffer(this.state.counts, 0, tokenCounts(tokens, this.config.vocabSize));
  }

  /** The constraint's mask for the next sampled step (bit i of word i >> 5: token i allowed). */
  writeAllowed(mask: Uint32Array): void {
    this.gpu.device.queue.writeBuffer(this.state.allowed, 0, mask);
  }

  /** Bytes one decode step reads with `length` positions in the KV cache (see decodeBytesRead). */
  bytesReadPerStep(length: number): number {
    return decodeBytesRead(this.config, this.contextLength, [...this.bodyDispatches, ...this.headDispatches], length);
  }

  /** Waits for the token a sampled step copied into `slot`. */
  async readToken(slot = 0): Promise<number> {
    const buffer = this.staging[slot];
    await buffer.mapAsync(GPUMapMode.READ);
    const token = new Uint32Array(buffer.getMappedRange())[0];
    buffer.unmap();
    return token;
  }

  /** Copies the logits of the last sampled step back (tests and the lab's sampling view). */
  async readLogits(): Promise<Float32Array> {
    const encoder = this.gpu.device.createCommandEncoder({ label: 'logits.readback' });
    encoder.copyBufferToBuffer(this.state.logits, 0, this.logitsStaging, 0, this.logitsStaging.size);
    this.gpu.device.queue.submit([encoder.finish()]);
    return this.readStepLogits();
  }

  /** Waits for the logits a step submitted `withLogits` copied back. */
  async readStepLogits(): Promise<Float32Array> {
    await this.logitsStaging.mapAsync(GPUMapMode.READ);
    const logits = new Float32Array(this.logitsStaging.getMappedRange().slice(0));
    this.logitsStaging.unmap();
    return logits;
  }

  /**
   * Queues `count` steps from `pos` that feed each sampled token to the next step on the GPU, as a
   * speculative draft needs: `token` is embedded first, and every step's token (and, with
   * `withLogits`, its logits) is copied into the chain's read-back, so readChain waits once for all
   * of them instead of once per step.
   */
  submitChain(pos: number, token: number, count: number, sampler: Sampler, withLogits: boolean): void {
    const { device } = this.gpu;
    const s = this.state;
    const vocabBytes = 4 * this.config.vocabSize;
    const chain = this.chainReadback(count);
    for (let i = 0; i < count; i++) {
      this.writeStepInputs(pos + i, i === 0 ? token : null, sampler);
      const encoder = device.createCommandEncoder({ label: `chain step ${pos + i}` });
      const pass = encoder.beginComputePass({ label: `forward ${pos + i}` });
      encodeDispatches(pass, this.bodyDispatches);
      encodeDispatches(pass, this.headDispatches);
      encodeDispatches(pass, this.samplerDispatches(sampler));
      pass.end();
      encoder.copyBufferToBuffer(s.token, 0, chain.tokens, 4 * i, 4);
      if (withLogits) encoder.copyBufferToBuffer(s.logits, 0, chain.logits, i * vocabBytes, vocabBytes);
      device.queue.submit([encoder.finish()]);
    }
  }

  /** The tokens (and logits, when asked for) of the last submitChain's `count` steps. */
  async readChain(count: number, withLogits: boolean): Promise<{ tokens: number[]; logits: Float32Array[] }> {
    const chain = this.chainReadback(count);
    await chain.tokens.mapAsync(GPUMapMode.READ, 0, 4 * count);
    const tokens = [...new Uint32Array(chain.tokens.getMappedRange(0, 4 * count).slice(0))];
    chain.tokens.unmap();
    if (!withLogits) return { tokens, logits: [] };
    const vocab = this.config.vocabSize;
    await chain.logits.mapAsync(GPUMapMode.READ, 0, 4 * count * vocab);
    const all = new Float32Array(chain.logits.getMappedRange(0, 4 * count * vocab).slice(0));
    chain.logits.unmap();
    return { tokens, logits: Array.from({ length: count }, (_, i) => all.subarray(i * vocab, (i + 1) * vocab)) };
  }

  /** The chain's read-back buffers, sized for `count` steps (grown when a longer chain comes). */
  private chainReadback(count: number): { tokens: GPUBuffer; logits: GPUBuffer } {
    if (!this.chain || this.chain.steps < count) {
      this.chain?.tokens.destroy();
      this.chain?.logits.destroy();
      const usage = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
      const device = this.gpu.device;
      this.chain = {
        steps: count,
        tokens: device.createBuffer({ label: 'chain.tokens.readback', size: 4 * count, usage }),
        logits: device.createBuffer({ label: 'chain.logits.readback', size: 4 * count * this.config.vocabSize, usage }),
      };
    }
    return this.chain;
  }

  private chain: { steps: number; tokens: GPUBuffer; logits: GPUBuffer } | null = null;

  destroy(): void {
    for (const buffer of [...this.buffers, ...this.staging, this.logitsStaging]) buffer.destroy();
    this.chain?.tokens.destroy();
    this.chain?.logits.destroy();
  }
}

/**
 * Bytes one decode step reads under the kernels' cost models: every weight and activation access
 * of the step that produces a token, with attention's recomputed for `length` cached positions (its
 * dispatch carries the cost at length 1). The sampler's read of the logits is left out: it is small
 * next to the classifier.
 */
function decodeBytesRead(c: ModelConfig, contextLength: number, dispatches: readonly Dispatch[], length: number): number {
  const attention = attentionCost({ nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, maxSeq: contextLength, cacheOffset: 0 }, length);
  return dispatches.reduce((bytes, d) => bytes + (d.family === 'attention' ? attention.bytesRead : d.cost.bytesRead), 0);
}
