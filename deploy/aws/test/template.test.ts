/**
 * The synthesized template agrees with the repository: every job of config/schedule.yaml is one
 * schedule with the same firing instants, time zone and enabled state, running the job's
 * one-shot command of docs/schedule.md; every secret the store list and ENV_VARS mark is read
 * from SSM or Secrets Manager by the tasks that need it and by no other, and never appears as
 * a plain variable; only Stellar readers get the VPN subnets; replicas stop at the partition
 * count. Synthesized in process, offline, as scripts/deploy-aws-check does.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cron } from 'croner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgram } from '../../../cli/main.ts';
import { ENV_VARS } from '../../../cli/config.ts';
import { PROJECT_ROOT } from '../../../core/paths.ts';
import { CronConversionError, toEventBridgeCron } from '../lib/cron.ts';
import { repositoryInputs, synthesize, type CfnTemplate, type Inputs } from '../lib/synth.ts';

const dirs: string[] = [];
function synth(inputs: Inputs): CfnTemplate {
  const dir = mkdtempSync(join(tmpdir(), 'fluxion-cdk-'));
  dirs.push(dir);
  return synthesize(inputs, dir).template;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let inputs: Inputs;
let template: CfnTemplate;
beforeAll(() => {
  inputs = repositoryInputs({});
  template = synth(inputs);
}, 120_000);

type Resource = CfnTemplate['Resources'][string];
type Ref = { Ref: string };
/** A value the stack makes conditional (Fn::If), or the value itself. */
type MaybeConditional<T> = T | { 'Fn::If': [string, T, unknown] };
type SecretEntry = { Name: string; ValueFrom: unknown };
/** The parts of the template's resources these tests read, as the stack writes them (deploy/aws/lib/stack.ts). */
interface ContainerDefinition {
  Command: string[];
  Environment: Array<{ Name: string; Value: unknown }>;
  Secrets: Array<MaybeConditional<SecretEntry>>;
  HealthCheck: { Command: string[] };
  LogConfiguration: { Options: Record<string, Ref> };
}
interface NetworkConfiguration {
  AwsvpcConfiguration: { Subnets: Ref };
}
interface ScheduleProperties {
  Name: { 'Fn::Sub': string };
  State: MaybeConditional<string>;
  ScheduleExpression: string;
  ScheduleExpressionTimezone: string;
  FlexibleTimeWindow: unknown;
  Target: {
    Arn: unknown;
    EcsParameters: { LaunchType: string; TaskCount: number; TaskDefinitionArn: Ref; NetworkConfiguration: NetworkConfiguration };
  };
}
interface ServiceProperties {
  DesiredCount: MaybeConditional<unknown>;
  TaskDefinition: Ref;
  NetworkConfiguration: NetworkConfiguration;
}
const propertiesOf = <T>(r: Resource) => r.Properties as unknown as T;
const ofType = (t: CfnTemplate, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);
const container = (r: Resource) => propertiesOf<{ ContainerDefinitions: ContainerDefinition[] }>(r).ContainerDefinitions[0]!;

/** A container's secrets, conditional ones (Fn::If) included. */
function secretsOf(r: Resource): SecretEntry[] {
  return container(r).Secrets.map((s) => ('Fn::If' in s ? s['Fn::If'][1] : s));
}

/** The task definition a schedule or service runs. */
function taskOf(t: CfnTemplate, ref: { Ref: string }): Resource {
  const r = t.Resources[ref.Ref];
  if (!r) throw new Error(`no resource ${ref.Ref}`);
  return r;
}

/** The properties of a job's schedule. */
function scheduleOf(t: CfnTemplate, job: string): ScheduleProperties {
  const found = ofType(t, 'AWS::Scheduler::Schedule')
    .map(([, r]) => propertiesOf<ScheduleProperties>(r))
    .filter((p) => p.Name['Fn::Sub'] === `\${AWS::StackName}-${job}`);
  expect(found, `schedules of ${job}`).toHaveLength(1);
  return found[0]!;
}

/** A value as the stack deploys with Running=true (the default), or with Running=false. */
function whenRunning(value: unknown, running = true): unknown {
  if (typeof value !== 'object' || value === null || !('Fn::If' in value)) return value;
  const [condition, ifTrue, ifFalse] = value['Fn::If'] as [unknown, unknown, unknown];
  return condition === 'IsRunning' ? (running ? ifTrue : ifFalse) : value;
}

