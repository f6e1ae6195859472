// Geometry of the workbench's roofline chart (log-log): x is arithmetic intensity (FLOP per byte
// read), y is achieved GFLOP/s. The memory roof is y = probe GB/s × x, the most a kernel at that
// intensity can reach if it reads at the bandwidth the probe measured. The compute roof is not
// drawn: the lab does not measure peak FLOP/s. Every variant runs the same op at the same shape,
// so all points share one x and differ only in height.
import { scaleLog } from 'd3';
import type { WorkbenchReport } from '../../engine/telemetry.ts';
import { decadeTicks, plotFrame, type PlotFrame, type Tick } from './frame.ts';

export interface RooflinePoint {
  variant: string;
  edited: boolean;
  gflops: number;
  x: number;
  y: number;
  /** Where the point's label sits: moved apart from its neighbours so labels never overlap. */
  labelY: number;
}

export interface RooflineRoof {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  /** Anchor and slope (degrees, SVG rotation) of the roof's label. */
  labelX: number;
  labelY: number;
  angle: number;
}

export interface WorkbenchRoofline {
  frame: PlotFrame;
  xTicks: Tick[];
  yTicks: Tick[];
  /** FLOP per byte read of the op at the requested shape. */
  intensity: number;
  intensityX: number;
  roof: RooflineRoof;
  points: RooflinePoint[];
}

const margin = { top: 28, right: 24, bottom: 48, left: 64 };
/** Smallest vertical distance between two point labels, px. */
const labelGap = 14;
/** Spreads label positions (sorted top to bottom) at least `labelGap` apart, kept inside [top, bottom]. */
function spreadLabels(ys: number[], top: number, bottom: number): number[] {
  const out = [...ys];
  for (let i = 1; i < out.length; i++) out[i] = Math.max(out[i], out[i - 1] + labelGap);
  const overflow = out.length > 0 ? out[out.length - 1] - bottom : 0;
  if (overflow > 0) for (let i = 0; i < out.length; i++) out[i] = Math.max(top, out[i] - overflow);
  return out;
}

/** The chart's geometry; null when the report has no variant that ran or a cost model of zero. */
export function workbenchRoofline(report: WorkbenchReport, width = 560, height = 320): WorkbenchRoofline | null {
  const intensity = report.flops / report.bytesRead;
  const measured = report.results.filter((r): r is typeof r & { gflops: number } => r.gflops !== null && r.gflops > 0);
  if (!(Number.isFinite(intensity) && intensity > 0) || !(report.probeGBps > 0) || measured.length === 0) return null;

  const frame = plotFrame(width, height, margin);
  const x = scaleLog()
    .domain([intensity / 10, intensity * 10])
    .range([0, frame.innerWidth])
    .nice();
  const [xMin, xMax] = x.domain();
  const gflops = measured.map((r) => r.gflops);
  // GB/s × FLOP/byte = GFLOP/s: the roof's height at both ends of the x axis.
  const roofLow = report.probeGBps * xMin;
  const roofHigh = report.probeGBps * xMax;
  const y = scaleLog()
    .domain([Math.min(roofLow, ...gflops), Math.max(roofHigh, ...gflops)])
    .range([frame.innerHeight, 0])
    .nice();

  const roof = { x1: x(xMin), y1: y(roofLow), x2: x(xMax), y2: y(roofHigh) };
  // Past the op's intensity line (the middle of the axis), clear of the points' labels.
  const along = 0.8;
  const labelX = roof.x1 + (roof.x2 - roof.x1) * along;
  const labelY = roof.y1 + (roof.y2 - roof.y1) * along;
  const angle = (Math.atan2(roof.y2 - roof.y1, roof.x2 - roof.x1) * 180) / Math.PI;

  const sorted = measured.map((r) => ({ variant: r.variant, edited: r.edited, gflops: r.gflops, x: x(intensity), y: y(r.gflops) })).sort((a, b) => a.y - b.y);
  const labelYs = spreadLabels(
    sorted.map((p) => p.y),
    0,
    frame.innerHeight,
  );
  const points = sorted.map((p, i) => ({ ...p, labelY: labelYs[i] }));

  return {
    frame,
    xTicks: decadeTicks(x),
    yTicks: decadeTicks(y),
    intensity,
    intensityX: x(intensity),
    roof: { ...roof, labelX, labelY, angle },
    points,
  };
}
