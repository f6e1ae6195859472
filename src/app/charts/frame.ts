// Geometry of one SVG chart: the whole drawing and the plot area inside its axis margins.
import { format, type ScaleBand, type ScaleContinuousNumeric, type ScaleLogarithmic } from 'd3';

export interface Margin {
  top: number;
  right: number;
  bottom: number;
  left: number;
}

export interface PlotFrame {
  width: number;
  height: number;
  margin: Margin;
  /** Plot area, inside the margins. */
  innerWidth: number;
  innerHeight: number;
}

export function plotFrame(width: number, height: number, margin: Margin): PlotFrame {
  return {
    width,
    height,
    margin,
    innerWidth: Math.max(0, width - margin.left - margin.right),
    innerHeight: Math.max(0, height - margin.top - margin.bottom),
  };
}

/** One axis tick: where it sits along the axis (px in the plot area) and what it reads. */
export interface Tick {
  at: number;
  text: string;
}

/** About `count` round ticks of a linear or log scale, written by `formatTick` (default: the scale's own tick format, as precise as the tick step). */
export function continuousTicks(scale: ScaleContinuousNumeric<number, number>, count: number, formatTick: (value: number) => string = scale.tickFormat(count)): Tick[] {
  return scale.ticks(count).map((value) => ({ at: scale(value), text: formatTick(value) }));
}

const wholeNumber = format(',d');

/** Round ticks at whole numbers only, for axes that count things (steps, tokens): a short axis gets no "0.5 tokens". */
export function countTicks(scale: ScaleContinuousNumeric<number, number>, count: number): Tick[] {
  return scale
    .ticks(count)
    .filter(Number.isInteger)
    .map((value) => ({ at: scale(value), text: wholeNumber(value) }));
}

const decadeText = format('~g');

/** Tick marks at the powers of ten inside a log scale's (niced) domain. */
export function decadeTicks(scale: ScaleLogarithmic<number, number>): Tick[] {
  const [lo, hi] = scale.domain();
  const ticks: Tick[] = [];
  for (let e = Math.round(Math.log10(lo)); e <= Math.round(Math.log10(hi)); e++) {
    const value = 10 ** e;
    ticks.push({ at: scale(value), text: decadeText(value) });
  }
  return ticks;
}

/** A tick at the middle of each band, reading the band's name. */
export function bandTicks(scale: ScaleBand<string>): Tick[] {
  return scale.domain().map((name) => ({ at: (scale(name) ?? 0) + scale.bandwidth() / 2, text: name }));
}
