// stories260K's configuration as its loaders must report it (and as recorded panel data carries it).
import type { ModelConfig } from '../../src/engine/model/types.ts';

export const stories260KConfig: ModelConfig = {
  architecture: 'llama',
  dim: 64,
  hiddenDim: 172,
  nLayers: 5,
  nHeads: 8,
  nKvHeads: 4,
  headDim: 8,
  vocabSize: 512,
  maxSeqLen: 512,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: true,
  bosTokenId: 1,
  eosTokenId: 2,
};
