// Decode attention over a paged KV cache: one query token per sequence, a batch of sequences per
// dispatch. The fused passes compute softmax online, so no score row is stored; the split-K passes
// spread one context over several workgroups (flash-decoding). The unfused passes are the baseline
// they are measured against: every score goes to memory, is normalized there and read back.
//
// Page layout (one pool for all layers; src/engine/kv/page-pool.ts allocates the pages): page p
// holds `blockSize` token slots of every layer, K then V, each slot kvDim f32, so element
//   ((((page * nLayers + layer) * 2 + kv) * blockSize + slot) * kvDim + i),  kv: 0 = K, 1 = V.
// Sequence s owns blockTable[seqInfo[s].blockTableOffset ..]: logical block b (tokens
// b*blockSize .. b*blockSize + blockSize - 1) lives in page blockTable[offset + b]. Tokens
// 0 .. seqInfo[s].length - 1 are valid, the current one included.
// Grouped-query attention reads the shared KV head in place: query head h uses KV head
// h / (nHeads / nKvHeads).
//
// Online softmax over a token range, tile by tile (WORKGROUP_SIZE tokens, one thread per token's
// score), keeps a running max m, sum l = Σ exp(s_t - m) and acc = Σ exp(s_t - m) v_t; a tile with
// max m' > m first rescales l and acc by exp(m - m'). Every thread scans the tile's scores itself
// instead of a tree reduction, so a tile costs three barriers (they dominate on software adapters);
// each thread's copy of m and l is the same, computed from the same values in the same order.
//
// Passes (src/engine/gpu/wgsl.ts expands the #if blocks; see pagedAttentionDefines in
// src/engine/kernels/paged-attention.ts). Each pass sets at most one flag:
//   no flag          `main`: one workgroup per (head, sequence) walks the whole context and writes
//                    out = acc / l. Grid (nHeads, 1, batch).
//   CHUNK_PARTIALS   `main`: split-K pass 1, one workgroup per (head, chunk of chunkSize tokens,
//                    sequence) writes its chunk's (m, l, acc) to `partials`; chunks past the
//                    sequence's end exit at once. Grid (nHeads, maxChunks, batch).
//   REDUCE_PARTIALS  `main`: split-K pass 2, one workgroup per (head, sequence) merges the chunks:
//                    M = max m_i, out = Σ exp(m_i - M) acc_i / Σ exp(m_i - M) l_i.
//                    Grid (nHeads, 1, batch).
//   SCORES           `main`: unfused pass 1, one thread per token writes q·k * scale to
//                    scores[seq, head, token]; tiles past the sequence's end exit at once.
//                    Grid (nHeads, ceil(maxLength / WORKGROUP_SIZE), batch).
//   SOFTMAX          `main`: unfused pass 2, one workgroup per (head, sequence) turns its row of
//                    `length` scores into probabilities in place: max, exp(s - max), sum, divide.
//                    Grid (nHeads, 1, batch).
//   WEIGHTED_SUM     `main`: unfused pass 3, one workgroup per (head, sequence), one thread per
//                    output element: out[d] = Σ_t p_t v_t[d]. Grid (nHeads, 1, batch).
// The unfused scores buffer is (batch, nHeads, maxLength) f32; no sequence may be longer than
// maxLength. An empty sequence (length 0) attends to nothing: its output is 0.

struct Params {
  nHeads: u32,
  nKvHeads: u32,
  kvDim: u32, // nKvHeads * HEAD_DIM
  nLayers: u32,
  layer: u32, // the layer whose K/V this dispatch reads
  blockSize: u32, // token slots per page
  chunkSize: u32, // tokens per workgroup in split-K pass 1
  maxChunks: u32, // chunk slots per (sequence, head) in partials
  maxLength: u32, // the unfused passes' scores row stride
  scale: f32, // 1 / sqrt(HEAD_DIM)
}

struct SeqInfo {
  blockTableOffset: u32,
  length: u32,
}

