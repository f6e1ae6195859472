// The chat template of an instruct model: the Jinja program in tokenizer_config.json that turns a
// conversation into the one prompt string the model was fine-tuned on (e.g. ChatML's
// "<|im_start|>user\n…<|im_end|>\n"). Rendered with @huggingface/jinja, the pure-JS interpreter
// that transformers.js uses for apply_chat_template, so prompts match what the Hub's tooling builds.
import { Template } from '@huggingface/jinja';
import { ModelFormatError, RequestError } from '../errors.ts';
import type { FileSource } from '../model/files.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatTemplateOptions {
  /** Where the template came from, for error messages (tokenizer_config.json's path or URL). */
  origin: string;
  /** The tokenizer's special tokens as text; templates such as Llama 3's write `{{ bos_token }}` themselves. */
  bosToken?: string;
  eosToken?: string;
}

export class ChatTemplate {
  readonly #template: Template;
  readonly #options: ChatTemplateOptions;

  /**
   * Parses the template and renders one user message with it, so a template that is broken for
   * every conversation fails when the model loads rather than at the first chat.
   */
  constructor(source: string, options: ChatTemplateOptions) {
    this.#options = options;
    try {
      this.#template = new Template(source);
    } catch (error) {
      throw new ModelFormatError(options.origin, `chat_template is not valid Jinja: ${messageOf(error)}`);
    }
    try {
      this.#renderRaw([{ role: 'user', content: 'Hello' }], true);
    } catch (error) {
      throw new ModelFormatError(options.origin, `chat_template cannot render a single user message: ${messageOf(error)}`);
    }
  }

  /**
   * The prompt text for `messages`; with `addGenerationPrompt` it ends with the opening of an
   * assistant turn, so the model's next tokens are its reply. Encode it without adding BOS: a
   * template that wants BOS writes it into the text.
   */
  render(messages: ChatMessage[], { addGenerationPrompt }: { addGenerationPrompt: boolean }): string {
    try {
      return this.#renderRaw(messages, addGenerationPrompt);
    } catch (error) {
      // The template renders a lone user message (checked on load), so a failure here is about this
      // conversation, typically the template's raise_exception refusing a shape it has no format
      // for (roles that do not alternate, a system message where none is allowed).
      throw new RequestError(`the chat template (${this.#options.origin}) cannot render this conversation: ${messageOf(error)}`);
    }
  }

  #renderRaw(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    return this.#template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.#options.bosToken,
      eos_token: this.#options.eosToken,
    });
  }
}

/**
 * The chat template in `<dir>tokenizer_config.json` (`dir` is '' or ends with '/'), or null when the
 * model has none: no such file, or no chat_template in it. Of a list of named templates, the one
 * named "default" is used.
 */
export async function loadChatTemplate(files: FileSource, dir: string): Promise<ChatTemplate | null> {
  const path = `${dir}tokenizer_config.json`;
  if (!(await files.exists(path))) return null;
  const origin = files.describe(path);
  const config = parseConfig(new TextDecoder().decode(await files.read(path)), origin);
  const source = templateSource(config.chat_template, origin);
  if (source === null) return null;
  return new ChatTemplate(source, {
    origin,
    bosToken: specialToken(config.bos_token, 'bos_token', origin),
    eosToken: specialToken(config.eos_token, 'eos_token', origin),
  });
}

function parseConfig(text: string, origin: string): Record<string, unknown> {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(origin, `is not valid JSON: ${messageOf(error)}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ModelFormatError(origin, 'is not a JSON object');
  }
  return config as Record<string, unknown>;
}

/** chat_template is a string, or (for models with tool-use or RAG variants) a list of { name, template }. */
function templateSource(chatTemplate: unknown, origin: string): string | null {
  if (chatTemplate === undefined || chatTemplate === null) return null;
  if (typeof chatTemplate === 'string') return chatTemplate;
  if (!Array.isArray(chatTemplate)) {
    throw new ModelFormatError(origin, `chat_template must be a string or a list of { name, template }, got ${typeof chatTemplate}`);
  }
  const names: string[] = [];
  for (const entry of chatTemplate) {
    if (typeof entry !== 'object' || entry === null || typeof entry.name !== 'string' || typeof entry.template !== 'string') {
      throw new ModelFormatError(origin, 'chat_template list entries must be { name: string, template: string }');
    }
    if (entry.name === 'default') return entry.template;
    names.push(entry.name);
  }
  throw new ModelFormatError(origin, `chat_template lists ${names.join(', ') || 'no templates'} but none named "default"`);
}

/** bos_token/eos_token are written as text or as an AddedToken object { content, … }. */
function specialToken(value: unknown, key: string, origin: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && 'content' in value && typeof value.content === 'string') return value.content;
  throw new ModelFormatError(origin, `${key} must be a string or { content: string }`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
