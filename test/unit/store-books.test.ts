/**
 * The simulated store's books add up: over a simulated week of 30-minute reads, physical stock
 * never goes below 0, the POS records it exactly except where a labelled anomaly is going on,
 * the posted sales lines explain every unit that left, nothing sells during a real stockout,
 * late-posted lines show up one read later, and each anomaly occurs at about its rate.
 */
import { describe, expect, it } from 'vitest';
import {
  labelsFromJson,
  labelsToJson,
  NO_ANOMALIES,
  planAnomalies,
  poisson,
  type AnomalyLabel,
  type AnomalyRates,
} from '../../simulators/data/anomalies.ts';
import { createRng } from '../../simulators/data/prng.ts';
import { translateTsql } from '../../simulators/stellar/tsql-translate.ts';
import { Vad10Database } from '../../simulators/stellar/vad10-database.ts';
import { fechaCaracas, StoreSimulation, type StockMovement } from '../../simulators/data/store-simulation.ts';

const WEEK = 7 * 48;
const RATES: AnomalyRates = { phantomZeroPerDay: 3, posGlitchPerDay: 1, countCorrectionPerDay: 2, lateSalesShare: 0.03 };
const CARACAS_MS = 4 * 3_600_000;
const hourCaracas = (d: Date) => new Date(d.getTime() - CARACAS_MS).getUTCHours();

const store = (seed: string, anomalies: Partial<AnomalyRates> = RATES) =>
  new StoreSimulation({
    ubicacionId: 'tienda_books',
    pos: 'klk',
    depositos: ['01', '02'],
    products: 400,
    seed,
    salesLinesPerHour: 300,
    anomalies,
  });

interface Week {
  sim: StoreSimulation;
  movements: StockMovement[];
  initial: Map<string, bigint>;
  /** Rows changed (physically) per 30-minute window. */
  changedPerWindow: number[];
  problems: string[];
}

const key = (deposito: string, producto: string) => `${deposito}/${producto}`;

/** A week of 30-minute advances, checking the books at every read. */
function week(seed: string, anomalies: Partial<AnomalyRates> = RATES, reads = WEEK): Week {
  const sim = store(seed, anomalies);
  const movements: StockMovement[] = [];
  sim.onMovement((m) => movements.push(m));
  const products = [...sim.catalog].map((p) => p.producto_id);
  const initial = new Map<string, bigint>();
  for (const d of sim.depositos) for (const p of products) initial.set(key(d, p), sim.cantidadFisica(d, p));
  const changedPerWindow: number[] = [];
  const problems: string[] = [];
  for (let n = 0; n < reads; n++) {
    const before = movements.length;
    sim.advance(30);
    changedPerWindow.push(new Set(movements.slice(before).map((m) => key(m.deposito, m.producto_id))).size);
    // Late lines: in ventas exactly when posted (postedAt before the read), checked around their posting.
    const now = sim.clock.getTime();
    const late = movements.filter(
      (m) => m.venta && m.venta.postedAt.getTime() > m.at.getTime() && Math.abs(m.venta.postedAt.getTime() - now) <= 30 * 60_000,
    );
    const visible = new Set<string>();
    for (const fecha of new Set(late.map((m) => fechaCaracas(m.at))))
      for (const v of sim.ventas(fecha)) visible.add(`${v.numero_factura}/${v.linea}`);
    for (const m of late) {
      if (visible.has(`${m.venta!.numero_factura}/${m.venta!.linea}`) !== m.venta!.postedAt.getTime() < now)
        problems.push(
          `${sim.clock.toISOString()}: late line ${m.venta!.numero_factura}/${m.venta!.linea} posted at ` +
            `${m.venta!.postedAt.toISOString()} visible ${!(m.venta!.postedAt.getTime() < now)}`,
        );
    }
    // What may differ now: the rows of every anomaly still going on.
    const active = sim.anomalies().filter((l) => l.end === null);
    const differs = (d: string, p: string) =>
      active.some(
        (l) =>
          l.deposito === d &&
          (l.kind === 'PHANTOM_ZERO' || l.kind === 'COUNT_CORRECTION'
            ? l.producto_id === p
            : l.kind === 'POS_GLITCH' &&
              (l.departamento_codigo === null || l.departamento_codigo === sim.producto(p)!.departamento.codigo)),
      );
    const stockout = new Set(active.filter((l) => l.kind === 'REAL_STOCKOUT').map((l) => key(l.deposito, l.producto_id!)));
    for (const d of sim.depositos) {
      for (const p of products) {
        const physical = sim.cantidadFisica(d, p);
        const recorded = sim.cantidad(d, p);
        if (physical < 0n) problems.push(`${sim.clock.toISOString()} ${d}/${p}: physical ${physical}`);
        if (recorded !== physical && !differs(d, p))
          problems.push(`${sim.clock.toISOString()} ${d}/${p}: recorded ${recorded}, physical ${physical}, no anomaly`);
        if ((physical === 0n) !== stockout.has(key(d, p)))
          problems.push(`${sim.clock.toISOString()} ${d}/${p}: physical ${physical}, open REAL_STOCKOUT ${stockout.has(key(d, p))}`);
      }
    }
  }
  return { sim, movements, initial, changedPerWindow, problems };
}

