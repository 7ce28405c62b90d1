/**
 * From the repository's configuration to the template: the plan (plan.ts) of config/schedule.yaml,
 * the store list and FLUXION_TOPIC_PARTITIONS, then the stack (stack.ts), synthesized offline.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { loadConfig } from '../../../cli/config.ts';
import { loadUbicacionesFile, type UbicacionConfig } from '../../../core/config/ubicaciones.ts';
import { projectPath } from '../../../core/paths.ts';
import { loadScheduleFile, type ScheduleConfig } from '../../../ops/schedule-config.ts';
import { deploymentPlan, type DeploymentPlan } from './plan.ts';
import { STACK_NAME, createFluxionStack } from './stack.ts';

export interface Inputs {
  schedule: ScheduleConfig;
  stores: UbicacionConfig[];
  partitions: number;
}

/** The repository's configuration, read through the same loaders the processes use. */
export function repositoryInputs(env: NodeJS.ProcessEnv = process.env): Inputs {
  // Only the variables the template depends on, validated as every process validates them.
  const config = loadConfig({
    FLUXION_TOPIC_PARTITIONS: env.FLUXION_TOPIC_PARTITIONS,
    FLUXION_UBICACIONES_FILE: env.FLUXION_UBICACIONES_FILE,
  });
  return {
    schedule: loadScheduleFile(),
    stores: loadUbicacionesFile(projectPath(config.ubicacionesFile)),
    partitions: config.topics.partitions,
  };
}

export interface Synthesized {
  plan: DeploymentPlan;
  templateFile: string;
  template: CfnTemplate;
}

export interface CfnTemplate {
  Parameters: Record<string, Record<string, unknown>>;
  Conditions?: Record<string, unknown>;
  Resources: Record<string, { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, unknown>; Condition?: string }>;
  Outputs?: Record<string, unknown>;
}

/** Synthesizes into `outdir` (a cloud assembly); no account, no region, no lookup, no network. */
export function synthesize(inputs: Inputs, outdir: string): Synthesized {
  const plan = deploymentPlan(inputs.schedule, inputs.stores, inputs.partitions);
  // CDK's own template validation (CloudFormation's schemas) fails the synth instead of warning.
  const app = new App({
    outdir,
    analyticsReporting: false,
    context: { 'aws:cdk:disable-version-reporting': true, '@aws-cdk/core:validateAgainstDefaultRules': true },
  });
  createFluxionStack(app, plan);
  app.synth();
  const templateFile = join(outdir, `${STACK_NAME}.template.json`);
  return { plan, templateFile, template: JSON.parse(readFileSync(templateFile, 'utf8')) as CfnTemplate };
}
