// Matrix-vector product out[r] = dot(weight[r, :], x) for every weight format.
// src/engine/gpu/wgsl.ts expands the #if blocks (see matvecDefines in src/engine/kernels/matvec.ts):
// exactly one of F32, F16, F16_NATIVE, Q8_0, Q4_0 is true and QUANT is Q8_0 || Q4_0; VEC4 (f32
// rows whose length is a multiple of 4) reads the weights as vec4<f32>; SUBGROUPS adds the
// `subgroup` entry point.
// Weight layouts are documented in src/engine/quant/formats.ts.
//
// Every format gives the strategies the same interface: a row is `params.units` units (one f32 or
// vec4<f32>, one u32 of two halves, one 32-weight block) and unit_dot(row, u) is the dot product
// of unit u with its slice of x. x is not padded: where a unit runs past `cols` (a row tail), x
// is read through x_at / x4, which give 0 there.
//
// Strategies (entry points):
//   naive     one thread per row, no barriers (wins on CPU-emulated adapters like SwiftShader,
//             where a barrier costs more than the arithmetic it saves).
//   splitK    one workgroup per row: threads stride over the row's units (coalesced reads) and
//             their partial sums meet in a workgroup-memory tree.
//   subgroup  splitK whose reduction is subgroupAdd plus one barrier to join the subgroups.
//   multiRow  ROWS_PER_WORKGROUP rows per workgroup, THREADS_PER_ROW threads each: keeps
//             threads busy when rows are short (few units).
// Workgroups beyond the per-dimension limit spill into the grid's y dimension.
// A matrix too large for one buffer is split by rows (src/engine/runtime/weights.ts): each part
// is a whole packed matrix of its own, and its dispatch writes its rows at out[outOffset ..].

#if F16_NATIVE
enable f16;
#endif
#if SUBGROUPS
enable subgroups;
#endif

struct Params {
  rows: u32,
  cols: u32,
  units: u32, // units per row: the row stride
  scalesOffset: u32, // q8_0 / q4_0: u32 index of the first f16 block scale in `weight`
  outOffset: u32, // where row 0 lands in out: the first row of this part of a matrix split by rows
}

override WORKGROUP_SIZE: u32 = 64; // a power of two (the reductions halve it)
override ROWS_PER_WORKGROUP: u32 = 4; // multiRow: a power of two dividing WORKGROUP_SIZE
override THREADS_PER_ROW: u32 = WORKGROUP_SIZE / ROWS_PER_WORKGROUP; // derived: never set it

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>; // (cols)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (outOffset + rows)

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

/** x[c], or 0 past the end of x. */
fn x_at(c: u32) -> f32 {
  return select(0.0, x[c], c < params.cols);
}

/** x[c .. c + 4], 0 past the end of x. */
fn x4(c: u32) -> vec4<f32> {
  if (c + 4u <= params.cols) {
    return vec4(x[c], x[c + 1u], x[c + 2u], x[c + 3u]);
  }
  return vec4(x_at(c), x_at(c + 1u), x_at(c + 2u), x_at(c + 3u));
}

#if F32
#if VEC4
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>; // (rows, cols / 4)

fn unit_dot(row: u32, u: u32) -> f32 {
  return dot(weight[row * params.units + u], x4(4u * u));
}
#else
@group(0) @binding(1) var<storage, read> weight: array<f32>; // (rows, cols)

fn unit_dot(row: u32, u: u32) -> f32 {
  return weight[row * params.units + u] * x[u];
}
#endif
#elif F16
@group(0) @binding(1) var<storage, read> weight: array<u32>; // (rows, paddedCols / 2) pairs of halves

fn unit_dot(row: u32, u: u32) -> f32 {
  return dot(unpack2x16float(weight[row * params.units + u]), vec2(x[2u * u], x_at(2u * u + 1u)));
}
#elif F16_NATIVE
@group(0) @binding(1) var<storage, read> weight: array<vec2<f16>>; // (rows, paddedCols / 2)

fn unit_dot(row: u32, u: u32) -> f32 {
  return dot(vec2<f32>(weight[row * params.units + u]), vec2(x[2u * u], x_at(2u * u + 1u)));
}
#elif Q8_0
@group(0) @binding(1) var<storage, read> weight: array<vec4<u32>>; // quants (blocks, 2), then scales

