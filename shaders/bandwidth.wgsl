// Roofline probe: how fast this adapter streams memory, the ceiling for every memory-bound kernel
// (a batch-1 matvec reads each weight once and does 2 flops with it). Two entry points (not
// named plain read/copy: `read` would shadow the access mode in `var<storage, read>`):
//   readProbe: each thread XOR-folds vec4<u32> words of `src` with a grid-stride loop and writes
//              its fold only if the fold is one arbitrary value: the write depends on every read,
//              so none can be optimized away, yet (practically) nothing is written. A workgroup
//              reduction instead would cost more than the reads on CPU-emulated adapters
//              (atomics made SwiftShader 4-10x slower); if a thread ever writes, the race is harmless.
//   copyProbe: dst = src, one vec4<u32> per iteration of the same grid-stride loop (reads and writes).

struct Params {
  words: u32, // vec4<u32> words in src (and in dst for copy)
}

override WORKGROUP_SIZE: u32 = 256;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>; // (words)
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>; // readProbe: (1); copyProbe: (words)

@compute @workgroup_size(WORKGROUP_SIZE)
fn readProbe(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) grid: vec3u) {
  var acc = vec4<u32>(0u);
  for (var i = id.x; i < params.words; i += grid.x * WORKGROUP_SIZE) {
    acc ^= src[i];
  }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) {
    dst[0] = acc;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn copyProbe(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) grid: vec3u) {
  for (var i = id.x; i < params.words; i += grid.x * WORKGROUP_SIZE) {
    dst[i] = src[i];
  }
}
