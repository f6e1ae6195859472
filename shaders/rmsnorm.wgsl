// RMSNorm: out = weight * x / sqrt(mean(x²) + eps), one workgroup for the whole vector.
//
// Preprocessor flag (src/engine/gpu/wgsl.ts):
//   ROWS   x and out are (rows, dim) and each row is normalized on its own, one workgroup per row;
//          rows past the per-dimension grid limit spill into y (grid() in src/engine/gpu/kernel.ts).

struct Params {
  dim: u32,
  eps: f32,
#if ROWS
  rows: u32,
#endif
}

override WORKGROUP_SIZE: u32 = 64; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>; // (dim), with ROWS (rows, dim)
@group(0) @binding(2) var<storage, read> weight: array<f32>; // (dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (dim), with ROWS (rows, dim)

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// Normalizes the vector x[start .. start + dim) into out[start ..]; every lane of the workgroup calls it.
fn normalizeVector(lane: u32, start: u32) {
  var sum = 0.0;
  for (var i = lane; i < params.dim; i += WORKGROUP_SIZE) {
    sum += x[start + i] * x[start + i];
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let scale = inverseSqrt(partial[0] / f32(params.dim) + params.eps);
  for (var i = lane; i < params.dim; i += WORKGROUP_SIZE) {
    out[start + i] = weight[i] * (scale * x[start + i]);
  }
}

#if ROWS
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = group.y * groups.x + group.x;
  if (row < params.rows) {
    normalizeVector(lane, row * params.dim);
  }
}
#else
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lane: u32) {
  normalizeVector(lane, 0u);
}
#endif
