/**
 * `fluxion process phantom`: pos.inventario.changes + pos.ventas -> alerts.phantom-zeros,
 * with one state record per product in alerts.phantom-zeros.state (compacted, key
 * ubicacion/deposito/producto, a tombstone when the product vanished).
 *
 * This module is the Kafka shell only. What it calls, all pure but the store:
 * - the rules (phantom-rules.ts, settings in phantom-config.ts, state in phantom-state.ts);
 * - the fold of one product's entry by an input (`stepChange`, `stepSale`, phantom-fold.ts:
 *   remembered sales lines, alert ids, event times);
 * - the records (phantom-records.ts: state record and packed entry both ways, input checks);
 * - the state store layout (phantom-store.ts).
 *
 * Which products a sales line feeds. pos.ventas carries no deposito, so a line feeds every
 * deposito of its producto in its store that the detector knows (has state for). Every KLK
 * store (the only POS with ventas) has one deposito, so this is exact where sales exist; a
 * store with several selling depositos would charge each sale to all of them, which can only
 * make SELLING_AT_ZERO fire in a deposito that did not sell. Sales of a product without known
 * stock are ignored, as the rules ignore them.
 *
 * Both inputs are placed by store with the same partition count and the runtime gives one
 * member the same partition numbers of both, so partition p's products live in one
 * instance's state store for p (on disk, docs/state-stores.md; its layout is described
 * in phantom-store.ts). Which of the two topics is read first is not deterministic: outcomes
 * depend on event times wherever the rules allow (their limits are documented there).
 * The state record of every product an input changed is written in the same transaction
 * as the alerts, and to the store, which the runtime writes to disk only once that
 * transaction committed: a restart finds exactly the state the committed offsets imply. Its
 * state_json is the rules' ProductPhantomState plus one `detector` member (deposito,
 * producto_id, alerts opened, remembered lines): the bookkeeping above, without a schema change.
 */
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { ConfigError, ValidationError } from '../core/errors.ts';
import { partitionForUbicacion } from '../core/kafka/partitioning.ts';
import type { InventoryChange, PhantomAlert, Venta } from '../core/records.ts';
import { phantomSettingsProblems } from './config.ts';
import type { PhantomConfig } from './phantom-config.ts';
import {
  followsChange,
  phantomKey,
  stepChange,
  stepSale,
  type DetectorEntry,
  type DetectorStep,
  type ProductRef,
} from './phantom-fold.ts';
import { checkChange, checkVenta, entryFromState, stateJson, type PhantomStateRecord } from './phantom-records.ts';
import { depositosOf, entryOf, openCountOf, save, STORE_LAYOUT } from './phantom-store.ts';
import { sharedCounter, sharedGauge } from '../core/metrics.ts';
import type { ProcessorFactory } from './runtime/processor-kind.ts';
import { fallbackStores, type KeyValueState } from './runtime/state-store.ts';
import type { Output, StreamProcessorSpec } from './runtime/stream-processor.ts';

// What bench/phantom, its replay (bench/lib/phantom-replay.ts) and the integration tests
// drive the detector with: the spec, its input, and the pure steps it calls.
export type { InventoryChange, PhantomAlert, Venta };
export { phantomSettingsProblems } from './config.ts';
export {
  alertId,
  followsChange,
  phantomKey,
  stepChange,
  stepSale,
  type AlertStatus,
  type DetectorEntry,
  type ProductRef,
} from './phantom-fold.ts';
export type { PhantomStateRecord } from './phantom-records.ts';

export type PhantomInput = { kind: 'change'; change: InventoryChange } | { kind: 'venta'; venta: Venta };

