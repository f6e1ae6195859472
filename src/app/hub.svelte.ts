// The page's side of models from the Hub: the catalog's verdicts on this adapter, the download in
// progress (a row per file), the models kept in the browser's Cache Storage and its quota. The
// downloading itself is framework-free (engine/hub/); this class keeps its state for the panels.
import type { AdapterReport } from '../engine/engine.ts';
import { CancelledError } from '../engine/errors.ts';
import { ModelCache, type StoredModel } from '../engine/hub/cache-store.ts';
import type { FileProgress } from '../engine/hub/download.ts';
import { storeLocalModel, type LocalFile } from '../engine/hub/local-files.ts';
import { downloadModel } from '../engine/hub/model-download.ts';
import { planDownload, type ModelPlan } from '../engine/hub/plan.ts';
import { defaultHubUrl, parseModelReference } from '../engine/hub/reference.ts';
import { formatBytes, type PreflightVerdict } from '../engine/model/preflight.ts';
import type { ModelConfig } from '../engine/model/types.ts';
import { verdicts } from './catalog.ts';

/** One file of the download in progress. */
export interface FileRow {
  path: string;
  /** null until its download starts. */
  progress: FileProgress | null;
}

export interface ActiveDownload {
  id: string;
  label: string;
  files: FileRow[];
}

const hubUrlKey = 'lab:hub-url';
const freeMemoryKey = 'lab:gpu-memory-gib';

function remembered(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function remember(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage blocked (private mode): the setting lasts for this visit only.
  }
}

/**
 * WebGPU does not say how much GPU memory is free, so the preflight assumes a figure the user can
 * change: half the device memory the browser reports (navigator.deviceMemory, in GiB, capped at 8
 * by browsers), else 4 GiB.
 */
function assumedFreeGiB(): number {
  const deviceMemory = (globalThis.navigator as (Navigator & { deviceMemory?: number }) | undefined)?.deviceMemory;
  return deviceMemory ? Math.max(0.5, deviceMemory / 2) : 4;
}

export class HubModels {
  readonly #cache: ModelCache | null;
  #controller: AbortController | null = null;

  /** Where models are downloaded from: https://huggingface.co, a mirror, or a test server. */
  hubUrl = $state(defaultHubUrl);
  /** The free GPU memory the preflight assumes, in GiB (an estimate the user may correct). */
  freeMemoryGiB = $state(4);
  stored = $state.raw<StoredModel[]>([]);
  /** navigator.storage.estimate(): bytes this origin uses and may use. */
  quota = $state.raw<{ usage: number; quota: number } | null>(null);
  /** Bytes kept from unfinished downloads. */
  partialBytes = $state(0);
  download = $state.raw<ActiveDownload | null>(null);
  /** What went wrong or was refused last (a preflight refusal, a failed download); null when all is well. */
  message = $state<string | null>(null);

  /** `?hub=URL` and `?gpuMemory=GiB` override (and are remembered for later visits). */
  constructor(search = '') {
    this.#cache = typeof caches === 'undefined' ? null : new ModelCache(caches);
    const params = new URLSearchParams(search);
    const hub = params.get('hub');
    if (hub) remember(hubUrlKey, hub);
    this.hubUrl = hub ?? remembered(hubUrlKey) ?? defaultHubUrl;
    const gib = Number(params.get('gpuMemory') ?? remembered(freeMemoryKey) ?? NaN);
    this.freeMemoryGiB = Number.isFinite(gib) && gib > 0 ? gib : assumedFreeGiB();
  }

  /** False where the browser has no Cache Storage (an insecure http:// page other than localhost). */
  get available(): boolean {
    return this.#cache !== null;
  }

  setHubUrl(url: string): void {
    this.hubUrl = url.trim().replace(/\/+$/, '') || defaultHubUrl;
    remember(hubUrlKey, this.hubUrl);
  }

  setFreeMemoryGiB(gib: number): void {
    if (!Number.isFinite(gib) || gib <= 0) return;
    this.freeMemoryGiB = gib;
    remember(freeMemoryKey, String(gib));
  }

  /** The preflight's verdict per weight format on this adapter (null without an adapter). */
  verdicts(config: ModelConfig, adapter: AdapterReport | null): PreflightVerdict[] | null {
    return adapter ? verdicts(config, adapter.limits, this.freeMemoryGiB * 2 ** 30) : null;
  }

