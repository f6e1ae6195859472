// Rotary position embedding for one position, fused with the KV-cache write:
//   q pairs are rotated in place; k pairs are rotated into the key cache; v is copied into the
//   value cache. Pairs are ADJACENT elements (x[2i], x[2i+1]) within each head (llama2.c/GGUF
//   convention; Hugging Face checkpoints are un-permuted to it on load).
// cos/sin come from a table computed once on the CPU, so every adapter rotates by the same f32
// values and no GPU sin/cos of large angles is involved.

struct Params {
  qPairs: u32, // nHeads * headDim / 2
  kvDim: u32, // nKvHeads * headDim
  halfHeadDim: u32, // headDim / 2
  cacheOffset: u32, // first element of this layer in the caches
}

struct Step {
  pos: u32,
  seed: u32,
  temperature: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> stepParams: Step;
@group(0) @binding(2) var<storage, read> ropeTable: array<vec2f>; // (maxSeq, headDim/2) of (cos, sin)
@group(0) @binding(3) var<storage, read_write> q: array<f32>; // (nHeads * headDim)
@group(0) @binding(4) var<storage, read> k: array<f32>; // (kvDim)
@group(0) @binding(5) var<storage, read> v: array<f32>; // (kvDim)
@group(0) @binding(6) var<storage, read_write> keyCache: array<f32>; // (layer, maxSeq, kvDim)
@group(0) @binding(7) var<storage, read_write> valueCache: array<f32>; // (layer, maxSeq, kvDim)

fn rotation(pair: u32) -> vec2f {
  return ropeTable[stepParams.pos * params.halfHeadDim + pair % params.halfHeadDim];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  let kPairs = params.kvDim / 2u;
  let row = params.cacheOffset + stepParams.pos * params.kvDim;
  if (i < params.qPairs) {
    let cs = rotation(i);
    let a = q[2u * i];
    let b = q[2u * i + 1u];
    q[2u * i] = a * cs.x - b * cs.y;
    q[2u * i + 1u] = a * cs.y + b * cs.x;
  } else if (i < params.qPairs + kPairs) {
    let p = i - params.qPairs;
    let cs = rotation(p);
    let a = k[2u * p];
    let b = k[2u * p + 1u];
    keyCache[row + 2u * p] = a * cs.x - b * cs.y;
    keyCache[row + 2u * p + 1u] = a * cs.y + b * cs.x;
  } else if (i < params.qPairs + kPairs + params.kvDim) {
    let j = i - params.qPairs - kPairs;
    valueCache[row + j] = v[j];
  }
}
