// Small statistics over measured series, computed where a panel draws them (so each caption can
// state its formula next to the figure).

/** Arithmetic mean; NaN for an empty list (shown as "—" by the formatters). */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  let total = 0;
  for (const v of values) total += v;
  return total / values.length;
}

/** Trailing mean over the last `window` values at each index (fewer at the start of the series). */
export function rollingMean(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    total += values[i];
    if (i >= window) total -= values[i - window];
    out.push(total / Math.min(i + 1, window));
  }
  return out;
}

/** Least-squares line y = intercept + slope·x, with the share of variance it explains (r²). */
export interface LinearFit {
  slope: number;
  intercept: number;
  r2: number;
}

/** Fits a line through the points; null when fewer than two distinct x values make the slope undefined. */
export function linearFit(points: ReadonlyArray<{ x: number; y: number }>): LinearFit | null {
  const mx = mean(points.map((p) => p.x));
  const my = mean(points.map((p) => p.y));
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const { x, y } of points) {
    sxx += (x - mx) ** 2;
    sxy += (x - mx) * (y - my);
    syy += (y - my) ** 2;
  }
  if (points.length < 2 || sxx === 0) return null;
  const slope = sxy / sxx;
  // A flat series (syy = 0) is fitted exactly by the horizontal line.
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { slope, intercept: my - slope * mx, r2 };
}
