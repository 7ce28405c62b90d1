/**
 * The dashboard against real Kafka and PostgreSQL: lag in messages and seconds of consumer
 * groups in a known state (test/browser/dashboard-fixture.ts), the stores' freshness, and a
 * /metrics that promtool accepts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreFreshness } from '../../ops/dashboard/freshness.ts';
import type { GroupLag } from '../../ops/dashboard/lag.ts';
import { PARTITIONS, startDashboardFixture, type DashboardFixture } from '../browser/dashboard-fixture.ts';

let f: DashboardFixture;
let p: string;

function promtool(): string | undefined {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return 'promtool';
  } catch {
    return undefined;
  }
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${f.url}${path}`);
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

beforeAll(async () => {
  f = await startDashboardFixture({ populateStores: true });
  p = f.pipeline.prefix;
  await f.sampler.sampleNow();
});

afterAll(async () => {
  await f?.close();
});

describe('dashboard on the real services', () => {
  it('shows a group behind by N records: lag N, seconds ≈ age of the oldest unconsumed record, DOWN without members', async () => {
    const lag = await api<{ sampledAt: string; errors: unknown[]; groups: GroupLag[] }>('/api/lag');
    expect(lag.errors).toEqual([]);
    const differ = lag.groups.find((g) => g.group === `${p}fluxion-differ`)!;
    expect(differ).toMatchObject({ status: 'DOWN', members: 0, lagMessages: 7, process: 'fluxion process differ' });
    const part = differ.partitions.find((x) => x.partition === f.partition)!;
    expect(part).toMatchObject({
      topic: `${p}pos.inventario.snapshots`,
      committed: '5',
      position: '5',
      end: '12',
      lagMessages: 7,
      status: 'DOWN',
    });
    expect(part.reason).toMatch(/no tiene miembros/);
    // The oldest unconsumed record is the first of the 7 (produced after a gap), not the first of all 12.
    const sampledAt = Date.parse(lag.sampledAt);
    expect(part.oldestUnconsumedMs).toBeGreaterThanOrEqual(f.differOldest.before - 50);
    expect(part.oldestUnconsumedMs).toBeLessThanOrEqual(f.differOldest.after + 50);
    expect(part.lagSeconds).toBeGreaterThanOrEqual((sampledAt - f.differOldest.after) / 1000 - 0.1);
    expect(part.lagSeconds).toBeLessThanOrEqual((sampledAt - f.differOldest.before) / 1000 + 0.1);
    // Nothing waits there, but nobody reads them either: DOWN all the same.
    for (const other of differ.partitions.filter((x) => x.partition !== f.partition))
      expect(other).toMatchObject({ lagMessages: 0, lagSeconds: 0, status: 'DOWN' });
    expect(differ.partitions).toHaveLength(PARTITIONS);
  });

  it("takes the sink's position from sink_offsets in PostgreSQL, not Kafka", async () => {
    const lag = await api<{ groups: GroupLag[] }>('/api/lag');
    const sink = lag.groups.find((g) => g.group === `${p}fluxion-sink-postgres`)!;
    expect(sink.position).toBe('postgres');
    const runs = sink.partitions.find((x) => x.topic === `${p}ops.etl-runs` && x.partition === f.partition)!;
    expect(runs).toMatchObject({ committed: '1', end: '3', lagMessages: 2, status: 'DOWN' });
    // Partitions without a sink_offsets row start at the low watermark, as the sink does.
    expect(sink.lagMessages).toBe(2);
  });

  it('counts no lag when only a transaction marker is left, and all records for a group that never committed', async () => {
    const lag = await api<{ groups: GroupLag[] }>('/api/lag');
    const dedupe = lag.groups.find((g) => g.group === `${p}fluxion-dedupe`)!;
    const part = dedupe.partitions.find((x) => x.partition === f.partition)!;
    // Caught up, but no process is running: DOWN (the issue: every process down looked OK).
    expect(part).toMatchObject({ committed: '4', end: '5', lagMessages: 0, lagSeconds: 0, status: 'DOWN' });
    expect(dedupe).toMatchObject({ status: 'DOWN', members: 0, lagMessages: 0 });
    const notify = lag.groups.find((g) => g.group === `${p}fluxion-notify`)!;
    const runs = notify.partitions.find((x) => x.topic === `${p}ops.etl-runs` && x.partition === f.partition)!;
    expect(runs).toMatchObject({ committed: null, position: '0', lagMessages: 3, status: 'DOWN' });
    expect(lag.groups.find((g) => g.group === `${p}fluxion-phantom`)).toMatchObject({ status: 'DOWN', lagMessages: 0, lagSeconds: 0 });
  });

  it("shows each store's last extraction, last applied snapshot and missed polls from PostgreSQL", async () => {
    const { stores, errors } = await api<{ stores: StoreFreshness[]; errors: unknown[] }>('/api/stores');
    expect(errors).toEqual([]);
    const byId = new Map(stores.map((s) => [s.id, s]));
    expect(byId.size).toBe(f.stores.filter((u) => u.activa).length);
    const t1 = byId.get('tienda_01')!;
    expect(t1.status).toBe('OK');
    expect(t1.lastSuccess.INVENTARIO!.startedAt).toBeTruthy();
    expect(t1.lastExtractionApplied).toBe(true);
    expect(t1.polls.INVENTARIO!.missed).toBe(0);
    expect(t1.polls.VENTAS!.missed).toBe(0);
    expect(byId.get('tienda_05')).toMatchObject({ status: 'WARN', polls: { INVENTARIO: { missed: 1 } } });
    expect(byId.get('cedi_seco')).toMatchObject({ status: 'ERR', polls: { INVENTARIO: { missed: 2, missedInARow: 2 } } });
    expect(byId.get('cedi_seco')!.polls.VENTAS).toBeUndefined();
    expect(byId.get('tienda_02')!.openAlerts).toBe(2);
  });

  it('keeps a history point per sample and sees a moving position', async () => {
    const producer = await f.pipeline.kafka.producer();
    await producer.send(`${p}pos.inventario.snapshots`, [{ ubicacionId: 'tienda_01', key: 'tienda_01', value: Buffer.from('more') }]);
    await producer.disconnect();
    await sleep(200);
    await f.sampler.sampleNow();
    const history = await api<{ points: Array<{ at: number; groups: Record<string, { lagMessages: number }> }> }>('/api/history');
    expect(history.points.length).toBeGreaterThanOrEqual(2);
    expect(history.points.at(-2)!.groups[`${p}fluxion-differ`]!.lagMessages).toBe(7);
    expect(history.points.at(-1)!.groups[`${p}fluxion-differ`]!.lagMessages).toBe(8);
  });

  it('serves /metrics that promtool accepts, with the same lag as /api/lag', async () => {
    const lag = await api<{ groups: GroupLag[] }>('/api/lag');
    const text = await (await fetch(`${f.url}/metrics`)).text();
    const differ = lag.groups.find((g) => g.group === `${p}fluxion-differ`)!.partitions.find((x) => x.partition === f.partition)!;
    expect(text).toContain(
      `fluxion_consumer_lag_messages{group="${p}fluxion-differ",topic="${p}pos.inventario.snapshots",partition="${f.partition}"} ` +
        `${differ.lagMessages}\n`,
    );
    expect(text).toContain(
      `fluxion_consumer_lag_seconds{group="${p}fluxion-differ",topic="${p}pos.inventario.snapshots",partition="${f.partition}"} ` +
        `${differ.lagSeconds}\n`,
    );
    expect(text).toContain(`fluxion_consumer_group_status{group="${p}fluxion-differ",status="DOWN"} 1\n`);
    expect(text).toContain(`fluxion_consumer_group_status{group="${p}fluxion-phantom",status="DOWN"} 1\n`);
    expect(text).toMatch(/^fluxion_store_missed_polls\{ubicacion="cedi_seco",job="INVENTARIO"\} 2$/m);
    expect(text).toMatch(/^fluxion_store_phantom_alerts_open\{ubicacion="tienda_02"\} 2$/m);
    expect(text).toMatch(/^fluxion_store_rows_extracted_total\{ubicacion="tienda_01",job="INVENTARIO"\} \d+$/m);
    expect(text).toMatch(/^fluxion_postgres_rows_written_total\{table="etl_runs",operation="insert"\} \d+$/m);
    expect(text).toMatch(/^fluxion_dlq_records\{topic="pos\.ventas\.raw\.dlq"\} 0$/m);

    const tool = promtool();
    expect(tool, 'promtool is missing: apt-get install prometheus (Debian), which ships it').toBeDefined();
    if (!tool) return;
    const r = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.status, `promtool check metrics:\n${r.stdout}${r.stderr}`).toBe(0);
  });

  it('answers /healthz', async () => {
    expect(await api('/healthz')).toMatchObject({ status: 'ok', controlApi: 'off' });
  });
});
