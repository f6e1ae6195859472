import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelFormatError, RequestError } from '../src/engine/errors.ts';
import { type ChatMessage, type ChatTemplate, loadChatTemplate } from '../src/engine/tokenizer/chat-template.ts';
import { HuggingFaceTokenizer } from '../src/engine/tokenizer/huggingface.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { memorySource } from './helpers/memory-source.ts';

// tokenizer_config.json with a ChatML template written to produce SmolLM2-Instruct's published format.
const fixture = directorySource(fileURLToPath(new URL('fixtures/chat-tokenizer/', import.meta.url)));
const smolTokenizerUrl = new URL('../../shared/models/smollm2-135m-tokenizer/tokenizer.json', import.meta.url);

const defaultSystem = '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n';

async function smolTemplate(): Promise<ChatTemplate> {
  const template = await loadChatTemplate(fixture, '');
  if (!template) throw new Error('the fixture has a chat_template');
  return template;
}

/** A one-file source holding tokenizer_config.json, named as a Hub URL would name it. */
const configSource = (config: string) => memorySource({ 'tokenizer_config.json': config }, 'https://hub.example/model/');
const configPath = 'https://hub.example/model/tokenizer_config.json';

describe('ChatML template (SmolLM2-Instruct format)', () => {
  it('wraps one user message, adds the default system turn, and opens the assistant turn', async () => {
    const template = await smolTemplate();
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hello, world!' }];
    expect(template.render(messages, { addGenerationPrompt: true })).toBe(
      `${defaultSystem}<|im_start|>user\nHello, world!<|im_end|>\n<|im_start|>assistant\n`,
    );
    expect(template.render(messages, { addGenerationPrompt: false })).toBe(`${defaultSystem}<|im_start|>user\nHello, world!<|im_end|>\n`);
  });

  it('renders a three-message conversation turn by turn', async () => {
    const template = await smolTemplate();
    const withSystem: ChatMessage[] = [
      { role: 'system', content: 'Answer in one word.' },
      { role: 'user', content: 'Capital of France?' },
      { role: 'assistant', content: 'Paris.' },
    ];
    expect(template.render(withSystem, { addGenerationPrompt: false })).toBe(
      '<|im_start|>system\nAnswer in one word.<|im_end|>\n' +
        '<|im_start|>user\nCapital of France?<|im_end|>\n' +
        '<|im_start|>assistant\nParis.<|im_end|>\n',
    );
    const followUp: ChatMessage[] = [
      { role: 'user', content: 'Hi!' },
      { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: 'Tell me a joke.' },
    ];
    expect(template.render(followUp, { addGenerationPrompt: true })).toBe(
      defaultSystem +
        '<|im_start|>user\nHi!<|im_end|>\n' +
        '<|im_start|>assistant\nHello! How can I help?<|im_end|>\n' +
        '<|im_start|>user\nTell me a joke.<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it('encodes to the SmolLM2 tokenizer with <|im_start|> as one special token', async () => {
    const tokenizerJson = JSON.parse(await readFile(smolTokenizerUrl, 'utf8')) as { added_tokens: { id: number; content: string }[] };
    const idOf = (content: string) => tokenizerJson.added_tokens.find((token) => token.content === content)?.id;
    const [imStart, imEnd] = [idOf('<|im_start|>'), idOf('<|im_end|>')];
    expect([imStart, imEnd]).toEqual([1, 2]);

    const tokenizer = new HuggingFaceTokenizer(tokenizerJson, { fileName: 'tokenizer.json', bosId: 1, eosId: 2 });
    const template = await smolTemplate();
    const prompt = template.render([{ role: 'user', content: 'Hello, world!' }], { addGenerationPrompt: true });
    const ids = tokenizer.encode(prompt, { bos: false });
    expect(ids.filter((id) => id === imStart)).toHaveLength(3); // system, user, assistant turns
    expect(ids.filter((id) => id === imEnd)).toHaveLength(2);
    expect(ids[0]).toBe(imStart);
    // The user turn: <|im_start|> "user" "\n" "Hello" "," " world" "!" <|im_end|> "\n", then the assistant opening.
    const assistant = tokenizer.encode('assistant', { bos: false });
    expect(ids.slice(-(9 + 2 + assistant.length))).toEqual([1, 4093, 198, 19556, 28, 905, 17, 2, 198, 1, ...assistant, 198]);
    expect(tokenizer.decode(ids)).toBe(prompt.replaceAll('<|im_start|>', '').replaceAll('<|im_end|>', ''));
  });
});

describe('loadChatTemplate', () => {
  it('reads tokenizer_config.json from the given folder', async () => {
    const files = memorySource({ 'models/smol/tokenizer_config.json': JSON.stringify({ chat_template: '{{ messages[0].content }}!' }) });
    const template = await loadChatTemplate(files, 'models/smol/');
    expect(template?.render([{ role: 'user', content: 'hey' }], { addGenerationPrompt: false })).toBe('hey!');
  });

  it('takes the template named "default" from a list, and passes bos_token/eos_token in either form', async () => {
    const files = configSource(
      JSON.stringify({
        bos_token: { content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
        eos_token: '</s>',
        chat_template: [
          { name: 'tool_use', template: 'tools: {{ messages | length }}' },
          { name: 'default', template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}' },
        ],
      }),
    );
    const template = await loadChatTemplate(files, '');
    const messages: ChatMessage[] = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ];
    expect(template?.render(messages, { addGenerationPrompt: false })).toBe('<s>[user] hi</s>[assistant] hello</s>');
  });

  it('rejects a list of templates with none named "default", naming the file', async () => {
    const files = configSource(JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'rag', template: 'y' }] }));
    await expect(loadChatTemplate(files, '')).rejects.toThrow(ModelFormatError);
    await expect(loadChatTemplate(files, '')).rejects.toThrow(`${configPath}: chat_template lists tool_use, rag but none named "default"`);
  });

  it('returns null when there is no tokenizer_config.json', async () => {
    expect(await loadChatTemplate(memorySource({ 'tokenizer.json': '{}' }), '')).toBeNull();
  });

  it('returns null when tokenizer_config.json has no chat_template', async () => {
    expect(await loadChatTemplate(configSource(JSON.stringify({ bos_token: '<s>', eos_token: '</s>' })), '')).toBeNull();
    expect(await loadChatTemplate(configSource(JSON.stringify({ chat_template: null })), '')).toBeNull();
  });

  it('reports malformed JSON as a ModelFormatError naming the file', async () => {
    const files = configSource('{"chat_template": "{{ messages }}",');
    await expect(loadChatTemplate(files, '')).rejects.toThrow(ModelFormatError);
    await expect(loadChatTemplate(files, '')).rejects.toThrow(`${configPath}: is not valid JSON`);
  });

  it('reports a chat_template of the wrong type or a bad special token as a ModelFormatError', async () => {
    await expect(loadChatTemplate(configSource(JSON.stringify({ chat_template: 42 })), '')).rejects.toThrow(
      `${configPath}: chat_template must be a string or a list of { name, template }, got number`,
    );
    await expect(loadChatTemplate(configSource(JSON.stringify({ chat_template: 'x', eos_token: 2 })), '')).rejects.toThrow(
      `${configPath}: eos_token must be a string or { content: string }`,
    );
  });
});