override WORKGROUP_SIZE: u32 = 64; // threads, and tokens per tile
override HEAD_DIM: u32 = 64;

override PARTIAL_STRIDE: u32 = HEAD_DIM + 2u; // derived, never set: one chunk's (m, l, acc) in partials

const LOWEST = -3.4028234e38; // lowest finite f32: exp(LOWEST - s) is 0 for any score s

@group(0) @binding(0) var<uniform> params: Params;

#if !REDUCE_PARTIALS
#if !SOFTMAX
// ---------------------------------------------------------------------------------------------
// The passes that read the pool: fused whole-context, split-K chunks, unfused scores and weighted sum

#if WEIGHTED_SUM
@group(0) @binding(1) var<storage, read> kvPool: array<f32>; // (page, layer, kv, slot, kvDim)
@group(0) @binding(2) var<storage, read> blockTable: array<u32>; // every sequence's pages
@group(0) @binding(3) var<storage, read> seqInfo: array<SeqInfo>; // (batch)
@group(0) @binding(4) var<storage, read> scoreRows: array<f32>; // (batch, nHeads, maxLength) probabilities
@group(0) @binding(5) var<storage, read_write> out: array<f32>; // (batch, nHeads, HEAD_DIM)
#else
@group(0) @binding(1) var<storage, read> q: array<f32>; // (batch, nHeads, HEAD_DIM)
@group(0) @binding(2) var<storage, read> kvPool: array<f32>; // (page, layer, kv, slot, kvDim)
@group(0) @binding(3) var<storage, read> blockTable: array<u32>; // every sequence's pages
@group(0) @binding(4) var<storage, read> seqInfo: array<SeqInfo>; // (batch)
#if CHUNK_PARTIALS
@group(0) @binding(5) var<storage, read_write> partials: array<f32>; // (batch, nHeads, maxChunks, 2 + HEAD_DIM)
#elif SCORES
@group(0) @binding(5) var<storage, read_write> scoreRows: array<f32>; // (batch, nHeads, maxLength)
#else
@group(0) @binding(5) var<storage, read_write> out: array<f32>; // (batch, nHeads, HEAD_DIM)
#endif
#endif

/** Pool offset of `token`'s K row in this layer; its V row follows blockSize rows later. */
fn keyRow(seq: SeqInfo, token: u32) -> u32 {
  let page = blockTable[seq.blockTableOffset + token / params.blockSize];
  let slot = token % params.blockSize;
  return (((page * params.nLayers + params.layer) * 2u) * params.blockSize + slot) * params.kvDim;
}

/** Offset of the first element of query head `head`'s KV head in a K or V row. */
fn kvHeadOffset(head: u32) -> u32 {
  return (head / (params.nHeads / params.nKvHeads)) * HEAD_DIM;
}

#if SCORES
var<workgroup> query: array<f32, HEAD_DIM>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let seqIndex = wg.z;
  let seq = seqInfo[seqIndex];
  let token = wg.y * WORKGROUP_SIZE + lane;
  if (wg.y * WORKGROUP_SIZE >= seq.length) {
    return; // the grid covers maxLength tokens; this tile is past the sequence's end
  }
  let qBase = (seqIndex * params.nHeads + head) * HEAD_DIM;
  for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
    query[d] = q[qBase + d];
  }
  workgroupBarrier();
  if (token < seq.length) {
    let k = keyRow(seq, token) + kvHeadOffset(head);
    var dot = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) {
      dot += query[d] * kvPool[k + d];
    }
    scoreRows[(seqIndex * params.nHeads + head) * params.maxLength + token] = dot * params.scale;
  }
}
#elif WEIGHTED_SUM
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let seqIndex = wg.z;
  let seq = seqInfo[seqIndex];
  let row = (seqIndex * params.nHeads + head) * params.maxLength;
  let valueOffset = params.blockSize * params.kvDim + kvHeadOffset(head); // from a K row to its V row's head
  let base = (seqIndex * params.nHeads + head) * HEAD_DIM;
  for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
    var sum = 0.0;
    for (var t = 0u; t < seq.length; t++) {
      sum += scoreRows[row + t] * kvPool[keyRow(seq, t) + valueOffset + d];
    }
    out[base + d] = sum;
  }
}
#else
var<workgroup> query: array<f32, HEAD_DIM>;
var<workgroup> acc: array<f32, HEAD_DIM>; // Σ exp(s_t - m) v_t over the tokens seen so far
var<workgroup> scores: array<f32, WORKGROUP_SIZE>; // the tile's q·k * scale
var<workgroup> weights: array<f32, WORKGROUP_SIZE>; // the tile's exp(score - m)
var<workgroup> valueRows: array<u32, WORKGROUP_SIZE>; // pool offset of each tile token's V row

