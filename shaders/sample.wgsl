// Picks the next token from the logits on the GPU, so one 4-byte read-back per token suffices.
//   argmax:             greedy; ties go to the lowest id; NaN logits are never picked
//   sampleTemperature:  softmax(logits / T) sampled with the counter-based RNG below, which the
//                       CPU reference (src/engine/reference/rng.ts) reproduces bit for bit.
// Both run as one workgroup. Thread t owns the contiguous chunk [t * chunk, (t + 1) * chunk).

struct Params {
  vocab: u32,
}

struct Step {
  pos: u32,
  seed: u32,
  temperature: f32,
}

const WORKGROUP_SIZE: u32 = 256u;
const NONE: u32 = 0xffffffffu; // no candidate (an empty chunk, or only NaN logits)

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // (vocab)
@group(0) @binding(2) var<storage, read_write> token: array<u32>; // (1): the chosen token
@group(0) @binding(3) var<uniform> stepParams: Step;

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
    let v = logits[i];
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

@compute @workgroup_size(WORKGROUP_SIZE)
fn argmax(@builtin(local_invocation_index) lane: u32) {
  localBest(lane);
  if (lane == 0u) {
    // All-NaN logits leave no candidate: fall back to token 0.
    token[0] = select(bestIndex[0], 0u, bestIndex[0] == NONE);
  }
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

@compute @workgroup_size(WORKGROUP_SIZE)
fn sampleTemperature(@builtin(local_invocation_index) lane: u32) {
  localBest(lane);
  let maxLogit = bestValue[0];
  let invT = 1.0 / stepParams.temperature;
  let range = chunkRange(lane);
  var sum = 0.0;
  for (var i = range.x; i < range.y; i++) {
    let v = logits[i];
    if (!isNan(v)) {
      sum += exp((v - maxLogit) * invT);
    }
  }
  chunkSum[lane] = sum;
  workgroupBarrier();
  if (lane != 0u) {
    return;
  }
  var total = 0.0;
  for (var t = 0u; t < WORKGROUP_SIZE; t++) {
    total += chunkSum[t];
  }
  let goal = uniform01(stepParams.seed, stepParams.pos + 1u) * total;
  // Walk the chunks to the one holding the target mass, then its tokens.
  var cumulative = 0.0;
  var chosen = NONE;
  var lastPositive = select(bestIndex[0], 0u, bestIndex[0] == NONE);
  for (var t = 0u; t < WORKGROUP_SIZE && chosen == NONE; t++) {
    if (cumulative + chunkSum[t] <= goal) {
      cumulative += chunkSum[t];
      continue;
    }
    let r = chunkRange(t);
    for (var i = r.x; i < r.y; i++) {
      let v = logits[i];
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
  token[0] = select(chosen, lastPositive, chosen == NONE);
}
