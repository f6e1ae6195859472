// Decode attention for one query position over a contiguous KV cache, one workgroup per query
// head. Grouped-query attention reads the shared KV head in place (no duplicated K/V):
// query head h uses KV head h / (nHeads / nKvHeads).
// Scores live in a storage scratch buffer so any context length fits.

struct Params {
  nHeads: u32,
  nKvHeads: u32,
  headDim: u32,
  kvDim: u32,
  cacheOffset: u32, // first element of this layer in the caches
  maxSeq: u32, // scores row stride
  scale: f32, // 1 / sqrt(headDim)
}

struct Step {
  pos: u32,
  seed: u32,
  temperature: f32,
}

override WORKGROUP_SIZE: u32 = 64; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> stepParams: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>; // (nHeads * headDim)
@group(0) @binding(3) var<storage, read> keyCache: array<f32>; // (layer, maxSeq, kvDim)
@group(0) @binding(4) var<storage, read> valueCache: array<f32>; // (layer, maxSeq, kvDim)
@group(0) @binding(5) var<storage, read_write> scores: array<f32>; // (nHeads, maxSeq)
@group(0) @binding(6) var<storage, read_write> out: array<f32>; // (nHeads * headDim)

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn reduceMax(lane: u32, value: f32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] = max(partial[lane], partial[lane + stride]);
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier(); // partial is reused by the next reduction
  return result;
}

fn reduceSum(lane: u32, value: f32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let head = wg.x;
  let kvHead = head / (params.nHeads / params.nKvHeads);
  let qBase = head * params.headDim;
  let kvBase = params.cacheOffset + kvHead * params.headDim;
  let scoreBase = head * params.maxSeq;
  let length = stepParams.pos + 1u;

  // scores = q·k / sqrt(headDim) for every cached position
  var localMax = -3.4028234e38; // lowest finite f32
  for (var t = lane; t < length; t += WORKGROUP_SIZE) {
    var dot = 0.0;
    let kRow = kvBase + t * params.kvDim;
    for (var d = 0u; d < params.headDim; d++) {
      dot += q[qBase + d] * keyCache[kRow + d];
    }
    let s = dot * params.scale;
    scores[scoreBase + t] = s;
    localMax = max(localMax, s);
  }
  let maxScore = reduceMax(lane, localMax);

  // softmax numerators, and their sum
  var localSum = 0.0;
  for (var t = lane; t < length; t += WORKGROUP_SIZE) {
    let e = exp(scores[scoreBase + t] - maxScore);
    scores[scoreBase + t] = e;
    localSum += e;
  }
  let total = reduceSum(lane, localSum);
  storageBarrier(); // other threads read the numerators written above

  // out = Σ_t softmax(t) · v_t
  for (var d = lane; d < params.headDim; d += WORKGROUP_SIZE) {
    var acc = 0.0;
    for (var t = 0u; t < length; t++) {
      acc += scores[scoreBase + t] * valueCache[kvBase + t * params.kvDim + d];
    }
    out[qBase + d] = acc / total;
  }
}
