// The paged KV cache's bookkeeping: which physical pages exist, who holds them, and each sequence's
// block table (logical block -> physical page). No GPU code lives here; the kernels that read and
// write pages are driven by the numbers this module hands out.
//
// Layout decision: ONE pool for all layers. A physical page holds `blockSize` consecutive token
// positions of one sequence, for every layer, keys and values, as f32:
//
//   pages: (page, layer, kOrV, slot, kvIndex)      kOrV: 0 = key, 1 = value; kvIndex < nKvHeads * headDim
//
//   offset = (((page * nLayers + layer) * 2 + kOrV) * blockSize + slot) * kvDim + kvIndex
//
// Why this order: a sequence needs a single block table whatever the layer (the table is uploaded
// once per step, not once per layer); for one (page, layer) the keys are one contiguous run of
// blockSize * kvDim floats and the values the next run, so attention reads a page in two linear
// sweeps; and copy-on-write copies one contiguous page.
//
// Ownership: every page has a reference count. A sequence holds one reference on each page of its
// block table; forks share pages by adding references; the prefix cache (prefix-cache.ts) holds one
// reference on each page it keeps. A page whose count drops to zero returns to the free list. When
// the free list runs dry, the pool asks its reclaimer (the prefix cache) to give up pages nobody else
// holds before it reports exhaustion.
import { RequestError } from '../errors.ts';
import type { ModelConfig } from '../model/types.ts';

// ---------------------------------------------------------------------------------------------
// Page layout (mirrored by the WGSL kernels)

/** Tokens per page the engine accepts: small enough to waste little, big enough to keep tables short. */
export const blockSizes = [8, 16, 32] as const;
export type BlockSize = (typeof blockSizes)[number];

/** Returns `blockSize` typed as a BlockSize, or throws a RequestError naming the accepted sizes. */
export function checkBlockSize(blockSize: number): BlockSize {
  if (!(blockSizes as readonly number[]).includes(blockSize)) {
    throw new RequestError(`KV block size must be one of ${blockSizes.join(', ')} tokens per page, got ${blockSize}`);
  }
  return blockSize as BlockSize;
}

/** The model dimensions that size the KV cache. */
export type KvShape = Pick<ModelConfig, 'nLayers' | 'nKvHeads' | 'headDim'>;

/** K and V are stored as f32, like the contiguous cache in runtime/gpu-model.ts. */
export const kvElementBytes = 4;

/** K and V bytes one token occupies across all layers. */
export function kvBytesPerToken(shape: KvShape): number {
  return 2 * kvElementBytes * shape.nLayers * shape.nKvHeads * shape.headDim;
}

/** What the offset formula needs; build it with pageLayout(). */
export interface PageLayout {
  nLayers: number;
  /** nKvHeads * headDim: floats of K (or of V) one token stores per layer. */
  kvDim: number;
  /** Tokens per page: 8, 16 or 32 in a pool (pageLayout checks); the offset formula takes any. */
  blockSize: number;
}

export function pageLayout(shape: KvShape, blockSize: number): PageLayout {
  return { nLayers: shape.nLayers, kvDim: shape.nKvHeads * shape.headDim, blockSize: checkBlockSize(blockSize) };
}

/** Bytes of one physical page: blockSize tokens x all layers x (K and V) x kvDim x f32. */
export function pageBytes(layout: PageLayout): number {
  return layout.blockSize * layout.nLayers * 2 * layout.kvDim * kvElementBytes;
}

/** Element (f32) index of one K or V value in the page buffer; see the formula in the header. */
export function pageElementOffset(layout: PageLayout, page: number, layer: number, kOrV: 0 | 1, slot: number, kvIndex: number): number {
  const { nLayers, kvDim, blockSize } = layout;
  if (page < 0 || layer < 0 || layer >= nLayers || slot < 0 || slot >= blockSize || kvIndex < 0 || kvIndex >= kvDim) {
    throw new RangeError(`page element out of range: page ${page}, layer ${layer}/${nLayers}, slot ${slot}/${blockSize}, kvIndex ${kvIndex}/${kvDim}`);
  }
  return (((page * nLayers + layer) * 2 + kOrV) * blockSize + slot) * kvDim + kvIndex;
}

// ---------------------------------------------------------------------------------------------
// Page pool

/**
 * Holds references on pages the pool may take back when it runs out (the prefix cache). Each page
 * it gives up must be one that nobody else holds, so reclaiming always grows the free list.
 */
export interface PageReclaimer {
  /** Pages it could give back right now (those only it holds). */
  reclaimable(): number;
  /** Releases at least one page that only it held; called only while reclaimable() > 0. */
  reclaim(): void;
  /** Whether it holds a reference on `page`. */
  holds(page: number): boolean;
}

/** One page as the lab's KV-cache panel draws it. */
export interface PageSnapshot {
  page: number;
  /** Ids of the sequences whose block table contains the page. */
  owners: string[];
  refCount: number;
  /** Held by the prefix cache. */
  cached: boolean;
  /** Token slots holding (or reserved for) K/V: the most any owner uses; blockSize for cached pages. */
  filledSlots: number;
}

