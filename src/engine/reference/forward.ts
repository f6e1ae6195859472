// The CPU reference forward pass: the numerical oracle every GPU kernel is checked against.
// Written to be read next to llama2.c run.c: one token at a time, one comment per stage, all
// scratch memory in one RunState allocated up front.
import { RequestError } from '../errors.ts';
import { type ModelConfig, type ModelDescription, getTensor, layerTensor } from '../model/types.ts';
import { addInPlace, attention, matvec, rmsnorm, rope, swiglu } from './ops.ts';
import { uniform } from './rng.ts';
import { sampleToken } from './sample.ts';

// ----------------------------------------------------------------------------
// weights and state

interface LayerWeights {
  attnNorm: Float32Array; // (dim)
  wq: Float32Array; // (nHeads * headDim, dim)
  wk: Float32Array; // (nKvHeads * headDim, dim)
  wv: Float32Array; // (nKvHeads * headDim, dim)
  wo: Float32Array; // (dim, nHeads * headDim)
  ffnNorm: Float32Array; // (dim)
  w1: Float32Array; // (hiddenDim, dim) gate
  w2: Float32Array; // (dim, hiddenDim) down
  w3: Float32Array; // (hiddenDim, dim) up
  /** The q, k, v biases of a model with attentionBias (Qwen2). */
  bias?: { q: Float32Array; k: Float32Array; v: Float32Array }; // (nHeads * headDim), (kvDim), (kvDim)
}

interface Weights {
  tokenEmbedding: Float32Array; // (vocab, dim)
  layers: LayerWeights[]; // (nLayers)
  finalNorm: Float32Array; // (dim)
  classifier: Float32Array; // (vocab, dim), the embedding itself when tied
}

/** Every activation buffer, allocated once for the model's shapes and the context length. */
class RunState {
  x: Float32Array; // (dim) the residual stream at the current position
  xb: Float32Array; // (dim) normalized input of a block, then the block's output
  q: Float32Array; // (nHeads * headDim) query
  attnOut: Float32Array; // (nHeads * headDim) attention output, before wo
  scores: Float32Array; // (seqLen) attention scores of one head
  hb: Float32Array; // (hiddenDim) ffn gate, then silu(gate) * up
  hb2: Float32Array; // (hiddenDim) ffn up
  logits: Float32Array; // (vocab)
  keyCache: Float32Array; // (layer, seqLen, nKvHeads * headDim)
  valueCache: Float32Array; // (layer, seqLen, nKvHeads * headDim)

  constructor(c: ModelConfig, seqLen: number) {
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    this.x = new Float32Array(c.dim);
    this.xb = new Float32Array(c.dim);
    this.q = new Float32Array(qDim);
    this.attnOut = new Float32Array(qDim);
    this.scores = new Float32Array(seqLen);
    this.hb = new Float32Array(c.hiddenDim);
    this.hb2 = new Float32Array(c.hiddenDim);
    this.logits = new Float32Array(c.vocabSize);
    this.keyCache = new Float32Array(c.nLayers * seqLen * kvDim);
    this.valueCache = new Float32Array(c.nLayers * seqLen * kvDim);
  }
}

// ----------------------------------------------------------------------------
// the transformer

export class ReferenceModel {
  readonly config: ModelConfig;
  /** Context length: the KV cache holds positions 0..seqLen-1. */
  readonly seqLen: number;
  readonly #weights: Weights;
  readonly #state: RunState;

