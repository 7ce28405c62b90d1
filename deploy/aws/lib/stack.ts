/**
 * The CloudFormation of the whole pipeline (docs/deploy-aws.md), translated from the plan
 * (plan.ts). Environment-agnostic and lookup-free, so it synthesizes with no AWS account and
 * no network: the VPC, subnets, security groups, Kafka, the registry and PostgreSQL are
 * parameters; the account and region are the deploying stack's pseudo parameters.
 *
 * L1 resources (Cfn*) throughout: the L2 ECS, ELB and VPC constructs want a VPC object, which
 * from parameters means lookups or guessed availability zones. The synthesizer is bootstrapless:
 * the template deploys with plain `aws cloudformation deploy`, no `cdk bootstrap` stack.
 */
import { Aws, BootstraplessSynthesizer, CfnCondition, CfnOutput, type CfnParameter, Fn, Stack, type App } from 'aws-cdk-lib';
import { CfnCluster, CfnService, CfnTaskDefinition } from 'aws-cdk-lib/aws-ecs';
import { CfnSecurityGroup, CfnSecurityGroupIngress } from 'aws-cdk-lib/aws-ec2';
import { CfnListener, CfnListenerRule, CfnLoadBalancer, CfnTargetGroup } from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { CfnRole } from 'aws-cdk-lib/aws-iam';
import { CfnLogGroup } from 'aws-cdk-lib/aws-logs';
import { CfnSchedule } from 'aws-cdk-lib/aws-scheduler';
import { CfnSecret } from 'aws-cdk-lib/aws-secretsmanager';
import { DASHBOARD_PORT, GENERATED_SECRET, OPTIONAL_SECRETS, type DeploymentPlan, type JobTaskPlan, type TaskPlan } from './plan.ts';
import { defineParameters, type StackParameters } from './parameters.ts';

export const STACK_NAME = 'FluxionStream';
const CONTAINER = 'fluxion';
const STATE_DIR = '/var/lib/fluxion/state';

/** PascalCase logical id part of a task name (`job-ventas-recovery` -> `JobVentasRecovery`). */
export function logicalName(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());
}

