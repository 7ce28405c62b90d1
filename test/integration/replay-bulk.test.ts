/**
 * `fluxion replay historico` writes the bulk of the log set-based (window functions over the
 * events COPYed into a TEMP table, sinks/historico-replay.ts applyEvents): the table it
 * builds must be the history planInventory gives for the whole log as one batch, with the
 * planner's rules at the edges: the last event of an instant wins, a d closes and a later c
 * reopens, an event older than an earlier one of its key is skipped, a bad record is skipped.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { InventoryChange } from '../../core/records.ts';
import { replayHistorico } from '../../sinks/historico-replay.ts';
import { INVENTARIO_HISTORICO_COLUMNS, planInventory, rowsOf, SinkBatchError } from '../../sinks/sink-batch.ts';
import { inventoryRow, uuidFrom } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { testLogger } from '../../fixtures/services.ts';
import { buildSinkFeed, publishSinkFeed } from '../helpers/sink-feed.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const START = new Date('2026-10-31T22:00:00Z');
const at = (minutes: number) => new Date(START.getTime() + minutes * 60_000);
const change = (
  op: 'c' | 'u' | 'd',
  minutes: number,
  producto: number,
  cantidad: string | null,
  store = 'tienda_01',
): InventoryChange => ({
  ubicacion_id: store,
  deposito: '01',
  producto_id: String(producto).padStart(6, '0'),
  source: 'KLK',
  op,
  before: null,
  after: cantidad === null ? null : inventoryRow(producto, cantidad),
  snapshot_id: uuidFrom(`bulk/${store}/${minutes}`),
  taken_at: at(minutes),
});

/** The sink's way with a batch the planner refuses: set the record aside, plan again. */
function plannedHistory(changes: InventoryChange[]) {
  let current = changes;
  for (;;) {
    try {
      return rowsOf(INVENTARIO_HISTORICO_COLUMNS, planInventory(current).historico.opens);
    } catch (err) {
      if (!(err instanceof SinkBatchError)) throw err;
      current = current.filter((_, i) => i !== err.index);
    }
  }
}

describe('fluxion replay historico, the set-based bulk phase', () => {
  it('builds the history planInventory gives for the whole log: instants, d and reopen, events going backwards, bad records', {
    timeout: 120_000,
  }, async () => {
    const pipeline: TestPipeline = await createTestPipeline();
    cleanups.push(() => pipeline.cleanup());
    const db: MigratedDatabase = await migratedDatabase();
    cleanups.push(() => db.drop());

    const feed = buildSinkFeed({
      stores: ['tienda_01', 'tienda_02'],
      products: 300,
      cycles: 5,
      ventasPerStore: 0,
      alertsPerStore: 0,
      start: START,
    });
    const edge = [
      change('c', 0, 9_001, '1.000'),
      change('u', 0, 9_001, '2.000'), // same instant: this one wins
      change('u', 30, 9_001, '3.000'),
      change('d', 60, 9_001, null), // closes, opens nothing
      change('c', 90, 9_001, '4.000'), // reopens
      change('u', 45, 9_001, '9.000'), // older than the key's previous event: skipped
      change('u', 120, 9_001, '5.000'),
      change('c', 0, 9_002, '1.000'),
      change('d', 0, 9_002, null), // same instant, d wins: no row
      { ...change('u', 30, 9_003, '1.000'), after: { ...inventoryRow(9_004, '1.000') } }, // after of another product: refused
    ];
    const changes = [...feed.changes, ...edge];
    await publishSinkFeed(pipeline, { ...feed, changes }, 500);

    const result = await replayHistorico(
      { kafka: pipeline.kafka, registry: pipeline.registry, pool: db.pool, logger: testLogger, topicPrefix: pipeline.prefix },
      { sinkGroup: 'no-sink-yet' },
    );
    expect(result.read).toBe(changes.length);
    expect(result.skipped).toBe(2);
    expect(result.applied).toBe(changes.length - 2);

    const stored = (await db.pool.query('SELECT * FROM inventario_historico ORDER BY ubicacion_id, deposito, producto_id, valid_from'))
      .rows;
    const expected = plannedHistory(changes).sort(
      (a, b) =>
        `${a.ubicacion_id}/${a.deposito}/${a.producto_id}`.localeCompare(`${b.ubicacion_id}/${b.deposito}/${b.producto_id}`) ||
        a.valid_from.getTime() - b.valid_from.getTime(),
    );
    const comparable = (r: Record<string, unknown>) =>
      INVENTARIO_HISTORICO_COLUMNS.map((c) => (r[c] instanceof Date ? (r[c] as Date).toISOString() : r[c]));
    expect(stored.length).toBe(expected.length);
    expect(stored.map(comparable)).toEqual(expected.map((r) => comparable(r as unknown as Record<string, unknown>)));
    const edgeRows = stored
      .filter((r) => r.producto_id === '009001')
      .map((r) => [r.cantidad, r.valid_from.toISOString(), r.valid_to?.toISOString() ?? null]);
    expect(edgeRows).toEqual([
      ['2.000', at(0).toISOString(), at(30).toISOString()],
      ['3.000', at(30).toISOString(), at(60).toISOString()],
      ['4.000', at(90).toISOString(), at(120).toISOString()],
      ['5.000', at(120).toISOString(), null],
    ]);
    expect(stored.some((r) => r.producto_id === '009002' || r.producto_id === '009003')).toBe(false);
  });
});