/** Every posted line of the simulated dates. */
function allLines(sim: StoreSimulation, from: Date) {
  const lines = [];
  for (let t = from.getTime() - CARACAS_MS; t <= sim.clock.getTime(); t += 86_400_000)
    lines.push(...sim.ventas(new Date(t).toISOString().slice(0, 10)));
  return lines;
}

const START = new Date('2026-11-27T14:00:00Z');
const byKind = (labels: AnomalyLabel[], kind: AnomalyLabel['kind']) => labels.filter((l) => l.kind === kind);

describe('the books of a simulated store (a week, 30-minute reads)', () => {
  const w = week('books');
  const labels = w.sim.anomalies();
  const lines = allLines(w.sim, START);

  it(
    'physical stock never below 0; recorded equals physical except on rows with a labelled anomaly going on; every physical 0 is an ' +
      'open REAL_STOCKOUT',
    () => {
      expect(w.problems.slice(0, 10)).toEqual([]);
    },
  );

  it(
    'the posted sales lines explain every unit that left: initial + receipts - shrinkage - dispatches - sales (net of returns and ' +
      'voids) = final, per product',
    () => {
      const moved = new Map<string, number>();
      for (const m of w.movements)
        if (m.kind === 'receipt' || m.kind === 'shrinkage' || m.kind === 'dispatch')
          moved.set(key(m.deposito, m.producto_id), (moved.get(key(m.deposito, m.producto_id)) ?? 0) + m.cantidad);
      const sold = new Map<string, number>();
      for (const l of lines)
        if (!l.anulada)
          sold.set(key('01', l.producto_id), (sold.get(key('01', l.producto_id)) ?? 0) + Math.round(Number(l.cantidad) * 1000));
      // The lines sold in the last half hour and posted late are not in ventas yet: their units left all the same.
      const pending = w.movements.filter((m) => m.venta && m.venta.postedAt >= w.sim.clock);
      expect(pending.length).toBeGreaterThan(0);
      for (const m of pending) sold.set(key(m.deposito, m.producto_id), (sold.get(key(m.deposito, m.producto_id)) ?? 0) - m.cantidad);
      const wrong: string[] = [];
      for (const [k, initial] of w.initial) {
        const [d, p] = k.split('/') as [string, string];
        const expected = Number(initial) + (moved.get(k) ?? 0) - (sold.get(k) ?? 0);
        if (expected !== Number(w.sim.cantidadFisica(d, p)))
          wrong.push(`${k}: expected ${expected}, physical ${w.sim.cantidadFisica(d, p)}`);
      }
      expect(wrong).toEqual([]);
      expect(w.movements.filter((m) => m.kind === 'receipt').length).toBeGreaterThan(100);
      expect(w.movements.some((m) => m.kind === 'shrinkage')).toBe(true);
      expect(w.movements.some((m) => m.kind === 'dispatch')).toBe(false);
      // Sales leave deposito 01 only, and only while the store is open (08:00-20:00 Caracas).
      expect(new Set(w.movements.filter((m) => m.kind === 'sale' || m.kind === 'return').map((m) => m.deposito))).toEqual(new Set(['01']));
      expect(lines.length).toBeGreaterThan(7 * 12 * 300 * 0.95);
      expect(lines.filter((l) => hourCaracas(l.fecha_hora) < 8 || hourCaracas(l.fecha_hora) >= 20)).toEqual([]);
    },
  );

  it('nothing sells during a REAL_STOCKOUT: from the sale that emptied the shelf to the receipt', () => {
    const stockouts = byKind(labels, 'REAL_STOCKOUT');
    expect(stockouts.filter((l) => l.end !== null && l.start.getTime() > START.getTime()).length).toBeGreaterThan(20);
    const receipts = new Set(
      w.movements.filter((m) => m.kind === 'receipt').map((m) => `${key(m.deposito, m.producto_id)}@${m.at.getTime()}`),
    );
    for (const l of stockouts) {
      const during = lines.filter(
        (v) =>
          l.deposito === '01' && v.producto_id === l.producto_id && v.fecha_hora > l.start && (l.end === null || v.fecha_hora < l.end),
      );
      expect(during, l.id).toEqual([]);
      if (l.end) expect(receipts.has(`${key(l.deposito, l.producto_id!)}@${l.end.getTime()}`), `${l.id} ends at a receipt`).toBe(true);
      expect(l.shouldAlert).toBe(false);
    }
  });

  it('LATE_SALES: a late line is in ventas only after its 30-minute delay, and a label covers it', () => {
    const lateSales = w.movements.filter((m) => m.venta && m.venta.postedAt.getTime() > m.at.getTime());
    const sales = w.movements.filter((m) => m.venta);
    expect(lateSales.length / sales.length).toBeGreaterThan(0.02);
    expect(lateSales.length / sales.length).toBeLessThan(0.04);
    const late = byKind(labels, 'LATE_SALES');
    for (const m of lateSales) {
      expect(m.venta!.postedAt.getTime() - m.at.getTime()).toBe(30 * 60_000);
      expect(
        late.some(
          (l) =>
            l.producto_id === m.producto_id &&
            l.start <= m.at &&
            (l.end === null ? m.venta!.postedAt >= w.sim.clock : l.end >= m.venta!.postedAt),
        ),
        `${m.producto_id} at ${m.at.toISOString()}`,
      ).toBe(true);
    }
    expect(late.every((l) => !l.shouldAlert)).toBe(true);
  });

  it('each kind occurs at about its rate, labelled with its row (or department) and a deterministic id', () => {
    const count = (kind: AnomalyLabel['kind']) => byKind(labels, kind).length;
    expect(count('PHANTOM_ZERO')).toBeGreaterThanOrEqual(10); // 21 expected
    expect(count('PHANTOM_ZERO')).toBeLessThanOrEqual(35);
    expect(count('POS_GLITCH')).toBeGreaterThanOrEqual(2); // 7 expected
    expect(count('POS_GLITCH')).toBeLessThanOrEqual(15);
    expect(count('COUNT_CORRECTION')).toBeGreaterThanOrEqual(6); // 14 expected
    expect(count('COUNT_CORRECTION')).toBeLessThanOrEqual(25);
    expect(new Set(labels.map((l) => l.id)).size).toBe(labels.length);
    for (const l of labels) {
      expect(l.shouldAlert).toBe(l.kind === 'PHANTOM_ZERO');
      expect(l.ubicacion_id).toBe('tienda_books');
      expect(l.producto_id === null).toBe(l.kind === 'POS_GLITCH');
      if (l.kind !== 'POS_GLITCH') expect(l.departamento_codigo).toBeNull();
      if (l.end) expect(l.end.getTime()).toBeGreaterThanOrEqual(l.start.getTime());
    }
    for (const g of byKind(labels, 'POS_GLITCH').filter((l) => l.end)) expect(g.end!.getTime() - g.start.getTime()).toBe(30 * 60_000);
  });

  it('a phantom zero keeps selling while the POS records 0: the detector has evidence', () => {
    const phantoms = byKind(labels, 'PHANTOM_ZERO').filter((l) => l.end !== null);
    const withSales = phantoms.filter((l) =>
      lines.some((v) => v.producto_id === l.producto_id && v.fecha_hora > l.start && v.fecha_hora < l.end!),
    );
    expect(withSales.length).toBeGreaterThan(phantoms.length / 2);
  });

  it('changeShare is still the share of rows that change per 30 minutes, at least: sales and receipts, shrinkage for the rest', () => {
    // The store is closed from 20:00 to 08:00 Caracas; receipts come from 06:00.
    const night = w.changedPerWindow.filter((_, n) => {
      const hour = hourCaracas(new Date(START.getTime() + n * 30 * 60_000));
      return hour >= 20 || hour < 5;
    });
    expect(night.length).toBeGreaterThan(7 * 16);
    expect(night.every((c) => c === 0.05 * 800)).toBe(true);
    expect(w.changedPerWindow.every((c) => c >= 0.05 * 800)).toBe(true);
  });

  it('the same seed gives the same labels; another seed others', () => {
    const again = week('books', RATES, 96);
    const first = week('books', RATES, 96);
    expect(again.sim.anomalies()).toEqual(first.sim.anomalies());
    expect(week('other', RATES, 96).sim.anomalies()).not.toEqual(first.sim.anomalies());
  });
});

