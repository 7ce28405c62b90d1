/**
 * `fluxion process differ`: pos.inventario.snapshots -> pos.inventario.changes, with its
 * state in pos.inventario.state and refused snapshots in pos.inventario.quarantine.
 *
 * Per store: chunks are assembled (processors/snapshot-diff.ts); a complete snapshot is
 * checked against the quarantine rule and, when safe, diffed against the last applied state
 * into c/u/d changes, written with the new state records in the same transaction as the
 * input offsets.
 *
 * Two things keep it exact across crashes:
 * - Offsets are never committed past the first chunk of a snapshot still being assembled
 *   (`commitOffset`): chunks live only in memory, so a restart must read them again.
 * - Reading again is harmless: each store's last applied snapshot is a state record (key
 *   `ubicacion_id`, with the offset that completed it in the header `fluxion-applied-offset`),
 *   and a snapshot decided before is skipped: the applied one, one with a quarantine record,
 *   or one read at or before that offset (`judgeSnapshot` in snapshot-decision.ts).
 *
 * Stale snapshots: one read for the first time when a newer snapshot of the store was already
 * applied (an overlapping or delayed run, a POS clock set back) is never applied, and never
 * dropped silently either: it gets a quarantine record with status STALE (never releasable),
 * the counter outcome `stale` and a warning naming both snapshots and their taken_at.
 *
 * Releases: `fluxion quarantine release` sends a quarantined snapshot's chunks again with the
 * header `fluxion-release`; the differ then applies it without the quarantine rule, unless a
 * newer snapshot of the store was applied meanwhile (then it is SUPERSEDED).
 *
 * Which of these a complete snapshot is, is `decideSnapshot` (snapshot-decision.ts, pure);
 * this module reads what it weighs from the state store and carries the decision out.
 */
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { ValidationError } from '../core/errors.ts';
import type { QuarantineRecord } from '../core/records.ts';
import type { ProcessorFactory } from './runtime/processor-kind.ts';
import type { Output, ProcessorContext, StreamProcessorSpec } from './runtime/stream-processor.ts';
import { decideSnapshot, judgeSnapshot, supersededBy, type ReleaseRequest } from './snapshot-decision.ts';
import {
  diffSnapshot,
  packRow,
  type QuarantineRule,
  rowFingerprint,
  rowKey,
  SnapshotAssembler,
  type PackedSnapshot,
  type SnapshotChunk,
} from './snapshot-diff.ts';
import type { KeyValueState } from './runtime/state-store.ts';
import { differMetrics } from './differ-metrics.ts';
import {
  APPLIED_OFFSET_HEADER,
  appliedOf,
  appliedOffset,
  rowsOf,
  setApplied,
  STORE_LAYOUT,
  type StateRecord,
  storeOf,
} from './differ-state-layout.ts';

// The state layout lives in processors/differ-state-layout.ts; this header stays importable from here.
export { APPLIED_OFFSET_HEADER } from './differ-state-layout.ts';

/** Header naming the snapshot an operator released (set by `fluxion quarantine release`). */
export const RELEASE_HEADER = 'fluxion-release';

/**
 * What the differ holds in memory per store: only the snapshots being assembled. Its rows and
 * its applied snapshot live in the partition's state store (processors/runtime/state-store.ts),
 * under the state topic's keys: `ubicacion/deposito/producto` -> the packed row,
 * `ubicacion` -> the applied snapshot (JSON of StoredApplied).
 */
interface StoreMemory {
  partition: number;
  assembler: SnapshotAssembler;
  /** Assembles released snapshots apart, so a release never disturbs a normal snapshot in flight. */
  releases: SnapshotAssembler;
  /** Per assembler ('normal', 'release'): the snapshot still being assembled and the offset of its first chunk. */
  pendingFrom: Map<string, { snapshot: string; from: bigint }>;
}

type DifferInput = { chunk: SnapshotChunk; release: (ReleaseRequest & { snapshotId: string }) | null };

