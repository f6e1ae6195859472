// Data-centre hardware figures the panels compare this adapter with. None of them is measured here:
// each one is quoted from the project's knowledge base, with the section it comes from, so a panel can
// show where a reference number came from next to the number itself.

const knowledgeBase = '../shared/docs/inference-knowledge-base.md';

function section(title: string): string {
  return `${knowledgeBase}, “${title}”`;
}

/** Separates the sections of a figure quoted from more than one place. */
const sectionSeparator = '; ';

/** The sections the given figures are quoted from, each once, in order: for a "Sources:" line. */
export function citations(figures: ReadonlyArray<{ source: string } | null>): string {
  const sections = figures.flatMap((figure) => (figure ? figure.source.split(sectionSeparator) : []));
  return [...new Set(sections)].join(sectionSeparator);
}

/** One quoted figure: the value projections use, the range the docs give (when they give one), and where it comes from. */
export interface ReferenceFigure {
  value: number;
  range?: readonly [low: number, high: number];
  unit: string;
  source: string;
}

export interface ReferenceGpu {
  name: string;
  /** HBM generation, e.g. "HBM3". */
  memoryType: string;
  hbmCapacityGB: ReferenceFigure;
  hbmBandwidthGBps: ReferenceFigure;
  /** On-chip SRAM of the whole chip; null where the docs give no figure. */
  onChipSramMB: ReferenceFigure | null;
  /** CPU memory → GPU memory link. */
  hostLinkGBps: ReferenceFigure | null;
  /** Disk read speed, where the model's files live before loading. */
  storageReadGBps: ReferenceFigure | null;
  /** Rental price of one GPU-hour. */
  rentalDollarsPerHour: ReferenceFigure | null;
  /** Fully loaded cost of an owned GPU-hour (amortised purchase, power, data centre, operations). */
  ownedDollarsPerHour: ReferenceFigure | null;
}

const hbmTable = section('10. HBM (High Bandwidth Memory) › Key Specs');
const hierarchy = section('16. The GPU Memory Hierarchy › Full Path: Disk → CPU RAM → HBM → SRAM → Compute Cores');
const costStack = section('1. Pricing AI Inference End-to-End › The Full Cost Stack (Bottom-Up)');
const breakeven = section('3. Buy vs. Rent GPUs › Breakeven Utilization (Before Cost of Capital)');
const marginTable = section('2. Managed Inference vs. GPU Rental › GPU Rental (Crusoe Cloud, CoreWeave, Lambda)');

export const referenceGpus = {
  'h100-sxm': {
    name: 'NVIDIA H100 SXM',
    memoryType: 'HBM3',
    hbmCapacityGB: { value: 80, unit: 'GB', source: hbmTable },
    hbmBandwidthGBps: { value: 3350, unit: 'GB/s', source: hbmTable },
    onChipSramMB: { value: 50, unit: 'MB', source: hierarchy },
    hostLinkGBps: { value: 64, unit: 'GB/s (PCIe 5.0)', source: hierarchy },
    storageReadGBps: { value: 7, unit: 'GB/s (NVMe SSD)', source: hierarchy },
    // The range is the mid-market rental price; the value is the rental figure the breakeven example uses.
    rentalDollarsPerHour: { value: 2.5, range: [2.0, 3.0], unit: '$/hour', source: [costStack, breakeven].join(sectionSeparator) },
    // Low end: the breakeven example's owned cost; high end: the leased-infrastructure total of the margin table.
    ownedDollarsPerHour: { value: 1.1, range: [1.1, 1.64], unit: '$/hour', source: [breakeven, marginTable].join(sectionSeparator) },
  },
  h200: {
    name: 'NVIDIA H200',
    memoryType: 'HBM3e',
    hbmCapacityGB: { value: 141, unit: 'GB', source: hbmTable },
    hbmBandwidthGBps: { value: 4800, unit: 'GB/s', source: hbmTable },
    onChipSramMB: null,
    hostLinkGBps: null,
    storageReadGBps: null,
    rentalDollarsPerHour: null,
    ownedDollarsPerHour: null,
  },
  'a100-80gb': {
    name: 'NVIDIA A100 80 GB',
    memoryType: 'HBM2e',
    hbmCapacityGB: { value: 80, unit: 'GB', source: hbmTable },
    hbmBandwidthGBps: { value: 2000, unit: 'GB/s', source: hbmTable },
    onChipSramMB: null,
    hostLinkGBps: null,
    storageReadGBps: null,
    rentalDollarsPerHour: null,
    ownedDollarsPerHour: null,
  },
} as const satisfies Record<string, ReferenceGpu>;

export type ReferenceGpuKey = keyof typeof referenceGpus;

export const referenceGpuKeys = Object.keys(referenceGpus) as ReferenceGpuKey[];

export function isReferenceGpuKey(key: string): key is ReferenceGpuKey {
  return Object.hasOwn(referenceGpus, key);
}

/** A figure the docs give only as a range. */
export interface ReferenceRange {
  range: readonly [low: number, high: number];
  unit: string;
  source: string;
}

/** Laptop system memory bandwidth, for scale: integrated GPUs read their "GPU memory" from it. */
export const laptopDdr5GBps: ReferenceRange = { range: [50, 100], unit: 'GB/s (DDR5)', source: hbmTable };

/** The $/hour the economics panel starts from: the typical H100 rental price. */
export const defaultDollarsPerHour = referenceGpus['h100-sxm'].rentalDollarsPerHour.value;
