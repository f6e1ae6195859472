import { describe, expect, it } from 'vitest';
import { toCsv, toJson } from '../src/app/export.ts';
import type { KernelTiming } from '../src/engine/telemetry.ts';

/** A strict RFC 4180 reader (CRLF records, quoted fields with doubled quotes), to check what toCsv wrote. */
function readCsv(csv: string): string[][] {
  const records: string[][] = [];
  let fields: string[] = [];
  let field = '';
  let i = 0;
  while (i < csv.length) {
    if (csv[i] === '"') {
      i++;
      for (;;) {
        if (csv[i] === '"' && csv[i + 1] === '"') (field += '"'), (i += 2);
        else if (csv[i] === '"') break;
        else if (i >= csv.length) throw new Error('unterminated quote');
        else field += csv[i++];
      }
      i++;
    } else if (csv[i] === ',') {
      fields.push(field);
      field = '';
      i++;
    } else if (csv.startsWith('\r\n', i)) {
      fields.push(field);
      records.push(fields);
      fields = [];
      field = '';
      i += 2;
    } else if (csv[i] === '"' || csv[i] === '\n' || csv[i] === '\r') {
      throw new Error(`bare ${JSON.stringify(csv[i])} at ${i}`);
    } else field += csv[i++];
  }
  if (field !== '' || fields.length > 0) throw new Error('last record has no CRLF');
  return records;
}

describe('toJson', () => {
  it('pretty-prints with two spaces and ends with a newline', () => {
    expect(toJson({ a: 1, b: [true, null], c: { d: 'x' } })).toBe('{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ],\n  "c": {\n    "d": "x"\n  }\n}\n');
  });

  it('writes typed arrays as plain arrays', () => {
    const value = { stepMs: new Float32Array([0.5, 1.25]), tokens: new Uint32Array([1, 2, 3]) };
    expect(JSON.parse(toJson(value))).toEqual({ stepMs: [0.5, 1.25], tokens: [1, 2, 3] });
  });

  it('round-trips a trace-like object and writes non-finite numbers as null', () => {
    const trace = { version: 1, recordedAt: '2025-05-01T00:00:00.000Z', runs: [{ id: 0, label: 'f32 · "auto"', stepMs: [1.5, 2], ttftMs: null }] };
    expect(JSON.parse(toJson(trace))).toEqual(trace);
    expect(JSON.parse(toJson({ a: Number.NaN, b: Infinity }))).toEqual({ a: null, b: null });
  });
});

describe('toCsv', () => {
  it('writes a header row and one CRLF-ended record per row', () => {
    const csv = toCsv([
      { variant: 'naive', ms: 0.5, ok: true },
      { variant: 'splitK', ms: 1.25, ok: false },
    ]);
    expect(csv).toBe('variant,ms,ok\r\nnaive,0.5,true\r\nsplitK,1.25,false\r\n');
  });

  it('quotes fields with commas, quotes and line breaks, doubling quotes', () => {
    const csv = toCsv([{ text: 'a,b' }, { text: 'say "hi"' }, { text: 'two\nlines' }, { text: 'cr\rhere' }, { text: 'plain' }]);
    expect(csv).toBe('text\r\n"a,b"\r\n"say ""hi"""\r\n"two\nlines"\r\n"cr\rhere"\r\nplain\r\n');
  });

  it('leaves null and missing values empty', () => {
    expect(toCsv([{ a: null, b: 1 }, { b: 2 }])).toBe('a,b\r\n,1\r\n,2\r\n');
  });

  it('takes columns from every row in first-seen order, or as given', () => {
    const rows = [{ a: 1 }, { b: 2, a: 3 }, { c: 'x' }];
    expect(toCsv(rows)).toBe('a,b,c\r\n1,,\r\n3,2,\r\n,,x\r\n');
    expect(toCsv(rows, ['c', 'a'])).toBe('c,a\r\n,1\r\n,3\r\nx,\r\n');
    expect(toCsv([], ['x', 'y'])).toBe('x,y\r\n');
    expect(toCsv([])).toBe('');
  });

  it('quotes header names too', () => {
    expect(toCsv([{ 'GB/s, read': 12 }])).toBe('"GB/s, read"\r\n12\r\n');
  });

  it('takes interface-typed rows, writing nested values as JSON', () => {
    const kernels: KernelTiming[] = [{ label: 'layers.0.wq', op: 'matvec', layer: 0, ms: 0.25, bytesRead: 16384, bytesWritten: 256, flops: 8192 }];
    expect(toCsv(kernels)).toBe('label,op,layer,ms,bytesRead,bytesWritten,flops\r\nlayers.0.wq,matvec,0,0.25,16384,256,8192\r\n');
    expect(toCsv([{ name: 'a', shape: [2, 3], meta: { k: 'v' } }])).toBe('name,shape,meta\r\na,"[2,3]","{""k"":""v""}"\r\n');
  });

  it('reads back exactly as written by an RFC 4180 parser', () => {
    const rows = [
      { piece: '",\r\n"', logit: -1.5, sampled: true },
      { piece: ' leading and trailing ', logit: 0, sampled: false },
      { piece: '', logit: 1e-9, sampled: null },
      { piece: 'Once upon a time, "she" said\n', logit: 123456.75, sampled: true },
    ];
    const records = readCsv(toCsv(rows));
    expect(records[0]).toEqual(['piece', 'logit', 'sampled']);
    expect(records.slice(1)).toEqual(rows.map((r) => [r.piece, String(r.logit), r.sampled === null ? '' : String(r.sampled)]));
  });
});
