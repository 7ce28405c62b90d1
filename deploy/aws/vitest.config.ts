import { defineConfig } from 'vitest/config';

// The template test runs from scripts/deploy-aws-check, after deploy/aws's own install (the
// root suite's projects do not include it: aws-cdk-lib is not a root dependency).
export default defineConfig({
  test: {
    include: ['deploy/aws/test/**/*.test.ts'],
    reporters: ['default'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