struct Running {
  m: f32, // max score so far
  l: f32, // Σ exp(s_t - m)
}

/**
 * Online softmax of query head `head` of sequence `seqIndex` over its tokens [start, end): returns
 * (m, l) and leaves acc in workgroup memory, where thread `lane` owns elements lane, lane + WORKGROUP_SIZE, ...
 */
fn attendRange(lane: u32, seqIndex: u32, head: u32, start: u32, end: u32) -> Running {
  let seq = seqInfo[seqIndex];
  let headOffset = kvHeadOffset(head);
  let qBase = (seqIndex * params.nHeads + head) * HEAD_DIM;
  for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
    query[d] = q[qBase + d];
    acc[d] = 0.0;
  }
  var running = Running(LOWEST, 0.0);
  for (var tileStart = start; tileStart < end; tileStart += WORKGROUP_SIZE) {
    let count = min(WORKGROUP_SIZE, end - tileStart);
    workgroupBarrier(); // query is loaded; the previous tile's weights and rows have been read

    // one thread per token: its scaled score, and where its V row is
    if (lane < count) {
      let token = tileStart + lane;
      let k = keyRow(seq, token) + headOffset;
      var dot = 0.0;
      for (var d = 0u; d < HEAD_DIM; d++) {
        dot += query[d] * kvPool[k + d];
      }
      scores[lane] = dot * params.scale;
      valueRows[lane] = k + params.blockSize * params.kvDim;
    }
    workgroupBarrier();

    // the new running max (every thread scans the same scores), and this token's weight under it
    var tileMax = LOWEST;
    for (var t = 0u; t < count; t++) {
      tileMax = max(tileMax, scores[t]);
    }
    let m = max(running.m, tileMax);
    if (lane < count) {
      weights[lane] = exp(scores[lane] - m);
    }
    workgroupBarrier();

    // rescale what was summed under the old max, then add the tile
    let rescale = exp(running.m - m);
    var tileSum = 0.0;
    for (var t = 0u; t < count; t++) {
      tileSum += weights[t];
    }
    running = Running(m, running.l * rescale + tileSum);
    for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
      var sum = acc[d] * rescale;
      for (var t = 0u; t < count; t++) {
        sum += weights[t] * kvPool[valueRows[t] + d];
      }
      acc[d] = sum;
    }
  }
  return running;
}

#if CHUNK_PARTIALS
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let chunk = wg.y;
  let seqIndex = wg.z;
  let length = seqInfo[seqIndex].length;
  let start = chunk * params.chunkSize;
  if (start >= length) {
    return; // the reduce pass reads only the chunks that hold tokens
  }
  let running = attendRange(lane, seqIndex, head, start, min(start + params.chunkSize, length));
  let base = ((seqIndex * params.nHeads + head) * params.maxChunks + chunk) * PARTIAL_STRIDE;
  if (lane == 0u) {
    partials[base] = running.m;
    partials[base + 1u] = running.l;
  }
  for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
    partials[base + 2u + d] = acc[d];
  }
}
#else
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let seqIndex = wg.z;
  let running = attendRange(lane, seqIndex, head, 0u, seqInfo[seqIndex].length);
  let base = (seqIndex * params.nHeads + head) * HEAD_DIM;
  for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
    out[base + d] = select(acc[d] / running.l, 0.0, running.l == 0.0);
  }
}
#endif
#endif
#endif
#endif