// Lets SequenceKv (and nothing outside this module) tell its pool that it exists or was freed, so
// snapshots can name each page's owners.
const trackSequence = Symbol('trackSequence');

export class PagePool {
  readonly pageCount: number;
  readonly blockSize: BlockSize;
  readonly #refCounts: Uint32Array; // (pageCount)
  // Stack of free pages; the initial order hands out page 0 first.
  readonly #free: number[];
  readonly #sequences = new Map<string, SequenceKv>();
  #reclaimer: PageReclaimer | null = null;

  constructor(pageCount: number, blockSize: number) {
    if (!Number.isInteger(pageCount) || pageCount < 1) throw new RequestError(`KV page pool needs a positive whole number of pages, got ${pageCount}`);
    this.pageCount = pageCount;
    this.blockSize = checkBlockSize(blockSize);
    this.#refCounts = new Uint32Array(pageCount);
    this.#free = Array.from({ length: pageCount }, (_, i) => pageCount - 1 - i);
  }

  get freePages(): number {
    return this.#free.length;
  }

  get usedPages(): number {
    return this.pageCount - this.#free.length;
  }

  /** Connects the prefix cache; a pool has at most one. */
  setReclaimer(reclaimer: PageReclaimer): void {
    if (this.#reclaimer) throw new Error('this page pool already has a reclaimer');
    this.#reclaimer = reclaimer;
  }

  /** One page with a reference count of 1, or null when none is free or reclaimable. */
  allocate(): number | null {
    return this.allocateMany(1)?.[0] ?? null;
  }

  /**
   * `count` pages, each with a reference count of 1, or null (and nothing changed, the prefix cache
   * included) when the free list plus what the reclaimer can give back falls short.
   */
  allocateMany(count: number): number[] | null {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`page count must be a whole number >= 0, got ${count}`);
    if (this.#free.length < count && this.#free.length + (this.#reclaimer?.reclaimable() ?? 0) < count) return null;
    while (this.#free.length < count) {
      const before = this.#free.length;
      this.#reclaimer!.reclaim();
      if (this.#free.length <= before) throw new Error('page reclaimer released no page');
    }
    const pages = this.#free.splice(this.#free.length - count, count).reverse();
    for (const page of pages) this.#refCounts[page] = 1;
    return pages;
  }

  /**
   * `count` consecutive free pages (lowest first), each with a reference count of 1, or null when
   * no such run is free. This is how a contiguous cache places a sequence: its block table is then
   * base, base + 1, ... Nothing is reclaimed from the prefix cache (contiguous mode has none), and
   * a run can be missing while enough pages are free: external fragmentation, which paging avoids.
   */
  allocateRun(count: number): number[] | null {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`run length must be a whole number >= 1, got ${count}`);
    let runStart = 0;
    for (let page = 0; page < this.pageCount; page++) {
      if (this.#refCounts[page] !== 0) {
        runStart = page + 1;
        continue;
      }
      if (page - runStart + 1 < count) continue;
      const pages = Array.from({ length: count }, (_, i) => runStart + i);
      const taken = new Set(pages);
      const rest = this.#free.filter((p) => !taken.has(p));
      this.#free.length = 0;
      this.#free.push(...rest);
      for (const p of pages) this.#refCounts[p] = 1;
      return pages;
    }
    return null;
  }

  /** Adds a reference to a page that is in use. */
  retain(page: number): void {
    this.#checkPage(page);
    if (this.#refCounts[page] === 0) throw new Error(`page ${page} is free and cannot be retained`);
    this.#refCounts[page]++;
  }

  /** Drops a reference; the page returns to the free list when none remain. */
  release(page: number): void {
    this.#checkPage(page);
    if (this.#refCounts[page] === 0) throw new Error(`page ${page} released more times than it was retained`);
    if (--this.#refCounts[page] === 0) this.#free.push(page);
  }

  refCount(page: number): number {
    this.#checkPage(page);
    return this.#refCounts[page];
  }

  /** Every page, free ones included, with who holds it. */
  snapshot(): PageSnapshot[] {
    const pages: PageSnapshot[] = Array.from({ length: this.pageCount }, (_, page) => {
      const cached = this.#reclaimer?.holds(page) ?? false;
      return { page, owners: [], refCount: this.#refCounts[page], cached, filledSlots: cached ? this.blockSize : 0 };
    });
    for (const sequence of this.#sequences.values()) {
      sequence.blockTable.forEach((page, block) => {
        const entry = pages[page];
        entry.owners.push(sequence.id);
        entry.filledSlots = Math.max(entry.filledSlots, Math.min(this.blockSize, sequence.length - block * this.blockSize));
      });
    }
    return pages;
  }

  [trackSequence](sequence: SequenceKv, live: boolean): void {
    if (!live) {
      this.#sequences.delete(sequence.id);
      return;
    }
    if (this.#sequences.has(sequence.id)) throw new Error(`a live sequence already has id '${sequence.id}'`);
    this.#sequences.set(sequence.id, sequence);
  }

  #checkPage(page: number): void {
    if (!Number.isInteger(page) || page < 0 || page >= this.pageCount) throw new RangeError(`page ${page} is outside the pool of ${this.pageCount}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Sequences and their block tables

/** Copy the whole of page `from` into page `to` (copy-on-write of a shared, partly filled page). */
export interface PageCopy {
  from: number;
  to: number;
}

/**
 * The KV pages of one sequence. Usage per step: append(n) reserves room for n more tokens; then
 * prepareWrite() returns page copies that must be encoded on the GPU before ANY K/V write of that
 * step (the source page may already be back in the free list, handed to another sequence that
 * writes it in the same step); then the kernels write positions [length - n, length).
 */
export class SequenceKv {
  readonly id: string;
  readonly #pool: PagePool;
  readonly #pages: number[] = []; // (block) -> physical page
  #length = 0;
  #copies: PageCopy[] = [];
  #freed = false;

  /**
   * `prefixPages` are full pages this sequence takes over, references included (the result of
   * PrefixCache.lookup); the sequence then starts at pages * blockSize tokens.
   */
  constructor(pool: PagePool, id: string, prefixPages: readonly number[] = []) {
    for (const page of prefixPages) {
      if (pool.refCount(page) === 0) throw new Error(`prefix page ${page} is free: take pages from PrefixCache.lookup, which retains them`);
    }
    this.id = id;
    this.#pool = pool;
    pool[trackSequence](this, true);
    this.#pages.push(...prefixPages);
    this.#length = prefixPages.length * pool.blockSize;
  }

  /** Tokens whose K/V the sequence holds or has reserved. */
  get length(): number {
    return this.#length;
  }

  get blockTable(): readonly number[] {
    return this.#pages;
  }

  /**
   * Reserves room for `tokens` more tokens. If the last page is partly filled and shared, a private
   * copy replaces it in the block table (reported by prepareWrite). Returns false, with nothing
   * allocated or changed, when the pool cannot supply every page needed. `placement: 'run'` puts
   * an empty sequence's pages in one consecutive run (the contiguous cache).
   */
  append(tokens: number, placement: 'any' | 'run' = 'any'): boolean {
    this.#checkLive();
    if (!Number.isInteger(tokens) || tokens < 0) throw new RangeError(`tokens to append must be a whole number >= 0, got ${tokens}`);
    if (tokens === 0) return true;
    if (placement === 'run' && this.#pages.length > 0) throw new Error(`sequence '${this.id}' already has pages: only an empty sequence is placed as one run`);
    const { blockSize } = this.#pool;
    const lastBlock = this.#pages.length - 1;
    const copyLast = this.#length % blockSize !== 0 && this.#pool.refCount(this.#pages[lastBlock]) > 1;
    const newBlocks = Math.ceil((this.#length + tokens) / blockSize) - this.#pages.length;
    const count = newBlocks + (copyLast ? 1 : 0);
    const fresh = placement === 'run' ? this.#pool.allocateRun(count) : this.#pool.allocateMany(count);
    if (!fresh) return false;
    if (copyLast) {
      const from = this.#pages[lastBlock];
      const to = fresh.shift()!;
      this.#copies.push({ from, to });
      this.#pages[lastBlock] = to;
      this.#pool.release(from);
    }
    this.#pages.push(...fresh);
    this.#length += tokens;
    return true;
  }

  /** The page copies the GPU must do before this sequence's pending writes; hands them over once. */
  prepareWrite(): { copies: PageCopy[] } {
    this.#checkLive();
    const copies = this.#copies;
    this.#copies = [];
    return { copies };
  }

  /** A new sequence with the same tokens, sharing every page (written pages are copied lazily). */
  fork(newId: string): SequenceKv {
    this.#checkLive();
    // A pending copy's destination would be shared before its contents exist.
    if (this.#copies.length > 0) throw new Error(`sequence '${this.id}' must take its page copies (prepareWrite) before forking`);
    const child = new SequenceKv(this.#pool, newId);
    for (const page of this.#pages) this.#pool.retain(page);
    child.#pages.push(...this.#pages);
    child.#length = this.#length;
    return child;
  }

  /** Shortens the sequence (speculative-decoding rollback), releasing pages past the new end. */
  truncate(length: number): void {
    this.#checkLive();
    if (!Number.isInteger(length) || length < 0 || length > this.#length) {
      throw new RangeError(`cannot truncate sequence '${this.id}' of ${this.#length} tokens to ${length}`);
    }
    const keep = Math.ceil(length / this.#pool.blockSize);
    for (const page of this.#pages.splice(keep)) this.#pool.release(page);
    this.#copies = this.#copies.filter((copy) => this.#pages.includes(copy.to));
    this.#length = length;
  }

  /** Releases every page; the sequence cannot be used afterwards. */
  free(): void {
    this.#checkLive();
    for (const page of this.#pages) this.#pool.release(page);
    this.#pages.length = 0;
    this.#copies = [];
    this.#length = 0;
    this.#freed = true;
    this.#pool[trackSequence](this, false);
  }

  #checkLive(): void {
    if (this.#freed) throw new Error(`sequence '${this.id}' was freed`);
  }
}
