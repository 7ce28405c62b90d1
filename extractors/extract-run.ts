/**
 * One extraction run over many stores: each store read in isolation (its own deadline, its
 * own failure), at most `concurrency` at a time, and published in ONE Kafka transaction per
 * store together with its ops.etl-runs record, so read_committed readers see a store's whole
 * snapshot (or day of sales) or nothing. A failed store publishes only its FAILED run record.
 */
import { randomUUID } from 'node:crypto';
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { readSecret, readStellarTls, type Ubicacion } from '../core/config/ubicaciones.ts';
import { DeadlineExceededError, FluxionError, errorMessage, failedServiceOf } from '../core/errors.ts';
import { etlRunRecord, type EtlJob, type StoreOutcome } from '../core/etl-run.ts';
import type { KafkaClient, OutgoingRecord, FluxionProducer } from '../core/kafka/types.ts';
import { scrubSecrets, type Logger } from '../core/logger.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { DEFAULT_RETRY, type RetryPolicy } from '../core/retry.ts';
import { topicName } from '../core/topics.ts';
import { createKlkApi } from './klk-api.ts';
import { createSnapshotEncoding, SnapshotChunks } from './snapshot-chunks.ts';
import type { InventoryRow } from './inventory-row.ts';
import type { VentaLinea } from './venta-line.ts';

export interface ExtractionDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  topicPrefix: string;
  now?: () => Date;
}

/** What reading a POS needs (its secrets are read from `env` by name); publishing needs the rest of ExtractionDeps. */
export type PosReadDeps = Pick<ExtractionDeps, 'env' | 'logger'>;

export interface ExtractionOptions {
  /** Stores read at the same time. */
  concurrency?: number;
  /** A store still running after this is stopped and fails (tedious never times out a stalled stream). */
  storeDeadlineMs?: number;
  /** One HTTP request (one KLK page). */
  requestTimeoutMs?: number;
  retry?: RetryPolicy;
  runId?: string;
  signal?: AbortSignal;
}

export const EXTRACTION_DEFAULTS = { concurrency: 4, storeDeadlineMs: 15 * 60_000, requestTimeoutMs: 30_000 } as const;

interface StoreBatch {
  topic: string;
  records: OutgoingRecord[];
  rows: number;
  snapshotId: string | null;
  fecha: string | null;
}

type StoreWork = (u: Ubicacion, signal: AbortSignal, runId: string) => Promise<StoreBatch>;

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return results;
}

