// The arithmetic behind the economics panel: what a token costs at a price per GPU-hour, and how
// many tokens per second memory bandwidth allows when every decode step streams the weights once.

function requirePositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive finite number, got ${value}`);
}

/** Dollars per million generated tokens: dollarsPerHour ÷ (tokensPerSecond × 3600) × 1e6. */
export function costPerMillionTokens(dollarsPerHour: number, tokensPerSecond: number): number {
  requirePositive('dollarsPerHour', dollarsPerHour);
  requirePositive('tokensPerSecond', tokensPerSecond);
  return (dollarsPerHour / (tokensPerSecond * 3600)) * 1e6;
}

/**
 * The bandwidth bound on decode speed at batch 1: each token reads `bytesPerToken` from memory, so
 * tokens/s ≤ bandwidth ÷ bytesPerToken (bandwidthGBps in 1e9 bytes per second).
 */
export function rooflineTokensPerSecond(bandwidthGBps: number, bytesPerToken: number): number {
  requirePositive('bandwidthGBps', bandwidthGBps);
  requirePositive('bytesPerToken', bytesPerToken);
  return (bandwidthGBps * 1e9) / bytesPerToken;
}

/** Measured tokens/s as a fraction of the bandwidth bound (1 means the bytes moved at full bandwidth). */
export function rooflineFraction(measuredTokensPerSecond: number, bandwidthGBps: number, bytesPerToken: number): number {
  if (!(Number.isFinite(measuredTokensPerSecond) && measuredTokensPerSecond >= 0)) {
    throw new RangeError(`measuredTokensPerSecond must be a non-negative finite number, got ${measuredTokensPerSecond}`);
  }
  return measuredTokensPerSecond / rooflineTokensPerSecond(bandwidthGBps, bytesPerToken);
}
