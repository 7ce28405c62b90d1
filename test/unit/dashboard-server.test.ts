/**
 * The dashboard's HTTP routes and its /metrics over real HTTP, with a fixed sample instead of
 * Kafka and PostgreSQL (test/integration/dashboard.test.ts reads the real ones).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Locale } from '../../core/i18n.ts';
import { createLogger } from '../../core/logger.ts';
import { createControlApi } from '../../ops/control-api.ts';
import { judgePartition, summarizeGroup } from '../../ops/dashboard/lag.ts';
import { createDashboardMetrics } from '../../ops/dashboard/metrics.ts';
import {
  countQuarantine,
  RingBuffer,
  storeQuarantine,
  type DashboardSample,
  type DashboardSampler,
  type HistoryPoint,
} from '../../ops/dashboard/sampler.ts';
import { createDashboardServer, type DashboardServer } from '../../ops/dashboard/server.ts';

const NOW = Date.parse('2026-11-27T15:00:00Z');
const logger = createLogger({ level: 'silent' });

function sample(locale: Locale = 'es'): DashboardSample {
  const behind = judgePartition(
    {
      group: 'p.fluxion-differ',
      topic: 'p.pos.inventario.snapshots',
      partition: 0,
      committed: '10',
      low: '0',
      end: '25',
      firstUnconsumed: { offset: '10', timestampMs: NOW - 45 * 60_000 },
    },
    { nowMs: NOW, members: 1, intervalMs: 30 * 60_000, unchangedForMs: 0 },
  );
  const idle = judgePartition(
    {
      group: 'p.fluxion-differ',
      topic: 'p.pos.inventario.snapshots',
      partition: 1,
      committed: null,
      low: '0',
      end: '0',
      firstUnconsumed: undefined,
    },
    { nowMs: NOW, members: 1, intervalMs: 30 * 60_000, unchangedForMs: 0 },
  );
  return {
    sampledAt: new Date(NOW).toISOString(),
    topicPrefix: 'p.',
    durationMs: 12,
    errors: [],
    groups: [
      summarizeGroup({
        group: 'p.fluxion-differ',
        process: 'fluxion process differ',
        position: 'kafka',
        state: 'Stable',
        members: 1,
        partitions: [behind, idle],
      }),
      // Every notifier stopped, nothing waiting: DOWN, not OK.
      summarizeGroup({
        group: 'p.fluxion-notify',
        process: 'fluxion notify',
        position: 'kafka',
        state: 'Empty',
        members: 0,
        partitions: [
          judgePartition(
            {
              group: 'p.fluxion-notify',
              topic: 'p.ops.etl-runs',
              partition: 0,
              committed: '4',
              low: '0',
              end: '4',
              firstUnconsumed: null,
            },
            { nowMs: NOW, members: 0, intervalMs: 30 * 60_000, unchangedForMs: 0 },
            undefined,
            locale,
          ),
        ],
      }),
    ],
    intervals: { 'pos.inventario.snapshots': 1_800_000 },
    stores: [
      {
        id: 'tienda_01',
        nombre: 'La Granja "El Bosque"',
        pos: 'klk',
        status: 'WARN',
        reasons: ['inventario: 1 of 12 polls missed in the last 24 h'],
        lastSuccess: {
          INVENTARIO: {
            runId: 'r1',
            startedAt: new Date(NOW - 600_000),
            finishedAt: new Date(NOW - 590_000),
            rows: 1500,
            snapshotId: 's1',
            errorClass: null,
            errorMessage: null,
          },
        },
        lastFailure: {},
        lastApplied: { snapshotId: 's1', takenAt: new Date(NOW - 600_000) },
        lastExtractionApplied: true,
        polls: {
          INVENTARIO: { expected: 12, missed: 1, missedInARow: 0, lastMissedAt: new Date(NOW - 3_600_000) },
          VENTAS: { expected: 6, missed: 0, missedInARow: 0, lastMissedAt: null },
        },
        quarantined: 1,
        stale: 2,
        openAlerts: 3,
      },
    ],
    lookbackHours: 24,
    dlq: { 'pos.ventas.raw.dlq': 2, 'pos.inventario.changes.dlq': 0 },
    quarantine: [
      { ubicacion: 'tienda_01', status: 'QUARANTINED', count: 1 },
      { ubicacion: 'tienda_01', status: 'STALE', count: 2 },
    ],
    rowsExtracted: [{ ubicacion: 'tienda_01', job: 'INVENTARIO', rows: 30_000 }],
    changes24h: { tienda_01: 77 },
    rowsWritten: [
      { table: 'inventario_actual', operation: 'insert', rows: 1500 },
      { table: 'inventario_historico', operation: 'update', rows: 40 },
    ],
    topicEnds: [{ topic: 'pos.inventario.snapshots', partition: 0, end: '25' }],
  };
}

function fakeSampler(s: DashboardSample | null): DashboardSampler {
  const history = new RingBuffer<HistoryPoint>(3);
  for (let i = 0; i < 5; i++)
    history.push({ at: NOW - (5 - i) * 30_000, groups: { 'p.fluxion-differ': { lagMessages: i, lagSeconds: i * 10, status: 'OK' } } });
  return {
    intervalMs: 30_000,
    start: () => undefined,
    stop: async () => undefined,
    sampleNow: async () => s ?? sample(),
    latest: () => s,
    history: () => history.toArray(),
  };
}

let server: DashboardServer;
let base: string;

beforeAll(async () => {
  const sampler = fakeSampler(sample());
  server = createDashboardServer({
    host: '127.0.0.1',
    port: 0,
    sampler,
    metrics: createDashboardMetrics(() => sampler.latest()),
    control: createControlApi({ token: undefined, stores: () => [], run: async () => undefined, logger }),
    logger,
    refreshSeconds: 7,
  });
  base = await server.listen();
});
afterAll(() => server.close());

describe('dashboard routes', () => {
  it('serves the page with its refresh, and its assets from this server only (no CDN)', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const html = await res.text();
    expect(html).toContain('data-refresh="7"');
    expect(html).not.toContain('{{');
    expect(html).not.toMatch(/https?:\/\//);
    for (const asset of ['/static/app.js', '/static/app.css']) {
      const a = await fetch(`${base}${asset}`);
      expect(a.status, asset).toBe(200);
      const text = await a.text();
      expect(text.length).toBeGreaterThan(100);
      expect(text).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    }
  });

  it('answers /api/lag, /api/stores and /api/history as JSON from the latest sample', async () => {
    const lag = await (await fetch(`${base}/api/lag`)).json();
    expect(lag.sampledAt).toBe(new Date(NOW).toISOString());
    expect(lag.groups[0]).toMatchObject({ group: 'p.fluxion-differ', status: 'WARN', lagMessages: 15, lagSeconds: 2700 });
    expect(lag.groups[0].partitions[0]).toMatchObject({
      partition: 0,
      committed: '10',
      end: '25',
      lagMessages: 15,
      lagSeconds: 2700,
      status: 'WARN',
    });
    const stores = await (await fetch(`${base}/api/stores`)).json();
    expect(stores.stores[0]).toMatchObject({ id: 'tienda_01', status: 'WARN', openAlerts: 3, quarantined: 1 });
    expect(stores.dlq['pos.ventas.raw.dlq']).toBe(2);
    const history = await (await fetch(`${base}/api/history`)).json();
    expect(history.intervalMs).toBe(30_000);
    // The ring buffer keeps the last 3 of 5 points, oldest first.
    expect(history.points.map((p: HistoryPoint) => p.groups['p.fluxion-differ']!.lagMessages)).toEqual([2, 3, 4]);
  });

  it("speaks Spanish by default: the page, its script's words and the reasons in /api/*", async () => {
    const html = await (await fetch(`${base}/`)).text();
    expect(html).toContain('<html lang="es">');
    expect(html).toContain('<h2>Grupos de consumidores</h2>');
    expect(html).toContain('<th class="num">snapshots atrasados</th>');
    expect(html).toContain('el grupo no tiene miembros: el proceso está detenido');
    expect(html).toContain('se actualiza cada 7 s');
    expect(html).toContain('<script src="/static/messages.js"></script>');
    const js = await (await fetch(`${base}/static/messages.js`)).text();
    expect(js).toContain('"never":"nunca"');
    const lag = await (await fetch(`${base}/api/lag`)).json();
    expect(lag.groups[1]).toMatchObject({ group: 'p.fluxion-notify', status: 'DOWN', members: 0, lagMessages: 0, lagSeconds: 0 });
    expect(lag.groups[1].partitions[0].reason).toMatch(/^nada en espera, pero el grupo no tiene miembros/);
  });

  it('speaks English with FLUXION_LOCALE=en', async () => {
    const sampler = fakeSampler(sample('en'));
    const en = createDashboardServer({
      host: '127.0.0.1',
      port: 0,
      sampler,
      metrics: createDashboardMetrics(() => sampler.latest()),
      logger,
      refreshSeconds: 9,
      locale: 'en',
    });
    const url = await en.listen();
    try {
      const html = await (await fetch(`${url}/`)).text();
      expect(html).toContain('<html lang="en">');
      expect(html).toContain('<h2>Consumer groups</h2>');
      expect(html).toContain('<th class="num">stale snapshots</th>');
      expect(html).toContain('refresh every 9 s');
      expect(html).not.toContain('{{');
      expect(await (await fetch(`${url}/static/messages.js`)).text()).toContain('"never":"never"');
      const lag = await (await fetch(`${url}/api/lag`)).json();
      expect(lag.groups[1].partitions[0].reason).toMatch(/^nothing waiting, but the group has no member/);
      const stores = await (await fetch(`${url}/api/stores`)).json();
      expect(stores.stores[0]).toMatchObject({ quarantined: 1, stale: 2 });
      expect(stores.quarantine).toContainEqual({ ubicacion: 'tienda_01', status: 'STALE', count: 2 });
    } finally {
      await en.close();
    }
  });

  it('/healthz answers 200 with the age of the last sample; unknown paths 404; writes 405', async () => {
    const h = await fetch(`${base}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok', lastSample: new Date(NOW).toISOString(), controlApi: 'off' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/static/../../package.json`)).status).toBe(404);
    expect((await fetch(`${base}/api/lag`, { method: 'POST' })).status).toBe(405);
  });

  it('mounts the control API (off here: 503 saying so)', async () => {
    const r = await fetch(`${base}/etl/sync`, { method: 'POST', body: '{}' });
    expect(r.status).toBe(503);
    expect((await r.json()).error).toMatch(/FLUXION_SYNC_TOKEN/);
  });
});

describe('dashboard /metrics', () => {
  it('exposes lag, statuses, store freshness, rows, DLQ, quarantine and alerts in the Prometheus text format', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const line = (re: RegExp) => expect(text, re.source).toMatch(re);
    line(/^fluxion_consumer_lag_messages\{group="p\.fluxion-differ",topic="p\.pos\.inventario\.snapshots",partition="0"\} 15$/m);
    line(/^fluxion_consumer_lag_seconds\{group="p\.fluxion-differ",topic="p\.pos\.inventario\.snapshots",partition="0"\} 2700$/m);
    line(/^fluxion_consumer_group_status\{group="p\.fluxion-differ",status="WARN"\} 1$/m);
    line(/^fluxion_consumer_group_status\{group="p\.fluxion-differ",status="OK"\} 0$/m);
    expect(text).toContain(
      `fluxion_store_last_success_timestamp_seconds{ubicacion="tienda_01",job="INVENTARIO"} ${(NOW - 600_000) / 1000}\n`,
    );
    line(/^fluxion_store_missed_polls\{ubicacion="tienda_01",job="INVENTARIO"\} 1$/m);
    line(/^fluxion_store_rows_extracted_total\{ubicacion="tienda_01",job="INVENTARIO"\} 30000$/m);
    line(/^fluxion_store_inventory_changes_24h\{ubicacion="tienda_01"\} 77$/m);
    line(/^fluxion_postgres_rows_written_total\{table="inventario_actual",operation="insert"\} 1500$/m);
    line(/^fluxion_dlq_records\{topic="pos\.ventas\.raw\.dlq"\} 2$/m);
    line(/^fluxion_quarantine_snapshots\{ubicacion="tienda_01",status="QUARANTINED"\} 1$/m);
    line(/^fluxion_quarantine_snapshots\{ubicacion="tienda_01",status="STALE"\} 2$/m);
    line(/^fluxion_consumer_group_status\{group="p\.fluxion-notify",status="DOWN"\} 1$/m);
    line(/^fluxion_consumer_group_status\{group="p\.fluxion-notify",status="OK"\} 0$/m);
    line(/^fluxion_consumer_group_members\{group="p\.fluxion-notify"\} 0$/m);
    line(/^fluxion_consumer_lag_messages\{group="p\.fluxion-notify",topic="p\.ops\.etl-runs",partition="0"\} 0$/m);
    line(/^fluxion_store_phantom_alerts_open\{ubicacion="tienda_01"\} 3$/m);
    line(/^# TYPE fluxion_store_rows_extracted_total counter$/m);
    // Every sample line belongs to a metric with HELP and TYPE.
    const declared = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    for (const sampleLine of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(declared.has(sampleLine.split(/[{ ]/)[0]!), sampleLine).toBe(true);
    }
  });

  it(
    'counts a STALE record of the quarantine topic as a stale snapshot of its store, not as one waiting for a decision, and carries it ' +
      'by status',
    async () => {
      const at = new Date(NOW);
      const record = (snapshot_id: string, ubicacion_id: string, status: string) => ({
        snapshot_id,
        ubicacion_id,
        status,
        source: 'KLK',
        taken_at: at,
        reason: 'r',
        note: status === 'STALE' ? 'older than applied snapshot s9' : null,
      });
      const counts = countQuarantine([
        record('s1', 'tienda_07', 'QUARANTINED'),
        record('s2', 'tienda_07', 'STALE'),
        record('s3', 'tienda_07', 'STALE'),
        record('s4', 'tienda_07', 'RELEASED'),
        record('s5', 'tienda_02', 'STALE'),
      ]);
      expect(counts).toContainEqual({ ubicacion: 'tienda_07', status: 'STALE', count: 2, open: false });
      expect(storeQuarantine(counts, 'tienda_07')).toEqual({ quarantined: 1, stale: 2 });
      expect(storeQuarantine(counts, 'tienda_02')).toEqual({ quarantined: 0, stale: 1 });
      expect(storeQuarantine(counts, 'tienda_01')).toEqual({ quarantined: 0, stale: 0 });
      const s = { ...sample(), quarantine: counts.map(({ ubicacion, status, count }) => ({ ubicacion, status, count })) };
      const text = await createDashboardMetrics(() => s).metrics();
      expect(text).toMatch(/^fluxion_quarantine_snapshots\{ubicacion="tienda_07",status="STALE"\} 2$/m);
      expect(text).toMatch(/^fluxion_quarantine_snapshots\{ubicacion="tienda_07",status="QUARANTINED"\} 1$/m);
      expect(text).toMatch(/^fluxion_quarantine_snapshots\{ubicacion="tienda_02",status="STALE"\} 1$/m);
    },
  );

  it('is empty of values, not failing, before the first sample', async () => {
    const registry = createDashboardMetrics(() => null);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE fluxion_consumer_lag_messages gauge');
    expect(text).not.toMatch(/^fluxion_consumer_lag_messages\{/m);
  });
});
