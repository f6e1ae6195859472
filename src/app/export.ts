// Getting measurements out of the page: traces and reports as JSON, tables as CSV, charts as PNG,
// and a download helper for any of them.

/** Pretty JSON (two-space indent, trailing newline). Typed arrays become plain arrays, as a reader of the file expects. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, v: unknown) => (ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v as unknown as ArrayLike<number>) : v), 2)}\n`;
}

export type CsvValue = string | number | boolean | null;

/**
 * Rows of a table: each object's own fields are its columns. Any object type qualifies (interfaces
 * such as KernelTiming have no index signature, so a Record type would refuse them).
 */
export type CsvRows = ReadonlyArray<object>;

/**
 * One CSV field: null and missing are empty, objects and arrays are written as JSON, and a field
 * holding a comma, a quote or a line break is quoted with its quotes doubled (RFC 4180).
 */
function csvField(value: CsvValue | object | undefined): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * CSV with a header row and CRLF line ends (RFC 4180). Columns default to every key in the rows,
 * in the order first seen; a row without a column's key leaves that field empty. No columns: ''.
 */
export function toCsv(rows: CsvRows, columns?: readonly string[]): string {
  const names = columns ?? [...new Set(rows.flatMap((row) => Object.keys(row)))];
  if (names.length === 0) return '';
  const lines = [names.map(csvField), ...rows.map((row) => names.map((name) => csvField((row as Record<string, CsvValue | object | undefined>)[name])))];
  return lines.map((fields) => `${fields.join(',')}\r\n`).join('');
}

// Presentation properties that the page's stylesheet (not the SVG's own attributes) sets on chart
// elements; an SVG drawn as an image sees no stylesheet, so they are copied onto each element.
const inlinedProperties = [
  'fill',
  'fill-opacity',
  'stroke',
  'stroke-width',
  'stroke-dasharray',
  'stroke-opacity',
  'opacity',
  'font-family',
  'font-size',
  'font-weight',
  'font-variant-numeric',
  'text-anchor',
  'dominant-baseline',
  'visibility',
  'display',
] as const;

/** The first non-transparent background at or above `element`, so the PNG looks like the page. */
function backgroundOf(element: Element): string {
  for (let e: Element | null = element; e; e = e.parentElement) {
    const color = getComputedStyle(e).backgroundColor;
    if (color && color !== 'transparent' && color !== 'rgba(0, 0, 0, 0)') return color;
  }
  return '#ffffff';
}

/** Renders an on-page SVG chart to a PNG at `scale` × its displayed size. */
export async function svgToPngBlob(svg: SVGSVGElement, scale = 2): Promise<Blob> {
  const { width, height } = svg.getBoundingClientRect();
  if (width === 0 || height === 0) throw new Error('the chart is not displayed (zero size), so it cannot be drawn');
  const copy = svg.cloneNode(true) as SVGSVGElement;
  const originals = [svg, ...svg.querySelectorAll('*')];
  const copies = [copy, ...copy.querySelectorAll('*')];
  originals.forEach((original, i) => {
    const style = getComputedStyle(original);
    const target = copies[i] as SVGElement;
    for (const property of inlinedProperties) target.style.setProperty(property, style.getPropertyValue(property));
  });
  copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  copy.setAttribute('width', String(width));
  copy.setAttribute('height', String(height));
  copy.style.setProperty('color', getComputedStyle(svg).color);

  const markup = new XMLSerializer().serializeToString(copy);
  const url = URL.createObjectURL(new Blob([markup], { type: 'image/svg+xml;charset=utf-8' }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const context = canvas.getContext('2d');
    if (!context) throw new Error('no 2D canvas context to draw the chart into');
    // Drawn under the chart: an SVG image is transparent wherever the page's background showed through.
    context.fillStyle = backgroundOf(svg);
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    return await new Promise<Blob>((resolve, reject) => {
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the canvas could not be encoded as PNG'))), 'image/png');
    });
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** Saves `data` as a file through a temporary link. `mime` is the type of string data; a Blob keeps its own. */
export function download(filename: string, data: Blob | string, mime = 'text/plain;charset=utf-8'): void {
  const blob = typeof data === 'string' ? new Blob([data], { type: mime }) : data;
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser reads the object URL asynchronously after click(); revoking at once can cancel
  // the download in some browsers, so the URL lives a little longer.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
