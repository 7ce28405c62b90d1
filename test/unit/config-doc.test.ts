/**
 * Configuration declared once: docs/configuration.md and ENV_VARS are generated from the
 * schemas (core/config/env-var.ts), and what they say is what loadConfig does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENV_VARS, loadConfig } from '../../cli/config.ts';
import { REGENERATE, withGeneratedTable } from '../../core/config/env-doc.ts';
import { projectPath } from '../../core/paths.ts';
import { DEFAULT_PHANTOM_CONFIG } from '../../processors/phantom-rules.ts';
import { DEFAULT_RETENTION_DAYS } from '../../processors/ventas-dedupe-rules.ts';
import { problemsOf } from '../helpers/config-errors.ts';

describe('docs/configuration.md', () => {
  it('holds the table the schemas generate', () => {
    const committed = readFileSync(projectPath('docs/configuration.md'), 'utf8');
    const stale = `docs/configuration.md is stale: run \`${REGENERATE}\` and commit the result`;
    expect(committed, stale).toBe(withGeneratedTable(committed, ENV_VARS));
  });

  it('names every variable once, with a meaning', () => {
    const names = ENV_VARS.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    const fromEachOwner = ['KAFKA_BROKERS', 'SENTRY_DSN', 'FLUXION_PHANTOM_RULES', 'FLUXION_ABC_WINDOW_DAYS', 'FLUXION_SYNC_TOKEN'];
    expect(names).toEqual(expect.arrayContaining(fromEachOwner));
    for (const v of ENV_VARS) expect(v.description.length, v.name).toBeGreaterThan(10);
  });
});

describe('ENV_VARS', () => {
  it('documents the defaults loadConfig applies: setting each documented default changes nothing', () => {
    const defaults = JSON.stringify(loadConfig({}));
    const documented = ENV_VARS.filter((v) => v.default !== undefined);
    expect(documented.length).toBeGreaterThan(35);
    for (const v of documented) expect(JSON.stringify(loadConfig({ [v.name]: v.default })), v.name).toBe(defaults);
  });

  it('marks the secrets, whose values a bad environment never shows', () => {
    expect(ENV_VARS.filter((v) => v.secret).map((v) => v.name)).toEqual([
      'KAFKA_SASL_PASSWORD',
      'SCHEMA_REGISTRY_PASSWORD',
      'DATABASE_URL',
      'SENTRY_DSN',
      'SENDGRID_API_KEY',
      'FLUXION_SYNC_TOKEN',
    ]);
    const problems = problemsOf(() =>
      loadConfig({ DATABASE_URL: 'mysql://u:pw-123@h/db', SENDGRID_API_KEY: 'key-456', FLUXION_SYNC_TOKEN: 'tok-789' }),
    );
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'DATABASE_URL=(value hidden)',
      'SENDGRID_API_KEY=(value hidden)',
      'FLUXION_SYNC_TOKEN=(value hidden)',
    ]);
    expect(problems.join('\n')).not.toMatch(/pw-123|key-456|tok-789/);
  });

  it('reads SENTRY_* through the schema: the environment falls back to ETL_ENVIRONMENT', () => {
    expect(loadConfig({ ETL_ENVIRONMENT: 'production' }).sentry).toEqual({ dsn: undefined, environment: 'production' });
    const dsn = 'https://k@o1.ingest.sentry.io/2';
    expect(loadConfig({ SENTRY_DSN: ` ${dsn} `, SENTRY_ENVIRONMENT: 'staging' }).sentry).toEqual({ dsn, environment: 'staging' });
  });
});

describe('defaults kept outside the schemas agree with them', () => {
  // processors/phantom-rules.ts and processors/ventas-dedupe-rules.ts keep defaults for the pure
  // rules' tests and the bench; until they read them from processors/config.ts, this pins them.
  it('DEFAULT_PHANTOM_CONFIG is the phantom configuration of an empty environment', () => {
    const { rules, ...loaded } = loadConfig({}).processors.phantom;
    const { rules: defaultRules, ...kept } = DEFAULT_PHANTOM_CONFIG;
    expect(kept).toEqual(loaded);
    expect([...defaultRules].sort()).toEqual([...rules].sort());
  });

  it('DEFAULT_RETENTION_DAYS is FLUXION_DEDUPE_RETENTION_DAYS default', () => {
    expect(loadConfig({}).processors.dedupeRetentionDays).toBe(DEFAULT_RETENTION_DAYS);
  });
});

describe('the configuration modules keep the dependency rule', () => {
  const IMPORT = /^import[^;]*? from '([^']+)'/gms;
  const importsOf = (file: string) => [...readFileSync(projectPath(file), 'utf8').matchAll(IMPORT)].map((m) => m[1]!);

  it('core/config imports only core and libraries', () => {
    for (const f of readdirSync(projectPath('core/config'))) {
      const allowed = /^(\.\/|\.\.\/[a-z0-9-]+\.ts$|node:|zod$|yaml$)/;
      for (const spec of importsOf(join('core/config', f))) expect(spec, `core/config/${f}`).toMatch(allowed);
    }
  });

  it("each component's config.ts imports core and its own component only", () => {
    for (const c of ['processors', 'sinks', 'ops']) {
      for (const spec of importsOf(`${c}/config.ts`)) expect(spec, `${c}/config.ts`).toMatch(/^(\.\/|\.\.\/core\/|zod$)/);
    }
  });
});
