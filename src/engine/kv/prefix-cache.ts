// Prefix caching over the page pool: full pages whose K/V were computed for some token prefix are
// kept and handed to later prompts that start with the same tokens, so those tokens skip prefill.
//
// A page's K/V depend on its own tokens AND every token before it, so a page is keyed by a chain
// hash: hash(parent page's hash, this page's tokens). Two prompts that differ anywhere earlier get
// different keys for the same page content. The hash only narrows the search: each entry also
// stores its tokens and its parent entry, and a match must agree on both, so a hash collision can
// cost a hit but never return the wrong K/V.
//
// The cache holds one reference on each page it keeps. Pages no sequence uses any more stay cached
// until the pool runs out of free pages; it then asks the cache (its PageReclaimer) to evict the
// least recently used of them.
import type { PagePool, PageReclaimer } from './page-pool.ts';

/** Key of a full page given its parent's key (null for the first page) and its tokens. */
export type ChainHash = (parentHash: string | null, tokens: readonly number[]) => string;

const fnvOffsetBasis = 0x811c9dc5;
const fnvPrime = 0x01000193;
const murmurSeed = 0x9747b28c;

/** MurmurHash3's finalizer: spreads every input bit over the whole word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The default chain hash: two independent 32-bit lanes (FNV-1a over the token bytes and a
 * MurmurHash3 body over the token words), each seeded from the parent's lane, as 16 hex digits.
 */