export const createPhantomSpec: ProcessorFactory = async (deps) => {
  const config: PhantomConfig = { ...deps.config.phantom };
  // Settings built in code (tests, the bench) are judged by the variables' own schemas.
  const problems = phantomSettingsProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  const p = deps.topicPrefix;
  const topics = {
    changes: `${p}pos.inventario.changes`,
    ventas: `${p}pos.ventas`,
    alerts: `${p}alerts.phantom-zeros`,
    state: `${p}alerts.phantom-zeros.state`,
  };
  const [changeCodec, ventaCodec, alertCodec, stateCodec] = await Promise.all([
    createTopicCodec<InventoryChange>(deps.registry, 'pos.inventario.changes', topics.changes),
    createTopicCodec<Venta>(deps.registry, 'pos.ventas', topics.ventas),
    createTopicCodec<PhantomAlert>(deps.registry, 'alerts.phantom-zeros', topics.alerts),
    createTopicCodec<PhantomStateRecord>(deps.registry, 'alerts.phantom-zeros.state', topics.state),
  ]);
  const log = deps.logger.child({ component: 'phantom' });
  const registry = deps.metrics.registry;
  // Counted when emitted: alerts of a transaction that aborts are counted again when re-processed.
  const alertsTotal = sharedCounter(registry, {
    name: 'fluxion_phantom_alerts_total',
    help: 'phantom-zero alert records emitted, by rule and status (OPEN/RESOLVED)',
    labelNames: ['rule', 'status'],
  });
  const openGauge = sharedGauge(registry, {
    name: 'fluxion_phantom_open_alerts',
    help: 'products with an OPEN phantom-zero alert in the partitions this instance owns',
  });

  /**
   * Per partition, the open count of its store as last read or written: the gauge's terms. A
   * partition appears once a load or an input touched it, and is dropped by `reset` (the
   * runtime discards the store's unflushed writes then).
   */
  const openCounts = new Map<number, number>();
  /** Stores for callers that give none (unit tests, a bench): in memory, dropped by `reset`. */
  const { storeOf, forget: forgetOwnStore } = fallbackStores();
  const misplaced = new Set<string>();

  function updateGauge(): void {
    let total = 0;
    for (const n of openCounts.values()) total += n;
    openGauge.set(total);
  }

  function setOpenCount(partition: number, open: number): void {
    if (openCounts.get(partition) === open) return;
    openCounts.set(partition, open);
    updateGauge();
  }

  /** Alerts and the state record of one product's step, and the step applied to the store. */
  function outputs(kv: KeyValueState, partition: number, ref: ProductRef, prev: DetectorEntry | undefined, step: DetectorStep): Output[] {
    const out: Output[] = [];
    const key = phantomKey(ref);
    const ubicacionId = ref.ubicacion_id;
    for (const a of step.alerts) {
      out.push({ topic: topics.alerts, ubicacionId: a.ubicacion_id, key, value: alertCodec.encode(a) });
      alertsTotal.inc({ rule: a.rule, status: a.status });
      log.info(
        { key, alertId: a.alert_id, rule: a.rule, status: a.status, confidence: a.confidence, evidence: a.evidence },
        a.status === 'OPEN' ? 'phantom-zero alert opened' : 'phantom-zero alert resolved',
      );
    }
    if (step.write) {
      const value = step.entry
        ? stateCodec.encode({
            ubicacion_id: step.entry.ref.ubicacion_id,
            state_json: stateJson(step.entry),
            open_alert_id: step.entry.openAlertId,
          })
        : null;
      out.push({ topic: topics.state, ubicacionId, key, value });
      // The same write as the state record's, so the store holds what the changelog will.
      setOpenCount(partition, save(kv, key, prev, step.entry));
    }
    return out;
  }

  function checkPlacement(ubicacionId: string, partition: number): void {
    if (misplaced.has(ubicacionId) || partitionForUbicacion(ubicacionId, deps.partitions) === partition) return;
    misplaced.add(ubicacionId);
    // Its state record goes to the store's partition, so after a rebalance another instance may read it.
    log.warn(
      { ubicacion: ubicacionId, partition, expected: partitionForUbicacion(ubicacionId, deps.partitions), partitions: deps.partitions },
      "input record of a store on a partition that is not the store's",
    );
  }

  async function loadRecord(
    kv: KeyValueState,
    record: { key: Buffer | null; value: Buffer | null; partition: number; offset: string },
  ): Promise<void> {
    const key = record.key?.toString('utf8') ?? '';
    let next: DetectorEntry | null = null;
    if (record.value) {
      try {
        next = entryFromState(await stateCodec.decode(record.value));
      } catch (err) {
        // Anything else (registry unreachable) fails the load, so the processor restarts and reads again.
        if (!(err instanceof ValidationError)) throw err;
        // Bad bytes never become readable: dropping one product's state only loses its history,
        // while refusing it would stop every store of the partition.
        log.error(
          { err, key, partition: record.partition, offset: record.offset },
          'phantom state record unreadable: the product starts again without state',
        );
      }
    }
    // A record is the key's whole value: applied again onto a store that already holds it
    // (a restart replays from the checkpoint) it changes nothing.
    setOpenCount(record.partition, save(kv, key, entryOf(kv, key), next));
  }

  const spec: StreamProcessorSpec<PhantomInput> = {
    name: 'phantom',
    inputTopics: [topics.changes, topics.ventas],
    async decode(record) {
      if (record.topic === topics.changes) {
        const change = await changeCodec.decode(record.value);
        checkChange(change);
        return { kind: 'change', change };
      }
      if (record.topic === topics.ventas) {
        const venta = await ventaCodec.decode(record.value);
        checkVenta(venta);
        return { kind: 'venta', venta };
      }
      throw new ValidationError(`record of ${record.topic}, which is not an input of the phantom detector`, {
        context: { topic: record.topic },
      });
    },
    async process(input, ctx) {
      const kv = storeOf(ctx.store, ctx.partition);
      if (!openCounts.has(ctx.partition)) setOpenCount(ctx.partition, openCountOf(kv));
      const out: Output[] = [];
      if (input.kind === 'change') {
        const c = input.change;
        checkPlacement(c.ubicacion_id, ctx.partition);
        const ref = { ubicacion_id: c.ubicacion_id, deposito: c.deposito, producto_id: c.producto_id };
        const prev = entryOf(kv, phantomKey(ref));
        if (!followsChange(prev, c, config)) return out;
        out.push(...outputs(kv, ctx.partition, ref, prev, stepChange(ref, prev, c, config)));
      } else {
        const l = input.venta.linea;
        checkPlacement(l.ubicacion_id, ctx.partition);
        for (const deposito of depositosOf(kv, l.ubicacion_id, l.producto_id)) {
          const ref = { ubicacion_id: l.ubicacion_id, deposito, producto_id: l.producto_id };
          const prev = entryOf(kv, phantomKey(ref))!;
          out.push(...outputs(kv, ctx.partition, ref, prev, stepSale(prev, input.venta, config)));
        }
      }
      return out;
    },
    state: {
      topics: [topics.state],
      store: { topics: [topics.state], dir: deps.config.stateDir, layout: STORE_LAYOUT },
      async load(record, store) {
        const kv = storeOf(store, record.partition);
        if (!openCounts.has(record.partition)) setOpenCount(record.partition, openCountOf(kv));
        await loadRecord(kv, record);
      },
      reset(partition) {
        // The runtime discards the store's unflushed writes: the count is read again from it.
        forgetOwnStore(partition);
        openCounts.delete(partition);
        updateGauge();
      },
    },
  };
  log.info({ inputTopics: spec.inputTopics, output: topics.alerts, state: topics.state, config }, 'phantom detector ready');
  return spec;
};