/** The instants a cron fires at in its time zone over two weeks, as croner reads it. */
function firings(expression: string, timezone: string): string[] {
  const cron = new Cron(expression, { timezone, paused: true, mode: '5-part' });
  const out: string[] = [];
  let at: Date | null = new Date('2026-03-02T00:00:00Z');
  const until = at.getTime() + 14 * 86_400_000;
  while ((at = cron.nextRun(at)) && at.getTime() < until) out.push(at.toISOString());
  cron.stop();
  return out;
}

/** EventBridge's `cron(m h dom mon dow year)` read back into five fields croner understands. */
function fromEventBridge(expression: string): string {
  const m = /^cron\((.+)\)$/.exec(expression);
  if (!m) throw new Error(`not a cron() expression: ${expression}`);
  const fields = m[1]!.split(' ');
  expect(fields).toHaveLength(6);
  expect(fields[5]).toBe('*');
  // EventBridge's `start/step` runs to the field's end: croner spells it `start-max/step`.
  const max = [59, 23, 31, 12];
  return fields
    .slice(0, 5)
    .map((f, i) => (f === '?' ? '*' : f.replace(/^(\d+)\/(\d+)$/, (_m, start: string, step: string) => `${start}-${max[i]}/${step}`)))
    .join(' ');
}