describe('anomalies on demand and off', () => {
  it('NO_ANOMALIES: recorded always equals physical, every line posted at once, only real stockouts labelled', () => {
    const w = week('clean', NO_ANOMALIES, 96);
    expect(w.problems).toEqual([]);
    expect(new Set(w.sim.anomalies().map((l) => l.kind))).toEqual(new Set(['REAL_STOCKOUT']));
    for (const d of w.sim.depositos)
      for (const p of w.sim.catalog) expect(w.sim.cantidad(d, p.producto_id)).toBe(w.sim.cantidadFisica(d, p.producto_id));
  });

  it('injectPhantomZero: the POS records 0, the shelf keeps selling, a count ends it; refused where nothing is on the shelf', () => {
    const s = store('inject', NO_ANOMALIES);
    s.advance(30);
    const id = [...s.catalog].find((p) => s.cantidadFisica('01', p.producto_id) >= 10_000n)!.producto_id;
    const label = s.injectPhantomZero('01', id, { minutes: 110 })!;
    expect(label).toMatchObject({ kind: 'PHANTOM_ZERO', deposito: '01', producto_id: id, start: s.clock, end: null, shouldAlert: true });
    expect(s.injectPhantomZero('01', id)).toBeNull();
    expect(s.cantidad('01', id)).toBe(0n);
    const shelf = s.cantidadFisica('01', id);
    s.advance(60);
    expect(s.cantidad('01', id)).toBe(0n);
    expect(s.cantidadFisica('01', id)).toBeLessThan(shelf); // it keeps selling
    s.advance(60);
    expect(s.cantidad('01', id)).toBe(s.cantidadFisica('01', id));
    expect(s.anomalies().find((l) => l.id === label.id)!.end).toEqual(new Date(label.start.getTime() + 110 * 60_000));
    s.setCantidad('01', id, 0n);
    expect(s.injectPhantomZero('01', id)).toBeNull();
    expect(() => s.injectPhantomZero('01', id, { minutes: 0 })).toThrow(/minutes must be > 0/);
    expect(
      () => new StoreSimulation({ ubicacionId: 'x', pos: 'klk', depositos: ['01'], products: 1, anomalies: { lateSalesShare: 2 } }),
    ).toThrow(/lateSalesShare is a share/);
    expect(
      () => new StoreSimulation({ ubicacionId: 'x', pos: 'klk', depositos: ['01'], products: 1, openingHours: { open: 20, close: 8 } }),
    ).toThrow(/openingHours/);
  });

  it('a CEDI (Stellar) moves by receipts and dispatches, never sells, and its books add up', () => {
    const s = new StoreSimulation({ ubicacionId: 'cedi_books', pos: 'stellar', depositos: ['0101', '0102'], products: 300, seed: 'cedi' });
    const moves: StockMovement[] = [];
    s.onMovement((m) => moves.push(m));
    const initial = new Map(
      [...s.catalog].flatMap((p) => s.depositos.map((d) => [key(d, p.producto_id), s.cantidadFisica(d, p.producto_id)] as const)),
    );
    for (let n = 0; n < 96; n++) s.advance(30);
    expect(new Set(moves.map((m) => m.kind))).toEqual(new Set(['receipt', 'dispatch', 'shrinkage']));
    expect(s.ventasCount('2026-11-27')).toBe(0);
    for (const [k, before] of initial) {
      const [d, p] = k.split('/') as [string, string];
      const moved = moves.filter((m) => key(m.deposito, m.producto_id) === k).reduce((sum, m) => sum + m.cantidad, 0);
      expect(Number(s.cantidadFisica(d, p)), k).toBe(Number(before) + moved);
      expect(s.cantidadFisica(d, p)).toBeGreaterThanOrEqual(0n);
    }
  });

  it('the Stellar tables follow the recorded stock through glitches, phantom zeros and count corrections', () => {
    const s = new StoreSimulation({
      ubicacionId: 'cedi_glitch',
      pos: 'stellar',
      depositos: ['0101', '0102'],
      products: 200,
      seed: 'glitch',
      anomalies: { phantomZeroPerDay: 10, posGlitchPerDay: 12, countCorrectionPerDay: 10 },
    });
    const db = new Vad10Database(s);
    try {
      const sql = "SELECT c_CodArticulo, n_Cantidad FROM MA_DEPOPROD WHERE c_CodDeposito = '0101' ORDER BY c_CodArticulo";
      let glitchedReads = 0;
      for (let n = 0; n < 48; n++) {
        s.advance(30);
        const rows = [...db.rows(translateTsql(sql, db, []), new Map())].map(([p, q]) => [p, Number(q)]);
        expect(rows).toEqual([...s.catalog].map((p) => [p.producto_id, Number(s.cantidad('0101', p.producto_id)) / 1000]));
        if (s.anomalies().some((l) => l.kind === 'POS_GLITCH' && l.end === null && l.deposito === '0101')) glitchedReads++;
      }
      expect(glitchedReads).toBeGreaterThan(0);
      expect(new Set(s.anomalies().map((l) => l.kind))).toEqual(
        new Set(['PHANTOM_ZERO', 'POS_GLITCH', 'COUNT_CORRECTION', 'REAL_STOCKOUT']),
      );
    } finally {
      db.close();
    }
  });

  it('openingHours 0-24 sells all night (the demo runs at any hour)', () => {
    const s = new StoreSimulation({
      ubicacionId: 'tienda_n',
      pos: 'klk',
      depositos: ['01'],
      products: 200,
      salesLinesPerHour: 120,
      startAt: new Date('2026-11-28T04:00:00Z'),
      openingHours: { open: 0, close: 24 },
      anomalies: NO_ANOMALIES,
    });
    s.advance(60);
    expect(s.ventasCount('2026-11-28')).toBe(120);
    const closed = new StoreSimulation({
      ubicacionId: 'tienda_n',
      pos: 'klk',
      depositos: ['01'],
      products: 200,
      salesLinesPerHour: 120,
      startAt: new Date('2026-11-28T04:00:00Z'),
      anomalies: NO_ANOMALIES,
    });
    closed.advance(60);
    expect(closed.ventasCount('2026-11-28')).toBe(0);
  });
});

