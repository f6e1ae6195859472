// Picks the next token from the logits on the GPU, so one 4-byte read-back per token suffices.
//   argmax:             greedy; ties go to the lowest id; NaN logits are never picked
//   sampleTemperature:  softmax(logits / T) sampled with the counter-based RNG below, which the
//                       CPU reference (src/engine/reference/rng.ts) reproduces bit for bit.
//   sampleFiltered:     a constraint's token mask, penalties, then temperature with top-k, top-p and min-p, exactly as
//                       src/engine/reference/sample.ts `sampleFiltered` defines them, without
//                       sorting the vocabulary: each cutoff is found by a binary search over the
//                       bit patterns of a threshold (32 counting passes for top-k's logit, 30
//                       summing passes for top-p's probability), every pass a walk of each
//                       thread's chunk. Temperature 0 with penalties is the penalized argmax.
// All run as one workgroup. Thread t owns the contiguous chunk [t * chunk, (t + 1) * chunk), so a
// walk over the chunks in thread order visits token ids in increasing order.
//
// Preprocessor flag (src/engine/gpu/wgsl.ts):
//   ROWS   one entry point, main, for a batch of rows (continuous batching): logits are
//          (rows, vocab) and each row takes one workgroup, which reads the row's position, seed,
//          temperature, top-k, top-p and min-p from its rowInfo entry (src/engine/kernels/rows.ts
//          packs them). A row with temperature 0 takes the argmax, any other samples exactly as
//          sampleFiltered does at that position (no penalties: they need per-sequence counts).
//          Rows past the per-dimension grid limit spill into y.

struct Params {
  vocab: u32,
#if ROWS
  rows: u32,
#endif
}

const WORKGROUP_SIZE: u32 = 256u;
const NONE: u32 = 0xffffffffu; // no candidate (an empty chunk, or only NaN logits)

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // (vocab), with ROWS (rows, vocab)
#if ROWS
override ROW_INFO_WORDS: u32; // rowInfoWords in src/engine/kernels/rows.ts
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>; // (rows): each row's token
@group(0) @binding(3) var<storage, read> rowInfo: array<u32>; // (rows, ROW_INFO_WORDS)

var<private> rowStart: u32; // index of the workgroup's row's first logit

fn logit(i: u32) -> f32 {
  return logits[rowStart + i];
}
#else
struct Step {
  pos: u32,
  seed: u32,
  temperature: f32,
}

// Set once per generation (sampleFiltered only).
struct Filters {
  topK: u32, // 0: off
  topP: f32, // 1: off
  minP: f32, // 0: off
  repetitionPenalty: f32, // 1: off
  frequencyPenalty: f32,
  presencePenalty: f32,
  penalize: u32, // 1 when any penalty is on: read and count `counts`
  masked: u32, // 1 under a constraint: tokens whose bit in `allowed` is clear are never picked
}

@group(0) @binding(2) var<storage, read_write> token: array<u32>; // (1): the chosen token
@group(0) @binding(3) var<uniform> stepParams: Step;
#if FILTERED
@group(0) @binding(4) var<uniform> filters: Filters;
// (vocab) occurrences of each token in the sequence so far; the sampler counts the token it picks.
@group(0) @binding(5) var<storage, read_write> counts: array<u32>;
// (ceil(vocab / 32)) bitset of the tokens a constraint allows now (src/engine/constrain/).
@group(0) @binding(6) var<storage, read> allowed: array<u32>;

// The logit under the constraint's mask, after the repetition (CTRL: divide a positive logit,
// multiply a negative one), frequency and presence penalties of a token seen `counts[i]` times.
fn logit(i: u32) -> f32 {
  if (filters.masked != 0u && (allowed[i >> 5u] & (1u << (i & 31u))) == 0u) {
    // Far below any logit (an infinity literal does not compile): its weight underflows to 0, so it is
    // never kept, and never the argmax while any token is allowed.
    return -1.0e38;
  }
  let v = logits[i];
  if (filters.penalize == 0u) {
    return v;
  }
  let seen = counts[i];
  if (seen == 0u) {
    return v;
  }
  let r = filters.repetitionPenalty;
  return select(v * r, v / r, v > 0.0) - filters.frequencyPenalty * f32(seen) - filters.presencePenalty;
}
#else
fn logit(i: u32) -> f32 {
  return logits[i];
}
#endif
#endif