export function chainHash(parentHash: string | null, tokens: readonly number[]): string {
  let a = parentHash === null ? fnvOffsetBasis : parseInt(parentHash.slice(0, 8), 16);
  let b = parentHash === null ? murmurSeed : parseInt(parentHash.slice(8, 16), 16);
  for (const token of tokens) {
    for (let shift = 0; shift < 32; shift += 8) a = Math.imul(a ^ ((token >>> shift) & 0xff), fnvPrime);
    let k = Math.imul(token, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    b ^= k;
    b = (Math.imul((b << 13) | (b >>> 19), 5) + 0xe6546b64) | 0;
  }
  b ^= tokens.length;
  return fmix32(a).toString(16).padStart(8, '0') + fmix32(b).toString(16).padStart(8, '0');
}

interface CacheEntry {
  hash: string;
  /** The page's blockSize tokens. */
  tokens: readonly number[];
  page: number;
  parent: CacheEntry | null;
  children: Set<CacheEntry>;
}

/** Cached pages handed to a new sequence: take them with `new SequenceKv(pool, id, hit.pages)`. */
export interface PrefixHit {
  /** Physical pages of the longest cached prefix, one reference retained on each for the caller. */
  pages: number[];
  /** Prompt tokens those pages cover (pages.length * blockSize). */
  tokens: number;
}

export interface PrefixCacheStats {
  /** Prompt tokens served from cached pages, over all lookups. */
  hitTokens: number;
  /** Prompt tokens left to prefill, over all lookups. */
  computedTokens: number;
}

export interface PrefixCacheOptions {
  /** Replaces chainHash (tests inject colliding hashes to prove the token comparison). */
  hash?: ChainHash;
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((token, i) => token === b[i]);
}

export class PrefixCache implements PageReclaimer {
  readonly #pool: PagePool;
  readonly #hash: ChainHash;
  // Entries sharing a hash, told apart by tokens and parent.
  readonly #buckets = new Map<string, CacheEntry[]>();
  readonly #byPage = new Map<number, CacheEntry>();
  // Least recently used first. A chain is touched from its last page to its first, so a parent is
  // always more recent than its children and eviction takes chains from the tail.
  readonly #recency = new Set<CacheEntry>();
  #hitTokens = 0;
  #computedTokens = 0;

  constructor(pool: PagePool, options: PrefixCacheOptions = {}) {
    this.#pool = pool;
    this.#hash = options.hash ?? chainHash;
    pool.setReclaimer(this);
  }

  get stats(): PrefixCacheStats {
    return { hitTokens: this.#hitTokens, computedTokens: this.#computedTokens };
  }

  /** Pages the cache holds a reference on. */
  get cachedPages(): number {
    return this.#byPage.size;
  }

  /**
   * The longest chain of cached full pages that `promptTokens` starts with, retained for the caller.
   * The last prompt token is never served from the cache: its logits pick the first new token, so
   * it must go through the model.
   */
  lookup(promptTokens: readonly number[]): PrefixHit {
    const { blockSize } = this.#pool;
    const usableBlocks = Math.floor(Math.max(0, promptTokens.length - 1) / blockSize);
    const chain: CacheEntry[] = [];
    for (let block = 0; block < usableBlocks; block++) {
      const parent = chain.at(-1) ?? null;
      const pageTokens = promptTokens.slice(block * blockSize, (block + 1) * blockSize);
      const entry = this.#find(this.#hash(parent?.hash ?? null, pageTokens), parent, pageTokens);
      if (!entry) break;
      chain.push(entry);
    }
    this.#touch(chain);
    for (const entry of chain) this.#pool.retain(entry.page);
    const tokens = chain.length * blockSize;
    this.#hitTokens += tokens;
    this.#computedTokens += promptTokens.length - tokens;
    return { pages: chain.map((entry) => entry.page), tokens };
  }

  /**
   * Registers the full pages of a sequence whose K/V for `tokens` are written: block i of
   * `blockTable` holds tokens [i * blockSize, (i + 1) * blockSize). A page already cached under the
   * same key keeps the existing entry (the sequence's duplicate is not cached).
   */
  insert(tokens: readonly number[], blockTable: readonly number[]): void {
    const { blockSize } = this.#pool;
    const fullBlocks = Math.floor(tokens.length / blockSize);
    if (blockTable.length < fullBlocks) {
      throw new RangeError(`${tokens.length} tokens fill ${fullBlocks} pages but the block table has ${blockTable.length}`);
    }
    const chain: CacheEntry[] = [];
    for (let block = 0; block < fullBlocks; block++) {
      const parent = chain.at(-1) ?? null;
      const pageTokens = tokens.slice(block * blockSize, (block + 1) * blockSize);
      const hash = this.#hash(parent?.hash ?? null, pageTokens);
      chain.push(this.#find(hash, parent, pageTokens) ?? this.#add(hash, parent, pageTokens, blockTable[block]));
    }
    this.#touch(chain);
  }

  /** Drops every entry (pages still used by sequences stay theirs). */
  clear(): void {
    for (const entry of [...this.#byPage.values()]) if (entry.parent === null) this.#drop(entry);
  }

  reclaimable(): number {
    let count = 0;
    for (const entry of this.#byPage.values()) if (this.#pool.refCount(entry.page) === 1) count++;
    return count;
  }

  /** Evicts the least recently used page that only the cache holds (and the entries chained after it). */
  reclaim(): void {
    for (const entry of this.#recency) {
      if (this.#pool.refCount(entry.page) === 1) return this.#drop(entry);
    }
    throw new Error('prefix cache has no page to give back');
  }

  holds(page: number): boolean {
    return this.#byPage.has(page);
  }

  #find(hash: string, parent: CacheEntry | null, pageTokens: readonly number[]): CacheEntry | undefined {
    const bucket = this.#buckets.get(hash);
    return bucket?.find((entry) => entry.parent === parent && sameTokens(entry.tokens, pageTokens));
  }

  #add(hash: string, parent: CacheEntry | null, pageTokens: readonly number[], page: number): CacheEntry {
    if (this.#byPage.has(page)) throw new Error(`page ${page} is already cached for other tokens`);
    this.#pool.retain(page);
    const entry: CacheEntry = { hash, tokens: pageTokens, page, parent, children: new Set() };
    const bucket = this.#buckets.get(entry.hash);
    if (bucket) bucket.push(entry);
    else this.#buckets.set(entry.hash, [entry]);
    this.#byPage.set(page, entry);
    this.#recency.add(entry);
    parent?.children.add(entry);
    return entry;
  }

  #touch(chain: readonly CacheEntry[]): void {
    for (let i = chain.length - 1; i >= 0; i--) {
      this.#recency.delete(chain[i]);
      this.#recency.add(chain[i]);
    }
  }

  // Removes an entry and everything chained after it: without their parent, lookups cannot reach them.
  #drop(entry: CacheEntry): void {
    entry.parent?.children.delete(entry);
    const pending = [entry];
    for (let next = pending.pop(); next; next = pending.pop()) {
      pending.push(...next.children);
      const bucket = this.#buckets.get(next.hash)!;
      bucket.splice(bucket.indexOf(next), 1);
      if (bucket.length === 0) this.#buckets.delete(next.hash);
      this.#byPage.delete(next.page);
      this.#recency.delete(next);
      this.#pool.release(next.page);
    }
  }
}
