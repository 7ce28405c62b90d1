/**
 * The composition root of the configuration: core's shared variables and each component's
 * own (processors/config.ts, sinks/config.ts, ops/config.ts), parsed together by one loader.
 * It lives in cli/ because core imports no component and components never import each other;
 * the CLI is the one layer allowed to import them all. Extractors read no variable of their
 * own: their per-store settings are in the store list (core/config/ubicaciones.ts).
 *
 * The section order is the order of ENV_VARS, of docs/configuration.md (`npm run docs:config`)
 * and of the problems a bad environment reports.
 */
import { composeConfig } from '../core/config/compose.ts';
import { coreSection, type FluxionConfig } from '../core/config/environment.ts';
import type { EnvVarSpec } from '../core/config/env-var.ts';
import { opsSection } from '../ops/config.ts';
import { processorsSection } from '../processors/config.ts';
import { sinksSection } from '../sinks/config.ts';

export {
  loadUbicaciones,
  requireDatabaseUrl,
  requireKafkaBrokers,
  requireNotifyDelivery,
  requireSchemaRegistryUrl,
  type FluxionConfig,
} from '../core/config/environment.ts';

const composed = composeConfig([coreSection, processorsSection, sinksSection, opsSection]);

/** Every variable Fluxion reads (besides the per-store POS credentials the store list names). */
export const ENV_VARS: readonly EnvVarSpec[] = composed.envVars;

/** Parses the environment; every problem is reported at once, each naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): FluxionConfig {
  return composed.load(env);
}
