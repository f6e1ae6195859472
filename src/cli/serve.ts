// npm run serve -- --model PATH [--tokenizer PATH] [--host H] [--port N] [--max-batch N] [--max-queue N]
//                  [--api-key KEY] [--max-context N] [--format F] [--page-size N] [--no-prefix-cache]
//                  [--model-name NAME]
// An OpenAI-compatible HTTP server on the engine's batched path: POST /v1/completions and
// /v1/chat/completions (JSON or SSE), GET /v1/models, GET /metrics (Prometheus) and
// GET /v1/requests and /v1/requests/{id}/timeline (readable from other origins). Prints "serving NAME at URL" on stdout once it listens
// (--port 0 picks a free port); runs until SIGINT or SIGTERM.
import { basename, dirname } from 'node:path';
import { blockSizes } from '../engine/kv/page-pool.ts';
import { weightFormats, type WeightFormat } from '../engine/quant/formats.ts';
import { directorySource, openModelPath } from '../node/fs-source.ts';
import { nodeGpu } from '../node/gpu.ts';
import { startServer } from '../server/server.ts';
import { loadServingModel, maxServingBatch, modelNameOf } from '../server/serving-model.ts';
import { numberOption, parseOptions, UsageError } from './args.ts';

const usage = `usage: npm run serve -- --model PATH [--tokenizer PATH] [--host H] [--port N] [--max-batch N] [--max-queue N]
                        [--api-key KEY] [--max-context N] [--format ${weightFormats.join('|')}]
                        [--page-size ${blockSizes.join('|')}] [--no-prefix-cache] [--model-name NAME]`;

export async function main(args: string[]): Promise<number> {
  let values;
  let settings;
  try {
    values = parseOptions(args, {
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      'max-batch': { type: 'string' },
      'max-queue': { type: 'string' },
      'api-key': { type: 'string' },
      'max-context': { type: 'string' },
      format: { type: 'string', default: 'f32' },
      'page-size': { type: 'string' },
      'no-prefix-cache': { type: 'boolean', default: false },
      'model-name': { type: 'string' },
      help: { type: 'boolean', default: false },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (!values.model) throw new UsageError('--model is required');
    if (!weightFormats.includes(values.format as WeightFormat)) throw new UsageError(`--format must be one of ${weightFormats.join(', ')}, got "${values.format}"`);
    if (values['api-key'] === '') throw new UsageError('--api-key must not be empty');
    settings = {
      port: numberOption(values.port, 'port', 8000, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number (0: any free port)'),
      maxBatch: numberOption(values['max-batch'], 'max-batch', 8, (n) => Number.isInteger(n) && n >= 1 && n <= maxServingBatch, `a whole number from 1 to ${maxServingBatch}`),
      maxQueue: numberOption(values['max-queue'], 'max-queue', 64, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0'),
      maxContext: numberOption(values['max-context'], 'max-context', 2048, (n) => Number.isInteger(n) && n >= 2, 'a whole number >= 2'),
      pageSize: numberOption(values['page-size'], 'page-size', 16, (n) => (blockSizes as readonly number[]).includes(n), `one of ${blockSizes.join(', ')}`),
    };
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }

  try {
    const { files, entry } = openModelPath(values.model!);
    const tokenizer = values.tokenizer ? { files: directorySource(dirname(values.tokenizer)), path: basename(values.tokenizer) } : undefined;
    const name = values['model-name'] ?? modelNameOf(values.model!);
    console.error(`loading ${values.model}`);
    const serving = await loadServingModel({ gpu: nodeGpu(), files, entry, tokenizer, name, maxBatch: settings.maxBatch, maxContext: settings.maxContext, weightFormat: values.format as WeightFormat, pageSize: settings.pageSize });
    try {
      const server = await startServer({
        serving,
        maxBatch: settings.maxBatch,
        maxQueue: settings.maxQueue,
        prefixCache: !values['no-prefix-cache'],
        apiKey: values['api-key'],
        host: values.host,
        port: settings.port,
      });
      const { model, gpu } = serving;
      console.error(
        `${gpu.adapter.description || gpu.adapter.vendor}: batch ${settings.maxBatch}, queue ${settings.maxQueue}, context ${model.contextLength}, ` +
          `${model.pool.pageCount} KV pages of ${model.layout.blockSize} tokens, prefix cache ${values['no-prefix-cache'] ? 'off' : 'on'}${values['api-key'] ? ', API key required' : ''}`,
      );
      console.log(`serving ${name} at ${server.url}`);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      console.error(`${signal}: shutting down`);
      await server.close();
    } finally {
      serving.dispose();
    }
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}
