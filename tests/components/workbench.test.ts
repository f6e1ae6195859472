import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { elementWith, visibleText } from '../helpers/ssr.ts';
import type { ShaderEditReport, WorkbenchReport } from '../../src/engine/telemetry.ts';
import WorkbenchPanel from '../../src/app/panels/WorkbenchPanel.svelte';
import { workbenchRoofline } from '../../src/app/charts/workbench-roofline.ts';



/** The text of each cell (th and td) of a table row. */
function cells(row: string): string[] {
  return [...row.matchAll(/<t[hd]\b[^>]*>([\s\S]*?)<\/t[hd]>/g)].map((m) => visibleText(m[1]));
}

// q4_0 288×288: 288 × 9 blocks × 18 bytes + 288 × 4 bytes of x = 47,808 bytes; 2 × 288 × 288 FLOP.
const report: WorkbenchReport = {
  request: { op: 'matvec', format: 'q4_0', rows: 288, cols: 288, repetitions: 10 },
  bytesRead: 47_808,
  bytesWritten: 1152,
  flops: 165_888,
  probeGBps: 12.5,
  method: 'wall',
  results: [
    { variant: 'naive', ms: 0.0123, gbps: 3.887, gflops: 13.49, fractionOfProbe: 0.311, maxAbsError: 1.2e-6, edited: false },
    { variant: 'splitK', ms: 0.05, gbps: 0.956, gflops: 3.318, fractionOfProbe: 0.0766, maxAbsError: 0, edited: true },
    { variant: 'subgroup', ms: null, gbps: null, gflops: null, fractionOfProbe: null, maxAbsError: null, error: "needs the 'subgroups' feature", edited: false },
    { variant: 'multiRow', ms: 1.5, gbps: 31.87, gflops: 110.6, fractionOfProbe: 2.55, maxAbsError: 3.4e-5, edited: false },
  ],
};

const source = 'fn main() {\n  let a = x < 3 && y > 2;\n}\n// </textarea><script>alert(1)</script>';

const rejected: ShaderEditReport = {
  family: 'matvec',
  accepted: false,
  errors: ["matvec.wgsl:2:12: unresolved value 'x'", 'q4_0/naive: max abs error 0.5 exceeds 1e-3'],
  checks: [
    { format: 'q4_0', variant: 'naive', maxAbsError: 0.5, ok: false, error: 'wrong result' },
    { format: 'f32', variant: 'splitK', maxAbsError: 2.5e-7, ok: true },
  ],
};

function panel(overrides: Record<string, unknown> = {}): string {
  return render(WorkbenchPanel, {
    props: {
      report,
      formats: ['f32', 'f16', 'q8_0', 'q4_0'],
      request: { format: 'q4_0', rows: 288, cols: 288 },
      onrun: () => {},
      busy: false,
      source,
      editReport: null,
      onsubmitedit: () => {},
      onresetedit: () => {},
      edited: false,
      ...overrides,
    },
  }).body;
}

