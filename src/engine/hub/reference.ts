// What a user can type to name a model, and where its files are on the Hub. The Hub serves every
// file of a repository at {hub}/{owner}/{name}/resolve/{revision}/{path}; `hub` is configurable so
// tests (and mirrors) can stand in for https://huggingface.co.

export const defaultHubUrl = 'https://huggingface.co';

/** A model named by a Hub repository (optionally a file in it) or by a plain URL. */
export type ModelReference =
  /** A folder in a repo ('' for its root) holding config.json and safetensors weights. */
  | { kind: 'hub-folder'; repo: string; revision: string; folder: string }
  /** One file in a repo: a .gguf, or a llama2.c .bin. */
  | { kind: 'hub-file'; repo: string; revision: string; path: string }
  /** A file (.gguf, .bin) or a folder (ending in '/') anywhere on the web. */
  | { kind: 'url'; url: string };

const repoPart = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The URL of `path` in `repo` at `revision` on the Hub at `hubUrl`. */
export function resolveUrl(hubUrl: string, repo: string, revision: string, path: string): string {
  const base = hubUrl.endsWith('/') ? hubUrl : `${hubUrl}/`;
  const encodedPath = path.split('/').map(encodeURIComponent).join('/');
  return new URL(`${repo}/resolve/${encodeURIComponent(revision)}/${encodedPath}`, base).href;
}

/** The folder URL (ending in '/') that a reference's files are relative to. */
export function referenceBaseUrl(reference: ModelReference, hubUrl: string): string {
  switch (reference.kind) {
    case 'hub-folder':
      return resolveUrl(hubUrl, reference.repo, reference.revision, reference.folder ? `${reference.folder}/` : '');
    case 'hub-file':
      return resolveUrl(hubUrl, reference.repo, reference.revision, dirname(reference.path));
    case 'url':
      return new URL('./', reference.url).href;
  }
}

function dirname(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash + 1);
}

const isModelFile = (path: string) => /\.(gguf|bin)$/i.test(path);

/**
 * Reads what the user typed: `owner/name`, `owner/name@revision`, `owner/name/path/model.gguf`
 * (a file or a sub-folder), a Hub page or resolve URL (https://huggingface.co/owner/name,
 * …/resolve/main/file, …/blob/main/file, on `hubUrl` too), or any other http(s) URL.
 * Throws an Error saying what is expected when it is none of these.
 */
export function parseModelReference(text: string, hubUrl = defaultHubUrl): ModelReference {
  const input = text.trim();
  if (/^https?:\/\//i.test(input)) return parseUrl(input, hubUrl);
  const [name, revision = 'main'] = input.split('@', 2);
  const parts = name.split('/').filter((p) => p !== '');
  if (parts.length < 2 || !repoPart.test(parts[0]) || !repoPart.test(parts[1]) || !revision) {
    throw new Error(`"${input}" is not a Hub repo id (owner/name, optionally @revision and a file path) or an http(s) URL`);
  }
  return fromRepoPath(`${parts[0]}/${parts[1]}`, revision, parts.slice(2).join('/'));
}

function fromRepoPath(repo: string, revision: string, path: string): ModelReference {
  return isModelFile(path) ? { kind: 'hub-file', repo, revision, path } : { kind: 'hub-folder', repo, revision, folder: path };
}

function parseUrl(input: string, hubUrl: string): ModelReference {
  const url = new URL(input);
  const hubHosts = new Set([new URL(defaultHubUrl).host, new URL(hubUrl).host]);
  if (!hubHosts.has(url.host)) return { kind: 'url', url: url.href };
  // On the Hub: /owner/name[/(resolve|blob|tree)/revision/path]
  const hubPrefix = new URL(hubUrl).host === url.host ? new URL(hubUrl).pathname.replace(/\/$/, '') : '';
  const parts = url.pathname.slice(hubPrefix.length).split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (parts.length < 2) throw new Error(`${input} names no repository (expected ${hubUrl}/owner/name)`);
  const repo = `${parts[0]}/${parts[1]}`;
  if (parts.length === 2) return { kind: 'hub-folder', repo, revision: 'main', folder: '' };
  if (['resolve', 'blob', 'tree'].includes(parts[2]) && parts.length >= 4) return fromRepoPath(repo, parts[3], parts.slice(4).join('/'));
  throw new Error(`${input} is a Hub address this lab cannot read (expected …/owner/name or …/owner/name/resolve/revision/file)`);
}

/** A short name for lists: "owner/name", "owner/name/file.gguf", or the URL's last part. */
export function referenceLabel(reference: ModelReference): string {
  switch (reference.kind) {
    case 'hub-folder':
      return [reference.repo, reference.folder].filter(Boolean).join('/') + (reference.revision === 'main' ? '' : `@${reference.revision}`);
    case 'hub-file':
      return `${reference.repo}/${reference.path}${reference.revision === 'main' ? '' : `@${reference.revision}`}`;
    case 'url':
      return reference.url;
  }
}
