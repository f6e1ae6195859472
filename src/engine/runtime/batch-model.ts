// A model on the GPU that serves many sequences at once over a paged KV cache. One step runs R
// "rows" through every layer together — each row is one token of one sequence: a decode token, or
// one prompt token of a (chunked) prefill — so each weight matrix is read once per step for all of
// them (a matrix-matrix product, shaders/matmul.wgsl). K/V go into pages of one pool shared by all
// layers (kv/page-pool.ts), and attention reads each row's sequence through its block table up to
// the row's own position, which makes a prompt's rows causal without a separate prefill kernel.
import type { GpuContext } from '../gpu/device.ts';
import { encodeDispatches, KernelContext, type Dispatch } from '../gpu/kernel.ts';
import { RequestError } from '../errors.ts';
import { createAdd, createBiasAdd, createSwiglu } from '../kernels/elementwise.ts';
import { createMatmulDispatch, supportedMatmulVariants } from '../kernels/matmul.ts';
import { createPagedAttention, defaultPagedAttentionTiling, pagedAttentionPartialsLength, type PagedAttentionShape, type PagedAttentionVariantName } from '../kernels/paged-attention.ts';
import { ropeTable } from '../kernels/rope.ts';
import { createRowsEmbedding, createRowsRmsnorm, createRowsRope, createRowsSampler, packRowInfo, rowInfoWords, type RowInfo } from '../kernels/rows.ts';
import { checkBlockSize, pageBytes, pageElementOffset, pageLayout, PagePool, type PageCopy, type PageLayout } from '../kv/page-pool.ts';
import { PrefixCache } from '../kv/prefix-cache.ts';
import { layerTensor, type ModelConfig, type ModelDescription } from '../model/types.ts';
import type { WeightFormat } from '../quant/formats.ts';
import type { SamplingFilters } from '../reference/sample.ts';
import { GpuAllocator, uploadWeights, type GpuWeights } from './weights.ts';

export interface BatchModelOptions {
  /** Format of the projection and classifier weights (default f32). */
  weightFormat?: WeightFormat;
  /** Tokens per KV page: 8, 16 or 32 (default 16). */
  blockSize?: number;
  /** Pages in the pool (default: enough for maxSequences full contexts). */
  pageCount?: number;
  /** Longest sequence, prompt included (default and cap: the model's maxSeqLen). */
  contextLength?: number;
  /** Rows one step may hold (default 64). */
  maxRows?: number;
  /** Sequences one step may touch (default 32). */
  maxSequences?: number;
  /**
   * Weights already on the GPU in `weightFormat` (the single-sequence model's), borrowed instead
   * of uploaded again: the owner must outlive this model.
   */
  weights?: GpuWeights;
  /**
   * Largest buffer one weight tensor may take when this model uploads its own weights: bigger ones
   * are split by rows across buffers (runtime/weights.ts). Tests force splitting with it.
   */
  maxBindingBytes?: number;
}

/** Attention over the pages: fused online softmax, split-K (flash-decoding), or scores → softmax → weighted sum. */
export type BatchAttention = 'fused' | 'splitK' | 'unfused';

const attentionVariantNames: Record<BatchAttention, PagedAttentionVariantName> = { fused: 'whole', splitK: 'splitK', unfused: 'unfused' };

/** One token of one sequence in a step. */
export interface StepRow {
  /** The sequence's block table (physical page of each logical block). */
  blockTable: readonly number[];
  token: number;
  /** Position of `token` in its sequence; attention reads positions 0..position. */
  position: number;
  /** Sample the next token from this row's logits (the sequence's last row of the step), or null. */
  sample: { seed: number; temperature: number; filters?: SamplingFilters } | null;
}

/** Scratch memory of one step, for up to maxRows rows (the batched twin of gpu-model.ts's RunState). */
interface BatchState {
  rowInfo: GPUBuffer; // (maxRows, rowInfoWords) u32
  seqInfo: GPUBuffer; // (maxRows) of (blockTableOffset, length)
  blockTables: GPUBuffer; // u32 pages of every sequence in the step, concatenated
  x: GPUBuffer; // (maxRows, dim) residual stream
  xb: GPUBuffer; // (maxRows, dim)
  xb2: GPUBuffer; // (maxRows, dim)
  q: GPUBuffer; // (maxRows, nHeads * headDim)
  k: GPUBuffer; // (maxRows, kvDim)
  v: GPUBuffer; // (maxRows, kvDim)
  att: GPUBuffer; // (maxRows, nHeads * headDim)
  hb: GPUBuffer; // (maxRows, hiddenDim)
  hb2: GPUBuffer; // (maxRows, hiddenDim)
  logits: GPUBuffer; // (maxRows, vocab)
  tokens: GPUBuffer; // (maxRows) u32 sampled tokens
  kvPool: GPUBuffer; // (page, layer, k|v, slot, kvDim)
  partials: GPUBuffer; // split-K attention: per (row, head, chunk) partial results
  scores: GPUBuffer; // unfused attention: (maxRows, nHeads, contextLength)
  ropeTable: GPUBuffer; // (contextLength, headDim/2, 2)
  readback: GPUBuffer; // (maxRows) u32, MAP_READ
}