describe('WorkbenchPanel results', () => {
  it('shows each variant’s measurements as given, formatted', () => {
    const table = elementWith(panel(), 'data-testid="workbench-results"');
    expect(cells(elementWith(table, 'data-variant="naive"'))).toEqual(['naive', '0.0123', '3.89', '13.5', '31.1%', '1.20e-6', '']);
    expect(cells(elementWith(table, 'data-variant="splitK"'))).toEqual(['splitK', '0.0500', '0.956', '3.32', '7.7%', '0', 'edited']);
    expect(cells(elementWith(table, 'data-variant="multiRow"'))).toEqual(['multiRow', '1.50', '31.9', '111', '255.0%', '3.40e-5', '']);
  });

  it('shows why a variant could not run instead of figures', () => {
    const row = elementWith(panel(), 'data-variant="subgroup"');
    expect(cells(row)).toEqual(['subgroup', '—', '—', '—', '—', '—', "needs the 'subgroups' feature"]);
  });

  it('states the shape, its cost, the probe and how it was timed', () => {
    const summary = visibleText(elementWith(panel(), 'data-testid="workbench-summary"'));
    expect(summary).toBe(
      'q4_0 288×288: reads 47.8 kB, writes 1.15 kB, 165,888 FLOP (3.47 FLOP/byte). Probe: 12.5 GB/s. Timed with wall clock (no timestamp-query), 10 repetitions.',
    );
  });

  it('starts the form from the request and offers the preset shapes', () => {
    const html = panel({ request: { format: 'q8_0', rows: 172, cols: 64 } });
    expect(html).toMatch(/data-testid="workbench-rows"[^>]*value="172"/);
    expect(html).toMatch(/data-testid="workbench-cols"[^>]*value="64"/);
    expect(elementWith(html, 'data-testid="workbench-format"')).toMatch(/<option value="q8_0" selected/);
    const presets = [...html.matchAll(/class="preset[^"]*"[^>]*aria-pressed="(true|false)"[^>]*>\s*([\d×]+)/g)].map((m) => [m[2], m[1]]);
    expect(presets).toEqual([
      ['4096×4096', 'false'],
      ['11008×4096', 'false'],
      ['4096×11008', 'false'],
      ['32000×288', 'false'],
      ['49152×576', 'false'],
      ['172×64', 'true'],
      ['288×288', 'false'],
    ]);
  });

  it('disables Run, Submit and Reset while busy', () => {
    const html = panel({ busy: true, edited: true });
    for (const id of ['workbench-run', 'wgsl-submit', 'wgsl-reset']) expect(elementWith(html, `data-testid="${id}"`)).toMatch(/disabled/);
    const idle = panel({ edited: true });
    for (const id of ['workbench-run', 'wgsl-submit', 'wgsl-reset']) expect(elementWith(idle, `data-testid="${id}"`)).not.toMatch(/disabled/);
  });

  it('shows no results before the first run', () => {
    const html = panel({ report: null });
    expect(html).not.toContain('workbench-results');
    expect(html).not.toContain('workbench-roofline');
    expect(visibleText(html)).toContain('Pick a shape and run');
  });
});

describe('roofline chart', () => {
  const layout = workbenchRoofline(report)!;

  it('puts every variant that ran at the op’s intensity, higher GFLOP/s higher up', () => {
    expect(layout.intensity).toBeCloseTo(165_888 / 47_808, 12);
    expect(layout.points.map((p) => p.variant)).toEqual(['multiRow', 'naive', 'splitK']);
    for (const p of layout.points) expect(p.x).toBe(layout.intensityX);
    const [multiRow, naive, splitK] = layout.points;
    expect(multiRow.y).toBeLessThan(naive.y);
    expect(naive.y).toBeLessThan(splitK.y);
    // Log scale: a tenfold GFLOP/s ratio is one decade, the distance between two y ticks.
    const decade = layout.yTicks[0].at - layout.yTicks[1].at;
    expect(splitK.y - naive.y).toBeCloseTo(decade * Math.log10(13.49 / 3.318), 9);
  });

  it('draws the memory roof through probe GB/s × intensity', () => {
    const atRoof = { ...report, results: [{ ...report.results[0], gflops: report.probeGBps * layout.intensity }] };
    const roofline = workbenchRoofline(atRoof)!;
    const { roof, intensityX } = roofline;
    const roofY = roof.y1 + ((roof.y2 - roof.y1) * (intensityX - roof.x1)) / (roof.x2 - roof.x1);
    expect(roofline.points[0].y).toBeCloseTo(roofY, 9);
  });

  it('keeps labels of nearly equal points apart', () => {
    const close = {
      ...report,
      results: [
        { ...report.results[0], variant: 'a', gflops: 10 },
        { ...report.results[0], variant: 'b', gflops: 10.01 },
        { ...report.results[0], variant: 'c', gflops: 10.02 },
      ],
    };
    const ys = workbenchRoofline(close)!.points.map((p) => p.labelY);
    expect(ys[1] - ys[0]).toBeGreaterThanOrEqual(14);
    expect(ys[2] - ys[1]).toBeGreaterThanOrEqual(14);
  });

  it('has nothing to draw when no variant ran', () => {
    expect(workbenchRoofline({ ...report, results: [report.results[2]] })).toBeNull();
  });

  it('labels each point and says the compute roof is not measured', () => {
    const figure = visibleText(elementWith(panel(), 'data-testid="workbench-roofline"'));
    expect(figure).toContain('naive · 13.5 GFLOP/s');
    expect(figure).toContain('splitK (edited) · 3.32 GFLOP/s');
    expect(figure).toContain('multiRow · 111 GFLOP/s');
    expect(figure).not.toContain('subgroup');
    expect(figure).toContain('memory roof (12.5 GB/s)');
    expect(figure).toContain('compute roof: not measured');
  });
});

describe('WGSL editor', () => {
  it('holds the source as escaped text', () => {
    const html = panel();
    const editor = elementWith(html, 'data-testid="wgsl-editor"');
    expect(editor).toContain('let a = x &lt; 3 &amp;&amp; y > 2;');
    expect(editor).toContain('// &lt;/textarea>&lt;script>alert(1)&lt;/script>');
    expect(html).not.toContain('<script>');
    expect(visibleText(html)).toContain('running shaders/matvec.wgsl');
    // One gutter number per source line.
    expect([...elementWith(html, 'class="gutter').matchAll(/<div[^>]*>(\d+)<\/div>/g)].map((m) => m[1])).toEqual(['1', '2', '3', '4']);
  });

  it('shows every error of a rejected edit, with a link to the line the compiler named', () => {
    const html = panel({ editReport: rejected });
    const errors = elementWith(html, 'data-testid="wgsl-errors"');
    expect(visibleText(errors)).toContain("matvec.wgsl:2:12 unresolved value 'x'");
    expect(visibleText(errors)).toContain('q4_0/naive: max abs error 0.5 exceeds 1e-3');
    expect(errors).toMatch(/<button[^>]*data-line="2"[^>]*>matvec\.wgsl:2:12<\/button>/);
    expect([...errors.matchAll(/data-line="(\d+)"/g)].map((m) => m[1])).toEqual(['2']);
    const gutter = elementWith(html, 'class="gutter');
    expect([...gutter.matchAll(/<div class="[^"]*error-line[^"]*">(\d+)<\/div>/g)].map((m) => m[1])).toEqual(['2']);
    expect(html).not.toContain('wgsl-accepted');
  });

  it('tabulates the checks that ran', () => {
    const table = elementWith(panel({ editReport: rejected }), 'data-testid="wgsl-checks"');
    const rows = [...table.matchAll(/<tr\b[^>]*>[\s\S]*?<\/tr>/g)].map((m) => cells(m[0]));
    expect(rows).toEqual([
      ['format', 'variant', 'max abs error', 'ok'],
      ['q4_0', 'naive', '5.00e-1', '✗ wrong result'],
      ['f32', 'splitK', '2.50e-7', '✓'],
    ]);
  });

  it('says the model runs the edit once it is accepted', () => {
    const accepted: ShaderEditReport = { family: 'matvec', accepted: true, errors: [], checks: [{ format: 'f32', variant: 'naive', maxAbsError: 1e-7, ok: true }] };
    const html = panel({ editReport: accepted, edited: true });
    expect(visibleText(elementWith(html, 'data-testid="wgsl-accepted"'))).toBe('Accepted: every check passed and the model now runs the edited matvec kernel.');
    expect(html).not.toContain('wgsl-errors');
    expect(visibleText(html)).toContain('edited kernel in use');
  });

  it('offers Reset only when there is something to reset', () => {
    expect(elementWith(panel(), 'data-testid="wgsl-reset"')).toMatch(/disabled/);
    expect(elementWith(panel({ edited: true }), 'data-testid="wgsl-reset"')).not.toMatch(/disabled/);
  });
});
