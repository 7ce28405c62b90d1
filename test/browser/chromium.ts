/**
 * Headless Chromium from Debian's `chromium` package, driven by playwright-core through its
 * executablePath: never a browser that Playwright downloads (the machines cannot fetch one).
 * FLUXION_CHROMIUM overrides the path.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** The real binary first: Debian's /usr/bin/chromium is a shell wrapper around it. */
const CANDIDATES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser'];

export function chromiumPath(): string | undefined {
  const configured = process.env.FLUXION_CHROMIUM;
  if (configured) return configured;
  return CANDIDATES.find((p) => existsSync(p));
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('no Chromium: `apt-get install chromium` (Debian), or set FLUXION_CHROMIUM to its path');
  return chromium.launch({
    executablePath,
    headless: true,
    // Root in CI and containers: Chromium's sandbox needs user namespaces it may not have.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: 60_000,
  });
}
