/**
 * The dashboard page in headless Chromium (Debian's package, driven by playwright-core) while
 * consumer groups are behind: the numbers the page shows are the API's, and a screenshot is
 * saved as a CI artifact (test-artifacts/dashboard.png); with FLUXION_UPDATE_DOCS_SCREENSHOT=1 it also
 * replaces docs/dashboard.png (shown by docs/dashboard.md).
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { GroupLag } from '../../ops/dashboard/lag.ts';
import type { StoreFreshness } from '../../ops/dashboard/freshness.ts';
import { chromiumPath, launchChromium } from '../browser/chromium.ts';
import { startDashboardFixture, type DashboardFixture } from '../browser/dashboard-fixture.ts';

const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');

let f: DashboardFixture;
let browser: Browser;
let page: Page;
/** What the page reported as errors (console, uncaught exceptions, failed loads). */
const pageErrors: string[] = [];

beforeAll(async () => {
  // Like every integration test, it fails rather than skips when something is missing.
  if (!chromiumPath()) throw new Error('the browser test needs Chromium: apt-get install chromium (Debian), or set FLUXION_CHROMIUM');
  f = await startDashboardFixture({ populateStores: true });
  // A few samples a second apart: the chart has a history to draw.
  for (let i = 0; i < 4; i++) {
    await f.sampler.sampleNow();
    await sleep(1_000);
  }
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => void (m.type() === 'error' && pageErrors.push(m.text())));
  await page.goto(`${f.url}/`);
  await page.waitForSelector('body[data-loaded]', { timeout: 30_000 });
});

afterAll(async () => {
  await browser?.close();
  await f?.close();
});

describe('dashboard page in Chromium', () => {
  it('shows per group the same lag, in messages and seconds, and status as /api/lag', async () => {
    expect(pageErrors).toEqual([]);
    const lag = (await (await fetch(`${f.url}/api/lag`)).json()) as { sampledAt: string; groups: GroupLag[] };
    // The sampler is not running on a timer: the page and the API show the same sample.
    expect(await page.getAttribute('body', 'data-loaded')).toBe(lag.sampledAt);
    const differ = lag.groups.find((g) => g.group.endsWith('fluxion-differ'))!;
    expect(differ.lagMessages).toBe(7);
    for (const g of lag.groups) {
      const row = page.locator(`tr[data-testid="group-row"][data-group="${g.group}"]`);
      expect(await row.locator('[data-testid="lag-messages"]').textContent(), g.group).toBe(String(g.lagMessages));
      expect(await row.locator('[data-testid="lag-seconds"]').textContent(), g.group).toBe(
        g.lagSeconds === null ? '?' : String(Math.round(g.lagSeconds)),
      );
      expect(await row.locator('[data-testid="status"]').textContent(), g.group).toBe(g.status);
    }
    expect(Math.round(differ.lagSeconds!)).toBeGreaterThanOrEqual(4);
  });

  it('shows per partition the committed offset, end, lag and status of the API', async () => {
    const lag = (await (await fetch(`${f.url}/api/lag`)).json()) as { groups: GroupLag[] };
    const partitions = lag.groups.flatMap((g) => g.partitions);
    expect(await page.locator('tr[data-testid="partition-row"]').count()).toBe(partitions.length);
    for (const p of partitions.filter((x) => x.lagMessages > 0)) {
      const row = page.locator(
        `tr[data-testid="partition-row"][data-group="${p.group}"][data-topic="${p.topic}"][data-partition="${p.partition}"]`,
      );
      expect(await row.locator('[data-testid="committed"]').textContent()).toBe(p.committed ?? 'ninguno');
      expect(await row.locator('[data-testid="end"]').textContent()).toBe(p.end);
      expect(await row.locator('[data-testid="lag-messages"]').textContent()).toBe(String(p.lagMessages));
      expect(await row.locator('[data-testid="lag-seconds"]').textContent()).toBe(String(Math.round(p.lagSeconds!)));
      expect(await row.locator('[data-testid="status"]').textContent()).toBe(p.status);
    }
  });

  it("shows each store's status and missed polls as /api/stores", async () => {
    const { stores } = (await (await fetch(`${f.url}/api/stores`)).json()) as { stores: StoreFreshness[] };
    expect(await page.locator('tr[data-testid="store-row"]').count()).toBe(stores.length);
    for (const s of stores) {
      const row = page.locator(`tr[data-testid="store-row"][data-store="${s.id}"]`);
      expect(await row.locator('[data-testid="status"]').textContent(), s.id).toBe(s.status);
      const polls = (job: 'INVENTARIO' | 'VENTAS') => `${s.polls[job]!.missed}/${s.polls[job]!.expected}`;
      expect(await row.locator('[data-testid="missed-polls"]').textContent(), s.id).toBe(
        s.pos === 'klk' ? `${polls('INVENTARIO')} · ${polls('VENTAS')}` : polls('INVENTARIO'),
      );
      expect(await row.locator('[data-testid="stale"]').textContent(), s.id).toBe(String(s.stale));
    }
    // Spanish by default (FLUXION_LOCALE unset): the headings and the words the script writes.
    expect(await page.getAttribute('html', 'lang')).toBe('es');
    expect(await page.locator('#groups').locator('xpath=preceding-sibling::h2').textContent()).toBe('Grupos de consumidores');
    expect(stores.find((s) => s.id === 'cedi_seco')!.status).toBe('ERR');
  });

  it('draws the lag history as inline SVG and saves a screenshot', async () => {
    expect(await page.locator('#chart svg polyline').count()).toBeGreaterThanOrEqual(5);
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    // docs/dashboard.md's picture is refreshed on request only, so a test run leaves the tree clean.
    if (process.env.FLUXION_UPDATE_DOCS_SCREENSHOT === '1') {
      mkdirSync(join(PROJECT_ROOT, 'docs'), { recursive: true });
      copyFileSync(shot, join(PROJECT_ROOT, 'docs', 'dashboard.png'));
    }
  });
});