/** The four int8s of a word, low byte first. */
fn i8x4(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4(w << 24u, w << 16u, w << 8u, w)) >> vec4(24u));
}

fn unit_dot(row: u32, u: u32) -> f32 {
  let block = row * params.units + u;
  let lo = weight[2u * block]; // weights 0..15
  let hi = weight[2u * block + 1u]; // weights 16..31
  let c = 32u * u;
  var sum = 0.0;
  for (var k = 0u; k < 4u; k++) {
    sum += dot(i8x4(lo[k]), x4(c + 4u * k)) + dot(i8x4(hi[k]), x4(c + 16u + 4u * k));
  }
  return scale(block) * sum;
}
#elif Q4_0
@group(0) @binding(1) var<storage, read> weight: array<vec4<u32>>; // quants (blocks), then scales

fn unit_dot(row: u32, u: u32) -> f32 {
  let block = row * params.units + u;
  let q = weight[block]; // byte j: weight j in the low nibble, weight j + 16 in the high one
  let c = 32u * u;
  var sum = 0.0;
  for (var k = 0u; k < 4u; k++) {
    let low = (vec4(q[k]) >> vec4(0u, 8u, 16u, 24u)) & vec4(0xfu);
    let high = (vec4(q[k]) >> vec4(4u, 12u, 20u, 28u)) & vec4(0xfu);
    sum += dot(vec4<f32>(low) - 8.0, x4(c + 4u * k)) + dot(vec4<f32>(high) - 8.0, x4(c + 16u + 4u * k));
  }
  return scale(block) * sum;
}
#endif

#if QUANT
/** The f16 scale of a block (two per word, low half first). */
fn scale(block: u32) -> f32 {
  let word = params.scalesOffset + block / 2u;
  return unpack2x16float(weight[word / 4u][word % 4u])[block % 2u];
}
#endif

/** Sum of unit_dot over units first, first + step, ... of `row`; 0 for a row past the end. */
fn strided_dot(row: u32, first: u32, step: u32) -> f32 {
  var sum = 0.0;
  if (row < params.rows) {
    for (var u = first; u < params.units; u += step) {
      sum += unit_dot(row, u);
    }
  }
  return sum;
}

/** After every lane has written partial[lane]: sums each aligned run of `width` entries into the run's first. */
fn tree_sum(lane: u32, width: u32) {
  workgroupBarrier();
  for (var stride = width / 2u; stride > 0u; stride /= 2u) {
    if (lane % width < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn naive(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) grid: vec3u) {
  let row = id.x + id.y * grid.x * WORKGROUP_SIZE;
  if (row < params.rows) {
    out[params.outOffset + row] = strided_dot(row, 0u, 1u);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn splitK(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) grid: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * grid.x;
  partial[lane] = strided_dot(row, lane, WORKGROUP_SIZE);
  tree_sum(lane, WORKGROUP_SIZE);
  if (lane == 0u && row < params.rows) {
    out[params.outOffset + row] = partial[0];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn multiRow(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) grid: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let t = lane % THREADS_PER_ROW;
  let row = (wg.x + wg.y * grid.x) * ROWS_PER_WORKGROUP + lane / THREADS_PER_ROW;
  partial[lane] = strided_dot(row, t, THREADS_PER_ROW);
  tree_sum(lane, THREADS_PER_ROW);
  if (t == 0u && row < params.rows) {
    out[params.outOffset + row] = partial[lane];
  }
}

#if SUBGROUPS
// Subgroup i is taken to be lanes [i * size, (i + 1) * size): how Vulkan, Metal and D3D12 drivers
// lay out a one-dimensional workgroup.
@compute @workgroup_size(WORKGROUP_SIZE)
fn subgroup(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) grid: vec3u,
        @builtin(local_invocation_index) lane: u32,
        @builtin(subgroup_size) size: u32, @builtin(subgroup_invocation_id) subgroupLane: u32) {
  let row = wg.x + wg.y * grid.x;
  let sum = subgroupAdd(strided_dot(row, lane, WORKGROUP_SIZE));
  if (subgroupLane == 0u) {
    partial[lane / size] = sum;
  }
  workgroupBarrier();
  if (lane == 0u && row < params.rows) {
    var total = 0.0;
    for (var i = 0u; i < (WORKGROUP_SIZE + size - 1u) / size; i++) {
      total += partial[i];
    }
    out[params.outOffset + row] = total;
  }
}
#endif