/** The one-shot command of each job, from docs/schedule.md's table (what operators read). */
function documentedCommands(): Map<string, string> {
  const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'schedule.md'), 'utf8');
  return new Map([...doc.matchAll(/^\| `([a-z-]+)` \|[^|]+\|[^|]+\| `fluxion ([^`]+)` \|/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Whether the words name a real `fluxion` command and options of it. */
function isFluxionCommand(words: readonly string[]): boolean {
  let command = createProgram({ context: () => undefined as never, out: () => undefined, err: () => undefined, fail: () => undefined });
  for (const word of words) {
    if (word.startsWith('--')) {
      if (!command.options.some((o) => o.long === word)) return false;
    } else if (/^\d+$/.test(word)) {
    } else {
      const sub = command.commands.find((c) => c.name() === word);
      if (!sub) return false;
      command = sub;
    }
  }
  return true;
}

const secretEnvVars = ENV_VARS.filter((v) => v.secret).map((v) => v.name);

function storeSecrets(filter: (pos: 'klk' | 'stellar') => boolean, active = true): string[] {
  return inputs.stores
    .filter((u) => u.activa === active && filter(u.pos))
    .flatMap((u) => (u.klk ? [u.klk.api_key_env] : [u.stellar!.user_env, u.stellar!.password_env]));
}

describe('deploy/aws template: the scheduled jobs', () => {
  it('has one schedule per job of config/schedule.yaml, firing at the same instants in the same time zone', () => {
    expect(ofType(template, 'AWS::Scheduler::Schedule')).toHaveLength(inputs.schedule.jobs.length);
    for (const job of inputs.schedule.jobs) {
      const s = scheduleOf(template, job.name);
      expect(s.ScheduleExpressionTimezone, job.name).toBe(job.timezone);
      expect(s.ScheduleExpressionTimezone).toBe('America/Caracas');
      expect(whenRunning(s.State), job.name).toBe(job.enabled ? 'ENABLED' : 'DISABLED');
      // Running=false (first deploy, a pause) disables every schedule.
      expect(whenRunning(s.State, false), job.name).toBe('DISABLED');
      expect(s.FlexibleTimeWindow).toEqual({ Mode: 'OFF' });
      const ours = firings(fromEventBridge(s.ScheduleExpression), s.ScheduleExpressionTimezone);
      expect(ours.length, job.name).toBeGreaterThan(0);
      expect(ours, `${job.name}: ${s.ScheduleExpression} against ${job.cron}`).toEqual(firings(job.cron, job.timezone));
    }
  });

  it("runs each job's one-shot command of docs/schedule.md, a real fluxion command, as a Fargate task on the cluster", () => {
    const documented = documentedCommands();
    expect([...documented.keys()].sort()).toEqual(inputs.schedule.jobs.map((j) => j.name).sort());
    for (const job of inputs.schedule.jobs) {
      const target = scheduleOf(template, job.name).Target;
      expect(target.Arn).toEqual({ 'Fn::GetAtt': ['Cluster', 'Arn'] });
      expect(target.EcsParameters.LaunchType).toBe('FARGATE');
      expect(target.EcsParameters.TaskCount).toBe(1);
      const command = container(taskOf(template, target.EcsParameters.TaskDefinitionArn)).Command;
      expect(command.join(' '), job.name).toBe(documented.get(job.name));
      expect(isFluxionCommand(command), command.join(' ')).toBe(true);
    }
    expect(isFluxionCommand(['extract', 'inventario', '--no-such-flag'])).toBe(false);
  });

  it('makes a disabled job a disabled schedule, and only that one', () => {
    const [first, ...rest] = inputs.schedule.jobs;
    const t = synth({ ...inputs, schedule: { jobs: [{ ...first!, enabled: false }, ...rest] } });
    expect(scheduleOf(t, first!.name).State).toBe('DISABLED');
    for (const job of rest) expect(whenRunning(scheduleOf(t, job.name).State)).toBe(job.enabled ? 'ENABLED' : 'DISABLED');
  }, 120_000);
});

describe('deploy/aws template: secrets', () => {
  const tasks = () => ofType(template, 'AWS::ECS::TaskDefinition');

  it('reads every secret of ENV_VARS and of the active stores from SSM or Secrets Manager, and nothing else', () => {
    const read = new Set(tasks().flatMap(([, r]) => secretsOf(r).map((s) => s.Name)));
    expect([...read].sort()).toEqual([...new Set([...secretEnvVars, ...storeSecrets(() => true)])].sort());
    for (const [id, r] of tasks()) {
      for (const s of secretsOf(r)) {
        if (s.Name === 'FLUXION_SYNC_TOKEN') expect(s.ValueFrom, id).toEqual({ Ref: 'SyncToken' });
        else expect(JSON.stringify(s.ValueFrom), `${id} ${s.Name}`).toMatch(new RegExp(`:parameter\\$\\{ParameterPath\\}/${s.Name}"`));
      }
    }
    // Inactive stores' credentials are not asked for.
    for (const name of storeSecrets(() => true, false)) expect(read.has(name), name).toBe(false);
  });

  it('never puts a secret in a plain variable, a parameter default or any literal of the template', () => {
    const all = [...secretEnvVars, ...storeSecrets(() => true), ...storeSecrets(() => true, false)];
    for (const [id, r] of tasks()) {
      for (const e of container(r).Environment) expect(all, `${id} ${e.Name}`).not.toContain(e.Name);
    }
    for (const [name, p] of Object.entries(template.Parameters)) {
      expect(
        all.some((s) => name.toUpperCase().includes(s)),
        name,
      ).toBe(false);
      expect(String(p.Default ?? ''), name).not.toMatch(/^SG\.|postgres:\/\/.*:.*@|https:\/\/\w+@/);
    }
    // The load balancer compares the header with a value resolved at deploy time, never written here.
    const rule = ofType(template, 'AWS::ElasticLoadBalancingV2::ListenerRule')[0]![1];
    expect(JSON.stringify(rule.Properties.Conditions)).toContain('{{resolve:secretsmanager:');
    expect(ofType(template, 'AWS::SecretsManager::Secret')[0]![1].Properties.GenerateSecretString).toBeDefined();
  });

  it('gives each job the credentials of exactly the stores it reads', () => {
    const klk = storeSecrets((pos) => pos === 'klk');
    const stellar = storeSecrets((pos) => pos === 'stellar');
    const expected: Record<string, string[]> = {
      inventario: [...klk, ...stellar],
      ventas: klk,
      'ventas-recovery': klk,
      abc: [],
      'productos-refresh': [...klk, ...stellar],
    };
    const posNames = new Set([...klk, ...stellar]);
    for (const job of inputs.schedule.jobs) {
      const task = taskOf(template, scheduleOf(template, job.name).Target.EcsParameters.TaskDefinitionArn);
      const names = secretsOf(task).map((s) => s.Name);
      expect(names.filter((n) => posNames.has(n)).sort(), job.name).toEqual([...expected[job.name]!].sort());
      expect(names, job.name).toContain('DATABASE_URL'); // the job lock (core/job-lock.ts)
    }
  });
});

