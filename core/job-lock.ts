/**
 * Never two runs of one job at once, across processes and containers: a PostgreSQL
 * session-level advisory lock per job, taken by the job itself (`fluxion extract ...`,
 * `fluxion abc recalc`, `fluxion productos refresh`, the jobs of `fluxion schedule`) on a
 * connection of its own and held until the run ends. `fluxion schedule` already skips a tick
 * while its own previous run goes on; scheduled containers (deploy/aws/) start each run in a
 * new process, so only a lock outside the process can see the other run.
 *
 * - The key is a 64-bit hash of the topic prefix and the job: runs feeding the same topics
 *   (and so the same tables) exclude each other; a test or an environment with its own
 *   prefix never waits for another's. Advisory locks are per database, too.
 * - A run that finds the lock taken does nothing and ends with JobLockedError (exit code
 *   JOB_LOCKED_EXIT_CODE), naming the holder: no failure mail, no Sentry check-in (the
 *   running one reports).
 * - The lock dies with its session: a container killed mid-run frees it at once (PostgreSQL
 *   ends the backend when the TCP connection drops; keepalive finds a silent peer).
 * - PostgreSQL unreachable or DATABASE_URL unset: the run goes on without the lock (logged).
 *   Publishing the snapshot matters more; two overlapping extractions still cannot both
 *   commit a store, since their producers share the store's transactional id and Kafka
 *   fences the older one (that store fails in it).
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { FluxionError, errorMessage, type FluxionErrorOptions } from './errors.ts';
import { DEFAULT_LOCALE, defineMessages, type Locale } from './i18n.ts';
import { scrubSecrets, type Logger } from './logger.ts';

/** EX_TEMPFAIL (sysexits.h): nothing failed, the run was not started; try again later. */
export const JOB_LOCKED_EXIT_CODE = 75;

/** Another run of the job holds its lock: this one did not start. */
export class JobLockedError extends FluxionError {
  override readonly exitCode = JOB_LOCKED_EXIT_CODE;
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'JOB_LOCKED', ...options });
  }
}

export interface JobLockOptions {
  /** Unset: no lock (a command that runs without PostgreSQL). */
  databaseUrl: string | undefined;
  topicPrefix: string;
  logger: Logger;
  locale?: Locale;
}

/** Who holds a job's lock, as pg_stat_activity tells it. */
export interface LockHolder {
  applicationName: string;
  clientAddr: string | null;
  since: Date;
}

const messages = defineMessages({
  en: {
    locked: (job: string, holder: string) =>
      `job ${job} is already running in another process (${holder}); this run did not start and changed nothing. ` +
      'Wait for that run to end, or for the next scheduled one',
    holder: (name: string, addr: string, since: string) => `${name}${addr ? ` at ${addr}` : ''}, since ${since} Caracas time`,
    unknownHolder: 'holder not visible to this database user',
  },
  es: {
    locked: (job: string, holder: string) =>
      `el trabajo ${job} ya se está ejecutando en otro proceso (${holder}); esta corrida no empezó y no cambió nada. ` +
      'Espere a que termine esa corrida, o a la próxima programada',
    holder: (name: string, addr: string, since: string) => `${name}${addr ? ` en ${addr}` : ''}, desde las ${since} hora de Caracas`,
    unknownHolder: 'el usuario de la base de datos no ve quién la tiene',
  },
});

/** The advisory lock key of a job: the first 8 bytes of SHA-256 over prefix and job, as a signed bigint. */
export function jobLockKey(job: string, topicPrefix: string): bigint {
  return createHash('sha256').update(`fluxion-job\u0000${topicPrefix}\u0000${job}`).digest().readBigInt64BE(0);
}

/** pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits), both unsigned. */
function lockIds(key: bigint): { classid: string; objid: string } {
  const unsigned = BigInt.asUintN(64, key);
  return { classid: String(unsigned >> 32n), objid: String(unsigned & 0xffff_ffffn) };
}

async function findHolder(client: pg.Client, key: bigint): Promise<LockHolder | null> {
  const { classid, objid } = lockIds(key);
  const r = await client.query<{ application_name: string; client_addr: string | null; backend_start: Date }>(
    `SELECT a.application_name, host(a.client_addr) AS client_addr, a.backend_start
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid = $1::oid AND l.objid = $2::oid AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [classid, objid],
  );
  const row = r.rows[0];
  return row ? { applicationName: row.application_name, clientAddr: row.client_addr, since: row.backend_start } : null;
}

function caracasTime(at: Date): string {
  return new Intl.DateTimeFormat('es-VE', { timeZone: 'America/Caracas', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(
    at,
  );
}

/** The text of a refused run, in the operators' language. */
export function describeLocked(job: string, holder: LockHolder | null, locale: Locale = DEFAULT_LOCALE): string {
  const m = messages(locale);
  const who = holder ? m.holder(holder.applicationName || '?', holder.clientAddr ?? '', caracasTime(holder.since)) : m.unknownHolder;
  return m.locked(job, who);
}

/**
 * Runs `work` holding the job's lock; throws JobLockedError, without running it, when another
 * run holds the lock. See the module header for what happens without PostgreSQL.
 */
export async function withJobLock<T>(job: string, options: JobLockOptions, work: () => Promise<T>): Promise<T> {
  const log = options.logger.child({ component: 'job-lock', job });
  if (!options.databaseUrl) {
    log.warn('DATABASE_URL is not set: running without the job lock (a run of this job elsewhere is not seen)');
    return work();
  }
  const key = jobLockKey(job, options.topicPrefix);
  // Its own connection, not the pool's: the lock lives as long as this session, and a pooled
  // client would be handed to other queries between them.
  const client = new pg.Client({
    connectionString: options.databaseUrl,
    application_name: `fluxion ${job} ${hostname()}`.slice(0, 63),
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  });
  let lost = false;
  client.on('error', (err) => {
    lost = true;
    log.error(
      { err: { message: scrubSecrets(err.message) } },
      'the job lock connection was lost: the run goes on, no longer guarded against a second one',
    );
  });
  let held = false;
  try {
    await client.connect();
    const r = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [String(key)]);
    held = r.rows[0]?.locked === true;
  } catch (err) {
    log.warn({ err: { message: scrubSecrets(errorMessage(err)) } }, 'PostgreSQL unreachable for the job lock: running without it');
    await client.end().catch(() => undefined);
    return work();
  }
  if (!held) {
    const holder = await findHolder(client, key).catch(() => null);
    await client.end().catch(() => undefined);
    log.warn({ holder }, 'another run of this job holds its lock: not started');
    throw new JobLockedError(describeLocked(job, holder, options.locale), { context: { job } });
  }
  log.debug({ key: String(key) }, 'job lock taken');
  try {
    return await work();
  } finally {
    // Ending the session releases the lock; an explicit unlock first spares the server the wait.
    if (!lost) await client.query('SELECT pg_advisory_unlock($1::bigint)', [String(key)]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