#if REDUCE_PARTIALS
// ---------------------------------------------------------------------------------------------
// split-K pass 2: merge the chunks

@group(0) @binding(1) var<storage, read> seqInfo: array<SeqInfo>; // (batch)
@group(0) @binding(2) var<storage, read> partials: array<f32>; // (batch, nHeads, maxChunks, 2 + HEAD_DIM)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (batch, nHeads, HEAD_DIM)

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let seqIndex = wg.z;
  let chunks = (seqInfo[seqIndex].length + params.chunkSize - 1u) / params.chunkSize;
  let first = (seqIndex * params.nHeads + head) * params.maxChunks; // chunk slot 0

  // M = max over chunks of m_i; every thread scans the same values
  var mMax = LOWEST;
  for (var c = 0u; c < chunks; c++) {
    mMax = max(mMax, partials[(first + c) * PARTIAL_STRIDE]);
  }
  var l = 0.0;
  for (var c = 0u; c < chunks; c++) {
    let chunk = (first + c) * PARTIAL_STRIDE;
    l += partials[chunk + 1u] * exp(partials[chunk] - mMax);
  }
  let base = (seqIndex * params.nHeads + head) * HEAD_DIM;
  for (var d = lane; d < HEAD_DIM; d += WORKGROUP_SIZE) {
    var sum = 0.0;
    for (var c = 0u; c < chunks; c++) {
      let chunk = (first + c) * PARTIAL_STRIDE;
      sum += partials[chunk + 2u + d] * exp(partials[chunk] - mMax);
    }
    out[base + d] = select(sum / l, 0.0, l == 0.0);
  }
}
#endif

#if SOFTMAX
// ---------------------------------------------------------------------------------------------
// unfused pass 2: each score row becomes probabilities, in place

@group(0) @binding(1) var<storage, read> seqInfo: array<SeqInfo>; // (batch)
@group(0) @binding(2) var<storage, read_write> scoreRows: array<f32>; // (batch, nHeads, maxLength)

var<workgroup> lanePartials: array<f32, WORKGROUP_SIZE>; // each thread's max, then its sum

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let seqIndex = wg.z;
  let length = seqInfo[seqIndex].length;
  let row = (seqIndex * params.nHeads + head) * params.maxLength;

  // the row's max: each thread over its strided scores, then every thread scans the partials
  var laneMax = LOWEST;
  for (var t = lane; t < length; t += WORKGROUP_SIZE) {
    laneMax = max(laneMax, scoreRows[row + t]);
  }
  lanePartials[lane] = laneMax;
  workgroupBarrier();
  var rowMax = LOWEST;
  for (var i = 0u; i < WORKGROUP_SIZE; i++) {
    rowMax = max(rowMax, lanePartials[i]);
  }
  workgroupBarrier(); // every thread has read the maxima before they are overwritten

  // exp(s - max) in place, and the row's sum the same way
  var laneSum = 0.0;
  for (var t = lane; t < length; t += WORKGROUP_SIZE) {
    let e = exp(scoreRows[row + t] - rowMax);
    scoreRows[row + t] = e;
    laneSum += e;
  }
  lanePartials[lane] = laneSum;
  workgroupBarrier();
  var rowSum = 0.0;
  for (var i = 0u; i < WORKGROUP_SIZE; i++) {
    rowSum += lanePartials[i];
  }

  // each thread divides the elements it wrote itself, so no storage barrier is needed
  for (var t = lane; t < length; t += WORKGROUP_SIZE) {
    scoreRows[row + t] = scoreRows[row + t] / rowSum;
  }
}
#endif
