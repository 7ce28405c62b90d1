/**
 * An etl run: one store's extraction in one job (README glossary). The extracting process knows
 * it as a StoreOutcome (what `fluxion extract`, the control API and the job-failure mail read);
 * published, it is an EtlRun record on ops.etl-runs (schemas/ops.etl-runs-value.avsc), which the
 * sink writes to etl_runs and the notifier reads. etlRunRecord is the one mapping between them.
 */
import type { OurService } from './errors.ts';

export type EtlJob = 'INVENTARIO' | 'VENTAS' | 'VENTAS_RECOVERY';

/** One store's extraction as the extracting process reports it. */
export interface StoreOutcome {
  ubicacionId: string;
  source: 'KLK' | 'STELLAR';
  status: 'OK' | 'FAILED';
  rows: number;
  durationMs: number;
  snapshotId: string | null;
  fecha: string | null;
  errorClass: string | null;
  errorMessage: string | null;
  /** Which of our services the failure was about (core/errors.ts failedServiceOf); null for a POS's or the job's own. */
  errorService?: OurService | null;
  /**
   * Set when a failed store's run record could not be published either (Kafka or the
   * registry down as well): the notifier will never hear of this failure, so the job mails it
   * itself (ops/job-failure-mail.ts). Null when the record reached ops.etl-runs.
   */
  unrecorded?: { errorClass: string; errorMessage: string; errorService: OurService | null } | null;
}

/** schemas/ops.etl-runs-value.avsc (key `job/ubicacion_id`). */
export interface EtlRun {
  run_id: string;
  job: EtlJob;
  ubicacion_id: string;
  status: 'OK' | 'FAILED';
  rows: number;
  started_at: Date;
  finished_at: Date;
  snapshot_id: string | null;
  /** "YYYY-MM-DD" */
  fecha: string | null;
  error_class: string | null;
  error_message: string | null;
}

/** The record of `outcome` on ops.etl-runs. */
export function etlRunRecord(outcome: StoreOutcome, run: { runId: string; job: EtlJob; startedAt: Date }): EtlRun {
  return {
    run_id: run.runId,
    job: run.job,
    ubicacion_id: outcome.ubicacionId,
    status: outcome.status,
    rows: outcome.rows,
    started_at: run.startedAt,
    finished_at: new Date(run.startedAt.getTime() + outcome.durationMs),
    snapshot_id: outcome.snapshotId,
    fecha: outcome.fecha,
    error_class: outcome.errorClass,
    error_message: outcome.errorMessage,
  };
}
