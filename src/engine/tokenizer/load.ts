// Finds and loads the tokenizer that goes with a model:
//   an explicit file (.bin llama2.c tokenizer, or a Hugging Face tokenizer.json) wins; otherwise
//   a GGUF's embedded vocabulary; a llama2.c .bin's sibling tok{vocab}.bin or tokenizer.bin; a
//   Hugging Face folder's tokenizer.json (+ tokenizer_config.json).
import { loadChatTemplate, type ChatTemplate } from './chat-template.ts';
import { ModelFormatError } from '../errors.ts';
import type { FileSource } from '../model/files.ts';
import type { GgufVocabulary } from '../model/gguf.ts';
import { detectFormat } from '../model/load.ts';
import type { ModelDescription } from '../model/types.ts';
import { sentencePieceFromGguf } from './gguf-vocab.ts';
import { HuggingFaceTokenizer } from './huggingface.ts';
import { parseLlama2cTokenizer } from './llama2c.ts';
import type { Tokenizer } from './types.ts';

export interface TokenizerFile {
  files: FileSource;
  path: string;
}

export interface LoadedTokenizer {
  tokenizer: Tokenizer;
  /** What was loaded, for display: "tok512.bin (llama2.c)". */
  name: string;
  /** The instruct model's chat template (tokenizer_config.json), when it has one. */
  chatTemplate: ChatTemplate | null;
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash + 1);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

async function readJson(files: FileSource, path: string): Promise<unknown> {
  const text = new TextDecoder().decode(await files.read(path));
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(files.describe(path), `is not valid JSON: ${(error as Error).message}`);
  }
}

async function fromFile({ files, path }: TokenizerFile, model: ModelDescription): Promise<LoadedTokenizer> {
  if (path.toLowerCase().endsWith('.json')) {
    const configPath = `${dirOf(path)}tokenizer_config.json`;
    const tokenizerConfig = (await files.exists(configPath)) ? ((await readJson(files, configPath)) as Record<string, unknown>) : undefined;
    const tokenizer = new HuggingFaceTokenizer(await readJson(files, path), {
      fileName: files.describe(path),
      tokenizerConfig,
      bosId: model.config.bosTokenId,
      eosId: model.config.eosTokenId,
    });
    return { tokenizer, name: `${baseName(path)} (Hugging Face)`, chatTemplate: await loadChatTemplate(files, dirOf(path)) };
  }
  const tokenizer = parseLlama2cTokenizer(await files.read(path), files.describe(path), model.config.vocabSize);
  return { tokenizer, name: `${baseName(path)} (llama2.c)`, chatTemplate: null };
}

export async function loadTokenizer(
  files: FileSource,
  entry: string,
  model: ModelDescription,
  vocabulary: GgufVocabulary | undefined,
  explicit?: TokenizerFile,
): Promise<LoadedTokenizer> {
  const checked = (loaded: LoadedTokenizer): LoadedTokenizer => {
    if (loaded.tokenizer.vocabSize > model.config.vocabSize) {
      throw new ModelFormatError(loaded.name, `tokenizer has ${loaded.tokenizer.vocabSize} tokens but the model only ${model.config.vocabSize}`);
    }
    return loaded;
  };
  if (explicit) return checked(await fromFile(explicit, model));
  if (vocabulary) return checked({ tokenizer: sentencePieceFromGguf(vocabulary, files.describe(entry)), name: `${baseName(entry)} (GGUF vocabulary)`, chatTemplate: null });

  const format = detectFormat(entry);
  const dir = format === 'huggingface' ? (entry === '' || entry.endsWith('/') ? entry : `${entry}/`) : dirOf(entry);
  const candidates = format === 'huggingface' ? ['tokenizer.json'] : [`tok${model.config.vocabSize}.bin`, 'tokenizer.bin'];
  for (const candidate of candidates) {
    if (await files.exists(dir + candidate)) return checked(await fromFile({ files, path: dir + candidate }, model));
  }
  throw new ModelFormatError(
    files.describe(entry),
    `no tokenizer found (looked for ${candidates.map((c) => files.describe(dir + c)).join(', ')}); pass a tokenizer file explicitly`,
  );
}
