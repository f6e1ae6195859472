// Element-wise kernels of the forward pass.
//   add:    x += y            (residual connections)
//   swiglu: gate = silu(gate) * up   (the FFN's gated activation, written over the gate buffer)
//   bias:   x (n / width, width) += y (width) on every row (Qwen2's q/k/v projection biases; a
//           batch of rows shares one bias vector)

struct Params {
  n: u32,
  width: u32, // bias: elements per row of x, the length of y; add and swiglu ignore it
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>; // (n): x for add, gate for swiglu
@group(0) @binding(2) var<storage, read> y: array<f32>; // (n): y for add, up for swiglu; (width) for bias

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < params.n) {
    x[id.x] += y[id.x];
  }
}

@compute @workgroup_size(64)
fn swiglu(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < params.n) {
    let g = x[id.x];
    x[id.x] = g / (1.0 + exp(-g)) * y[id.x];
  }
}

@compute @workgroup_size(64)
fn bias(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < params.n) {
    x[id.x] += y[id.x % params.width];
  }
}
