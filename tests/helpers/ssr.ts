// Reading server-rendered Svelte markup in component tests (svelte/server `render` gives a string).

/** The rendered markup with comments and tags removed and whitespace collapsed: what a reader sees. */
export function visibleText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The outer HTML of the first element whose opening tag contains `marker` (e.g. 'data-testid="x"'). */
export function elementWith(html: string, marker: string): string {
  const at = html.indexOf(marker);
  if (at < 0) throw new Error(`no element with ${marker}`);
  const start = html.lastIndexOf('<', at);
  const tag = /^<([a-z0-9]+)/i.exec(html.slice(start))![1];
  const tags = new RegExp(`<${tag}[\\s>]|</${tag}>`, 'gi');
  tags.lastIndex = start;
  let depth = 0;
  for (let m = tags.exec(html); m; m = tags.exec(html)) {
    depth += m[0].startsWith('</') ? -1 : 1;
    if (depth === 0) return html.slice(start, m.index + m[0].length);
  }
  throw new Error(`unclosed <${tag}> for ${marker}`);
}
