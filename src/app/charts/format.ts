// Number formatting shared by the charts and tables: every figure on the lab's panels goes through
// these, so the same measurement reads the same everywhere.
import { format } from 'd3';

const wholeWithSeparators = format(',.0f');
const threeSignificant = format('.3r');
const twoDecimals = format('.2f');
const percentOneDecimal = format('.1%');

/** Three significant figures ("12.3", "0.500"), whole numbers with separators from 1000 up ("1,235"); "—" when not a finite number. */
export function formatFigure(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return Math.abs(value) >= 1000 ? wholeWithSeparators(value) : threeSignificant(value);
}

/** "12.3 ms". */
export function formatMs(value: number): string {
  return Number.isFinite(value) ? `${formatFigure(value)} ms` : '—';
}

/** A ratio such as a speed-up: "1.42×". */
export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${twoDecimals(value)}×` : '—';
}

/** A fraction as a percentage: 0.1234 → "12.3%". */
export function formatShare(value: number): string {
  return Number.isFinite(value) ? percentOneDecimal(value) : '—';
}