describe('deploy/aws template: network, services, sizing', () => {
  it('places only the tasks that read a Stellar POS in the VPN subnets', () => {
    const subnetsOf = (network: NetworkConfiguration) => network.AwsvpcConfiguration.Subnets.Ref;
    const vpnJobs = inputs.schedule.jobs.filter((j) => ['inventario', 'productos-refresh'].includes(j.name)).map((j) => j.name);
    for (const job of inputs.schedule.jobs) {
      const network = scheduleOf(template, job.name).Target.EcsParameters.NetworkConfiguration;
      expect(subnetsOf(network), job.name).toBe(vpnJobs.includes(job.name) ? 'VpnSubnetIds' : 'PrivateSubnetIds');
    }
    for (const [id, s] of ofType(template, 'AWS::ECS::Service')) {
      expect(subnetsOf(propertiesOf<ServiceProperties>(s).NetworkConfiguration), id).toBe(
        id === 'DashboardService' ? 'VpnSubnetIds' : 'PrivateSubnetIds',
      );
    }
  });

  it('runs the six services with health checks, the processors scaled by a parameter capped at the partition count', () => {
    const services = Object.fromEntries(ofType(template, 'AWS::ECS::Service'));
    expect(Object.keys(services).sort()).toEqual([
      'DashboardService',
      'DedupeService',
      'DifferService',
      'NotifierService',
      'PhantomService',
      'SinkService',
    ]);
    for (const name of ['Differ', 'Dedupe', 'Phantom', 'Sink']) {
      const service = propertiesOf<ServiceProperties>(services[`${name}Service`]!);
      expect(whenRunning(service.DesiredCount)).toEqual({ Ref: `${name}Replicas` });
      expect(whenRunning(service.DesiredCount, false)).toBe(0);
      expect(template.Parameters[`${name}Replicas`]).toMatchObject({ Type: 'Number', MinValue: 1, MaxValue: inputs.partitions });
      const task = taskOf(template, service.TaskDefinition);
      expect(container(task).HealthCheck.Command.join(' '), name).toContain('/metrics');
      expect(task.Metadata?.['fluxion:sizing'], name).toMatch(/^bench\/results\/\d{4}-\d\d-\d\d-[a-z0-9-]+\.json: /);
    }
    const dashboard = taskOf(template, propertiesOf<ServiceProperties>(services.DashboardService!).TaskDefinition);
    expect(container(dashboard).HealthCheck.Command.join(' ')).toContain('/healthz');
    expect(ofType(template, 'AWS::ElasticLoadBalancingV2::TargetGroup')[0]![1].Properties.HealthCheckPath).toBe('/healthz');
    // FLUXION_TOPIC_PARTITIONS at synth is the cap, and what every container is told.
    const three = synth({ ...inputs, partitions: 3 });
    expect(three.Parameters.DifferReplicas!.MaxValue).toBe(3);
    for (const [id, r] of ofType(three, 'AWS::ECS::TaskDefinition')) {
      expect(container(r).Environment.find((e) => e.Name === 'FLUXION_TOPIC_PARTITIONS')?.Value, id).toBe('3');
    }
  }, 120_000);

  it('writes every task to its own log group with the retention parameter', () => {
    const groups = Object.fromEntries(ofType(template, 'AWS::Logs::LogGroup'));
    const tasks = ofType(template, 'AWS::ECS::TaskDefinition');
    expect(Object.keys(groups)).toHaveLength(tasks.length);
    for (const [id, r] of tasks) {
      const group = container(r).LogConfiguration.Options['awslogs-group']!.Ref;
      expect(groups[group]?.Properties.RetentionInDays, id).toEqual({ Ref: 'LogRetentionDays' });
    }
  });
});

describe('toEventBridgeCron', () => {
  it('turns a five-field cron into EventBridge form', () => {
    expect(toEventBridgeCron('0,30 6-21 * * *')).toBe('cron(0,30 6-21 * * ? *)');
    expect(toEventBridgeCron('15 */6 * * *')).toBe('cron(15 0/6 * * ? *)');
    expect(toEventBridgeCron('0 4 * * 1-5')).toBe('cron(0 4 ? * MON-FRI *)');
    expect(toEventBridgeCron('0 4 * * 0,7')).toBe('cron(0 4 ? * SUN,SUN *)');
    expect(toEventBridgeCron('0 4 1 * *')).toBe('cron(0 4 1 * ? *)');
  });

  it('refuses what EventBridge cannot say, naming it', () => {
    expect(() => toEventBridgeCron('0 4 1 * 1')).toThrow(CronConversionError);
    expect(() => toEventBridgeCron('0 4 1 * 1')).toThrow(/both the day of the month and the weekday/);
    expect(() => toEventBridgeCron('0 4 * * */2')).toThrow(/weekday step/);
    expect(() => toEventBridgeCron('0 4 * *')).toThrow(/expected 5 fields/);
  });
});
