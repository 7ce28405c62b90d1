/**
 * Which of our services a failure is about is set by the adapter that failed (core/errors.ts
 * `service`), never read from message text: the job-failure mail (ops/job-failure-mail.ts) names
 * it. Each adapter is driven here against a port nothing listens on.
 */
import { describe, expect, it } from 'vitest';
import { failedServiceOf, FluxionError, ServiceUnavailableError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { createPool, withTransaction } from '../../core/postgres.ts';
import { createRegistry } from '../../core/registry.ts';

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => new Error('expected a rejection'),
    (err: unknown) => err,
  );

describe('failedServiceOf', () => {
  it('names the service an adapter set, also through the errors that wrap it', () => {
    const down = new ServiceUnavailableError('PostgreSQL is not reachable', { service: 'postgres' });
    expect(failedServiceOf(down)).toBe('postgres');
    expect(failedServiceOf(new FluxionError('the recalculation failed', { code: 'ABC_RECALC', cause: down }))).toBe('postgres');
    expect(failedServiceOf(new Error('Kafka and PostgreSQL are both mentioned here'))).toBeNull();
    expect(failedServiceOf(new ServiceUnavailableError('a service without a name'))).toBeNull();
    expect(failedServiceOf('not an error')).toBeNull();
  });

  it('is set by the registry client and by the PostgreSQL transaction helper when they cannot connect', async () => {
    const registryDown = await rejection(createRegistry({ url: 'http://127.0.0.1:1' }).listSubjects());
    expect(registryDown).toBeInstanceOf(ServiceUnavailableError);
    expect(failedServiceOf(registryDown)).toBe('registry');

    const pool = createPool({ connectionString: 'postgres://fluxion@127.0.0.1:1/nowhere', logger: createLogger({ level: 'silent' }) });
    try {
      const postgresDown = await rejection(withTransaction(pool, async () => undefined));
      expect(postgresDown).toBeInstanceOf(ServiceUnavailableError);
      expect(failedServiceOf(postgresDown)).toBe('postgres');
    } finally {
      await pool.end();
    }
  });
});