  constructor(model: ModelDescription, seqLen = model.config.maxSeqLen) {
    this.config = model.config;
    this.seqLen = seqLen;
    const data = (name: string): Float32Array => getTensor(model, name).data;
    this.#weights = {
      tokenEmbedding: data('tokenEmbedding'),
      layers: Array.from({ length: model.config.nLayers }, (_, l) => ({
        attnNorm: data(layerTensor(l, 'attnNorm')),
        wq: data(layerTensor(l, 'wq')),
        wk: data(layerTensor(l, 'wk')),
        wv: data(layerTensor(l, 'wv')),
        wo: data(layerTensor(l, 'wo')),
        ffnNorm: data(layerTensor(l, 'ffnNorm')),
        w1: data(layerTensor(l, 'w1')),
        w2: data(layerTensor(l, 'w2')),
        w3: data(layerTensor(l, 'w3')),
        bias: model.config.attentionBias ? { q: data(layerTensor(l, 'bq')), k: data(layerTensor(l, 'bk')), v: data(layerTensor(l, 'bv')) } : undefined,
      })),
      finalNorm: data('finalNorm'),
      classifier: data('classifier'),
    };
    this.#state = new RunState(model.config, seqLen);
  }

  /**
   * Runs `token` at position `pos` (after positions 0..pos-1 were run) and returns the logits
   * (vocab) for the next position. The array is reused: the next call overwrites it.
   */
  forward(token: number, pos: number): Float32Array {
    const c = this.config;
    const w = this.#weights;
    const s = this.#state;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) throw new RangeError(`token ${token} is outside the vocabulary of ${c.vocabSize}`);
    if (!Number.isInteger(pos) || pos < 0 || pos >= this.seqLen) throw new RangeError(`position ${pos} is outside the context of ${this.seqLen}`);
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;

    // copy the token's embedding into the residual stream
    s.x.set(w.tokenEmbedding.subarray(token * c.dim, (token + 1) * c.dim));

    for (let l = 0; l < c.nLayers; l++) {
      const layer = w.layers[l];
      const layerKeys = s.keyCache.subarray(l * this.seqLen * kvDim, (l + 1) * this.seqLen * kvDim); // (seqLen, kvDim)
      const layerValues = s.valueCache.subarray(l * this.seqLen * kvDim, (l + 1) * this.seqLen * kvDim); // (seqLen, kvDim)
      const k = layerKeys.subarray(pos * kvDim, (pos + 1) * kvDim); // (kvDim) this position's cache row
      const v = layerValues.subarray(pos * kvDim, (pos + 1) * kvDim); // (kvDim) this position's cache row

      // attention rmsnorm
      rmsnorm(s.xb, s.x, layer.attnNorm, c.rmsEps);

      // q, k, v for this position; k and v go straight into the cache
      matvec(s.q, layer.wq, s.xb, qDim, c.dim);
      matvec(k, layer.wk, s.xb, kvDim, c.dim);
      matvec(v, layer.wv, s.xb, kvDim, c.dim);
      if (layer.bias) {
        // Qwen2: the projections' biases
        addInPlace(s.q, layer.bias.q);
        addInPlace(k, layer.bias.k);
        addInPlace(v, layer.bias.v);
      }

      // RoPE: rotate q and k by the position
      rope(s.q, c.nHeads, c.headDim, pos, c.ropeTheta, c.ropeScaling);
      rope(k, c.nKvHeads, c.headDim, pos, c.ropeTheta, c.ropeScaling);

      // multi-head attention over positions 0..pos
      attention(s.attnOut, s.scores, s.q, layerKeys, layerValues, pos, c);

      // output projection, then the residual connection back into x
      matvec(s.xb, layer.wo, s.attnOut, c.dim, qDim);
      addInPlace(s.x, s.xb);

      // ffn rmsnorm
      rmsnorm(s.xb, s.x, layer.ffnNorm, c.rmsEps);

      // SwiGLU feed-forward: w2(silu(w1(x)) * w3(x))
      matvec(s.hb, layer.w1, s.xb, c.hiddenDim, c.dim);
      matvec(s.hb2, layer.w3, s.xb, c.hiddenDim, c.dim);
      swiglu(s.hb, s.hb, s.hb2);
      matvec(s.xb, layer.w2, s.hb, c.dim, c.hiddenDim);

      // residual connection back into x
      addInPlace(s.x, s.xb);
    }

    // final rmsnorm
    rmsnorm(s.x, s.x, w.finalNorm, c.rmsEps);

    // classifier into logits
    matvec(s.logits, w.classifier, s.x, c.vocabSize, c.dim);
    return s.logits;
  }
}

// ----------------------------------------------------------------------------
// generation

/**
 * Runs the prompt (which starts with BOS) token by token, then samples: the token at position p is
 * sampleToken(logits, temperature, uniform(seed, p)). Stops after any of `stopIds` (which is kept), after
 * `maxNewTokens`, or when the sequence fills the context. Returns the whole sequence.
 */
export function referenceGenerate(
  model: ModelDescription,
  promptTokens: readonly number[],
  maxNewTokens: number,
  temperature: number,
  seed: number,
  stopIds: readonly number[],
  seqLen = model.config.maxSeqLen,
): number[] {
  if (promptTokens.length === 0) throw new RequestError('the prompt must hold at least the BOS token');
  if (promptTokens.length > seqLen) throw new RequestError(`the prompt is ${promptTokens.length} tokens, past the context of ${seqLen}`);
  const reference = new ReferenceModel(model, seqLen);
  let logits: Float32Array = new Float32Array(0);
  promptTokens.forEach((token, pos) => {
    logits = reference.forward(token, pos);
  });

  const tokens = [...promptTokens];
  while (tokens.length - promptTokens.length < maxNewTokens && tokens.length < seqLen) {
    const pos = tokens.length; // position of the token being sampled
    const next = sampleToken(logits, temperature, uniform(seed >>> 0, pos));
    tokens.push(next);
    if (stopIds.includes(next)) break;
    logits = reference.forward(next, pos);
  }
  return tokens;
}
