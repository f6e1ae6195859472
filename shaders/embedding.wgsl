// Embedding gather: out = table[token, :]. The token id is read from a GPU buffer so that a token
// sampled on the GPU feeds the next step without a round trip through the CPU.

struct Params {
  dim: u32,
  vocab: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> token: array<u32>; // (1)
@group(0) @binding(2) var<storage, read> table: array<f32>; // (vocab, dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (dim)

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i >= params.dim) {
    return;
  }
  // An out-of-range id (never produced by our samplers) reads row 0 rather than another buffer.
  let row = select(0u, token[0], token[0] < params.vocab);
  out[i] = table[row * params.dim + i];
}
