// Embedding gather: out = table[token, :]. The token id is read from a GPU buffer so that a token
// sampled on the GPU feeds the next step without a round trip through the CPU.
//
// Preprocessor flag (src/engine/gpu/wgsl.ts):
//   ROWS   a batch of rows, one token each (continuous batching): the token of row r is word 0 of
//          its rowInfo entry (src/engine/kernels/rows.ts packs them) and out is (rows, dim). The
//          grid is (dim tiles, rows) with rows spilling from y into z past the per-dimension limit.

struct Params {
  dim: u32,
  vocab: u32,
  firstRow: u32, // the table rows this dispatch holds: firstRow .. firstRow + partRows
  partRows: u32,
#if ROWS
  rows: u32,
#endif
}

@group(0) @binding(0) var<uniform> params: Params;
#if ROWS
override ROW_INFO_WORDS: u32; // rowInfoWords in src/engine/kernels/rows.ts
@group(0) @binding(1) var<storage, read> rowInfo: array<u32>; // (rows, ROW_INFO_WORDS)
#else
@group(0) @binding(1) var<storage, read> token: array<u32>; // (1)
#endif
@group(0) @binding(2) var<storage, read> table: array<f32>; // (partRows, dim): rows firstRow .. of the whole table
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (dim), with ROWS (rows, dim)

// out[outStart + i] = table[id, i] when row `id` is in this dispatch's part of the table (a table
// too large for one buffer is split by rows, one dispatch per part, and only the part holding the
// row writes). An out-of-range id (never produced by our samplers) reads table row 0 rather than
// another buffer.
fn gather(id: u32, outStart: u32, i: u32) {
  let tableRow = select(0u, id, id < params.vocab);
  if (tableRow >= params.firstRow && tableRow - params.firstRow < params.partRows) {
    out[outStart + i] = table[(tableRow - params.firstRow) * params.dim + i];
  }
}

#if ROWS
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) global: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = global.z * groups.y + global.y;
  if (global.x < params.dim && row < params.rows) {
    gather(rowInfo[row * ROW_INFO_WORDS], row * params.dim, global.x);
  }
}
#else
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) global: vec3u) {
  if (global.x < params.dim) {
    gather(token[0], 0u, global.x);
  }
}
#endif
