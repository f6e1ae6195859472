// Matrix-matrix product out (m, rows) = x (m, cols) @ weight (rows, cols)ᵀ for every weight format:
// the kernel of prefill and batched decode, where m tokens share one pass over the weights.
// It follows shaders/matvec.wgsl: the same preprocessor flags (see matmulDefines in
// src/engine/kernels/matmul.ts: exactly one of F32, F16, F16_NATIVE, Q8_0, Q4_0 is true, QUANT is
// Q8_0 || Q4_0, VEC4 reads f32 rows whose length is a multiple of 4 as vec4<f32>), the same weight
// layouts (src/engine/quant/formats.ts) and the same units: a row is `params.units` units (one f32
// or vec4<f32>, one u32 of two halves, one 32-weight block). x and out are row-major and not
// padded: x is never read at a column >= cols, where the padded weights of a row tail sit.
// A matrix too large for one buffer is split by rows (src/engine/runtime/weights.ts): each part is
// a whole packed matrix, and its dispatch writes its columns of out (outOffset .. of outStride).
//
// Strategies (entry points):
//   naive  one thread per element of out, no workgroup memory: matvec's naive strategy for every
//          token at once. Each thread reads its whole weight row, so the weights are fetched from
//          memory m times over, less whatever the caches catch.
//   tiled  one workgroup per TILE_M x TILE_N block of out. For each TILE_K-wide slice of the
//          columns, the threads stage the slice of x (TILE_M tokens) and the dequantized slice of
//          weight (TILE_N rows) in workgroup memory, then each thread accumulates a 4 x 4 block of
//          out from there. Weights are fetched ceil(m / TILE_M) times, x ceil(rows / TILE_N) times,
//          and a quantized weight is dequantized once per workgroup instead of once per token.

#if F16_NATIVE
enable f16;
#endif

struct Params {
  m: u32, // tokens: rows of x and of out
  rows: u32,
  cols: u32,
  units: u32, // units per weight row: the row stride
  scalesOffset: u32, // q8_0 / q4_0: u32 index of the first f16 block scale in `weight`
  outStride: u32, // elements per token in out: rows, or the whole matrix's rows for a part of a split one
  outOffset: u32, // where row 0 lands in a token's row of out: the part's first row
}

override WORKGROUP_SIZE: u32 = 64; // naive: threads per workgroup
override TILE_M: u32 = 32; // tiled: tokens per workgroup, a multiple of 4
override TILE_N: u32 = 32; // tiled: weight rows per workgroup, a multiple of 4
override TILE_K: u32 = 32; // tiled: columns per staged slice, a multiple of 32 (whole blocks of every format)
// Derived: never set these.
override TILE_THREADS: u32 = (TILE_M / 4u) * (TILE_N / 4u); // one thread per 4 x 4 block of out
override X_TILE_VEC4S: u32 = TILE_K * TILE_M / 4u;
override W_TILE_VEC4S: u32 = TILE_K * TILE_N / 4u;
override UNITS_PER_SLICE: u32 = TILE_K / UNIT_WEIGHTS;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>; // (m, cols)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (m, outStride), this part at columns outOffset ..

// Column-major slices, so that a thread reads its 4 tokens (4 rows) of column k as one vec4.
var<workgroup> x_tile: array<vec4<f32>, X_TILE_VEC4S>; // (TILE_K, TILE_M): x_tile[k][token / 4][token % 4]
var<workgroup> w_tile: array<vec4<f32>, W_TILE_VEC4S>; // (TILE_K, TILE_N): dequantized weights

/** x[token, c], or 0 past the end of the token's row. */
fn x_at(token: u32, c: u32) -> f32 {
  return select(0.0, x[token * params.cols + c], c < params.cols);
}

/** x[token, c .. c + 4], 0 past the end of the token's row. */
fn x4(token: u32, c: u32) -> vec4<f32> {
  let i = token * params.cols + c;
  if (c + 4u <= params.cols) {
    return vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
  }
  return vec4(x_at(token, c), x_at(token, c + 1u), x_at(token, c + 2u), x_at(token, c + 3u));
}

/** Weight (row0 + n, c0 + k) of the slice being staged. */
fn stage_weight(k: u32, n: u32, w: f32) {
  w_tile[k * (TILE_N / 4u) + n / 4u][n % 4u] = w;
}

