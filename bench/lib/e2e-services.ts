/**
 * bench/e2e's services: their addresses from `scripts/services env`, each checked reachable
 * before the run creates anything, with the way to start them in the message.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createKafkaClient, type FluxionAdmin } from '../../core/kafka/client.ts';
import { createLogger } from '../../core/logger.ts';
import { cleanups } from './e2e-processes.ts';
import { servicesEnv } from './services-env.ts';

export interface E2eServices {
  services: Record<string, string>;
  adminDb: pg.Pool;
  admin: FluxionAdmin;
}

/** The services' addresses, a PostgreSQL pool on the admin database and a Kafka admin, all reachable. */
export async function connectServices(): Promise<E2eServices> {
  const services = (() => {
    try {
      return servicesEnv();
    } catch (err) {
      throw new Error(
        `cannot read the services' addresses (scripts/services env): ${(err as Error).message}\nstart them with scripts/services up ` +
          `(bench/e2e does it for you)`,
      );
    }
  })();
  for (const name of ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'DATABASE_URL'])
    if (!services[name]) throw new Error(`scripts/services env gave no ${name}: run scripts/services up`);
  const logger = createLogger({ level: 'error', destination: 2 });
  const kafka = createKafkaClient({ brokers: services.KAFKA_BROKERS!.split(','), clientId: 'fluxion-bench-e2e', logger });
  const adminDb = new pg.Pool({ connectionString: services.DATABASE_URL, max: 1, connectionTimeoutMillis: 5_000 });
  cleanups.push(() => adminDb.end());
  const reachable = async (what: string, check: () => Promise<unknown>) => {
    try {
      await Promise.race([check(), sleep(15_000).then(() => Promise.reject(new Error('no answer in 15 s')))]);
    } catch (err) {
      throw new Error(
        `${what} is not reachable (${(err as Error).message}): start the services with scripts/services up (bench/e2e does it for you)`,
      );
    }
  };
  await reachable(`PostgreSQL at ${new URL(services.DATABASE_URL!).host}`, () => adminDb.query('SELECT 1'));
  await reachable(`the schema registry at ${services.SCHEMA_REGISTRY_URL}`, async () => {
    const r = await fetch(`${services.SCHEMA_REGISTRY_URL}/subjects`);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
  });
  const admin = await kafka.admin();
  cleanups.push(() => admin.disconnect());
  await reachable(`Kafka at ${services.KAFKA_BROKERS}`, () => admin.describeCluster());
  return { services, adminDb, admin };
}