async function runStores(
  stores: Ubicacion[],
  job: EtlJob,
  deps: ExtractionDeps,
  opts: ExtractionOptions,
  work: StoreWork,
): Promise<StoreOutcome[]> {
  const now = deps.now ?? (() => new Date());
  const runId = opts.runId ?? randomUUID();
  const etlTopic = topicName('ops.etl-runs', deps.topicPrefix);
  const etlCodec = await createTopicCodec(deps.registry, 'ops.etl-runs', etlTopic);
  const deadlineMs = opts.storeDeadlineMs ?? EXTRACTION_DEFAULTS.storeDeadlineMs;
  const log = deps.logger.child({ component: 'extract', job, run_id: runId });

  return mapLimit(stores, opts.concurrency ?? EXTRACTION_DEFAULTS.concurrency, async (u) => {
    const source = u.pos === 'klk' ? 'KLK' : 'STELLAR';
    const started = now();
    const controller = new AbortController();
    const timer = setTimeout(
      () =>
        controller.abort(
          new DeadlineExceededError(`${u.id}: the ${source} read did not finish within its deadline of ${deadlineMs} ms and was stopped`, {
            context: { ubicacion: u.id },
          }),
        ),
      deadlineMs,
    );
    const onOuterAbort = () => controller.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
    const storeLog = log.child({ ubicacion: u.id, source });
    let producer: FluxionProducer | undefined;
    const openProducer = async () =>
      (producer ??= await deps.kafka.producer({ transactionalId: `${deps.topicPrefix}fluxion-extract-${job.toLowerCase()}-${u.id}` }));
    const runRecord = (o: StoreOutcome): OutgoingRecord => ({
      ubicacionId: u.id,
      key: `${job}/${u.id}`,
      value: etlCodec.encode(etlRunRecord(o, { runId, job, startedAt: started })),
    });
    try {
      const batch = await work(u, controller.signal, runId);
      clearTimeout(timer);
      const outcome: StoreOutcome = {
        ubicacionId: u.id,
        source,
        status: 'OK',
        rows: batch.rows,
        durationMs: now().getTime() - started.getTime(),
        snapshotId: batch.snapshotId,
        fecha: batch.fecha,
        errorClass: null,
        errorMessage: null,
      };
      const p = await openProducer();
      const etl = runRecord(outcome);
      await p.transaction(async (tx) => {
        await tx.send(batch.topic, batch.records);
        await tx.send(etlTopic, [etl]);
      });
      outcome.durationMs = now().getTime() - started.getTime();
      const mem = process.memoryUsage();
      storeLog.info(
        {
          rows: outcome.rows,
          ms: outcome.durationMs,
          snapshot_id: outcome.snapshotId,
          fecha: outcome.fecha,
          rss_mb: Math.round(mem.rss / 2 ** 20),
          heap_mb: Math.round(mem.heapUsed / 2 ** 20),
          external_mb: Math.round(mem.external / 2 ** 20),
        },
        'store extracted',
      );
      return outcome;
    } catch (err) {
      const outcome: StoreOutcome = {
        ubicacionId: u.id,
        source,
        status: 'FAILED',
        rows: 0,
        durationMs: now().getTime() - started.getTime(),
        snapshotId: null,
        fecha: null,
        errorClass: err instanceof FluxionError ? err.code : 'UNEXPECTED',
        errorMessage: scrubSecrets(errorMessage(err)),
        errorService: failedServiceOf(err),
      };
      storeLog.error({ err, error_class: outcome.errorClass, ms: outcome.durationMs }, 'store extraction failed');
      try {
        const p = await openProducer();
        const etl = runRecord(outcome);
        await p.transaction((tx) => tx.send(etlTopic, [etl]));
      } catch (recordErr) {
        storeLog.error({ err: recordErr }, 'could not record the failed run on ops.etl-runs');
        outcome.unrecorded = {
          errorClass: recordErr instanceof FluxionError ? recordErr.code : 'UNEXPECTED',
          errorMessage: scrubSecrets(errorMessage(recordErr)),
          errorService: failedServiceOf(recordErr),
        };
      }
      return outcome;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onOuterAbort);
      await producer?.disconnect().catch(() => undefined);
    }
  });
}

/** Reads every store's full inventory and publishes one snapshot per store. */
export async function extractInventario(stores: Ubicacion[], deps: ExtractionDeps, opts: ExtractionOptions = {}): Promise<StoreOutcome[]> {
  const now = deps.now ?? (() => new Date());
  const topic = topicName('pos.inventario.snapshots', deps.topicPrefix);
  const codec = await createTopicCodec(deps.registry, 'pos.inventario.snapshots', topic);
  const encoding = createSnapshotEncoding(codec.schema, codec.schemaId);
  return runStores(stores, 'INVENTARIO', deps, opts, async (u, signal) => {
    const snapshotId = randomUUID();
    const chunks = new SnapshotChunks(encoding, {
      snapshotId,
      ubicacionId: u.id,
      source: u.pos === 'klk' ? 'KLK' : 'STELLAR',
      takenAt: now(),
    });
    for (const deposito of u.depositos) {
      for await (const row of readInventario(u, deposito, deps, opts, signal)) chunks.add(row);
    }
    if (chunks.duplicates)
      deps.logger.info({ ubicacion: u.id, duplicates: chunks.duplicates }, 'products read twice across pages; kept the last read');
    const records = chunks.build().map((value) => ({ ubicacionId: u.id, key: u.id, value }));
    return { topic, records, rows: chunks.rowCount, snapshotId, fecha: null };
  });
}

/**
 * mssql is loaded only when a Stellar store is read (about 45 MB a KLK-only run never needs).
 * The reader's own iterator is handed on, not wrapped in another async generator: a `yield*`
 * layer costs a promise round per row (0.7 CPU s of a chain cycle in bench/extract-stages).
 */