describe('anomalies.ts', () => {
  it('labels survive JSON (dates as ISO strings); a malformed one is refused by name', () => {
    const w = week('json', RATES, 48);
    const labels = w.sim.anomalies();
    expect(labels.length).toBeGreaterThan(0);
    expect(JSON.parse(labelsToJson(labels))[0].start).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(labelsFromJson(labelsToJson(labels))).toEqual(labels);
    expect(() => labelsFromJson([{ ...JSON.parse(labelsToJson(labels))[0], start: 'yesterday' }])).toThrow(
      /anomaly label 0: start is not an ISO instant: yesterday/,
    );
    expect(() => labelsFromJson({})).toThrow(/expected an array/);
  });

  it('Poisson draws have the mean asked for; no opening time, no anomaly', () => {
    const rng = createRng('poisson');
    const draws = Array.from({ length: 20_000 }, () => poisson(rng, 0.7));
    expect(draws.reduce((a, b) => a + b, 0) / draws.length).toBeCloseTo(0.7, 1);
    expect(planAnomalies(rng, { ...NO_ANOMALIES, phantomZeroPerDay: 100 }, 0, 12 * 3_600_000)).toEqual([]);
    const day = planAnomalies(rng, { ...NO_ANOMALIES, phantomZeroPerDay: 100 }, 12 * 3_600_000, 12 * 3_600_000);
    expect(day.length).toBeGreaterThan(70);
    expect(day.length).toBeLessThan(130);
    expect(
      day.every(
        (p) => p.kind === 'PHANTOM_ZERO' && p.at >= 0 && p.at < 1 && p.durationMs >= 2 * 3_600_000 && p.durationMs <= 30 * 3_600_000,
      ),
    ).toBe(true);
  });
});
