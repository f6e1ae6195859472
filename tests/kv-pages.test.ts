// The paged KV cache's bookkeeping, without a GPU: page layout, reference counts, copy-on-write,
// the prefix cache and the memory accounting. The random test keeps a simulated page buffer whose
// slots hold a value that depends on the whole token prefix (as real K/V do), applies the page
// copies the sequences ask for, and checks every sequence still reads its own K/V through its
// block table.
import { describe, expect, it } from 'vitest';
import { RequestError } from '../src/engine/errors.ts';
import { kvMemoryReport, sequencesThatFit } from '../src/engine/kv/kv-memory.ts';
import { PagePool, SequenceKv, pageBytes, pageElementOffset, pageLayout, type PageCopy } from '../src/engine/kv/page-pool.ts';
import { PrefixCache, chainHash } from '../src/engine/kv/prefix-cache.ts';
import { pcg, uniform } from '../src/engine/reference/rng.ts';

const shape = { nLayers: 2, nKvHeads: 2, headDim: 4 }; // kvDim 8: 2 * 4 bytes * 2 layers * 8 = 128 bytes per token

/** A sequence holding the K/V of `tokens` (pages reserved; contents are not simulated here). */
function computed(pool: PagePool, id: string, tokens: readonly number[], cache?: PrefixCache): SequenceKv {
  const sequence = new SequenceKv(pool, id);
  expect(sequence.append(tokens.length)).toBe(true);
  cache?.insert(tokens, sequence.blockTable);
  return sequence;
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

describe('page layout', () => {
  it('places (page, layer, kOrV, slot, kvIndex) by the documented formula', () => {
    const layout = pageLayout(shape, 16);
    expect(layout).toEqual({ nLayers: 2, kvDim: 8, blockSize: 16 });
    // (((3 * 2 + 1) * 2 + 1) * 16 + 5) * 8 + 7
    expect(pageElementOffset(layout, 3, 1, 1, 5, 7)).toBe(1967);
    expect(pageElementOffset(layout, 0, 0, 1, 0, 0)).toBe(16 * 8); // values follow the layer's keys
    expect(pageBytes(layout)).toBe(16 * 2 * 2 * 8 * 4);
  });

  it('maps every element of a page onto its own slice, without gaps or overlaps', () => {
    const layout = pageLayout(shape, 8);
    const elements = pageBytes(layout) / 4;
    const seen = new Set<number>();
    for (let layer = 0; layer < 2; layer++)
      for (const kOrV of [0, 1] as const)
        for (let slot = 0; slot < 8; slot++)
          for (let kvIndex = 0; kvIndex < 8; kvIndex++) seen.add(pageElementOffset(layout, 2, layer, kOrV, slot, kvIndex));
    expect(seen.size).toBe(elements);
    expect(Math.min(...seen)).toBe(2 * elements);
    expect(Math.max(...seen)).toBe(3 * elements - 1);
    expect(() => pageElementOffset(layout, 0, 0, 0, 8, 0)).toThrow(RangeError);
    expect(() => pageElementOffset(layout, 0, 2, 0, 0, 0)).toThrow(RangeError);
  });

  it('accepts block sizes 8, 16 and 32 only', () => {
    for (const size of [8, 16, 32]) expect(new PagePool(4, size).blockSize).toBe(size);
    for (const size of [0, 4, 12, 64, 16.5]) {
      expect(() => new PagePool(4, size)).toThrow(RequestError);
      expect(() => pageLayout(shape, size)).toThrow(/8, 16, 32/);
    }
    expect(() => new PagePool(0, 16)).toThrow(RequestError);
  });
});

describe('page pool', () => {
  it('hands out every page once, then null, and takes them back', () => {
    const pool = new PagePool(3, 8);
    expect([pool.allocate(), pool.allocate(), pool.allocate()]).toEqual([0, 1, 2]);
    expect(pool.allocate()).toBeNull();
    expect(pool.allocateMany(1)).toBeNull();
    expect([pool.freePages, pool.usedPages]).toEqual([0, 3]);
    pool.retain(1);
    expect(pool.refCount(1)).toBe(2);
    pool.release(1);
    expect(pool.freePages).toBe(0);
    pool.release(1);
    expect([pool.freePages, pool.refCount(1)]).toEqual([1, 0]);
    expect(pool.allocate()).toBe(1);
  });

  it('refuses a double release, retaining a free page and pages outside the pool', () => {
    const pool = new PagePool(2, 8);
    const page = pool.allocate()!;
    pool.release(page);
    expect(() => pool.release(page)).toThrow(/released more times/);
    expect(() => pool.retain(page)).toThrow(/free/);
    expect(() => pool.refCount(2)).toThrow(RangeError);
    expect(pool.freePages).toBe(2);
  });

  it('allocates all-or-nothing', () => {
    const pool = new PagePool(4, 8);
    pool.allocate();
    expect(pool.allocateMany(4)).toBeNull();
    expect(pool.freePages).toBe(3);
    expect(pool.allocateMany(3)).toEqual([1, 2, 3]);
  });
});

describe('contiguous runs', () => {
  it('places an empty sequence in one run of consecutive pages, and finds none once free pages are scattered', () => {
    const pool = new PagePool(8, 16);
    const a = new SequenceKv(pool, 'a');
    const b = new SequenceKv(pool, 'b');
    expect(a.append(3 * 16, 'run')).toBe(true);
    expect(b.append(2 * 16 - 5, 'run')).toBe(true);
    expect(a.blockTable).toEqual([0, 1, 2]);
    expect(b.blockTable).toEqual([3, 4]);
    a.free();
    // Six pages are free (0-2 and 5-7) but no four of them are consecutive: external fragmentation.
    expect(pool.freePages).toBe(6);
    const c = new SequenceKv(pool, 'c');
    expect(c.append(4 * 16, 'run')).toBe(false);
    expect(c.blockTable).toEqual([]);
    expect(pool.freePages).toBe(6);
    expect(c.append(3 * 16, 'run')).toBe(true);
    expect(c.blockTable).toEqual([0, 1, 2]);
    // Paged placement takes whatever is free.
    const d = new SequenceKv(pool, 'd');
    expect(d.append(3 * 16)).toBe(true);
    expect([...d.blockTable].sort()).toEqual([5, 6, 7]);
    expect(pool.freePages).toBe(0);
    expect(() => c.append(1, 'run')).toThrow(/only an empty sequence is placed as one run/);
  });
});

describe('sequences', () => {
  it('reserves pages as tokens are appended and releases them on free', () => {
    const pool = new PagePool(8, 8);
    const a = new SequenceKv(pool, 'a');
    expect(a.append(5)).toBe(true);
    expect(a.blockTable).toEqual([0]);
    expect(a.append(3)).toBe(true);
    expect(a.blockTable).toEqual([0]);
    expect(a.append(9)).toBe(true);
    expect([a.length, a.blockTable]).toEqual([17, [0, 1, 2]]);
    a.free();
    expect(pool.freePages).toBe(8);
    expect(() => a.append(1)).toThrow(/freed/);
    expect(() => a.free()).toThrow(/freed/);
  });

  it('returns false on exhaustion without allocating anything', () => {
    const pool = new PagePool(4, 8);
    const a = computed(pool, 'a', range(0, 20));
    const b = new SequenceKv(pool, 'b');
    expect(b.append(9)).toBe(false);
    expect([b.length, b.blockTable.length, pool.freePages]).toEqual([0, 0, 1]);
    expect(b.append(8)).toBe(true);
    expect(pool.freePages).toBe(0);
    expect(a.append(4)).toBe(true); // page 2 still has room
    expect(a.append(1)).toBe(false);
    expect(a.length).toBe(24);
  });

  it('refuses two live sequences with one id', () => {
    const pool = new PagePool(4, 8);
    const a = new SequenceKv(pool, 'a');
    expect(() => new SequenceKv(pool, 'a')).toThrow(/already has id/);
    expect(() => a.fork('a')).toThrow(/already has id/);
    a.free();
    expect(new SequenceKv(pool, 'a').length).toBe(0);
  });

  it('truncates, releasing pages past the new end', () => {
    const pool = new PagePool(8, 8);
    const a = computed(pool, 'a', range(0, 30));
    a.truncate(9);
    expect([a.length, a.blockTable]).toEqual([9, [0, 1]]);
    expect(pool.freePages).toBe(6);
    expect(() => a.truncate(10)).toThrow(RangeError);
    a.truncate(0);
    expect(pool.freePages).toBe(8);
  });
});

describe('copy-on-write', () => {
  it('copies a shared, partly filled last page once, for the first writer only', () => {
    const pool = new PagePool(8, 8);
    const a = computed(pool, 'a', range(0, 12)); // pages 0 (full), 1 (4 of 8)
    const b = a.fork('b');
    expect(b.blockTable).toEqual([0, 1]);
    expect([pool.refCount(0), pool.refCount(1)]).toEqual([2, 2]);
    expect(a.append(1)).toBe(true);
    expect(a.prepareWrite().copies).toEqual([{ from: 1, to: 2 }]);
    expect(a.blockTable).toEqual([0, 2]);
    expect(b.blockTable).toEqual([0, 1]);
    expect([pool.refCount(0), pool.refCount(1), pool.refCount(2)]).toEqual([2, 1, 1]);
    expect(b.append(1)).toBe(true); // page 1 is b's alone now
    expect(b.prepareWrite().copies).toEqual([]);
    expect(a.prepareWrite().copies).toEqual([]); // handed over once
  });

  it('copies nothing when the shared pages are full', () => {
    const pool = new PagePool(8, 8);
    const a = computed(pool, 'a', range(0, 16));
    const b = a.fork('b');
    expect(a.append(3)).toBe(true);
    expect(b.append(3)).toBe(true);
    expect([a.prepareWrite().copies, b.prepareWrite().copies]).toEqual([[], []]);
    expect(a.blockTable).toEqual([0, 1, 2]);
    expect(b.blockTable).toEqual([0, 1, 3]);
  });

  it('copies a cached page that a rollback left partly filled', () => {
    const pool = new PagePool(8, 8);
    const cache = new PrefixCache(pool);
    const tokens = range(100, 16);
    const a = computed(pool, 'a', tokens, cache);
    a.truncate(12);
    expect(a.append(1)).toBe(true);
    expect(a.prepareWrite().copies).toEqual([{ from: 1, to: 2 }]);
    expect(cache.holds(1)).toBe(true);
    expect(cache.lookup([...tokens, 0]).pages).toEqual([0, 1]);
  });

  it('fails without change when the private copy does not fit', () => {
    const pool = new PagePool(1, 8);
    const a = computed(pool, 'a', range(0, 4));
    const b = a.fork('b');
    expect(a.append(1)).toBe(false);
    expect([a.length, a.blockTable, pool.refCount(0), a.prepareWrite().copies]).toEqual([4, [0], 2, []]);
    b.free();
    expect(a.append(1)).toBe(true);
    expect(a.prepareWrite().copies).toEqual([]);
  });

  it('keeps a pending copy while its page stays and drops it with the page', () => {
    const pool = new PagePool(8, 8);
    const a = computed(pool, 'a', range(0, 4));
    const b = a.fork('b');
    expect(a.append(6)).toBe(true); // page 0 copied to 1, page 2 added
    expect(a.blockTable).toEqual([1, 2]);
    expect(() => a.fork('c')).toThrow(/prepareWrite/);
    a.truncate(5);
    expect(a.prepareWrite().copies).toEqual([{ from: 0, to: 1 }]);

    const c = b.fork('c');
    expect(b.append(1)).toBe(true);
    b.truncate(0);
    expect(b.prepareWrite().copies).toEqual([]);
    expect([c.blockTable, pool.refCount(0)]).toEqual([[0], 1]);
  });
});

describe('prefix cache', () => {
  it('serves the full pages two prompts share (40 shared tokens, block 16: 32 hit tokens)', () => {
    const pool = new PagePool(16, 16);
    const cache = new PrefixCache(pool);
    const first = range(1000, 50);
    const a = computed(pool, 'a', first, cache);
    expect(cache.cachedPages).toBe(3); // 48 of 50 tokens fill pages
    const second = [...first.slice(0, 40), ...range(5000, 20)];
    const hit = cache.lookup(second);
    expect(hit).toEqual({ pages: a.blockTable.slice(0, 2), tokens: 32 });
    expect(pool.refCount(a.blockTable[0])).toBe(3); // a, the cache, the caller
    expect(cache.stats).toEqual({ hitTokens: 32, computedTokens: 28 });

    const b = new SequenceKv(pool, 'b', hit.pages);
    expect(b.length).toBe(32);
    expect(b.append(second.length - 32)).toBe(true);
    expect(b.prepareWrite().copies).toEqual([]);
    expect(b.blockTable.slice(0, 2)).toEqual(a.blockTable.slice(0, 2));
  });

  it('always leaves the last prompt token to compute', () => {
    const pool = new PagePool(8, 16);
    const cache = new PrefixCache(pool);
    const tokens = range(0, 48);
    computed(pool, 'a', tokens, cache);
    expect(cache.lookup(tokens).tokens).toBe(32);
    expect(cache.lookup([...tokens, 7]).tokens).toBe(48);
    expect(cache.lookup(tokens.slice(0, 16)).tokens).toBe(0);
    expect(cache.stats).toEqual({ hitTokens: 80, computedTokens: 16 + 1 + 16 });
  });

  it('keys a page by everything before it, so equal page contents after different prefixes miss', () => {
    const p = range(0, 8);
    const r = range(100, 8);
    const q = range(200, 8);
    const pPrime = [...p.slice(0, 7), 99];
    expect(chainHash(chainHash(null, p), q)).not.toBe(chainHash(chainHash(null, pPrime), q));
    // Cached: [p, r] and [p', q]. A prompt [p, q] matches p, and q only exists after p'.
    const parentBlind = (_parent: string | null, tokens: readonly number[]) => tokens.join(',');
    for (const hash of [chainHash, parentBlind]) {
      const pool = new PagePool(8, 8);
      const cache = new PrefixCache(pool, { hash });
      computed(pool, 'pr', [...p, ...r], cache);
      const second = computed(pool, 'p-q', [...pPrime, ...q], cache);
      const hit = cache.lookup([...p, ...q, 1]);
      expect(hit.tokens).toBe(8);
      expect(hit.pages).not.toContain(second.blockTable[1]);
    }
  });

  it('tells colliding hashes apart by their tokens', () => {
    const pool = new PagePool(8, 8);
    const cache = new PrefixCache(pool, { hash: () => 'collision' });
    const a = computed(pool, 'a', range(0, 16), cache);
    const b = computed(pool, 'b', range(50, 16), cache);
    expect(cache.cachedPages).toBe(4);
    expect(cache.lookup([...range(0, 16), 1]).pages).toEqual(a.blockTable);
    expect(cache.lookup([...range(50, 16), 1]).pages).toEqual(b.blockTable);
    expect(cache.lookup([...range(0, 8), ...range(58, 8), 1])).toEqual({ pages: a.blockTable.slice(0, 1), tokens: 8 });
    expect(cache.lookup(range(300, 17)).tokens).toBe(0);
  });

  it('keeps the existing page when a sequence inserts a duplicate', () => {
    const pool = new PagePool(8, 8);
    const cache = new PrefixCache(pool);
    const tokens = range(0, 8);
    const a = computed(pool, 'a', tokens, cache);
    const b = computed(pool, 'b', tokens, cache);
    expect(cache.cachedPages).toBe(1);
    expect(cache.holds(a.blockTable[0]) && !cache.holds(b.blockTable[0])).toBe(true);
    b.free();
    expect(pool.freePages).toBe(7);
  });

  it('evicts pages only the cache holds, least recently used first', () => {
    const pool = new PagePool(4, 8);
    const cache = new PrefixCache(pool);
    const prompts = [range(0, 8), range(10, 8), range(20, 8)];
    prompts.forEach((tokens, i) => computed(pool, `s${i}`, tokens, cache).free());
    expect([cache.cachedPages, pool.freePages]).toEqual([3, 1]);
    new SequenceKv(pool, 'reader', cache.lookup([...prompts[0], 1]).pages).free(); // prompt 0 becomes most recent

    expect(cache.reclaimable()).toBe(3);
    expect(pool.allocate()).toBe(3); // the free page goes first
    expect(pool.allocate()).toBe(1); // prompt 1
    expect(cache.holds(1)).toBe(false);
    expect(pool.allocate()).toBe(2); // prompt 2
    expect(pool.allocate()).toBe(0); // prompt 0
    expect(pool.allocate()).toBeNull();
    expect(cache.lookup([...prompts[0], 1]).tokens).toBe(0);
  });

  it('evicts a chain from its last page', () => {
    const pool = new PagePool(4, 8);
    const cache = new PrefixCache(pool);
    const tokens = range(0, 24);
    computed(pool, 'a', tokens, cache).free();
    expect(pool.allocateMany(2)?.sort()).toEqual([2, 3]); // the free page and the chain's last
    const hit = cache.lookup([...tokens, 1]);
    expect(hit).toEqual({ pages: [0, 1], tokens: 16 });
  });

  it('never evicts pages a sequence uses, and fails an append without touching the cache', () => {
    const pool = new PagePool(4, 8);
    const cache = new PrefixCache(pool);
    const a = computed(pool, 'a', range(0, 16), cache);
    const b = computed(pool, 'b', range(20, 16), cache);
    expect([cache.reclaimable(), pool.allocate()]).toEqual([0, null]);
    b.free();
    const c = new SequenceKv(pool, 'c');
    expect(c.append(17)).toBe(false); // 3 pages wanted, 2 reclaimable
    expect([cache.cachedPages, pool.freePages]).toEqual([4, 0]);
    expect(c.append(16)).toBe(true);
    expect(cache.cachedPages).toBe(2);
    expect(cache.lookup([...range(0, 16), 1]).pages).toEqual(a.blockTable);
  });

  it('drops the entries chained after an evicted page', () => {
    const pool = new PagePool(3, 8);
    const cache = new PrefixCache(pool);
    const p = range(0, 8);
    const q = range(50, 8);
    computed(pool, 'first', p, cache).free(); // p cached on page 0, held by the cache alone
    // holder computed p again (page 1, a duplicate the cache does not take) and q (page 2, cached after p).
    const holder = computed(pool, 'holder', [...p, ...q], cache);
    expect(holder.blockTable).toEqual([1, 2]);
    expect([cache.cachedPages, cache.holds(2), cache.reclaimable()]).toEqual([2, true, 1]);
    expect(pool.allocate()).toBe(0);
    expect([cache.cachedPages, pool.refCount(2)]).toEqual([0, 1]);
    expect(cache.lookup([...p, ...q, 1]).tokens).toBe(0);
    holder.free();
    expect(pool.freePages).toBe(2);
  });
});

describe('random operations checked against a model', () => {
  const blockSize = 8;
  const pageCount = 32;

  /** Stand-ins for K/V: like them, the value at each position depends on every token up to it. */
  function kvValues(tokens: readonly number[]): number[] {
    let h = 0;
    return tokens.map((token) => (h = pcg(h ^ pcg(token))));
  }

  /** Element-wise equality; only a mismatch goes through expect (for its diff), which keeps 1500 steps fast. */
  function expectSame(actual: readonly unknown[], expected: readonly unknown[]): void {
    if (actual.length !== expected.length || actual.some((value, i) => value !== expected[i])) expect(actual).toEqual(expected);
  }

  interface LiveSequence {
    sequence: SequenceKv;
    tokens: number[];
  }

  for (const seed of [1, 2, 3]) {
    it(`keeps refcounts, free pages and every sequence's K/V consistent (seed ${seed})`, () => {
      const pool = new PagePool(pageCount, blockSize);
      const cache = new PrefixCache(pool);
      const memory = new Float64Array(pageCount * blockSize).fill(-1); // simulated page buffer (page, slot)
      const live: LiveSequence[] = [];
      const events = { copies: 0, hits: 0, failedAppends: 0, evictions: 0 };
      let counter = 0;
      const draw = (n: number) => Math.floor(uniform(seed, counter++) * n);
      const randomTokens = (count: number) => Array.from({ length: count }, () => draw(4));
      const prompts = [randomTokens(40), randomTokens(40), randomTokens(40)];
      let nextId = 0;

      const read = (sequence: SequenceKv, positions: number) =>
        Array.from({ length: positions }, (_, p) => memory[sequence.blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize)]);

      /** Appends, applies the page copies, writes the new positions; checks a failure changed nothing. */
      function append(entry: LiveSequence, tokens: number[]): boolean {
        const { sequence } = entry;
        const table = [...sequence.blockTable];
        const last = table.at(-1);
        const shouldCopy = sequence.length % blockSize !== 0 && pool.refCount(last!) > 1;
        const state = () => JSON.stringify({ table: sequence.blockTable, length: sequence.length, pages: pool.snapshot(), cached: cache.cachedPages });
        const before = state();
        const length = sequence.length;
        const cached = cache.cachedPages;
        if (!sequence.append(tokens.length)) {
          events.failedAppends++;
          expect(state()).toBe(before);
          return false;
        }
        if (cache.cachedPages < cached) events.evictions++;
        const { copies } = sequence.prepareWrite();
        const expectedCopies: PageCopy[] = shouldCopy ? [{ from: last!, to: sequence.blockTable[table.length - 1] }] : [];
        if (JSON.stringify(copies) !== JSON.stringify(expectedCopies)) expect(copies).toEqual(expectedCopies);
        events.copies += copies.length;
        for (const { from, to } of copies) memory.copyWithin(to * blockSize, from * blockSize, (from + 1) * blockSize);
        entry.tokens.push(...tokens);
        const values = kvValues(entry.tokens);
        for (let p = length; p < values.length; p++) {
          memory[sequence.blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize)] = values[p];
        }
        return true;
      }

      function checkInvariants(): void {
        const holders = new Array<number>(pageCount).fill(0);
        for (const { sequence, tokens } of live) {
          const table = sequence.blockTable;
          expectSame([sequence.length, table.length, new Set(table).size], [tokens.length, Math.ceil(tokens.length / blockSize), table.length]);
          for (const page of table) holders[page]++;
          expectSame(read(sequence, tokens.length), kvValues(tokens));
        }
        for (let page = 0; page < pageCount; page++) if (cache.holds(page)) holders[page]++;
        expectSame(range(0, pageCount).map((page) => pool.refCount(page)), holders);
        expectSame([pool.freePages], [holders.filter((count) => count === 0).length]);
      }

      for (let step = 0; step < 1000; step++) {
        const op = draw(10);
        if (live.length === 0 || op < 3) {
          // A new request: a known prompt's prefix plus a few tokens of its own.
          const prompt = [...prompts[draw(3)].slice(0, 1 + draw(40)), ...randomTokens(draw(10))];
          const hit = cache.lookup(prompt);
          expectSame(hit.pages.flatMap((page) => range(page * blockSize, blockSize).map((i) => memory[i])), kvValues(prompt.slice(0, hit.tokens)));
          if (hit.tokens > 0) events.hits++;
          const entry = { sequence: new SequenceKv(pool, `s${nextId++}`, hit.pages), tokens: prompt.slice(0, hit.tokens) };
          if (!append(entry, prompt.slice(hit.tokens))) entry.sequence.free();
          else {
            live.push(entry);
            if (draw(2) === 0) cache.insert(entry.tokens, entry.sequence.blockTable);
          }
        } else {
          const index = draw(live.length);
          const entry = live[index];
          if (op < 5) append(entry, randomTokens(1 + draw(12)));
          else if (op === 5) live.push({ sequence: entry.sequence.fork(`s${nextId++}`), tokens: [...entry.tokens] });
          else if (op === 6) {
            const length = draw(entry.tokens.length + 1);
            entry.sequence.truncate(length);
            entry.tokens.length = length;
          } else if (op < 9) {
            entry.sequence.free();
            live.splice(index, 1);
          } else cache.insert(entry.tokens, entry.sequence.blockTable);
        }
        checkInvariants();
      }

      // Every kind of event happened, so the invariants were checked where they matter.
      for (const count of Object.values(events)) expect(count).toBeGreaterThan(0);
      for (const { sequence } of live) sequence.free();
      expect(pool.freePages + cache.cachedPages).toBe(pageCount);
      expect(pool.snapshot().every((page) => page.refCount === (page.cached ? 1 : 0) && page.owners.length === 0)).toBe(true);
      cache.clear();
      expect([pool.freePages, cache.cachedPages]).toEqual([pageCount, 0]);
    });
  }
});

