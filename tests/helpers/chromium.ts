// Launches Debian's Chromium headless with WebGPU on (SwiftShader's Vulkan when there is no GPU),
// for the browser tests. A missing Chromium is a test failure with a message that says what to
// install, never a skip.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';

/** Override with $LAB_CHROMIUM (path to a Chromium or Chrome binary). */
export const chromiumPath = process.env.LAB_CHROMIUM || '/usr/bin/chromium';

/**
 * Flags that give headless Chromium a WebGPU adapter on a machine without a GPU: WebGPU itself
 * (still behind --enable-unsafe-webgpu on Linux), the Vulkan backend on SwiftShader (which the
 * chromium package ships in /usr/lib/chromium), and no background services that would reach out
 * to the network. Set $LAB_CHROMIUM_GPU=system to let Chromium pick the machine's GPU instead.
 */
export function chromiumArgs(): string[] {
  const args = [
    '--enable-unsafe-webgpu',
    '--no-sandbox',
    '--disable-gpu-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-extensions',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-dev-shm-usage',
  ];
  if (process.env.LAB_CHROMIUM_GPU !== 'system') {
    args.push('--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader');
  }
  return args;
}

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium is not installed at ${chromiumPath}: the browser tests need it. ` +
        'On Debian/Ubuntu run `apt-get install chromium libvulkan1` (or set LAB_CHROMIUM to a Chromium binary).',
    );
  }
  // Playwright's default launch gives every context a fresh temporary profile.
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: [...chromiumArgs(), ...extraArgs], timeout: 60_000 });
}

/** Collects the page's console output and uncaught errors, to print when a test fails. */
export function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (message: ConsoleMessage) => lines.push(`[${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => lines.push(`[pageerror] ${error.message}`));
  page.on('crash', () => lines.push('[crash] the page crashed'));
  return lines;
}