var<workgroup> bestValue: array<f32, WORKGROUP_SIZE>;
var<workgroup> bestIndex: array<u32, WORKGROUP_SIZE>;
var<workgroup> chunkSum: array<f32, WORKGROUP_SIZE>;

fn chunkRange(lane: u32) -> vec2u {
  let chunk = (params.vocab + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
  let start = min(lane * chunk, params.vocab);
  return vec2u(start, min(start + chunk, params.vocab));
}

// Bit test, because WGSL lets compilers assume floats are never NaN (so v != v may fold to false).
fn isNan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Reduces (bestValue, bestIndex) over the workgroup; lane 0 ends with the maximum, lowest id on ties.
fn reduceBest(lane: u32) {
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      let v = bestValue[lane + stride];
      let i = bestIndex[lane + stride];
      let mine = bestIndex[lane];
      if (i != NONE && (mine == NONE || v > bestValue[lane] || (v == bestValue[lane] && i < mine))) {
        bestValue[lane] = v;
        bestIndex[lane] = i;
      }
    }
    workgroupBarrier();
  }
}

fn localBest(lane: u32) {
  let range = chunkRange(lane);
  var value = 0.0;
  var index = NONE;
  for (var i = range.x; i < range.y; i++) {
    let v = logit(i);
    if (!isNan(v) && (index == NONE || v > value)) {
      value = v;
      index = i;
    }
  }
  bestValue[lane] = value;
  bestIndex[lane] = index;
  workgroupBarrier();
  reduceBest(lane);
}

// The argmax once localBest has run. All-NaN logits leave no candidate: fall back to token 0.
fn bestToken() -> u32 {
  return select(bestIndex[0], 0u, bestIndex[0] == NONE);
}

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in [0, 1) from (seed, counter); the counter is the position of the token being sampled.
fn uniform01(seed: u32, counter: u32) -> f32 {
  return f32(pcg(seed ^ pcg(counter)) >> 8u) / 16777216.0;
}

// Draws from softmax(logits / temperature) for the token at position pos, once localBest has run.
// Every lane must call it; only lane 0's result is the token.
fn drawToken(lane: u32, temperature: f32, seed: u32, pos: u32) -> u32 {
  let maxLogit = bestValue[0];
  let invT = 1.0 / temperature;
  let range = chunkRange(lane);
  var sum = 0.0;
  for (var i = range.x; i < range.y; i++) {
    let v = logit(i);
    if (!isNan(v)) {
      sum += exp((v - maxLogit) * invT);
    }
  }
  // chunkSum keeps each lane's sum for the walk below.
  let total = workgroupSum(lane, sum);
  if (lane != 0u) {
    return NONE;
  }
  let goal = uniform01(seed, pos + 1u) * total;
  // Walk the chunks to the one holding the target mass, then its tokens.
  var cumulative = 0.0;
  var chosen = NONE;
  var lastPositive = bestToken();
  for (var t = 0u; t < WORKGROUP_SIZE && chosen == NONE; t++) {
    if (cumulative + chunkSum[t] <= goal) {
      cumulative += chunkSum[t];
      continue;
    }
    let r = chunkRange(t);
    for (var i = r.x; i < r.y; i++) {
      let v = logit(i);
      if (isNan(v)) {
        continue;
      }
      let p = exp((v - maxLogit) * invT);
      cumulative += p;
      if (p > 0.0) {
        lastPositive = i;
      }
      if (cumulative > goal) {
        chosen = i;
        break;
      }
    }
  }
  return select(chosen, lastPositive, chosen == NONE);
}

// --- top-k / top-p / min-p ------------------------------------------------------------------

var<workgroup> laneCount: array<u32, WORKGROUP_SIZE>;
var<workgroup> equalBefore: array<u32, WORKGROUP_SIZE>; // top-k ties in the lanes before this one
var<workgroup> sharedCount: u32;
var<workgroup> sharedSum: f32;