describe('pool snapshot', () => {
  it('names owners, cache membership and filled slots of every page', () => {
    const pool = new PagePool(5, 8);
    const cache = new PrefixCache(pool);
    const a = computed(pool, 'a', range(0, 20), cache); // pages 0, 1 full and cached; page 2 holds 4
    const b = a.fork('b');
    expect(b.append(1)).toBe(true); // b copies page 2 into page 3
    expect(pool.snapshot()).toEqual([
      { page: 0, owners: ['a', 'b'], refCount: 3, cached: true, filledSlots: 8 },
      { page: 1, owners: ['a', 'b'], refCount: 3, cached: true, filledSlots: 8 },
      { page: 2, owners: ['a'], refCount: 1, cached: false, filledSlots: 4 },
      { page: 3, owners: ['b'], refCount: 1, cached: false, filledSlots: 5 },
      { page: 4, owners: [], refCount: 0, cached: false, filledSlots: 0 },
    ]);
    a.free();
    b.truncate(3);
    expect(pool.snapshot().slice(0, 2)).toEqual([
      { page: 0, owners: ['b'], refCount: 2, cached: true, filledSlots: 8 },
      { page: 1, owners: [], refCount: 1, cached: true, filledSlots: 8 },
    ]);
  });
});

describe('KV memory accounting', () => {
  // 128 bytes per token; context 64 tokens; lengths 10, 33 and 64 (107 live tokens).
  const lengths = [10, 33, 64];

  it('charges contiguous sequences the whole context', () => {
    const report = kvMemoryReport(lengths, shape, 64, 'contiguous', 16);
    expect(report).toEqual({
      mode: 'contiguous',
      reservedBytes: 3 * 64 * 128,
      liveBytes: 107 * 128,
      wasteBytes: 24576 - 13696,
      sequences: [
        { length: 10, reservedBytes: 8192, liveBytes: 1280 },
        { length: 33, reservedBytes: 8192, liveBytes: 4224 },
        { length: 64, reservedBytes: 8192, liveBytes: 8192 },
      ],
    });
  });

  it('charges paged sequences whole pages', () => {
    // 1 + 3 + 4 pages of 16 tokens.
    const report = kvMemoryReport(lengths, shape, 64, 'paged', 16);
    expect([report.reservedBytes, report.liveBytes, report.wasteBytes]).toEqual([8 * 2048, 13696, 16384 - 13696]);
    expect(report.sequences.map((s) => s.reservedBytes)).toEqual([2048, 6144, 8192]);
    expect(kvMemoryReport(lengths, shape, 64, 'paged', 8).wasteBytes).toBe((16 + 40 + 64 - 107) * 128);
  });

  it('counts the sequences a budget holds', () => {
    expect(sequencesThatFit(65536, shape, 64, 'contiguous', 16, 20)).toBe(8);
    expect(sequencesThatFit(65536, shape, 64, 'paged', 16, 20)).toBe(16); // 32 pages, 2 per sequence
    expect(sequencesThatFit(65536, shape, 64, 'paged', 32, 20)).toBe(16);
    expect(sequencesThatFit(65536, shape, 64, 'paged', 8, 20)).toBe(21); // 64 pages, 3 per sequence
  });

  it('refuses lengths past the context and unknown block sizes', () => {
    expect(() => kvMemoryReport([65], shape, 64, 'contiguous', 16)).toThrow(RequestError);
    expect(() => kvMemoryReport([10], shape, 64, 'paged', 12)).toThrow(RequestError);
    expect(() => sequencesThatFit(65536, shape, 64, 'paged', 16, 0)).toThrow(RequestError);
    expect(() => sequencesThatFit(65536, shape, 64, 'paged', 64, 10)).toThrow(RequestError);
  });
});
