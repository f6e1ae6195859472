// The sort-based twin of sample.wgsl's sampleFiltered, kept to compare against its threshold
// searches: the (key, id) pairs of the whole vocabulary are sorted on the GPU by a bitonic sort,
// then one workgroup reads the cuts off the sorted list and draws, picking the token that
// src/engine/reference/sample.ts `sampleFiltered` picks from the same draw.
//
// Order: larger key first, the lower id first among equal keys (a total order, since ids are
// distinct). The key of a logit is sample.wgsl's orderKey (NaN 0); the list is padded to a power
// of two, at least one block, with key 0 and ids past the vocabulary, which sort after every token.
//
//   sortLocal    one workgroup per block of BLOCK pairs: builds the keys from the logits (under the
//                constraint's mask and the penalties, as sampleFiltered sees them) and runs every
//                bitonic stage that fits in the block, in workgroup memory. Blocks alternate direction.
//   mergeGlobal  one compare-and-swap step of a stage wider than a block (stride >= BLOCK).
//   mergeLocal   the rest of such a stage (strides BLOCK / 2 .. 1), in workgroup memory.
//   pick         one workgroup. top-k: the first k sorted entries, i.e. the keys above the k-th key
//                and, among the keys equal to it, the ids up to the k-th entry's id. top-p: the
//                sorted running sum proposes the edge weight; two sums in the reference's id order
//                confirm it (a binary search over sorted positions settles the rare case where
//                summing in another order moved the edge). min-p is a weight floor. The draw walks the
//                kept weights in id order in the reference's chunks, so the sums round as there.
// Temperature 0, no valid logit or a non-finite maximum: the first sorted entry (the argmax, or
// token 0 when every logit is NaN), as sampleFiltered decides.
//
// Shared with sample.wgsl, character for character (tests/sample-sort.test.ts checks): Step,
// Filters, logit, isNan, orderKey, pcg, uniform01.

struct Params {
  vocab: u32,
  size: u32, // length of the sorted list: a power of two >= BLOCK
  stage: u32, // width of the bitonic sequences being merged (mergeGlobal, mergeLocal)
  stride: u32, // distance of the compared pairs (mergeGlobal)
}

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

const WORKGROUP_SIZE: u32 = 256u;
const BLOCK: u32 = 512u; // pairs a workgroup sorts in its memory: two per thread

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> keys: array<u32>; // (size) sorted keys
@group(0) @binding(2) var<storage, read_write> ids: array<u32>; // (size) their token ids
@group(0) @binding(3) var<storage, read> logits: array<f32>; // (vocab)
@group(0) @binding(4) var<uniform> filters: Filters;
// (vocab) occurrences of each token in the sequence so far; pick counts the token it picks.
@group(0) @binding(5) var<storage, read_write> counts: array<u32>;
// (ceil(vocab / 32)) bitset of the tokens a constraint allows now (src/engine/constrain/).
@group(0) @binding(6) var<storage, read> allowed: array<u32>;
@group(0) @binding(7) var<uniform> stepParams: Step;
@group(0) @binding(8) var<storage, read_write> token: array<u32>; // (1): the chosen token

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