export function createFluxionStack(app: App, plan: DeploymentPlan): Stack {
  const stack = new Stack(app, STACK_NAME, {
    synthesizer: new BootstraplessSynthesizer(),
    analyticsReporting: false,
    description:
      'Fluxion Stream: scheduled POS extractions, stream processors, PostgreSQL sink, notifier and dashboard (docs/deploy-aws.md)',
  });
  const p = defineParameters(stack, plan);
  const conditions = {
    UseKafkaSasl: new CfnCondition(stack, 'UseKafkaSasl', {
      expression: Fn.conditionNot(Fn.conditionEquals(p.kafkaSaslMechanism.valueAsString, '')),
    }),
    UseRegistryAuth: new CfnCondition(stack, 'UseRegistryAuth', {
      expression: Fn.conditionNot(Fn.conditionEquals(p.registryUsername.valueAsString, '')),
    }),
    OpenDatabaseSecurityGroup: new CfnCondition(stack, 'OpenDatabaseSecurityGroup', {
      expression: Fn.conditionNot(Fn.conditionEquals(p.databaseSecurityGroupId.valueAsString, '')),
    }),
    Running: new CfnCondition(stack, 'IsRunning', { expression: Fn.conditionEquals(p.running.valueAsString, 'true') }),
    OpenKafkaSecurityGroup: new CfnCondition(stack, 'OpenKafkaSecurityGroup', {
      expression: Fn.conditionNot(Fn.conditionEquals(p.kafkaSecurityGroupId.valueAsString, '')),
    }),
  };

  const cluster = new CfnCluster(stack, 'Cluster', { clusterSettings: [{ name: 'containerInsights', value: 'enabled' }] });
  new CfnOutput(stack, 'ClusterName', { value: cluster.ref, description: 'for aws ecs run-task (docs/deploy-aws.md)' });
  // The control API's token: generated here (lower-case letters and digits, as the load balancer
  // compares header values without case), read by the dashboard and by the listener rule.
  const syncToken = new CfnSecret(stack, 'SyncToken', {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub string, not a JS template
    name: Fn.sub('${AWS::StackName}/FLUXION_SYNC_TOKEN'),
    description: 'FLUXION_SYNC_TOKEN: bearer token of the control API and of the dashboard load balancer',
    generateSecretString: { passwordLength: 64, excludePunctuation: true, excludeUppercase: true, includeSpace: false },
  });
  const parameterArn = (name: string) =>
    Fn.sub(`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter\${ParameterPath}/${name}`);
  const executionRole = new CfnRole(stack, 'ExecutionRole', {
    assumeRolePolicyDocument: trust('ecs-tasks.amazonaws.com'),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub string, not a JS template
    managedPolicyArns: [Fn.sub('arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy')],
    policies: [
      {
        policyName: 'read-fluxion-secrets',
        policyDocument: {
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 'ssm:GetParameters', Resource: parameterArn('*') },
            { Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: syncToken.ref },
          ],
        },
      },
    ],
  });
  // What the processes themselves may call: only ECS Exec (`aws ecs execute-command ... fluxion doctor`).
  const taskRole = new CfnRole(stack, 'TaskRole', {
    assumeRolePolicyDocument: trust('ecs-tasks.amazonaws.com'),
    policies: [
      {
        policyName: 'ecs-exec',
        policyDocument: statement(
          [
            'ssmmessages:CreateControlChannel',
            'ssmmessages:CreateDataChannel',
            'ssmmessages:OpenControlChannel',
            'ssmmessages:OpenDataChannel',
          ],
          ['*'],
        ),
      },
    ],
  });

  const environment = (task: TaskPlan) =>
    Object.entries({
      ETL_ENVIRONMENT: 'production',
      KAFKA_BROKERS: p.kafkaBrokers.valueAsString,
      KAFKA_SSL: p.kafkaSsl.valueAsString,
      KAFKA_SASL_MECHANISM: p.kafkaSaslMechanism.valueAsString,
      KAFKA_SASL_USERNAME: p.kafkaSaslUsername.valueAsString,
      SCHEMA_REGISTRY_URL: p.registryUrl.valueAsString,
      SCHEMA_REGISTRY_USERNAME: p.registryUsername.valueAsString,
      FLUXION_TOPIC_PARTITIONS: String(plan.partitions),
      FLUXION_NOTIFY_FROM: p.notifyFrom.valueAsString,
      FLUXION_NOTIFY_TO: p.notifyTo.valueAsString,
      SENTRY_ENVIRONMENT: p.sentryEnvironment.valueAsString,
      LOG_LEVEL: 'info',
      ...task.environment,
    }).map(([name, value]) => ({ name, value }));

  const secrets = (task: TaskPlan) =>
    task.secrets.map((name) => {
      const valueFrom = name === GENERATED_SECRET ? syncToken.ref : parameterArn(name);
      const condition = OPTIONAL_SECRETS[name];
      // Inside Fn::If the properties are not translated: CloudFormation's own spelling.
      return condition
        ? Fn.conditionIf(conditions[condition].logicalId, { Name: name, ValueFrom: valueFrom }, Aws.NO_VALUE)
        : { name, valueFrom };
    });

  const taskDefinition = (task: TaskPlan, extra: Partial<CfnTaskDefinition.ContainerDefinitionProperty> = {}) => {
    const id = logicalName(task.name);
    const logGroup = new CfnLogGroup(stack, `${id}Logs`, {
      logGroupName: Fn.sub(`/\${AWS::StackName}/${task.name}`),
      retentionInDays: p.logRetentionDays.valueAsNumber,
    });
    const definition = new CfnTaskDefinition(stack, `${id}Task`, {
      family: Fn.sub(`\${AWS::StackName}-${task.name}`),
      requiresCompatibilities: ['FARGATE'],
      networkMode: 'awsvpc',
      cpu: String(task.sizing.cpu),
      memory: String(task.sizing.memoryMiB),
      runtimePlatform: { cpuArchitecture: 'X86_64', operatingSystemFamily: 'LINUX' },
      executionRoleArn: executionRole.attrArn,
      taskRoleArn: taskRole.attrArn,
      containerDefinitions: [
        {
          name: CONTAINER,
          image: p.image.valueAsString,
          essential: true,
          command: [...task.command],
          environment: environment(task),
          secrets: secrets(task),
          logConfiguration: {
            logDriver: 'awslogs',
            options: { 'awslogs-group': logGroup.ref, 'awslogs-region': Aws.REGION, 'awslogs-stream-prefix': task.name },
          },
          ...extra,
        },
      ],
    });
    definition.cfnOptions.metadata = { 'fluxion:sizing': task.sizing.basis };
    return definition;
  };

  const network = (task: TaskPlan, securityGroups: string[] = []) => ({
    awsvpcConfiguration: {
      assignPublicIp: 'DISABLED',
      // Only tasks that read a Stellar POS sit in the subnets whose route table sends the CEDI networks to the VPN.
      subnets: task.vpn ? p.vpnSubnetIds.valueAsList : p.privateSubnetIds.valueAsList,
      securityGroups: Fn.split(
        ',',
        Fn.join(',', [
          ...(task.vpn ? [Fn.join(',', p.vpnSecurityGroupIds.valueAsList)] : []),
          Fn.join(',', p.taskSecurityGroupIds.valueAsList),
          ...securityGroups,
        ]),
      ),
    },
  });

  // ---- the scheduled jobs ----
  const jobDefinitions = plan.jobs.map((job) => ({ job, definition: taskDefinition(job) }));
  const schedulerRole = new CfnRole(stack, 'SchedulerRole', {
    assumeRolePolicyDocument: trust('scheduler.amazonaws.com'),
    policies: [
      {
        policyName: 'run-fluxion-jobs',
        policyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'ecs:RunTask',
              Resource: jobDefinitions.map((j) => j.definition.ref),
              Condition: { ArnEquals: { 'ecs:cluster': cluster.attrArn } },
            },
            { Effect: 'Allow', Action: 'ecs:TagResource', Resource: '*', Condition: { StringEquals: { 'ecs:CreateAction': 'RunTask' } } },
            { Effect: 'Allow', Action: 'iam:PassRole', Resource: [executionRole.attrArn, taskRole.attrArn] },
          ],
        },
      },
    ],
  });
  for (const { job, definition } of jobDefinitions) {
    const state = job.job.enabled ? Fn.conditionIf(conditions.Running.logicalId, 'ENABLED', 'DISABLED').toString() : 'DISABLED';
    schedule(stack, job, definition, { cluster, role: schedulerRole, state, network: network(job) });
  }

  // ---- the long-running services ----
  const dashboard = dashboardFront(stack, p, syncToken);
  for (const service of plan.services) {
    const healthCheck = service.healthCheck
      ? { command: [...service.healthCheck], interval: 30, timeout: 10, retries: 3, startPeriod: 60 }
      : undefined;
    const isDashboard = service.service === 'dashboard';
    const definition = taskDefinition(service, {
      ...(healthCheck ? { healthCheck } : {}),
      ...(isDashboard ? { portMappings: [{ containerPort: DASHBOARD_PORT, protocol: 'tcp' }] } : {}),
      ...(service.environment.FLUXION_STATE_DIR ? { mountPoints: [{ sourceVolume: 'state', containerPath: STATE_DIR }] } : {}),
    });
    // The state store's cache on the task's own disk: never shared between replicas (docs/state-stores.md).
    if (service.environment.FLUXION_STATE_DIR) definition.volumes = [{ name: 'state' }];
    if (service.environment.FLUXION_STATE_DIR) definition.ephemeralStorage = { sizeInGiB: 30 };
    const ecsService = new CfnService(stack, `${logicalName(service.name)}Service`, {
      cluster: cluster.ref,
      serviceName: Fn.sub(`\${AWS::StackName}-${service.name}`),
      launchType: 'FARGATE',
      platformVersion: 'LATEST',
      taskDefinition: definition.ref,
      desiredCount: Fn.conditionIf(
        conditions.Running.logicalId,
        service.scaled ? p.replicas[service.service as keyof StackParameters['replicas']]!.valueAsNumber : 1,
        0,
      ) as unknown as number,
      enableExecuteCommand: true,
      propagateTags: 'SERVICE',
      deploymentConfiguration: {
        minimumHealthyPercent: 100,
        maximumPercent: 200,
        deploymentCircuitBreaker: { enable: true, rollback: true },
      },
      networkConfiguration: network(service, isDashboard ? [dashboard.taskSecurityGroup.attrGroupId] : []),
      ...(isDashboard
        ? {
            loadBalancers: [{ containerName: CONTAINER, containerPort: DASHBOARD_PORT, targetGroupArn: dashboard.targetGroup.ref }],
            healthCheckGracePeriodSeconds: 120,
          }
        : {}),
    });
    if (isDashboard) ecsService.addResourceDependency(dashboard.rule);
  }

  // The managed services' own security groups, opened to the tasks when given.
  const ingress = (id: string, groupId: CfnParameter, port: CfnParameter, condition: CfnCondition, what: string) => {
    const rule = new CfnSecurityGroupIngress(stack, id, {
      groupId: groupId.valueAsString,
      // The first of the tasks' groups: every task has it.
      sourceSecurityGroupId: Fn.select(0, p.taskSecurityGroupIds.valueAsList),
      ipProtocol: 'tcp',
      fromPort: port.valueAsNumber,
      toPort: port.valueAsNumber,
      description: `Fluxion tasks to ${what}`,
    });
    rule.cfnOptions.condition = condition;
  };
  ingress('DatabaseIngress', p.databaseSecurityGroupId, p.databasePort, conditions.OpenDatabaseSecurityGroup, 'PostgreSQL');
  ingress('KafkaIngress', p.kafkaSecurityGroupId, p.kafkaPort, conditions.OpenKafkaSecurityGroup, 'Kafka');
  return stack;
}