export const createDifferSpec: ProcessorFactory = async (deps) => {
  const p = deps.topicPrefix;
  const topics = {
    snapshots: `${p}pos.inventario.snapshots`,
    changes: `${p}pos.inventario.changes`,
    state: `${p}pos.inventario.state`,
    quarantine: `${p}pos.inventario.quarantine`,
  };
  const [snapshotCodec, changeCodec, stateCodec, quarantineCodec] = await Promise.all([
    createTopicCodec<SnapshotChunk>(deps.registry, 'pos.inventario.snapshots', topics.snapshots),
    createTopicCodec<unknown>(deps.registry, 'pos.inventario.changes', topics.changes),
    createTopicCodec<StateRecord>(deps.registry, 'pos.inventario.state', topics.state),
    createTopicCodec<QuarantineRecord>(deps.registry, 'pos.inventario.quarantine', topics.quarantine),
  ]);
  const log = deps.logger.child({ component: 'differ' });
  const rule: QuarantineRule = {
    maxZeroedShare: deps.config.quarantineMaxZeroedShare,
    groupMaxZeroedShare: deps.config.quarantineGroupMaxZeroedShare,
    groupMinProducts: deps.config.quarantineGroupMinProducts,
  };
  const registry = deps.metrics.registry;
  const { snapshotsCounter, changesCounter } = differMetrics(registry);

  const stores = new Map<string, StoreMemory>();

  function logReread(why: string, where: Record<string, unknown>): void {
    if (why === 'applied-offset-unknown')
      log.info(
        where,
        'snapshot older than the applied one, whose offset the state does not hold (written by an older differ): taken as read again, ' +
          'skipped',
      );
    else log.debug({ ...where, why }, 'snapshot already decided: skipped');
  }
  /** Quarantine records of the owned partitions, by snapshot_id, with the partition that owns each. */
  const quarantines = new Map<string, { record: QuarantineRecord; partition: number }>();

  function store(ubicacionId: string, partition: number): StoreMemory {
    let s = stores.get(ubicacionId);
    if (!s) {
      s = { partition, assembler: new SnapshotAssembler(), releases: new SnapshotAssembler(), pendingFrom: new Map() };
      stores.set(ubicacionId, s);
    }
    return s;
  }

  function stateOutput(ubicacionId: string, key: string, value: StateRecord | null, headers?: Record<string, string>): Output {
    return { topic: topics.state, ubicacionId, key, value: value ? stateCodec.encode(value) : null, ...(headers ? { headers } : {}) };
  }

  function quarantineOutput(q: QuarantineRecord): Output {
    return { topic: topics.quarantine, ubicacionId: q.ubicacion_id, key: q.snapshot_id, value: quarantineCodec.encode(q) };
  }

  function rememberQuarantine(q: QuarantineRecord, partition: number): void {
    quarantines.set(q.snapshot_id, { record: q, partition });
  }

  function* quarantineRecords(): Iterable<QuarantineRecord> {
    for (const q of quarantines.values()) yield q.record;
  }

  /** Applies a complete snapshot: its changes, the state records and the store's watermark. */
  function apply(kv: KeyValueState, snapshot: PackedSnapshot, ctx: ProcessorContext): Output[] {
    const ubicacion = snapshot.ubicacion_id;
    const { changes, updates } = diffSnapshot(rowsOf(kv, ubicacion), snapshot);
    const out: Output[] = [];
    for (const c of changes) {
      out.push({
        topic: topics.changes,
        ubicacionId: ubicacion,
        key: `${ubicacion}/${c.deposito}/${c.producto_id}`,
        value: changeCodec.encode(c),
      });
      changesCounter.inc({ op: c.op });
    }
    for (const [key, entry] of updates) {
      if (entry) kv.put(`${ubicacion}/${key}`, entry.packed);
      else kv.delete(`${ubicacion}/${key}`);
      out.push(
        stateOutput(
          ubicacion,
          `${ubicacion}/${key}`,
          entry
            ? {
                ubicacion_id: ubicacion,
                row: entry.row,
                fingerprint: rowFingerprint(entry.row),
                snapshot_id: snapshot.snapshot_id,
                taken_at: snapshot.taken_at,
              }
            : null,
        ),
      );
    }
    setApplied(kv, ubicacion, { snapshot_id: snapshot.snapshot_id, taken_at: snapshot.taken_at.getTime(), offset: BigInt(ctx.offset) });
    out.push(
      stateOutput(
        ubicacion,
        ubicacion,
        { ubicacion_id: ubicacion, row: null, fingerprint: '', snapshot_id: snapshot.snapshot_id, taken_at: snapshot.taken_at },
        { [APPLIED_OFFSET_HEADER]: ctx.offset },
      ),
    );
    for (const next of supersededBy(snapshot, quarantineRecords())) {
      rememberQuarantine(next, quarantines.get(next.snapshot_id)!.partition);
      out.push(quarantineOutput(next));
      snapshotsCounter.inc({ outcome: 'superseded' });
    }
    log.info(
      {
        ubicacion,
        snapshot: snapshot.snapshot_id,
        rows: snapshot.rows.length,
        changes: changes.length,
        partition: ctx.partition,
        offset: ctx.offset,
      },
      'snapshot applied',
    );
    return out;
  }

  function onComplete(
    kv: KeyValueState,
    snapshot: PackedSnapshot,
    chunkCount: number,
    release: DifferInput['release'],
    ctx: ProcessorContext,
    firstOffset: bigint,
  ): Output[] {
    const where = { ubicacion: snapshot.ubicacion_id, snapshot: snapshot.snapshot_id, partition: ctx.partition, offset: ctx.offset };
    const applied = appliedOf(kv, snapshot.ubicacion_id);
    const known = quarantines.get(snapshot.snapshot_id)?.record;
    const decision = decideSnapshot({
      snapshot,
      chunkCount,
      release,
      applied,
      known,
      rows: rowsOf(kv, snapshot.ubicacion_id),
      rule,
      partition: ctx.partition,
      offset: BigInt(ctx.offset),
      firstOffset,
    });
    switch (decision.kind) {
      case 'ignore-release':
        log.warn({ ...where, status: decision.status }, 'release of a snapshot that is not quarantined: ignored');
        return [];
      case 'supersede-release':
        rememberQuarantine(decision.record, ctx.partition);
        snapshotsCounter.inc({ outcome: 'superseded' });
        log.warn(where, 'released snapshot is older than the last applied one: superseded, not applied');
        return [quarantineOutput(decision.record)];
      case 'release': {
        const out = apply(kv, snapshot, ctx);
        rememberQuarantine(decision.record, ctx.partition);
        snapshotsCounter.inc({ outcome: 'released' });
        log.warn(where, 'quarantined snapshot released by an operator and applied');
        return [...out, quarantineOutput(decision.record)];
      }
      case 'skip':
        // Read again after a restart (offsets held back for a snapshot in flight), or a late duplicate.
        snapshotsCounter.inc({ outcome: 'skipped' });
        logReread(decision.why, { ...where, status: known?.status, applied: applied?.snapshot_id });
        return [];
      case 'stale': {
        const { record: q, applied: newer } = decision;
        rememberQuarantine(q, ctx.partition);
        snapshotsCounter.inc({ outcome: 'stale' });
        log.warn(
          {
            ...where,
            taken_at: snapshot.taken_at.toISOString(),
            applied_snapshot: newer.snapshot_id,
            applied_taken_at: new Date(newer.taken_at).toISOString(),
          },
          `stale snapshot, not applied: ${q.reason}`,
        );
        return [quarantineOutput(q)];
      }
      case 'quarantine': {
        const q = decision.record;
        rememberQuarantine(q, ctx.partition);
        snapshotsCounter.inc({ outcome: 'quarantined' });
        log.error(
          { ...where, reason: q.reason },
          `snapshot quarantined, not applied: ${q.reason}; release it with \`fluxion quarantine release ${snapshot.snapshot_id}\``,
        );
        return [quarantineOutput(q)];
      }
      case 'apply':
        snapshotsCounter.inc({ outcome: 'applied' });
        return apply(kv, snapshot, ctx);
    }
  }

  const spec: StreamProcessorSpec<DifferInput> = {
    name: 'differ',
    inputTopics: [topics.snapshots],
    async decode(record) {
      const chunk = await snapshotCodec.decode(record.value);
      if (!chunk.ubicacion_id)
        throw new ValidationError(`snapshot ${chunk.snapshot_id}: empty ubicacion_id`, { context: { field: 'ubicacion_id' } });
      const released = record.headers[RELEASE_HEADER];
      if (!released) return { chunk, release: null };
      if (released !== chunk.snapshot_id)
        throw new ValidationError(`header ${RELEASE_HEADER}=${released} names another snapshot than the chunk's ${chunk.snapshot_id}`, {
          context: { ubicacion: chunk.ubicacion_id, field: RELEASE_HEADER, value: released },
        });
      const at = record.headers[`${RELEASE_HEADER}-at`];
      return {
        chunk,
        release: {
          snapshotId: released,
          note: record.headers[`${RELEASE_HEADER}-note`] ?? null,
          at: at && !Number.isNaN(Date.parse(at)) ? new Date(at) : null,
        },
      };
    },
    async process({ chunk, release }, ctx) {
      const kv = storeOf(ctx.store, ctx.partition);
      const s = store(chunk.ubicacion_id, ctx.partition);
      const assembler = release ? s.releases : s.assembler;
      const pendingKey = release ? 'release' : 'normal';
      if (!release && !s.assembler.pendingSnapshot()) {
        // A chunk of a snapshot decided before (read again after a restart): nothing to
        // assemble. A stale one's chunks are assembled, so that it is recorded once whole.
        const applied = appliedOf(kv, chunk.ubicacion_id);
        const verdict = judgeSnapshot(
          { snapshot_id: chunk.snapshot_id, taken_at: chunk.taken_at.getTime(), offset: BigInt(ctx.offset) },
          applied,
          quarantines.has(chunk.snapshot_id),
        );
        if (verdict.kind === 'reread') {
          if (chunk.chunk_index === chunk.chunk_count - 1)
            logReread(verdict.why, {
              ubicacion: chunk.ubicacion_id,
              snapshot: chunk.snapshot_id,
              partition: ctx.partition,
              offset: ctx.offset,
              applied: applied?.snapshot_id,
            });
          return [];
        }
      }
      const held = s.pendingFrom.get(pendingKey);
      const results = assembler.accept(chunk);
      // The offsets held back follow the snapshot the assembler waits on: a new one starts at
      // this chunk; a chunk dropped on its own (older than the one in flight) moves nothing.
      const pending = assembler.pendingSnapshot();
      if (!pending) s.pendingFrom.delete(pendingKey);
      else if (held?.snapshot !== pending) s.pendingFrom.set(pendingKey, { snapshot: pending, from: BigInt(ctx.offset) });
      const out: Output[] = [];
      for (const r of results) {
        if (r.kind === 'pending') continue;
        if (r.kind === 'dropped') {
          snapshotsCounter.inc({ outcome: 'dropped' });
          log.warn(
            { ubicacion: chunk.ubicacion_id, snapshot: r.snapshot_id, partition: ctx.partition, offset: ctx.offset },
            `snapshot dropped, never applied: ${r.reason}`,
          );
          continue;
        }
        const firstOffset = held?.snapshot === r.snapshot.snapshot_id ? held.from : BigInt(ctx.offset);
        out.push(...onComplete(kv, r.snapshot, r.chunk_count, release, ctx, firstOffset));
      }
      return out;
    },
    commitOffset(_topic, partition, next) {
      let min = next;
      for (const s of stores.values()) {
        if (s.partition !== partition) continue;
        for (const { from } of s.pendingFrom.values()) if (from < min) min = from;
      }
      return min;
    },
    state: {
      topics: [topics.state, topics.quarantine],
      // The quarantine topic is small (a record per refused snapshot): memory, read whole.
      store: { topics: [topics.state], dir: deps.config.stateDir, layout: STORE_LAYOUT },
      async load(record, st) {
        if (record.topic === topics.quarantine) {
          if (!record.value) {
            quarantines.delete(record.key?.toString() ?? '');
            return;
          }
          rememberQuarantine(await quarantineCodec.decode(record.value), record.partition);
          return;
        }
        const kv = storeOf(st, record.partition);
        if (!record.value) {
          // A tombstone: the product vanished. Its key is ubicacion/deposito/producto, the store's.
          kv.delete(record.key?.toString() ?? '');
          return;
        }
        const v = await stateCodec.decode(record.value);
        if (v.row === null)
          setApplied(kv, v.ubicacion_id, {
            snapshot_id: v.snapshot_id,
            taken_at: v.taken_at.getTime(),
            offset: appliedOffset(record.headers[APPLIED_OFFSET_HEADER]),
          });
        // The store keeps the row only: the record's fingerprint, snapshot_id and taken_at are
        // written again, with the snapshot's, when the row next changes.
        else kv.put(`${v.ubicacion_id}/${rowKey(v.row.deposito, v.row.producto_id)}`, packRow(v.row));
      },
      reset(partition) {
        for (const [id, s] of stores) if (s.partition === partition) stores.delete(id);
        for (const [id, q] of quarantines) if (q.partition === partition) quarantines.delete(id);
      },
    },
  };
  return spec;
};