// Bit test, because WGSL lets compilers assume floats are never NaN (so v != v may fold to false).
fn isNan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Logits as u32 keys in the same order (larger logit, larger key); NaN gets 0, below every key kept.
fn orderKey(v: f32) -> u32 {
  if (isNan(v)) {
    return 0u;
  }
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The logit a non-zero key was made from, bit for bit.
fn keyLogit(key: u32) -> f32 {
  return bitcast<f32>(select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u));
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

// --- bitonic sort -----------------------------------------------------------------------------

var<workgroup> blockKey: array<u32, BLOCK>;
var<workgroup> blockId: array<u32, BLOCK>;

// Whether (keyA, idA) comes before (keyB, idB) in the sorted list.
fn before(keyA: u32, idA: u32, keyB: u32, idB: u32) -> bool {
  return keyA > keyB || (keyA == keyB && idA < idB);
}

// Index of the first element of compare pair `pair` at distance `stride` (the second is + stride).
fn pairStart(pair: u32, stride: u32) -> u32 {
  return ((pair & ~(stride - 1u)) << 1u) | (pair & (stride - 1u));
}

// One compare-and-swap of the block in workgroup memory. A sequence whose global start has the
// `stage` bit clear is sorted forward, else backward, so that pairs of them merge at the next stage.
fn compareInBlock(lane: u32, blockStart: u32, stage: u32, stride: u32) {
  let a = pairStart(lane, stride);
  let b = a + stride;
  let forward = ((blockStart + a) & stage) == 0u;
  if (before(blockKey[b], blockId[b], blockKey[a], blockId[a]) == forward) {
    let key = blockKey[a];
    let id = blockId[a];
    blockKey[a] = blockKey[b];
    blockId[a] = blockId[b];
    blockKey[b] = key;
    blockId[b] = id;
  }
}

fn workgroupIndex(group: vec3u, groups: vec3u) -> u32 {
  return group.y * groups.x + group.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sortLocal(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let blockStart = workgroupIndex(group, groups) * BLOCK;
  if (blockStart >= params.size) {
    return;
  }
  for (var half = 0u; half < 2u; half++) {
    let local = lane + half * WORKGROUP_SIZE;
    let i = blockStart + local;
    blockKey[local] = select(0u, orderKey(logit(min(i, params.vocab - 1u))), i < params.vocab);
    blockId[local] = i;
  }
  workgroupBarrier();
  for (var stage = 2u; stage <= BLOCK; stage <<= 1u) {
    for (var stride = stage >> 1u; stride > 0u; stride >>= 1u) {
      compareInBlock(lane, blockStart, stage, stride);
      workgroupBarrier();
    }
  }
  for (var half = 0u; half < 2u; half++) {
    let local = lane + half * WORKGROUP_SIZE;
    keys[blockStart + local] = blockKey[local];
    ids[blockStart + local] = blockId[local];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mergeGlobal(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let pair = workgroupIndex(group, groups) * WORKGROUP_SIZE + lane;
  if (pair >= params.size / 2u) {
    return;
  }
  let a = pairStart(pair, params.stride);
  let b = a + params.stride;
  let forward = (a & params.stage) == 0u;
  let keyA = keys[a];
  let idA = ids[a];
  let keyB = keys[b];
  let idB = ids[b];
  if (before(keyB, idB, keyA, idA) == forward) {
    keys[a] = keyB;
    ids[a] = idB;
    keys[b] = keyA;
    ids[b] = idA;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mergeLocal(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let blockStart = workgroupIndex(group, groups) * BLOCK;
  if (blockStart >= params.size) {
    return;
  }
  for (var half = 0u; half < 2u; half++) {
    let local = lane + half * WORKGROUP_SIZE;
    blockKey[local] = keys[blockStart + local];
    blockId[local] = ids[blockStart + local];
  }
  workgroupBarrier();
  for (var stride = BLOCK >> 1u; stride > 0u; stride >>= 1u) {
    compareInBlock(lane, blockStart, params.stage, stride);
    workgroupBarrier();
  }
  for (var half = 0u; half < 2u; half++) {
    let local = lane + half * WORKGROUP_SIZE;
    keys[blockStart + local] = blockKey[local];
    ids[blockStart + local] = blockId[local];
  }
}

// --- the cuts and the draw ----------------------------------------------------------------------

const NONE: u32 = 0xffffffffu;

var<workgroup> chunkSum: array<f32, WORKGROUP_SIZE>;
var<workgroup> sharedSum: f32;
var<workgroup> sharedWord: u32;
var<workgroup> sharedValue: f32;

// The decisions lane 0 reads off the sorted list, for every lane.
struct Cut {
  sample: bool, // false: the first sorted entry is the token
  kept: u32, // sorted entries top-k keeps (every valid one when off)
  edgeKey: u32, // key of the last entry top-k keeps...
  edgeId: u32, // ...and its id: a token with that key is kept if its id is not above this
  maxLogit: f32,
}

var<workgroup> cut: Cut;

// Thread t owns ids [t * chunk, (t + 1) * chunk), chunk = ceil(vocab / 256), as in sample.wgsl and
// the reference, so the per-chunk sums and their total round the same way.
fn chunkRange(lane: u32, length: u32) -> vec2u {
  let chunk = (length + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
  let start = min(lane * chunk, length);
  return vec2u(start, min(start + chunk, length));
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

// exp((logit - maxLogit) / T) of token i if top-k keeps it and it reaches `minWeight`, else 0.
fn keptWeight(i: u32, c: Cut, invT: f32, minWeight: f32) -> f32 {
  let v = logit(i);
  let key = orderKey(v);
  if (key < c.edgeKey || (key == c.edgeKey && i > c.edgeId)) {
    return 0.0;
  }
  let w = exp((v - c.maxLogit) * invT);
  return select(0.0, w, w >= minWeight);
}

// The kept mass at weight floor `minWeight`, summed in the reference's order; chunkSum keeps each lane's part.
fn keptSum(lane: u32, c: Cut, invT: f32, minWeight: f32) -> f32 {
  let range = chunkRange(lane, params.vocab);
  var sum = 0.0;
  for (var i = range.x; i < range.y; i++) {
    sum += keptWeight(i, c, invT, minWeight);
  }
  return workgroupSum(lane, sum);
}

// Weight of the token at sorted position p (p < c.kept).
fn sortedWeight(p: u32, c: Cut, invT: f32) -> f32 {
  return exp((keyLogit(keys[p]) - c.maxLogit) * invT);
}

// Lane 0 reads the top-k cut off the sorted list.
fn readCut(temperature: f32, topK: u32) -> Cut {
  // Keys are non-increasing: the valid ones (non-zero) are a prefix; find its length.
  var lo = 0u;
  var hi = params.size;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (keys[mid] != 0u) {
      lo = mid + 1u;
    } else {
      hi = mid;
    }
  }
  let valid = lo;
  let kept = select(valid, topK, topK > 0u && topK < valid);
  let maxLogit = keyLogit(keys[0]);
  let finite = (bitcast<u32>(maxLogit) & 0x7fffffffu) < 0x7f800000u;
  let last = max(kept, 1u) - 1u;
  return Cut(temperature > 0.0 && valid > 0u && finite, kept, keys[last], ids[last], maxLogit);
}

// The top-p edge: the largest kept weight w whose tokens at or above w hold at least `goal` of the
// mass, in the reference's summation. Every lane calls it; the answer is the same for all.
fn topPEdge(lane: u32, c: Cut, invT: f32, goal: f32) -> f32 {
  // Propose: the first sorted position whose running sum (in sorted order) reaches the goal.
  let range = chunkRange(lane, c.kept);
  var mine = 0.0;
  for (var p = range.x; p < range.y; p++) {
    mine += sortedWeight(p, c, invT);
  }
  chunkSum[lane] = mine;
  workgroupBarrier();
  if (lane == 0u) {
    var running = 0.0;
    var proposed = max(c.kept, 1u) - 1u;
    var found = false;
    for (var t = 0u; t < WORKGROUP_SIZE && !found; t++) {
      if (running + chunkSum[t] < goal) {
        running += chunkSum[t];
        continue;
      }
      let r = chunkRange(t, c.kept);
      for (var p = r.x; p < r.y; p++) {
        running += sortedWeight(p, c, invT);
        if (running >= goal) {
          proposed = p;
          found = true;
          break;
        }
      }
    }
    // The weight above the proposal's run of equal weights (NONE: the proposal is the largest).
    let edge = sortedWeight(proposed, c, invT);
    var start = proposed;
    while (start > 0u && sortedWeight(start - 1u, c, invT) == edge) {
      start--;
    }
    sharedValue = edge;
    sharedWord = select(NONE, start - 1u, start > 0u);
  }
  let edge = workgroupUniformLoad(&sharedValue);
  let above = workgroupUniformLoad(&sharedWord);
  // Confirm in the reference's order: the edge holds the goal, the next weight up does not.
  if (keptSum(lane, c, invT, edge) >= goal && (above == NONE || keptSum(lane, c, invT, sortedWeight(above, c, invT)) < goal)) {
    return edge;
  }
  // Rounding moved the edge: the first sorted position whose weight holds the goal.
  var lo = 0u;
  var hi = c.kept - 1u;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (keptSum(lane, c, invT, sortedWeight(mid, c, invT)) >= goal) {
      hi = mid;
    } else {
      lo = mid + 1u;
    }
  }
  return sortedWeight(lo, c, invT);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pick(@builtin(local_invocation_index) lane: u32) {
  let temperature = stepParams.temperature;
  if (lane == 0u) {
    cut = readCut(temperature, filters.topK);
  }
  let c = workgroupUniformLoad(&cut);
  var chosen = ids[0];
  if (c.sample) {
    let invT = 1.0 / temperature;
    var minWeight = max(filters.minP, 0.0);
    if (filters.topP < 1.0) {
      let goal = filters.topP * keptSum(lane, c, invT, 0.0);
      minWeight = max(minWeight, topPEdge(lane, c, invT, goal));
    }
    let total = keptSum(lane, c, invT, minWeight);
    if (lane == 0u) {
      // Whole chunks first, then the tokens of the chunk holding the target (as the reference walks).
      let goal = uniform01(stepParams.seed, stepParams.pos + 1u) * total;
      var cumulative = 0.0;
      var drawn = NONE;
      var lastKept = chosen;
      for (var t = 0u; t < WORKGROUP_SIZE && drawn == NONE; t++) {
        if (chunkSum[t] == 0.0) {
          continue;
        }
        if (cumulative + chunkSum[t] <= goal) {
          cumulative += chunkSum[t];
          continue;
        }
        let r = chunkRange(t, params.vocab);
        for (var i = r.x; i < r.y; i++) {
          let w = keptWeight(i, c, invT, minWeight);
          if (w == 0.0) {
            continue;
          }
          cumulative += w;
          lastKept = i;
          if (cumulative > goal) {
            drawn = i;
            break;
          }
        }
      }
      chosen = select(drawn, lastKept, drawn == NONE);
    }
  }
  if (lane == 0u) {
    token[0] = chosen;
    if (filters.penalize != 0u) {
      counts[chosen] += 1u;
    }
  }
}
