// RMSNorm: out = weight * x / sqrt(mean(x²) + eps), one workgroup for the whole vector.

struct Params {
  dim: u32,
  eps: f32,
}

override WORKGROUP_SIZE: u32 = 64; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>; // (dim)
@group(0) @binding(2) var<storage, read> weight: array<f32>; // (dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (dim)

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lane: u32) {
  var sum = 0.0;
  for (var i = lane; i < params.dim; i += WORKGROUP_SIZE) {
    sum += x[i] * x[i];
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
    out[i] = weight[i] * (scale * x[i]);
  }
}