function stellarRows(...args: Parameters<typeof import('./stellar-inventario.ts').stellarInventario>): AsyncIterable<InventoryRow> {
  return {
    [Symbol.asyncIterator]() {
      let inner: AsyncGenerator<InventoryRow> | undefined;
      return {
        next: () => (inner ? inner.next() : import('./stellar-inventario.ts').then((m) => (inner = m.stellarInventario(...args)).next())),
        return: (value?: unknown) =>
          inner ? inner.return(value as never) : Promise.resolve({ done: true as const, value: undefined as never }),
        throw: (err?: unknown) => (inner ? inner.throw(err) : Promise.reject(err)),
      };
    },
  };
}

/** The KLK client of one store, with its key read from the environment. */
function klkApiFor(u: Ubicacion & { pos: 'klk' }, deps: PosReadDeps, opts: ExtractionOptions, signal: AbortSignal) {
  return createKlkApi({
    ubicacionId: u.id,
    baseUrl: u.klk.baseUrl,
    apiKey: readSecret(deps.env, u.klk.apiKeyEnv, `KLK API key of ${u.id}`),
    apiKeyEnv: u.klk.apiKeyEnv,
    pageSize: u.klk.pageSize,
    requestTimeoutMs: opts.requestTimeoutMs ?? u.klk.timeoutMs,
    retry: opts.retry ?? DEFAULT_RETRY,
    signal,
    logger: deps.logger,
  });
}

function readInventario(
  u: Ubicacion,
  deposito: string,
  deps: PosReadDeps,
  opts: ExtractionOptions,
  signal: AbortSignal,
): AsyncIterable<InventoryRow> {
  if (u.pos === 'klk') {
    return klkApiFor(u, deps, opts, signal).inventario(deposito);
  }
  return stellarRows(
    {
      ubicacionId: u.id,
      host: u.stellar.host,
      port: u.stellar.port,
      database: u.stellar.database,
      user: readSecret(deps.env, u.stellar.userEnv, `SQL user of ${u.id}`),
      password: readSecret(deps.env, u.stellar.passwordEnv, `SQL password of ${u.id}`),
      passwordEnv: u.stellar.passwordEnv,
      tls: readStellarTls(u, deps.env),
      connectTimeoutMs: u.stellar.connectTimeoutMs,
      requestTimeoutMs: u.stellar.requestTimeoutMs,
      signal,
      logger: deps.logger,
    },
    deposito,
  );
}

/**
 * One store's whole inventory as its POS reports it now, deposito after deposito, checked
 * row by row, without publishing it: the productos refresh reads its catalogue fields.
 */
export async function* readStoreInventario(
  u: Ubicacion,
  deps: PosReadDeps,
  opts: ExtractionOptions,
  signal: AbortSignal,
): AsyncGenerator<InventoryRow> {
  for (const deposito of u.depositos) yield* readInventario(u, deposito, deps, opts, signal);
}

/** Reads one day of sales from every KLK store and publishes them, one transaction per store. */
export async function extractVentas(
  stores: Ubicacion[],
  fecha: string,
  job: 'VENTAS' | 'VENTAS_RECOVERY',
  deps: ExtractionDeps,
  opts: ExtractionOptions = {},
): Promise<StoreOutcome[]> {
  const now = deps.now ?? (() => new Date());
  const topic = topicName('pos.ventas.raw', deps.topicPrefix);
  const codec = await createTopicCodec(deps.registry, 'pos.ventas.raw', topic);
  return runStores(stores, job, deps, opts, async (u, signal, runId) => {
    if (u.pos !== 'klk') throw new FluxionError(`${u.id} is on Stellar, which has no sales API`, { code: 'NOT_SUPPORTED' });
    const api = klkApiFor(u, deps, opts, signal);
    const extractedAt = now();
    const lines = new Map<string, VentaLinea>();
    for await (const line of api.ventas(fecha)) lines.set(`${line.numero_factura}\u0000${line.linea}`, line);
    const records: OutgoingRecord[] = [];
    for (const linea of lines.values()) {
      records.push({
        ubicacionId: u.id,
        key: `${u.id}/${linea.numero_factura}`,
        value: codec.encode({ linea, extracted_at: extractedAt, run_id: runId }),
      });
    }
    return { topic, records, rows: records.length, snapshotId: null, fecha };
  });
}
