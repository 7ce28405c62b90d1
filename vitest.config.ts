import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
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