/** Weights (row0 + n, c0 + k .. c0 + k + 4) of the slice being staged. */
fn stage_weight4(k: u32, n: u32, w: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) {
    stage_weight(k + j, n, w[j]);
  }
}

// Per format: UNIT_WEIGHTS (weights per unit), unit_dot(token, row, u) (the dot product of unit u
// of `row` with its slice of the token's x) and stage_unit(k, n, row, u) (unit u of `row`,
// dequantized into columns k .. k + UNIT_WEIGHTS of slice row n).
#if F32
#if VEC4
const UNIT_WEIGHTS = 4u;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>; // (rows, cols / 4)

fn unit_dot(token: u32, row: u32, u: u32) -> f32 {
  return dot(weight[row * params.units + u], x4(token, 4u * u));
}

fn stage_unit(k: u32, n: u32, row: u32, u: u32) {
  stage_weight4(k, n, weight[row * params.units + u]);
}
#else
const UNIT_WEIGHTS = 1u;
@group(0) @binding(1) var<storage, read> weight: array<f32>; // (rows, cols)

fn unit_dot(token: u32, row: u32, u: u32) -> f32 {
  return weight[row * params.units + u] * x[token * params.cols + u];
}

fn stage_unit(k: u32, n: u32, row: u32, u: u32) {
  stage_weight(k, n, weight[row * params.units + u]);
}
#endif
#elif F16
const UNIT_WEIGHTS = 2u;
@group(0) @binding(1) var<storage, read> weight: array<u32>; // (rows, paddedCols / 2) pairs of halves

fn unit_dot(token: u32, row: u32, u: u32) -> f32 {
  return dot(unpack2x16float(weight[row * params.units + u]), vec2(x[token * params.cols + 2u * u], x_at(token, 2u * u + 1u)));
}

fn stage_unit(k: u32, n: u32, row: u32, u: u32) {
  let w = unpack2x16float(weight[row * params.units + u]);
  stage_weight(k, n, w.x);
  stage_weight(k + 1u, n, w.y);
}
#elif F16_NATIVE
const UNIT_WEIGHTS = 2u;
@group(0) @binding(1) var<storage, read> weight: array<vec2<f16>>; // (rows, paddedCols / 2)

fn unit_dot(token: u32, row: u32, u: u32) -> f32 {
  return dot(vec2<f32>(weight[row * params.units + u]), vec2(x[token * params.cols + 2u * u], x_at(token, 2u * u + 1u)));
}

fn stage_unit(k: u32, n: u32, row: u32, u: u32) {
  let w = vec2<f32>(weight[row * params.units + u]);
  stage_weight(k, n, w.x);
  stage_weight(k + 1u, n, w.y);
}
#elif Q8_0
const UNIT_WEIGHTS = 32u;
@group(0) @binding(1) var<storage, read> weight: array<vec4<u32>>; // quants (blocks, 2), then scales

/** The four int8s of a word, low byte first. */
fn i8x4(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4(w << 24u, w << 16u, w << 8u, w)) >> vec4(24u));
}

fn unit_dot(token: u32, row: u32, u: u32) -> f32 {
  let block = row * params.units + u;
  let lo = weight[2u * block]; // weights 0..15
  let hi = weight[2u * block + 1u]; // weights 16..31
  let c = 32u * u;
  var sum = 0.0;
  for (var k = 0u; k < 4u; k++) {
    sum += dot(i8x4(lo[k]), x4(token, c + 4u * k)) + dot(i8x4(hi[k]), x4(token, c + 16u + 4u * k));
  }
  return scale(block) * sum;
}

fn stage_unit(k: u32, n: u32, row: u32, u: u32) {
  let block = row * params.units + u;
  let lo = weight[2u * block];
  let hi = weight[2u * block + 1u];
  let d = scale(block);
  for (var w = 0u; w < 4u; w++) {
    stage_weight4(k + 4u * w, n, d * i8x4(lo[w]));
    stage_weight4(k + 16u + 4u * w, n, d * i8x4(hi[w]));
  }
}
#elif Q4_0
const UNIT_WEIGHTS = 32u;
@group(0) @binding(1) var<storage, read> weight: array<vec4<u32>>; // quants (blocks), then scales

// Byte j of a block holds weight j in its low nibble and weight j + 16 in its high one.

/** Levels minus 8 of the low nibbles of a word's four bytes. */
fn low4(w: u32) -> vec4<f32> {
  return vec4<f32>((vec4(w) >> vec4(0u, 8u, 16u, 24u)) & vec4(0xfu)) - 8.0;
}

