/**
 * The dashboard's /metrics: the latest sample as Prometheus metrics (prom-client). Values are
 * set from the sample at scrape time, so a scrape never sees half of one sample and half of
 * another. Counters whose source is a table (rows extracted, rows written) are set to the
 * table's total: they only go down when the source is reset (PostgreSQL's statistics), which
 * Prometheus reads as a counter reset.
 *
 * Names differ from the processors' and the sink's own metrics (fluxion_processor_*,
 * fluxion_sink_*, fluxion_phantom_*): these describe the pipeline from outside.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { LAG_STATUSES } from './lag.ts';
import type { DashboardSample } from './sampler.ts';

export function createDashboardMetrics(latest: () => DashboardSample | null): Registry {
  const registry = new Registry();
  const registers = [registry];
  /** A metric that the latest sample fills at each scrape, from nothing (a reset first). */
  const fromSample = <M extends Gauge<string> | Counter<string>>(fill: (m: M, s: DashboardSample) => void) =>
    function collect(this: M) {
      this.reset();
      const s = latest();
      if (s) fill(this, s);
    };
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge<string>, s: DashboardSample) => void) =>
    new Gauge({ name, help, labelNames, registers, collect: fromSample(fill) });
  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter<string>, s: DashboardSample) => void) =>
    new Counter({ name, help, labelNames, registers, collect: fromSample(fill) });
  const partitions = (s: DashboardSample) => s.groups.flatMap((g) => g.partitions);
  const seconds = (d: Date | string) => new Date(d).getTime() / 1000;

  gauge(
    'fluxion_consumer_lag_messages',
    "records between the group's committed offset and the end of the partition (0 when only transaction markers are left)",
    ['group', 'topic', 'partition'],
    (g, s) => {
      for (const p of partitions(s)) g.set({ group: p.group, topic: p.topic, partition: String(p.partition) }, p.lagMessages);
    },
  );
  gauge(
    'fluxion_consumer_lag_seconds',
    'age of the oldest record the group has not consumed (0 when caught up); absent when unknown',
    ['group', 'topic', 'partition'],
    (g, s) => {
      for (const p of partitions(s))
        if (p.lagSeconds !== null) g.set({ group: p.group, topic: p.topic, partition: String(p.partition) }, p.lagSeconds);
    },
  );
  gauge(
    'fluxion_consumer_committed_offset',
    'next offset the group reads (the sink: sink_offsets in PostgreSQL)',
    ['group', 'topic', 'partition'],
    (g, s) => {
      for (const p of partitions(s)) g.set({ group: p.group, topic: p.topic, partition: String(p.partition) }, Number(p.position));
    },
  );
  gauge(
    'fluxion_consumer_group_status',
    "the group's Burrow-style status judged against the schedule: 1 for the current one (OK, WARN, ERR, STALL, DOWN: no member, the " +
      'process is down)',
    ['group', 'status'],
    (g, s) => {
      for (const grp of s.groups) for (const status of LAG_STATUSES) g.set({ group: grp.group, status }, grp.status === status ? 1 : 0);
    },
  );
  gauge('fluxion_consumer_group_members', 'members of the consumer group', ['group'], (g, s) => {
    for (const grp of s.groups) g.set({ group: grp.group }, grp.members);
  });
  gauge(
    'fluxion_topic_end_offset',
    'last stable offset of the partition (records plus transaction markers)',
    ['topic', 'partition'],
    (g, s) => {
      for (const e of s.topicEnds) g.set({ topic: e.topic, partition: String(e.partition) }, Number(e.end));
    },
  );
  gauge(
    'fluxion_store_last_success_timestamp_seconds',
    'start of the newest OK extraction run of the store (etl_runs)',
    ['ubicacion', 'job'],
    (g, s) => {
      for (const st of s.stores)
        for (const [job, run] of Object.entries(st.lastSuccess)) if (run) g.set({ ubicacion: st.id, job }, seconds(run.startedAt));
    },
  );
  gauge(
    'fluxion_store_last_snapshot_applied_timestamp_seconds',
    'taken_at of the newest snapshot with a change written to inventario_historico',
    ['ubicacion'],
    (g, s) => {
      for (const st of s.stores) if (st.lastApplied) g.set({ ubicacion: st.id }, seconds(st.lastApplied.takenAt));
    },
  );
  gauge(
    'fluxion_store_missed_polls',
    'scheduled polls in opening hours within the lookback (24 h) that no OK run answered',
    ['ubicacion', 'job'],
    (g, s) => {
      for (const st of s.stores) for (const [job, c] of Object.entries(st.polls)) if (c) g.set({ ubicacion: st.id, job }, c.missed);
    },
  );
  gauge(
    'fluxion_store_freshness_status',
    "the store's freshness: 0 OK, 1 WARN (a missed poll, a quarantine), 2 ERR (the last two polls missed)",
    ['ubicacion'],
    (g, s) => {
      for (const st of s.stores) g.set({ ubicacion: st.id }, ['OK', 'WARN', 'ERR'].indexOf(st.status));
    },
  );
  counter('fluxion_store_rows_extracted_total', 'rows extracted by OK runs (sum of etl_runs.rows)', ['ubicacion', 'job'], (c, s) => {
    for (const r of s.rowsExtracted) c.inc({ ubicacion: r.ubicacion, job: r.job }, r.rows);
  });
  gauge(
    'fluxion_store_inventory_changes_24h',
    'inventory changes (c/u rows of inventario_historico) taken in the last 24 h',
    ['ubicacion'],
    (g, s) => {
      for (const st of s.stores) g.set({ ubicacion: st.id }, s.changes24h[st.id] ?? 0);
    },
  );
  counter(
    'fluxion_postgres_rows_written_total',
    'rows written per table and operation (PostgreSQL statistics, pg_stat_user_tables)',
    ['table', 'operation'],
    (c, s) => {
      for (const r of s.rowsWritten) c.inc({ table: r.table, operation: r.operation }, r.rows);
    },
  );
  gauge('fluxion_dlq_records', 'records in the dead-letter topic', ['topic'], (g, s) => {
    for (const [topic, n] of Object.entries(s.dlq)) g.set({ topic }, n);
  });
  gauge(
    'fluxion_quarantine_snapshots',
    'snapshots on the quarantine topic, by store and last status (QUARANTINED and RELEASE_REQUESTED wait for a decision; STALE: older ' +
      'than the last applied one, not applied)',
    ['ubicacion', 'status'],
    (g, s) => {
      for (const q of s.quarantine) g.set({ ubicacion: q.ubicacion, status: q.status }, q.count);
    },
  );
  gauge('fluxion_store_phantom_alerts_open', 'phantom-zero alerts OPEN in alertas', ['ubicacion'], (g, s) => {
    for (const st of s.stores) g.set({ ubicacion: st.id }, st.openAlerts);
  });
  gauge('fluxion_dashboard_last_sample_timestamp_seconds', 'when the figures above were read', [], (g, s) => {
    g.set(seconds(s.sampledAt));
  });
  gauge('fluxion_dashboard_sample_errors', 'sources that could not be read in the last sample (their figures are older)', [], (g, s) => {
    g.set(s.errors.length);
  });
  return registry;
}
