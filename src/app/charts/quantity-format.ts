// Units for the memory, economics and sampling panels, on top of format.ts's figures. Sizes are
// decimal (1 MB = 1e6 bytes) so they divide cleanly by bandwidths quoted in GB/s (1e9 bytes/s).
import { format } from 'd3';
import { formatFigure, formatMs } from './format.ts';

const sizeUnits = [
  [1e12, 'TB'],
  [1e9, 'GB'],
  [1e6, 'MB'],
  [1e3, 'kB'],
] as const;

/** "1.23 MB", "512 B"; "—" when not a finite size. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '—';
  for (const [size, unit] of sizeUnits) {
    if (Math.abs(bytes) >= size) return `${formatFigure(bytes / size)} ${unit}`;
  }
  return `${formatFigure(bytes)} B`;
}

/** "3,350 GB/s", "12.3 GB/s". */
export function formatGBps(gbps: number): string {
  return Number.isFinite(gbps) ? `${formatFigure(gbps)} GB/s` : '—';
}

/** "123 tok/s". */
export function formatTokensPerSecond(tokensPerSecond: number): string {
  return Number.isFinite(tokensPerSecond) ? `${formatFigure(tokensPerSecond)} tok/s` : '—';
}

/** Milliseconds, switching to microseconds below 1 ms: "0.5 ms" reads as "500 µs". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  return Math.abs(ms) < 1 ? `${formatFigure(ms * 1000)} µs` : formatMs(ms);
}

const cents = format('$,.2f');
const wholeDollars = format('$,.0f');
const threeSignificantDollars = format('$.3r');

/** "$1,234", "$12.35", "$0.00123" (three significant figures below a dollar). */
export function formatDollars(dollars: number): string {
  if (!Number.isFinite(dollars)) return '—';
  if (Math.abs(dollars) >= 1000) return wholeDollars(dollars);
  if (Math.abs(dollars) >= 1) return cents(dollars);
  return threeSignificantDollars(dollars);
}

const percentOneDecimal = format('.1%');
const twoSignificant = format('.2~g');

/** A fraction (a probability, a share of a bound) as a percentage: "42.0%", under 1% with two significant figures ("0.15%"); exactly 0 is "0%". */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return '—';
  if (p === 0) return '0%';
  return p >= 0.01 ? percentOneDecimal(p) : `${twoSignificant(p * 100)}%`;
}

const asQuoted = format(',');

/** A reference figure as the docs write it, without added precision: "3,350", "7", "1.64". */
export function formatQuoted(value: number): string {
  return Number.isFinite(value) ? asQuoted(value) : '—';
}