describe('template errors', () => {
  it('reports a Jinja syntax error when the model loads, naming the file and the problem', async () => {
    const files = configSource(JSON.stringify({ chat_template: '{% for message in messages %}{{ message.content }}{% endif %}' }));
    await expect(loadChatTemplate(files, '')).rejects.toThrow(ModelFormatError);
    await expect(loadChatTemplate(files, '')).rejects.toThrow(`${configPath}: chat_template is not valid Jinja: Unknown statement type: endif`);
  });

  it('reports a template that cannot render even one user message when the model loads', async () => {
    const files = configSource(JSON.stringify({ chat_template: '{{ messages | no_such_filter }}' }));
    await expect(loadChatTemplate(files, '')).rejects.toThrow(ModelFormatError);
    await expect(loadChatTemplate(files, '')).rejects.toThrow(
      `${configPath}: chat_template cannot render a single user message: Unknown ArrayValue filter: no_such_filter`,
    );
  });

  it("turns the template's raise_exception into a RequestError carrying its message", async () => {
    const strict =
      "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}" +
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ m.content }}{% endfor %}";
    const template = await loadChatTemplate(configSource(JSON.stringify({ chat_template: strict })), '');
    if (!template) throw new Error('expected a template');
    expect(template.render([{ role: 'user', content: 'a' }], { addGenerationPrompt: false })).toBe('a');
    const render = () =>
      template.render(
        [
          { role: 'user', content: 'a' },
          { role: 'user', content: 'b' },
        ],
        { addGenerationPrompt: false },
      );
    expect(render).toThrow(RequestError);
    expect(render).toThrow(
      `the chat template (${configPath}) cannot render this conversation: Conversation roles must alternate user/assistant/user/assistant/...`,
    );
  });
});