// Logits as u32 keys in the same order (larger logit, larger key); NaN gets 0, below every key kept.
fn orderKey(v: f32) -> u32 {
  if (isNan(v)) {
    return 0u;
  }
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Every lane's `mine`, summed by lane 0 in lane order and handed to all lanes.
fn workgroupCount(lane: u32, mine: u32) -> u32 {
  laneCount[lane] = mine;
  workgroupBarrier();
  if (lane == 0u) {
    var total = 0u;
    for (var t = 0u; t < WORKGROUP_SIZE; t++) {
      total += laneCount[t];
    }
    sharedCount = total;
  }
  return workgroupUniformLoad(&sharedCount);
}

fn workgroupSum(lane: u32, mine: f32) -> f32 {
  chunkSum[lane] = mine;
  workgroupBarrier();
  if (lane == 0u) {
    var total = 0.0;
    for (var t = 0u; t < WORKGROUP_SIZE; t++) {
      total += chunkSum[t];
    }
    sharedSum = total;
  }
  return workgroupUniformLoad(&sharedSum);
}

fn countAtLeast(lane: u32, key: u32) -> u32 {
  let range = chunkRange(lane);
  var n = 0u;
  for (var i = range.x; i < range.y; i++) {
    n += select(0u, 1u, orderKey(logit(i)) >= key);
  }
  return n;
}

// The top-k set: keys above `threshold`, and the first `needEqual` tokens (lowest ids) whose key
// equals it. Off: threshold 1 (every non-NaN key is at least that) with room for every tie.
struct TopK {
  threshold: u32,
  needEqual: u32,
}

fn findTopK(lane: u32, k: u32) -> TopK {
  let valid = workgroupCount(lane, countAtLeast(lane, 1u));
  var cut = TopK(1u, 0xffffffffu);
  if (k > 0u && k < valid) {
    // The largest key t with at least k keys >= t: the k-th largest key.
    var lo = 1u;
    var hi = 0xffffffffu;
    while (lo < hi) {
      let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
      if (workgroupCount(lane, countAtLeast(lane, mid)) >= k) {
        lo = mid;
      } else {
        hi = mid - 1u;
      }
    }
    let above = select(workgroupCount(lane, countAtLeast(lane, lo + 1u)), 0u, lo == 0xffffffffu);
    cut = TopK(lo, k - above);
  }
  // Ties at the threshold in the lanes before this one (ids below this lane's chunk).
  let range = chunkRange(lane);
  var equal = 0u;
  for (var i = range.x; i < range.y; i++) {
    equal += select(0u, 1u, orderKey(logit(i)) == cut.threshold);
  }
  laneCount[lane] = equal;
  workgroupBarrier();
  var before = 0u;
  for (var t = 0u; t < lane; t++) {
    before += laneCount[t];
  }
  equalBefore[lane] = before;
  workgroupBarrier();
  return cut;
}

// exp((v - maxLogit) / T) of token i if the top-k set keeps it and it reaches `minWeight`, else 0.
// `equalSeen` counts the threshold ties met so far (walk a chunk in id order).
fn keptWeight(i: u32, cut: TopK, equalSeen: ptr<function, u32>, maxLogit: f32, invT: f32, minWeight: f32) -> f32 {
  let v = logit(i);
  let key = orderKey(v);
  if (key < cut.threshold) {
    return 0.0;
  }
  if (key == cut.threshold) {
    let rank = *equalSeen;
    *equalSeen = rank + 1u;
    if (rank >= cut.needEqual) {
      return 0.0;
    }
  }
  let w = exp((v - maxLogit) * invT);
  return select(0.0, w, w >= minWeight);
}

fn chunkKeptSum(lane: u32, cut: TopK, maxLogit: f32, invT: f32, minWeight: f32) -> f32 {
  let range = chunkRange(lane);
  var seen = equalBefore[lane];
  var sum = 0.0;
  for (var i = range.x; i < range.y; i++) {
    sum += keptWeight(i, cut, &seen, maxLogit, invT, minWeight);
  }
  return sum;
}

// Draws from the kept set, renormalized, for the token at position pos, once localBest has run.
// Every lane must call it; only lane 0's result is the token.
fn drawFiltered(lane: u32, temperature: f32, seed: u32, pos: u32, topK: u32, topP: f32, minP: f32) -> u32 {
  // Loaded as workgroup-uniform values: the barriers below must be reached by every lane or none.
  let maxLogit = workgroupUniformLoad(&bestValue[0]);
  if (workgroupUniformLoad(&bestIndex[0]) == NONE || (bitcast<u32>(maxLogit) & 0x7fffffffu) >= 0x7f800000u) {
    return bestToken(); // no distribution to sample (see the reference)
  }
  let invT = 1.0 / temperature;
  let cut = findTopK(lane, topK);
  // The weights are relative to the largest (1), so min-p is a weight threshold as it stands.
  var minWeight = max(minP, 0.0);
  if (topP < 1.0) {
    let goal = topP * workgroupSum(lane, chunkKeptSum(lane, cut, maxLogit, invT, 0.0));
    // The largest weight w (as bits; weights lie in [0, 1]) whose kept tokens at or above it hold
    // at least topP of the mass: the nucleus, with every token tied at its edge.
    var lo = 0u;
    var hi = 0x3f800000u;
    while (lo < hi) {
      let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
      if (workgroupSum(lane, chunkKeptSum(lane, cut, maxLogit, invT, bitcast<f32>(mid))) >= goal) {
        lo = mid;
      } else {
        hi = mid - 1u;
      }
    }
    minWeight = max(minWeight, bitcast<f32>(lo));
  }
  let total = workgroupSum(lane, chunkKeptSum(lane, cut, maxLogit, invT, minWeight));
  if (lane != 0u) {
    return NONE;
  }
  let goal = uniform01(seed, pos + 1u) * total;
  var cumulative = 0.0;
  var lastKept = bestToken();
  for (var t = 0u; t < WORKGROUP_SIZE; t++) {
    if (chunkSum[t] == 0.0) {
      continue;
    }
    if (cumulative + chunkSum[t] <= goal) {
      cumulative += chunkSum[t];
      continue;
    }
    let r = chunkRange(t);
    var seen = equalBefore[t];
    for (var i = r.x; i < r.y; i++) {
      let w = keptWeight(i, cut, &seen, maxLogit, invT, minWeight);
      if (w == 0.0) {
        continue;
      }
      cumulative += w;
      lastKept = i;
      if (cumulative > goal) {
        return i;
      }
    }
  }
  return lastKept;
}

#if ROWS
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = group.y * groups.x + group.x;
  if (row >= params.rows) {
    return;
  }
  rowStart = row * params.vocab;
  let info = row * ROW_INFO_WORDS;
  let temperature = bitcast<f32>(rowInfo[info + 5u]);
  let topK = rowInfo[info + 6u];
  let topP = bitcast<f32>(rowInfo[info + 7u]);
  let minP = bitcast<f32>(rowInfo[info + 8u]);
  localBest(lane);
  var chosen = bestToken();
  if (temperature > 0.0) {
    if (topK == 0u && topP >= 1.0 && minP <= 0.0) {
      chosen = drawToken(lane, temperature, rowInfo[info + 4u], rowInfo[info + 1u]);
    } else {
      chosen = drawFiltered(lane, temperature, rowInfo[info + 4u], rowInfo[info + 1u], topK, topP, minP);
    }
  }
  if (lane == 0u) {
    tokens[row] = chosen;
  }
}
#else
@compute @workgroup_size(WORKGROUP_SIZE)
fn argmax(@builtin(local_invocation_index) lane: u32) {
  localBest(lane);
  if (lane == 0u) {
    token[0] = bestToken();
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sampleTemperature(@builtin(local_invocation_index) lane: u32) {
  localBest(lane);
  let chosen = drawToken(lane, stepParams.temperature, stepParams.seed, stepParams.pos);
  if (lane == 0u) {
    token[0] = chosen;
  }
}

#if FILTERED
@compute @workgroup_size(WORKGROUP_SIZE)
fn sampleFiltered(@builtin(local_invocation_index) lane: u32) {
  localBest(lane);
  var chosen = bestToken();
  if (stepParams.temperature > 0.0) {
    chosen = drawFiltered(lane, stepParams.temperature, stepParams.seed, stepParams.pos, filters.topK, filters.topP, filters.minP);
  }
  if (lane == 0u) {
    token[0] = chosen;
    if (filters.penalize != 0u) {
      counts[chosen] += 1u;
    }
  }
}
#endif
#endif
