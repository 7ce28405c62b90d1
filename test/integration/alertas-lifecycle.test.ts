/**
 * The alert lifecycle an operator uses, on the real services: alert records produced on a
 * private alerts.phantom-zeros, the real sink writing alertas, the real `fluxion alertas`
 * CLI dismissing and listing them. A dismissed alert stays DESCARTADA through the detector's
 * later OPEN updates (the same record twice included), its RESOLVED and a replay of the whole
 * topic onto the table; a new episode of the product opens a new row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import type { FluxionProducer } from '../../core/kafka/types.ts';
import type { PhantomAlert } from '../../core/records.ts';
import { uuidFrom } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { sendTransactionsVisibly } from '../../fixtures/processor-run.ts';
import { freshDatabase, runCli, uniqueId } from '../../fixtures/services.ts';
import { migratedDatabase, startSink, waitForSinkEnd, type MigratedDatabase, type RunningSink } from '../../fixtures/sink-run.ts';

let pipeline: TestPipeline;
let db: MigratedDatabase;
let codec: TopicCodec<PhantomAlert>;
let producer: FluxionProducer;
let sink: RunningSink;
const group = uniqueId('sink');

const T0 = Date.parse('2026-11-27T14:00:00Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000);
const ids = {
  a: uuidFrom('lifecycle-a'),
  b: uuidFrom('lifecycle-b'),
  c: uuidFrom('lifecycle-c'),
  d: uuidFrom('lifecycle-d'),
  e: uuidFrom('lifecycle-e'),
};

function alert(
  id: string,
  store: string,
  producto: string,
  status: 'OPEN' | 'RESOLVED',
  confidence: number,
  openedMin: number,
  updatedMin = openedMin,
): PhantomAlert {
  return {
    alert_id: id,
    ubicacion_id: store,
    deposito: '01',
    producto_id: producto,
    rule: 'SELLING_AT_ZERO',
    confidence,
    status,
    summary: `${store} deposito 01 producto ${producto}: sold at 0`,
    evidence: { units_sold: '3.000' },
    opened_at: at(openedMin),
    updated_at: at(updatedMin),
  };
}

async function send(...alerts: PhantomAlert[]): Promise<void> {
  const records = alerts.map((a) => ({
    ubicacionId: a.ubicacion_id,
    key: `${a.ubicacion_id}/${a.deposito}/${a.producto_id}`,
    value: codec.encode(a),
  }));
  await sendTransactionsVisibly(pipeline.kafka, producer, `${pipeline.prefix}alerts.phantom-zeros`, [records]);
  await waitForSinkEnd(pipeline, db.pool, group, 20_000);
}

const row = async (id: string) =>
  (
    await db.pool.query('SELECT estado, confianza, nota, descartada_por, descartada_en, resuelta_en FROM alertas WHERE alert_id = $1', [
      id,
    ])
  ).rows[0];
const cli = (...args: string[]) => runCli(['alertas', ...args], { DATABASE_URL: db.url, FLUXION_LOCALE: 'es', FLUXION_OPERATOR: 'luis' });

beforeAll(async () => {
  [pipeline, db] = await Promise.all([createTestPipeline(), migratedDatabase()]);
  codec = await createTopicCodec<PhantomAlert>(pipeline.registry, 'alerts.phantom-zeros', `${pipeline.prefix}alerts.phantom-zeros`);
  producer = await pipeline.kafka.producer({ transactionalId: uniqueId('alerts') });
  await db.pool.query(
    `INSERT INTO productos (producto_id, descripcion, unidad, visto_en, ubicacion_id) VALUES ('000001', 'HARINA PAN 1KG', 'UND', ` +
      `now(), 'tienda_01')`,
  );
  sink = startSink(pipeline, db.pool, group);
}, 60_000);

afterAll(async () => {
  await sink?.stop().catch(() => undefined);
  await producer?.disconnect().catch(() => undefined);
  await pipeline?.cleanup().catch(() => undefined);
  await db?.drop().catch(() => undefined);
});

describe('fluxion alertas: dismiss, the sink keeps it dismissed, list per store', () => {
  it('a dismissed alert stays DESCARTADA through updates, its RESOLVED and a replay; a new episode opens a new alert; listar shows them ' +
    'per store', {
    timeout: 60_000,
  }, async () => {
    await send(
      alert(ids.a, 'tienda_01', '000001', 'OPEN', 0.6, 0),
      alert(ids.d, 'tienda_01', '000003', 'OPEN', 0.95, 5),
      alert(ids.c, 'tienda_02', '000002', 'OPEN', 0.9, 10),
      alert(ids.e, 'tienda_02', '000004', 'OPEN', 0.7, 10),
      alert(ids.e, 'tienda_02', '000004', 'RESOLVED', 0.7, 10, 40),
    );
    expect(await row(ids.a)).toMatchObject({ estado: 'OPEN', confianza: 0.6 });

    const dismissed = await cli('descartar', ids.a, '--nota', 'conteo: 12 unidades en anaquel', '--por', 'ana');
    expect(dismissed.stderr).toBe('');
    expect(dismissed.code).toBe(0);
    expect(dismissed.stdout).toContain(`alerta ${ids.a} (tienda_01 deposito 01 producto 000001 HARINA PAN 1KG) descartada por ana`);
    expect(await row(ids.a)).toMatchObject({
      estado: 'DESCARTADA',
      nota: 'conteo: 12 unidades en anaquel',
      descartada_por: 'ana',
      resuelta_en: null,
    });
    // Without --por: FLUXION_OPERATOR.
    expect((await cli('descartar', ids.c, '--nota', 'recibido hoy, no cargado')).code).toBe(0);
    expect(await row(ids.c)).toMatchObject({ estado: 'DESCARTADA', descartada_por: 'luis' });

    // The detector knows nothing of it: a new confidence, the same OPEN again, then its RESOLVED.
    await send(alert(ids.a, 'tienda_01', '000001', 'OPEN', 0.8, 0, 60), alert(ids.a, 'tienda_01', '000001', 'OPEN', 0.8, 0, 60));
    expect(await row(ids.a)).toMatchObject({
      estado: 'DESCARTADA',
      confianza: 0.8,
      nota: 'conteo: 12 unidades en anaquel',
      descartada_por: 'ana',
    });
    await send(alert(ids.a, 'tienda_01', '000001', 'RESOLVED', 0.8, 0, 90));
    expect(await row(ids.a)).toMatchObject({ estado: 'DESCARTADA', resuelta_en: at(90), descartada_por: 'ana' });

    // New evidence: the product recovered and dropped to 0 again, a new alert id. It opens
    // although the dismissed row is the same product (alertas_una_abierta counts only OPEN).
    await send(alert(ids.b, 'tienda_01', '000001', 'OPEN', 0.75, 120));
    expect(await row(ids.b)).toMatchObject({ estado: 'OPEN', confianza: 0.75 });

    // The whole topic written again onto the same table (a sink group with no offsets yet
    // starts at the log's beginning): every record of the dismissed alerts again, same rows.
    await sink.stop();
    const replay = uniqueId('replay');
    sink = startSink(pipeline, db.pool, replay);
    await waitForSinkEnd(pipeline, db.pool, replay, 20_000);
    expect(await row(ids.a)).toMatchObject({ estado: 'DESCARTADA', resuelta_en: at(90), nota: 'conteo: 12 unidades en anaquel' });
    expect(await row(ids.c)).toMatchObject({ estado: 'DESCARTADA', descartada_por: 'luis' });
    expect((await db.pool.query(`SELECT alert_id, estado FROM alertas WHERE producto_id = '000001' ORDER BY abierta_en`)).rows).toEqual([
      { alert_id: ids.a, estado: 'DESCARTADA' },
      { alert_id: ids.b, estado: 'OPEN' },
    ]);

    const [open, all, one, json] = await Promise.all([
      cli('listar'),
      cli('listar', '--estado', 'todas'),
      cli('listar', '--tienda', 'tienda_02', '--estado', 'descartada'),
      cli('listar', '--estado', 'todas', '--json'),
    ]);
    for (const r of [open, all, one, json]) expect(r.code).toBe(0);
    // Default: OPEN only, per store, most confident first.
    const openLines = open.stdout.trim().split('\n');
    expect(openLines[0]).toBe('tienda_01: 2 alerta(s)');
    expect(openLines[1]).toMatch(/^ {2}alert_id +deposito +producto +descripción +regla +confianza +abierta \(Caracas\) +estado +nota$/);
    expect(openLines[2]).toMatch(new RegExp(`^  ${ids.d} +01 +000003 +- +SELLING_AT_ZERO +0\\.95 +2026-11-27 10:05 +OPEN$`));
    expect(openLines[3]).toMatch(new RegExp(`^  ${ids.b} +01 +000001 +HARINA PAN 1KG +SELLING_AT_ZERO +0\\.75 +2026-11-27 12:00 +OPEN$`));
    expect(open.stdout).not.toContain('tienda_02');
    expect(openLines.at(-1)).toBe('alertas: 2 alerta(s) OPEN en 1 tienda(s)');
    // todas: both stores, the dismissed ones with who, when and why.
    expect(all.stdout).toContain('tienda_01: 3 alerta(s)');
    expect(all.stdout).toContain('tienda_02: 2 alerta(s)');
    expect(all.stdout).toMatch(
      new RegExp(
        `${ids.a} .* DESCARTADA +ana el 2\\d{3}-\\d\\d-\\d\\d \\d\\d:\\d\\d: conteo: 12 unidades en anaquel; stock de vuelta ` +
          `2026-11-27 11:30`,
      ),
    );
    expect(all.stdout.indexOf('tienda_01:')).toBeLessThan(all.stdout.indexOf('tienda_02:'));
    expect(one.stdout).toContain(`${ids.c}`);
    expect(one.stdout).not.toContain(ids.e);
    const parsed = json.stdout
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { alert_id: string; ubicacion_id: string; estado: string; confianza: number; descripcion: string | null },
      );
    expect(parsed.map((p) => [p.ubicacion_id, p.alert_id, p.estado])).toEqual([
      ['tienda_01', ids.d, 'OPEN'],
      ['tienda_01', ids.a, 'DESCARTADA'],
      ['tienda_01', ids.b, 'OPEN'],
      ['tienda_02', ids.c, 'DESCARTADA'],
      ['tienda_02', ids.e, 'RESOLVED'],
    ]);
    expect(parsed.find((p) => p.alert_id === ids.a)!.descripcion).toBe('HARINA PAN 1KG');
  });

  it('refuses what an operator can fix, with a distinct exit code and a message naming the alert', { timeout: 60_000 }, async () => {
    const unknown = uuidFrom('never-opened');
    // Usage errors checked before any I/O (bad id, --estado, --desde, the help text) are in test/unit/alertas.test.ts.
    const cold = await freshDatabase();
    const [again, resolved, missing, emptyNote, notMigrated] = await Promise.all([
      cli('descartar', ids.a, '--nota', 'otra vez'),
      cli('descartar', ids.e, '--nota', 'ya estaba'),
      cli('descartar', unknown, '--nota', 'no existe'),
      cli('descartar', ids.b, '--nota', '   '),
      runCli(['alertas', 'listar'], { DATABASE_URL: cold.url, FLUXION_LOCALE: 'es' }).finally(() => cold.drop()),
    ]);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(
      new RegExp(
        `la alerta ${ids.a} ya fue descartada el 2\\d{3}-\\d\\d-\\d\\d \\d\\d:\\d\\d por ana \\("conteo: 12 unidades en anaquel"\\); ` +
          `no se cambió nada`,
      ),
    );
    expect(resolved.code).toBe(4);
    expect(resolved.stderr).toContain(`la alerta ${ids.e} ya se resolvió el 2026-11-27 10:40`);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain(`ninguna alerta tiene el id ${unknown}`);
    expect(emptyNote.code).toBe(2);
    expect(emptyNote.stderr).toContain('--nota está vacía');
    // A database never migrated: told what to run.
    expect(notMigrated.code).toBe(2);
    expect(notMigrated.stderr).toContain(
      'la base de datos no tiene la tabla alertas, o le faltan las columnas de descarte (migración 008_alertas_descartadas.sql): ' +
        'ejecute `fluxion migrate` primero',
    );
    // Nothing of it changed a row.
    expect(await row(ids.b)).toMatchObject({ estado: 'OPEN', nota: null });
    expect(await row(ids.e)).toMatchObject({ estado: 'RESOLVED', nota: null });
    expect((await db.pool.query('SELECT count(*)::int AS n FROM alertas')).rows[0].n).toBe(5);
  });
});