export class BatchModel {
  readonly pool: PagePool;
  /** Full prompt pages kept for reuse; lives as long as the pool, across schedulers. */
  readonly prefixCache: PrefixCache;
  readonly layout: PageLayout;
  /** Dispatch lists by attention variant and row count: built on first use, then only re-encoded. */
  private readonly steps = new Map<string, Promise<Dispatch[]>>();
  /** The attention kernel the next steps use (the lab flips it while the model stays loaded). */
  attention: BatchAttention = 'fused';
  private readonly kc: KernelContext;
  // Staging of the per-step inputs, allocated once (a step only fills and writes them).
  private readonly rowWords: Uint32Array;
  private readonly seqWords: Uint32Array;
  private readonly tableWords: Uint32Array;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: ModelConfig,
    readonly contextLength: number,
    readonly maxRows: number,
    readonly maxSequences: number,
    readonly weightFormat: WeightFormat,
    private readonly weights: GpuWeights,
    private readonly state: BatchState,
    private readonly allocator: GpuAllocator,
    pageCount: number,
    blockSize: number,
  ) {
    this.layout = pageLayout(config, blockSize);
    this.pool = new PagePool(pageCount, checkBlockSize(blockSize));
    this.prefixCache = new PrefixCache(this.pool);
    this.kc = new KernelContext(gpu);
    this.rowWords = new Uint32Array(maxRows * rowInfoWords);
    this.seqWords = new Uint32Array(maxRows * 2);
    this.tableWords = new Uint32Array(state.blockTables.size / 4);
  }

  /** Bytes of weights on the GPU (borrowed ones included). */
  get weightBytes(): number {
    return this.weights.matrixBytes + this.weights.embeddingBytes + this.weights.vectorBytes;
  }

  /** Bytes of the KV page pool. */
  get kvPoolBytes(): number {
    return this.state.kvPool.size;
  }

  static async create(gpu: GpuContext, model: ModelDescription, options: BatchModelOptions = {}): Promise<BatchModel> {
    const c = model.config;
    const format = options.weightFormat ?? 'f32';
    const blockSize = checkBlockSize(options.blockSize ?? 16);
    const contextLength = Math.min(c.maxSeqLen, options.contextLength ?? c.maxSeqLen);
    const maxRows = options.maxRows ?? 64;
    const maxSequences = options.maxSequences ?? 32;
    const layout = pageLayout(c, blockSize);
    const blocksPerSequence = Math.ceil(contextLength / blockSize);
    const pageCount = options.pageCount ?? maxSequences * blocksPerSequence;
    if (!Number.isInteger(pageCount) || pageCount < 1) throw new RequestError(`the KV pool needs at least one page, got ${pageCount}`);
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const allocator = new GpuAllocator(gpu.device);
    const rows = (label: string, width: number) => allocator.allocate(label, 4 * maxRows * width);
    const attentionShape = (batch: number): PagedAttentionShape => ({ nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, nLayers: c.nLayers, layer: 0, blockSize, batch, maxLength: contextLength, ...defaultPagedAttentionTiling });
    try {
      const weights = options.weights ?? (await uploadWeights(gpu, model, format, allocator, { maxBindingBytes: options.maxBindingBytes }));
      const state: BatchState = {
        rowInfo: await rows('rowInfo', rowInfoWords),
        seqInfo: await rows('seqInfo', 2),
        blockTables: await allocator.allocate('blockTables', 4 * maxSequences * blocksPerSequence),
        x: await rows('x', c.dim),
        xb: await rows('xb', c.dim),
        xb2: await rows('xb2', c.dim),
        q: await rows('q', qDim),
        k: await rows('k', kvDim),
        v: await rows('v', kvDim),
        att: await rows('att', qDim),
        hb: await rows('hb', c.hiddenDim),
        hb2: await rows('hb2', c.hiddenDim),
        logits: await rows('logits', c.vocabSize),
        tokens: await rows('tokens', 1),
        kvPool: await allocator.allocate('kvPool', pageCount * pageBytes(layout)),
        partials: await allocator.allocate('attention.partials', 4 * pagedAttentionPartialsLength(attentionShape(maxRows))),
        scores: await allocator.allocate('attention.scores', 4 * maxRows * c.nHeads * contextLength),
        ropeTable: await allocator.allocate('ropeTable', 4 * contextLength * c.headDim),
        readback: await allocator.allocate('tokens.readback', 4 * maxRows, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
      };
      gpu.device.queue.writeBuffer(state.ropeTable, 0, ropeTable(contextLength, c.headDim, c.ropeTheta, c.ropeScaling));
      return new BatchModel(gpu, c, contextLength, maxRows, maxSequences, format, weights, state, allocator, pageCount, blockSize);
    } catch (error) {
      allocator.destroyAll();
      throw error;
    }
  }

  /** The forward pass of `rows` rows: embedding, every layer, the head and the per-row sampler. */
  private buildStep(rows: number, attention: BatchAttention): Promise<Dispatch[]> {
    const c = this.config;
    const s = this.state;
    const kc = this.kc;
    const w = (name: string) => this.weights.get(name);
    // The tiled product pays off once a step has several rows; one row is a matrix-vector product.
    const variants = supportedMatmulVariants(this.gpu.adapter, this.weightFormat).map((v) => v.name);
    const variant = rows >= 4 && variants.includes('tiled') ? 'tiled' : 'naive';
    // One dispatch per part of a matrix split across buffers, each writing its columns of out (rows, whole rows).
    const matmul = (name: string, x: GPUBuffer, out: GPUBuffer) => {
      const stride = this.weights.shape(name).rows;
      const parts = this.weights.parts(name);
      return Promise.all(parts.map((part, i) => createMatmulDispatch(kc, parts.length > 1 ? `${name}.part${i}` : name, { weight: part.buffer, x, out }, part.shape, rows, variant, { stride, offset: part.firstRow })));
    };
    const embeddingParts = this.weights.parts('tokenEmbedding');
    const attentionShape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, nLayers: c.nLayers, blockSize: this.layout.blockSize, batch: rows, maxLength: this.contextLength, ...defaultPagedAttentionTiling };

    const parts: Array<Promise<Dispatch | Dispatch[]>> = embeddingParts.map((part, i) =>
      createRowsEmbedding(kc, embeddingParts.length > 1 ? `embedding.part${i}` : 'embedding', { rowInfo: s.rowInfo, table: part.buffer, out: s.x }, { dim: c.dim, vocab: c.vocabSize, rows }, { firstRow: part.firstRow, rows: part.shape.rows }),
    );
    for (let l = 0; l < c.nLayers; l++) {
      const t = (name: Parameters<typeof layerTensor>[1]) => layerTensor(l, name);
      const at = `layers.${l}`;
      parts.push(
        // attention rmsnorm
        createRowsRmsnorm(kc, `${at}.attnNorm`, { x: s.x, weight: w(t('attnNorm')), out: s.xb }, { dim: c.dim, eps: c.rmsEps, rows }),
        // q, k, v projections of every row at once
        matmul(t('wq'), s.xb, s.q),
        matmul(t('wk'), s.xb, s.k),
        matmul(t('wv'), s.xb, s.v),
        // Qwen2: the projections' biases, added to every row
        ...(c.attentionBias
          ? [
              createBiasAdd(kc, `${at}.bq`, s.q, w(t('bq')), c.nHeads * c.headDim, rows),
              createBiasAdd(kc, `${at}.bk`, s.k, w(t('bk')), c.nKvHeads * c.headDim, rows),
              createBiasAdd(kc, `${at}.bv`, s.v, w(t('bv')), c.nKvHeads * c.headDim, rows),
            ]
          : []),
        // RoPE at each row's position; k and v into the row's page slot
        createRowsRope(kc, `${at}.rope`, { rowInfo: s.rowInfo, ropeTable: s.ropeTable, q: s.q, k: s.k, v: s.v, kvPool: s.kvPool }, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, nLayers: c.nLayers, layer: l, blockSize: this.layout.blockSize, rows }),
        // attention of each row over its sequence's pages, up to its own position
        createPagedAttention(
          kc,
          `${at}.attention`,
          { q: s.q, kvPool: s.kvPool, blockTable: s.blockTables, seqInfo: s.seqInfo, out: s.att, partials: s.partials, scores: s.scores },
          { ...attentionShape, layer: l },
          attentionVariantNames[attention],
        ),
        // output projection, residual connection back into x
        matmul(t('wo'), s.att, s.xb2),
        createAdd(kc, `${at}.attnResidual`, s.x, s.xb2, rows * c.dim),
        // ffn rmsnorm, w2(silu(w1(x)) * w3(x)), residual
        createRowsRmsnorm(kc, `${at}.ffnNorm`, { x: s.x, weight: w(t('ffnNorm')), out: s.xb }, { dim: c.dim, eps: c.rmsEps, rows }),
        matmul(t('w1'), s.xb, s.hb),
        matmul(t('w3'), s.xb, s.hb2),
        createSwiglu(kc, `${at}.swiglu`, s.hb, s.hb2, rows * c.hiddenDim),
        matmul(t('w2'), s.hb, s.xb2),
        createAdd(kc, `${at}.ffnResidual`, s.x, s.xb2, rows * c.dim),
      );
    }
    parts.push(
      // final rmsnorm, the classifier for every row, then each row's sampler
      createRowsRmsnorm(kc, 'finalNorm', { x: s.x, weight: w('finalNorm'), out: s.xb }, { dim: c.dim, eps: c.rmsEps, rows }),
      matmul('classifier', s.xb, s.logits),
      createRowsSampler(kc, 'sampler', { rowInfo: s.rowInfo, logits: s.logits, tokens: s.tokens }, { vocab: c.vocabSize, rows }),
    );
    return Promise.all(parts).then((list) => list.flat());
  }

  /**
   * Runs one step over `rows` (whose pages the caller has reserved in `pool`, after applying
   * `copies` from copy-on-write) and returns the sampled token of every row that asked for one, in
   * row order. Rows that do not sample still write their K/V (prefill).
   */
  async step(rows: readonly StepRow[], copies: readonly PageCopy[] = []): Promise<number[]> {
    return (await this.run(rows, copies, false)).tokens;
  }

  /**
   * step(), also reading back the logits of every sampling row (speculative decoding's verification
   * needs each position's whole distribution, not just the token the GPU sampler drew from it).
   */
  async stepWithLogits(rows: readonly StepRow[], copies: readonly PageCopy[] = []): Promise<{ tokens: number[]; logits: Float32Array[] }> {
    return this.run(rows, copies, true);
  }

  private async run(rows: readonly StepRow[], copies: readonly PageCopy[], withLogits: boolean): Promise<{ tokens: number[]; logits: Float32Array[] }> {
    if (rows.length === 0) return { tokens: [], logits: [] };
    if (rows.length > this.maxRows) throw new RequestError(`a step holds at most ${this.maxRows} rows, got ${rows.length}`);
    const { device } = this.gpu;
    const s = this.state;
    const blockSize = this.layout.blockSize;

    // Each distinct block table once, in first-use order; rows point into the concatenation.
    const offsets = new Map<readonly number[], number>();
    let tableLength = 0;
    const info: RowInfo[] = [];
    rows.forEach((row, r) => {
      if (row.position >= this.contextLength) throw new RequestError(`position ${row.position} is past the context of ${this.contextLength} tokens`);
      let offset = offsets.get(row.blockTable);
      if (offset === undefined) {
        if (offsets.size === this.maxSequences) throw new RequestError(`a step touches at most ${this.maxSequences} sequences`);
        offset = tableLength;
        offsets.set(row.blockTable, offset);
        this.tableWords.set(row.blockTable, offset);
        tableLength += row.blockTable.length;
      }
      const page = row.blockTable[Math.floor(row.position / blockSize)];
      if (page === undefined) throw new RequestError(`position ${row.position} has no page in its block table (${row.blockTable.length} pages reserved)`);
      // (blockTableOffset, length) per row, as packSeqInfo lays them out.
      this.seqWords[2 * r] = offset;
      this.seqWords[2 * r + 1] = row.position + 1;
      info.push({ token: row.token, position: row.position, page, slot: row.position % blockSize, seed: row.sample?.seed ?? 0, temperature: row.sample?.temperature ?? 0, filters: row.sample?.filters });
    });
    device.queue.writeBuffer(s.rowInfo, 0, packRowInfo(info, this.rowWords));
    device.queue.writeBuffer(s.seqInfo, 0, this.seqWords, 0, 2 * rows.length);
    device.queue.writeBuffer(s.blockTables, 0, this.tableWords, 0, tableLength);

    const dispatches = await this.dispatchesFor(rows.length);
    const encoder = device.createCommandEncoder({ label: `batch step (${rows.length} rows)` });
    const bytesPerPage = pageBytes(this.layout);
    for (const { from, to } of copies) encoder.copyBufferToBuffer(s.kvPool, from * bytesPerPage, s.kvPool, to * bytesPerPage, bytesPerPage);
    const pass = encoder.beginComputePass({ label: 'batch forward' });
    encodeDispatches(pass, dispatches);
    pass.end();
    encoder.copyBufferToBuffer(s.tokens, 0, s.readback, 0, 4 * rows.length);
    const logitsBytes = 4 * rows.length * this.config.vocabSize;
    const logitsReadback = withLogits ? this.logitsReadback() : null;
    if (logitsReadback) encoder.copyBufferToBuffer(s.logits, 0, logitsReadback, 0, logitsBytes);
    device.queue.submit([encoder.finish()]);

    await s.readback.mapAsync(GPUMapMode.READ, 0, 4 * rows.length);
    const sampled = new Uint32Array(s.readback.getMappedRange(0, 4 * rows.length).slice(0));
    s.readback.unmap();
    const tokens = rows.flatMap((row, i) => (row.sample ? [sampled[i]] : []));
    if (!logitsReadback) return { tokens, logits: [] };
    await logitsReadback.mapAsync(GPUMapMode.READ, 0, logitsBytes);
    const all = new Float32Array(logitsReadback.getMappedRange(0, logitsBytes).slice(0));
    logitsReadback.unmap();
    const vocab = this.config.vocabSize;
    const logits = rows.flatMap((row, i) => (row.sample ? [all.subarray(i * vocab, (i + 1) * vocab)] : []));
    return { tokens, logits };
  }

  /** The logits read-back buffer (maxRows x vocab), allocated on first use: only verification reads logits. */
  private logitsReadback(): GPUBuffer {
    this.logitsStaging ??= this.gpu.device.createBuffer({ label: 'logits.readback', size: 4 * this.maxRows * this.config.vocabSize, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    return this.logitsStaging;
  }

  private logitsStaging: GPUBuffer | null = null;

  /**
   * The K and V a sequence holds at positions [0, length), read back from its pages as
   * (layer, k|v, position, kvDim): what tests compare after a speculative rollback.
   */
  async readKv(blockTable: readonly number[], length: number): Promise<Float32Array> {
    const { nLayers, kvDim, blockSize } = this.layout;
    const bytesPerPage = pageBytes(this.layout);
    const pages = Math.ceil(length / blockSize);
    if (pages > blockTable.length) throw new RangeError(`${length} positions need ${pages} pages, the block table has ${blockTable.length}`);
    const staging = this.gpu.device.createBuffer({ label: 'kv.readback', size: Math.max(4, pages * bytesPerPage), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      const encoder = this.gpu.device.createCommandEncoder({ label: 'kv.readback' });
      for (let b = 0; b < pages; b++) encoder.copyBufferToBuffer(this.state.kvPool, blockTable[b] * bytesPerPage, staging, b * bytesPerPage, bytesPerPage);
      this.gpu.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const raw = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      const out = new Float32Array(nLayers * 2 * length * kvDim);
      for (let pos = 0; pos < length; pos++) {
        const block = Math.floor(pos / blockSize);
        for (let layer = 0; layer < nLayers; layer++) {
          for (const kOrV of [0, 1] as const) {
            // The page's own offset formula with the staging copy's page index in place of the physical one.
            const from = pageElementOffset(this.layout, block, layer, kOrV, pos % blockSize, 0);
            out.set(raw.subarray(from, from + kvDim), ((layer * 2 + kOrV) * length + pos) * kvDim);
          }
        }
      }
      return out;
    } finally {
      staging.destroy();
    }
  }

  private dispatchesFor(rows: number): Promise<Dispatch[]> {
    const key = `${this.attention}:${rows}`;
    let list = this.steps.get(key);
    if (!list) {
      list = this.buildStep(rows, this.attention);
      this.steps.set(key, list);
      list.catch(() => this.steps.delete(key));
    }
    return list;
  }

  destroy(): void {
    this.allocator.destroyAll();
    this.logitsStaging?.destroy();
  }
}