function trust(service: string) {
  return { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }] };
}

function statement(actions: string[], resources: unknown[]) {
  return { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: resources }] };
}

/** One EventBridge Scheduler schedule: the job's cron in its time zone, disabled when the job is. */
interface ScheduleTarget {
  cluster: CfnCluster;
  role: CfnRole;
  /** ENABLED or DISABLED, or an Fn::If of the two. */
  state: string;
  network: object;
}

function schedule(stack: Stack, job: JobTaskPlan, definition: CfnTaskDefinition, target: ScheduleTarget): CfnSchedule {
  const { cluster, role } = target;
  return new CfnSchedule(stack, `${logicalName(job.name)}Schedule`, {
    name: Fn.sub(`\${AWS::StackName}-${job.job.name}`),
    description:
      `${job.job.description ?? job.job.name} ` +
      `(config/schedule.yaml job ${job.job.name}: ${job.job.cron}; Sentry monitor ${job.job.monitor.slug})`,
    scheduleExpression: job.scheduleExpression,
    scheduleExpressionTimezone: job.job.timezone,
    // A job disabled in config/schedule.yaml is a disabled schedule whatever Running says.
    state: target.state,
    // Runs start on the minute, as the Sentry monitor expects (its checkin_margin is the slack).
    flexibleTimeWindow: { mode: 'OFF' },
    target: {
      arn: cluster.attrArn,
      roleArn: role.attrArn,
      // A RunTask that fails (no capacity) is tried again; a second run cannot overlap the first (core/job-lock.ts).
      retryPolicy: { maximumRetryAttempts: 2, maximumEventAgeInSeconds: 300 },
      ecsParameters: {
        taskDefinitionArn: definition.ref,
        launchType: 'FARGATE',
        platformVersion: 'LATEST',
        taskCount: 1,
        enableExecuteCommand: true,
        propagateTags: 'TASK_DEFINITION',
        networkConfiguration: target.network,
      },
    },
  });
}

