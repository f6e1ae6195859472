// The sampler's counter-based RNG. The draw for a token depends only on (seed, position), never on
// earlier draws, so the GPU sampler can compute it in a shader without carrying state between steps
// and still reproduce this reference bit for bit. All arithmetic is u32, wrapping mod 2^32.

/** PCG-RXS-M-XS 32-bit hash (O'Neill's PCG output permutation applied to one LCG step). */
export function pcg(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** A float in [0, 1) for drawing the token at sequence position `counter`: the top 24 bits of the hash, so exact in f32. */
export function uniform(seed: number, counter: number): number {
  return (pcg((seed ^ pcg(counter)) >>> 0) >>> 8) / 16777216;
}

/** Seeded values in [-1, 1): the same test matrix and vector on every run, so errors compare between runs. */
export function seededValues(n: number, seed: number): Float32Array {
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = 2 * uniform(seed, i) - 1;
  return values;
}
