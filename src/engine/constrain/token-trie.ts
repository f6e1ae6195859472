// A character trie of every allowed token text, built once per vocabulary. The mask walk follows
// it alongside the automaton, so a prefix the automaton refuses cuts off every token below it, and
// tokens sharing a prefix step through it once.

/** Flat arrays, node 0 the root. The edges of node n are edgeStart[n] .. edgeStart[n+1]-1, sorted by code point. */
export interface TokenTrie {
  readonly nodeCount: number;
  readonly edgeStart: Int32Array; // (nodeCount + 1)
  readonly edgeChar: Int32Array; // (edges) the code point an edge reads
  readonly edgeNode: Int32Array; // (edges) the node an edge leads to
  /** Tokens whose whole text ends at node n: tokenIds[tokenStart[n] .. tokenStart[n+1]-1] (several ids may share a text). */
  readonly tokenStart: Int32Array; // (nodeCount + 1)
  readonly tokenIds: Int32Array; // (tokens in the trie)
}

/** The trie of `texts[id]` for every id whose text is not null (and not empty: an empty text would never advance). */
export function buildTokenTrie(texts: readonly (string | null)[]): TokenTrie {
  const children: Map<number, number>[] = [new Map()];
  const tokensAt: number[][] = [[]];
  texts.forEach((text, id) => {
    if (text === null || text.length === 0) return;
    let node = 0;
    for (const char of text) {
      const codePoint = char.codePointAt(0)!;
      let child = children[node].get(codePoint);
      if (child === undefined) {
        child = children.length;
        children[node].set(codePoint, child);
        children.push(new Map());
        tokensAt.push([]);
      }
      node = child;
    }
    tokensAt[node].push(id);
  });

  const nodeCount = children.length;
  const edgeCount = nodeCount - 1; // every node but the root has one incoming edge
  const edgeStart = new Int32Array(nodeCount + 1);
  const edgeChar = new Int32Array(edgeCount);
  const edgeNode = new Int32Array(edgeCount);
  const tokenStart = new Int32Array(nodeCount + 1);
  const tokenIds = new Int32Array(tokensAt.reduce((sum, ids) => sum + ids.length, 0));
  let edge = 0;
  let token = 0;
  for (let node = 0; node < nodeCount; node++) {
    edgeStart[node] = edge;
    for (const [codePoint, child] of [...children[node]].sort((a, b) => a[0] - b[0])) {
      edgeChar[edge] = codePoint;
      edgeNode[edge] = child;
      edge++;
    }
    tokenStart[node] = token;
    for (const id of tokensAt[node]) tokenIds[token++] = id;
  }
  edgeStart[nodeCount] = edge;
  tokenStart[nodeCount] = token;
  return { nodeCount, edgeStart, edgeChar, edgeNode, tokenStart, tokenIds };
}
