// Matrix-vector product for f32 weights: out[r] = dot(weight[r, :], x). Two strategies:
//   splitK:       one workgroup per row splits the row's columns across its threads and reduces
//                 the partial sums in workgroup memory (coalesced reads; wins on real GPUs).
//   rowPerThread: one thread per row, no barriers (wins on CPU-emulated adapters like SwiftShader,
//                 where a barrier costs more than the arithmetic it saves).
// Rows beyond 65535 groups spill into the grid's y dimension.

struct Params {
  rows: u32,
  cols: u32,
}

override WORKGROUP_SIZE: u32 = 64; // a power of two (the reduction halves it)

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>; // (rows, cols)
@group(0) @binding(2) var<storage, read> x: array<f32>; // (cols)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (rows)

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn splitK(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) grid: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * grid.x;
  var sum = 0.0;
  if (row < params.rows) {
    let base = row * params.cols;
    for (var c = lane; c < params.cols; c += WORKGROUP_SIZE) {
      sum += weight[base + c] * x[c];
    }
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (lane == 0u && row < params.rows) {
    out[row] = partial[0];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rowPerThread(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) grid: vec3u) {
  let row = id.x + id.y * grid.x * WORKGROUP_SIZE;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;
  var sum = 0.0;
  for (var c = 0u; c < params.cols; c++) {
    sum += weight[base + c] * x[c];
  }
  out[row] = sum;
}