/**
 * The dashboard behind an HTTPS load balancer that forwards only requests carrying the control
 * API's token (`Authorization: Bearer <FLUXION_SYNC_TOKEN>`); anything else gets 401 from the
 * load balancer itself. The rule reads the token from Secrets Manager at deploy time (a dynamic
 * reference: the template holds only the secret's ARN). A new token needs a stack update.
 */
function dashboardFront(stack: Stack, p: StackParameters, syncToken: CfnSecret) {
  const lbSecurityGroup = new CfnSecurityGroup(stack, 'DashboardLoadBalancerSecurityGroup', {
    groupDescription: 'Fluxion dashboard load balancer: HTTPS from the operators network',
    vpcId: p.vpcId.valueAsString,
    securityGroupIngress: [
      { ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidrIp: p.dashboardAllowedCidr.valueAsString, description: 'operators' },
    ],
  });
  const taskSecurityGroup = new CfnSecurityGroup(stack, 'DashboardTaskSecurityGroup', {
    groupDescription: 'Fluxion dashboard task: the dashboard port from its load balancer only',
    vpcId: p.vpcId.valueAsString,
    securityGroupIngress: [
      {
        ipProtocol: 'tcp',
        fromPort: DASHBOARD_PORT,
        toPort: DASHBOARD_PORT,
        sourceSecurityGroupId: lbSecurityGroup.attrGroupId,
        description: 'load balancer',
      },
    ],
  });
  const loadBalancer = new CfnLoadBalancer(stack, 'DashboardLoadBalancer', {
    type: 'application',
    scheme: p.dashboardScheme.valueAsString,
    subnets: p.loadBalancerSubnetIds.valueAsList,
    securityGroups: [lbSecurityGroup.attrGroupId],
    loadBalancerAttributes: [{ key: 'routing.http.drop_invalid_header_fields.enabled', value: 'true' }],
  });
  const targetGroup = new CfnTargetGroup(stack, 'DashboardTargetGroup', {
    vpcId: p.vpcId.valueAsString,
    targetType: 'ip',
    protocol: 'HTTP',
    port: DASHBOARD_PORT,
    healthCheckPath: '/healthz',
    healthCheckIntervalSeconds: 30,
    matcher: { httpCode: '200' },
  });
  const listener = new CfnListener(stack, 'DashboardListener', {
    loadBalancerArn: loadBalancer.ref,
    protocol: 'HTTPS',
    port: 443,
    sslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
    certificates: [{ certificateArn: p.certificateArn.valueAsString }],
    defaultActions: [
      {
        type: 'fixed-response',
        fixedResponseConfig: {
          statusCode: '401',
          contentType: 'application/json',
          messageBody: '{"error":"missing or wrong token: send Authorization: Bearer <FLUXION_SYNC_TOKEN>"}',
        },
      },
    ],
  });
  const rule = new CfnListenerRule(stack, 'DashboardTokenRule', {
    listenerArn: listener.ref,
    priority: 1,
    conditions: [
      {
        field: 'http-header',
        httpHeaderConfig: {
          httpHeaderName: 'Authorization',
          values: [Fn.join('', ['Bearer {{resolve:secretsmanager:', syncToken.ref, ':SecretString}}'])],
        },
      },
    ],
    actions: [{ type: 'forward', targetGroupArn: targetGroup.ref }],
  });
  new CfnOutput(stack, 'DashboardUrl', {
    value: Fn.join('', ['https://', loadBalancer.attrDnsName, '/']),
    description: 'the dashboard (requires the token header)',
  });
  return { loadBalancer, targetGroup, taskSecurityGroup, rule };
}