/** Levels minus 8 of the high nibbles of a word's four bytes. */
fn high4(w: u32) -> vec4<f32> {
  return vec4<f32>((vec4(w) >> vec4(4u, 12u, 20u, 28u)) & vec4(0xfu)) - 8.0;
}

fn unit_dot(token: u32, row: u32, u: u32) -> f32 {
  let block = row * params.units + u;
  let q = weight[block];
  let c = 32u * u;
  var sum = 0.0;
  for (var k = 0u; k < 4u; k++) {
    sum += dot(low4(q[k]), x4(token, c + 4u * k)) + dot(high4(q[k]), x4(token, c + 16u + 4u * k));
  }
  return scale(block) * sum;
}

fn stage_unit(k: u32, n: u32, row: u32, u: u32) {
  let block = row * params.units + u;
  let q = weight[block];
  let d = scale(block);
  for (var w = 0u; w < 4u; w++) {
    stage_weight4(k + 4u * w, n, d * low4(q[w]));
    stage_weight4(k + 16u + 4u * w, n, d * high4(q[w]));
  }
}
#endif

#if QUANT
/** The f16 scale of a block (two per word, low half first). */
fn scale(block: u32) -> f32 {
  let word = params.scalesOffset + block / 2u;
  return unpack2x16float(weight[word / 4u][word % 4u])[block % 2u];
}
#endif

// The grid's x dimension counts groups of WORKGROUP_SIZE rows, its y dimension tokens.
@compute @workgroup_size(WORKGROUP_SIZE)
fn naive(@builtin(global_invocation_id) id: vec3u) {
  let row = id.x;
  let token = id.y;
  if (row < params.rows && token < params.m) {
    var sum = 0.0;
    for (var u = 0u; u < params.units; u++) {
      sum += unit_dot(token, row, u);
    }
    out[token * params.outStride + params.outOffset + row] = sum;
  }
}

// Workgroup (i, j) computes rows TILE_N i .. and tokens TILE_M j .. of out.
@compute @workgroup_size(TILE_THREADS)
fn tiled(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row0 = wg.x * TILE_N;
  let token0 = wg.y * TILE_M;
  let tn = lane % (TILE_N / 4u); // this thread's rows: row0 + 4 tn + (0..3)
  let tm = lane / (TILE_N / 4u); // its tokens: token0 + 4 tm + (0..3)
  var acc: array<vec4<f32>, 4>; // acc[i][j]: token 4 tm + i, row 4 tn + j
  for (var u0 = 0u; u0 < params.units; u0 += UNITS_PER_SLICE) {
    let c0 = u0 * UNIT_WEIGHTS;
    // Stage x (TILE_M tokens, columns c0 ..): consecutive threads read consecutive columns.
    for (var i = lane; i < TILE_M * TILE_K; i += TILE_THREADS) {
      let k = i % TILE_K;
      let t = i / TILE_K;
      let token = token0 + t;
      var v = 0.0;
      if (token < params.m && c0 + k < params.cols) {
        v = x[token * params.cols + c0 + k];
      }
      x_tile[k * (TILE_M / 4u) + t / 4u][t % 4u] = v;
    }
    // Stage the weights (TILE_N rows, units u0 ..), dequantized; zeros past the last row or unit.
    for (var i = lane; i < TILE_N * UNITS_PER_SLICE; i += TILE_THREADS) {
      let n = i / UNITS_PER_SLICE;
      let k = (i % UNITS_PER_SLICE) * UNIT_WEIGHTS;
      let row = row0 + n;
      let u = u0 + i % UNITS_PER_SLICE;
      if (row < params.rows && u < params.units) {
        stage_unit(k, n, row, u);
      } else {
        for (var j = 0u; j < UNIT_WEIGHTS; j++) {
          stage_weight(k + j, n, 0.0);
        }
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < TILE_K; k++) {
      let a = x_tile[k * (TILE_M / 4u) + tm];
      let b = w_tile[k * (TILE_N / 4u) + tn];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier(); // the next slice overwrites the tiles
  }
  for (var i = 0u; i < 4u; i++) {
    let token = token0 + 4u * tm + i;
    for (var j = 0u; j < 4u; j++) {
      let row = row0 + 4u * tn + j;
      if (token < params.m && row < params.rows) {
        out[token * params.outStride + params.outOffset + row] = acc[i][j];
      }
    }
  }
}
