import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';

// test/integration/pos-keepalive.test.ts spends ~85 s waiting for the kernel's TCP keepalive
// on a cut link (simulators in a network namespace, no shared service): it runs beside the unit
// files, in a worker of its own, instead of in the integration files' single line. Projects
// with the same sequence.groupOrder and maxWorkers share one pool, files sorted by project name
// ('keepalive' before 'unit'), so it starts first and the units run in the other worker.
const KEEPALIVE = 'test/integration/pos-keepalive.test.ts';
const besideUnits = Math.max(2, availableParallelism() - 1);

export default defineConfig({
  test: {
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          maxWorkers: besideUnits,
        },
      },
      {
        test: {
          name: 'keepalive',
          include: [KEEPALIVE],
          maxWorkers: besideUnits,
          testTimeout: 90_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: [...configDefaults.exclude, KEEPALIVE],
          // One broker, registry and database for all files; each test uses its own topics
          // and database, but two cores cannot run many clients at once.
          fileParallelism: false,
          testTimeout: 90_000,
          hookTimeout: 180_000,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
      {
        test: {
          // Restarts the shared broker and PostgreSQL, so it must never overlap an integration
          // file. Both projects run their files one at a time, and vitest schedules such
          // projects one after the other in this order (a sequence.groupOrder made vitest 4.1
          // run this one first, checked on a toy config).
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 900_000,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
