// Picks the next token from the logits on the GPU, so one 4-byte read-back per token suffices.
//   argmax:             greedy; ties go to the lowest id; NaN logits are never picked
//   sampleTemperature:  softmax(logits / T) sampled with the counter-based RNG below, which the
//                       CPU reference (src/engine/reference/rng.ts) reproduces bit for bit.
// Both run as one workgroup. Thread t owns the contiguous chunk [t * chunk, (t + 1) * chunk).
//
// Preprocessor flag (src/engine/gpu/wgsl.ts):
//   ROWS   one entry point, main, for a batch of rows (continuous batching): logits are
//          (rows, vocab) and each row takes one workgroup, which reads the row's position, seed
//          and temperature from its rowInfo entry (src/engine/kernels/rows.ts packs them). A row
//          with temperature 0 takes the argmax, any other samples exactly as sampleTemperature
//          does at that position. Rows past the per-dimension grid limit spill into y.

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
const ROW_INFO_WORDS: u32 = 8u;
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

@group(0) @binding(2) var<storage, read_write> token: array<u32>; // (1): the chosen token
@group(0) @binding(3) var<uniform> stepParams: Step;

fn logit(i: u32) -> f32 {
  return logits[i];
}
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
  chunkSum[lane] = sum;
  workgroupBarrier();
  if (lane != 0u) {
    return NONE;
  }
  var total = 0.0;
  for (var t = 0u; t < WORKGROUP_SIZE; t++) {
    total += chunkSum[t];
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
  localBest(lane);
  var chosen = bestToken();
  if (temperature > 0.0) {
    chosen = drawToken(lane, temperature, rowInfo[info + 4u], rowInfo[info + 1u]);
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
#endif
