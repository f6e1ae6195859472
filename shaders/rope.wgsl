// Rotary position embedding for one position, fused with the KV-cache write:
//   q pairs are rotated in place; k pairs are rotated into the key cache; v is copied into the
//   value cache. Pairs are ADJACENT elements (x[2i], x[2i+1]) within each head (llama2.c/GGUF
//   convention; Hugging Face checkpoints are un-permuted to it on load).
// cos/sin come from a table computed once on the CPU, so every adapter rotates by the same f32
// values and no GPU sin/cos of large angles is involved.
//
// Preprocessor flag (src/engine/gpu/wgsl.ts):
//   ROWS   a batch of rows, each one token of some sequence (continuous batching over the paged KV
//          cache): q is (rows, nHeads * headDim), k and v are (rows, kvDim), and each row's
//          position, page and slot come from its rowInfo entry (src/engine/kernels/rows.ts packs
//          them). K and V go into the one page pool, laid out as src/engine/kv/page-pool.ts says:
//          (page, layer, kOrV, slot, kvIndex). The grid is (thread tiles of a row, rows) with rows
//          spilling from y into z past the per-dimension limit.

struct Params {
  qPairs: u32, // nHeads * headDim / 2
  kvDim: u32, // nKvHeads * headDim
  halfHeadDim: u32, // headDim / 2
#if ROWS
  nLayers: u32,
  layer: u32, // the layer whose K/V this dispatch writes
  blockSize: u32, // token slots per page
  rows: u32,
#else
  cacheOffset: u32, // first element of this layer in the caches
#endif
}

@group(0) @binding(0) var<uniform> params: Params;
#if ROWS
override ROW_INFO_WORDS: u32; // rowInfoWords in src/engine/kernels/rows.ts
@group(0) @binding(1) var<storage, read> rowInfo: array<u32>; // (rows, ROW_INFO_WORDS)
#else
struct Step {
  pos: u32,
  seed: u32,
  temperature: f32,
}

@group(0) @binding(1) var<uniform> stepParams: Step;
#endif
@group(0) @binding(2) var<storage, read> ropeTable: array<vec2f>; // (maxSeq, headDim/2) of (cos, sin)
@group(0) @binding(3) var<storage, read_write> q: array<f32>; // (nHeads * headDim), with ROWS (rows, ...)
@group(0) @binding(4) var<storage, read> k: array<f32>; // (kvDim), with ROWS (rows, kvDim)
@group(0) @binding(5) var<storage, read> v: array<f32>; // (kvDim), with ROWS (rows, kvDim)
#if ROWS
@group(0) @binding(6) var<storage, read_write> kvPool: array<f32>; // (page, layer, kOrV, slot, kvDim)

fn storeKey(at: u32, value: f32) {
  kvPool[at] = value;
}

fn storeValue(at: u32, value: f32) {
  kvPool[at] = value;
}
#else
@group(0) @binding(6) var<storage, read_write> keyCache: array<f32>; // (layer, maxSeq, kvDim)
@group(0) @binding(7) var<storage, read_write> valueCache: array<f32>; // (layer, maxSeq, kvDim)

fn storeKey(at: u32, value: f32) {
  keyCache[at] = value;
}

fn storeValue(at: u32, value: f32) {
  valueCache[at] = value;
}
#endif

// (a, b) turned by pair's angle at position pos.
fn rotate(pos: u32, pair: u32, a: f32, b: f32) -> vec2f {
  let cs = ropeTable[pos * params.halfHeadDim + pair % params.halfHeadDim];
  return vec2f(a * cs.x - b * cs.y, a * cs.y + b * cs.x);
}

// Thread i of one token: q pair i, else k pair i - qPairs, else v element i - qPairs - kvDim / 2.
// q and k/v of the token start at qStart and kvStart; its key and value go to keyStart, valueStart.
fn ropeThread(i: u32, pos: u32, qStart: u32, kvStart: u32, keyStart: u32, valueStart: u32) {
  let kPairs = params.kvDim / 2u;
  if (i < params.qPairs) {
    let turned = rotate(pos, i, q[qStart + 2u * i], q[qStart + 2u * i + 1u]);
    q[qStart + 2u * i] = turned.x;
    q[qStart + 2u * i + 1u] = turned.y;
  } else if (i < params.qPairs + kPairs) {
    let p = i - params.qPairs;
    let turned = rotate(pos, p, k[kvStart + 2u * p], k[kvStart + 2u * p + 1u]);
    storeKey(keyStart + 2u * p, turned.x);
    storeKey(keyStart + 2u * p + 1u, turned.y);
  } else if (i < params.qPairs + kPairs + params.kvDim) {
    let j = i - params.qPairs - kPairs;
    storeValue(valueStart + j, v[kvStart + j]);
  }
}

#if ROWS
// First element of (page, layer, kOrV, slot) in the pool: pageElementOffset in page-pool.ts.
fn pageStart(page: u32, kOrV: u32, slot: u32) -> u32 {
  return (((page * params.nLayers + params.layer) * 2u + kOrV) * params.blockSize + slot) * params.kvDim;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) global: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = global.z * groups.y + global.y;
  if (row >= params.rows) {
    return;
  }
  let info = row * ROW_INFO_WORDS;
  let pos = rowInfo[info + 1u];
  let page = rowInfo[info + 2u];
  let slot = rowInfo[info + 3u];
  ropeThread(global.x, pos, row * 2u * params.qPairs, row * params.kvDim, pageStart(page, 0u, slot), pageStart(page, 1u, slot));
}
#else
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) global: vec3u) {
  let cacheRow = params.cacheOffset + stepParams.pos * params.kvDim;
  ropeThread(global.x, stepParams.pos, 0u, 0u, cacheRow, cacheRow);
}
#endif