  /** The stored model with this id (null when it is not, or no longer, complete in the cache). */
  async find(id: string): Promise<StoredModel | null> {
    return this.#cache ? this.#cache.model(id) : null;
  }

  async refresh(): Promise<void> {
    if (!this.#cache) return;
    this.stored = await this.#cache.models();
    this.partialBytes = await this.#cache.partialBytes();
    const estimate = await globalThis.navigator?.storage?.estimate?.();
    this.quota = estimate ? { usage: estimate.usage ?? 0, quota: estimate.quota ?? 0 } : null;
  }

  /** Plans what the user typed (a repo id or URL) and downloads it; see fetchPlan. */
  async fetchReference(text: string, adapter: AdapterReport | null): Promise<StoredModel | null> {
    this.message = null;
    let plan: ModelPlan;
    try {
      plan = await planDownload(parseModelReference(text, this.hubUrl), this.hubUrl);
    } catch (error) {
      this.message = `Could not find a model at ${text}: ${(error as Error).message}`;
      return null;
    }
    return this.fetchPlan(plan, adapter);
  }

  /**
   * Downloads a plan's files into the cache, unless the preflight says the model fits in no weight
   * format here. Resolves to the stored model, or null when it was refused, cancelled or failed
   * (`message` says which).
   */
  async fetchPlan(plan: ModelPlan, adapter: AdapterReport | null): Promise<StoredModel | null> {
    const cache = this.#cache;
    if (!cache) {
      this.message = 'This page cannot keep downloads: Cache Storage needs https:// or http://localhost.';
      return null;
    }
    if (this.download) return null;
    this.message = null;
    const verdicts = plan.config && this.verdicts(plan.config, adapter);
    if (verdicts && !verdicts.some((v) => v.fits)) {
      this.message = `Not downloaded: ${plan.label} does not fit on this adapter in any weight format. ${verdicts.map((v) => v.message).join('. ')}.`;
      return null;
    }
    // Ask the browser not to evict the models under storage pressure (it may refuse).
    void globalThis.navigator?.storage?.persist?.();
    const controller = new AbortController();
    this.#controller = controller;
    this.download = { id: plan.id, label: plan.label, files: plan.files.map((f) => ({ path: f.path, progress: null })) };
    try {
      const stored = await downloadModel(plan, cache, {
        signal: controller.signal,
        onProgress: (path, progress) => {
          const current = this.download;
          if (current) this.download = { ...current, files: current.files.map((row) => (row.path === path ? { path, progress } : row)) };
        },
      });
      return stored;
    } catch (error) {
      this.message = error instanceof CancelledError ? `Download of ${plan.label} cancelled; the bytes so far are kept, so it resumes where it stopped.` : `Download of ${plan.label} failed: ${(error as Error).message}`;
      return null;
    } finally {
      this.#controller = null;
      this.download = null;
      await this.refresh();
    }
  }

  cancel(): void {
    this.#controller?.abort();
  }

  async remove(id: string): Promise<void> {
    await this.#cache?.deleteModel(id);
    await this.refresh();
  }

  async discardPartial(): Promise<void> {
    await this.#cache?.dropAllPartial();
    await this.refresh();
  }

  /** Keeps dropped files as a model (named after the first one) so they load from the cache. */
  async addLocalFiles(files: LocalFile[]): Promise<StoredModel | null> {
    if (!this.#cache || files.length === 0) return null;
    this.message = null;
    const name = files[0].path.split('/')[0];
    try {
      return await storeLocalModel(this.#cache, name, files);
    } catch (error) {
      this.message = `Could not use the dropped files: ${(error as Error).message}`;
      return null;
    } finally {
      await this.refresh();
    }
  }
}

/** "12.3 MiB of 60.8 MiB · 4.1 MiB/s · 12 s left" */
export function describeProgress(p: FileProgress): string {
  const parts = [p.totalBytes === null ? formatBytes(p.receivedBytes) : `${formatBytes(p.receivedBytes)} of ${formatBytes(p.totalBytes)}`];
  if (p.state === 'downloading' && p.bytesPerSecond > 0) parts.push(`${formatBytes(p.bytesPerSecond)}/s`);
  if (p.state === 'downloading' && p.secondsLeft !== null) parts.push(`${Math.ceil(p.secondsLeft)} s left`);
  if (p.state === 'retrying') parts.push(`connection dropped, resuming (${p.resumes})`);
  if (p.state === 'verifying') parts.push('checking');
  if (p.state === 'done') parts.push('stored');
  return parts.join(' · ');
}
