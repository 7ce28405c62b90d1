/**
 * The stack's parameters: what differs between accounts (network, Kafka, registry, image)
 * and nothing secret. Secrets are named, not given: SSM SecureString parameters
 * `<ParameterPath>/<VARIABLE>`, read by ECS when a task starts (plan.ts lists them;
 * `node deploy/aws/bin/app.ts --list-secrets` prints them).
 *
 * Kafka as `fluxion doctor` checks it (ops/doctor.ts): brokers, TLS, SASL mechanism and user;
 * the password is a secret. PostgreSQL's endpoint, user and password are the DATABASE_URL
 * secret (the processes read one variable); its security group and port are parameters so the
 * stack can open it to the tasks.
 */
import { CfnParameter, type Stack } from 'aws-cdk-lib';
import { SCALED_SERVICES, type DeploymentPlan } from './plan.ts';

type Scaled = (typeof SCALED_SERVICES)[number];

export interface StackParameters {
  image: CfnParameter;
  parameterPath: CfnParameter;
  kafkaBrokers: CfnParameter;
  kafkaSsl: CfnParameter;
  kafkaSaslMechanism: CfnParameter;
  kafkaSaslUsername: CfnParameter;
  kafkaSecurityGroupId: CfnParameter;
  kafkaPort: CfnParameter;
  registryUrl: CfnParameter;
  registryUsername: CfnParameter;
  databaseSecurityGroupId: CfnParameter;
  databasePort: CfnParameter;
  vpcId: CfnParameter;
  privateSubnetIds: CfnParameter;
  vpnSubnetIds: CfnParameter;
  loadBalancerSubnetIds: CfnParameter;
  taskSecurityGroupIds: CfnParameter;
  vpnSecurityGroupIds: CfnParameter;
  dashboardScheme: CfnParameter;
  dashboardAllowedCidr: CfnParameter;
  certificateArn: CfnParameter;
  notifyFrom: CfnParameter;
  notifyTo: CfnParameter;
  logRetentionDays: CfnParameter;
  running: CfnParameter;
  sentryEnvironment: CfnParameter;
  replicas: Record<Scaled, CfnParameter>;
}

/** CloudWatch Logs' allowed retentions. */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

export function defineParameters(stack: Stack, plan: DeploymentPlan): StackParameters {
  const text = (
    id: string,
    description: string,
    extra: Omit<ConstructorParameters<typeof CfnParameter>[2] & object, 'type' | 'description'> = {},
  ) => new CfnParameter(stack, id, { type: 'String', description, ...extra });
  const replicas = (service: Scaled) =>
    new CfnParameter(stack, `${service[0]!.toUpperCase()}${service.slice(1)}Replicas`, {
      type: 'Number',
      default: 1,
      minValue: 1,
      // More instances than partitions would idle: a partition has one consumer in a group.
      maxValue: plan.partitions,
      description:
        `tasks of fluxion ${service}; at most the topics' partition count ` + `(FLUXION_TOPIC_PARTITIONS=${plan.partitions} at synth)`,
    });
  return {
    image: text('Image', 'the fluxion-stream image (Dockerfile), e.g. <account>.dkr.ecr.<region>.amazonaws.com/fluxion-stream:0.1.0', {
      minLength: 1,
    }),
    parameterPath: text(
      'ParameterPath',
      'SSM Parameter Store path of the SecureString parameters, one per secret variable: <ParameterPath>/<VARIABLE>',
      {
        default: '/fluxion',
        allowedPattern: '^(/[A-Za-z0-9_.-]+)+$',
      },
    ),
    kafkaBrokers: text(
      'KafkaBrokers',
      'KAFKA_BROKERS: comma-separated host:port bootstrap brokers (MSK: the SASL/SCRAM or TLS bootstrap string)',
      { minLength: 1 },
    ),
    kafkaSsl: text('KafkaSsl', 'KAFKA_SSL: TLS to the brokers (MSK: true)', { default: 'true', allowedValues: ['true', 'false'] }),
    kafkaSaslMechanism: text('KafkaSaslMechanism', 'KAFKA_SASL_MECHANISM; empty: no SASL (then no KAFKA_SASL_PASSWORD secret is read)', {
      default: 'scram-sha-512',
      allowedValues: ['', 'plain', 'scram-sha-256', 'scram-sha-512'],
    }),
    kafkaSaslUsername: text(
      'KafkaSaslUsername',
      'KAFKA_SASL_USERNAME (its password is the parameter <ParameterPath>/KAFKA_SASL_PASSWORD)',
      { default: '' },
    ),
    kafkaSecurityGroupId: text(
      'KafkaSecurityGroupId',
      "the Kafka cluster's security group, opened to the tasks on KafkaPort; empty: leave it alone",
      { default: '' },
    ),
    kafkaPort: new CfnParameter(stack, 'KafkaPort', {
      type: 'Number',
      default: 9096,
      minValue: 1,
      maxValue: 65535,
      description: 'the brokers port (MSK: 9096 SASL/SCRAM, 9094 TLS)',
    }),
    registryUrl: text('SchemaRegistryUrl', 'SCHEMA_REGISTRY_URL: the Confluent-API schema registry', { allowedPattern: '^https?://.+' }),
    registryUsername: text(
      'SchemaRegistryUsername',
      'SCHEMA_REGISTRY_USERNAME; empty: no basic auth (then no SCHEMA_REGISTRY_PASSWORD secret is read)',
      { default: '' },
    ),
    databaseSecurityGroupId: text(
      'DatabaseSecurityGroupId',
      "PostgreSQL's security group, opened to the tasks on DatabasePort; empty: leave it alone",
      { default: '' },
    ),
    databasePort: new CfnParameter(stack, 'DatabasePort', {
      type: 'Number',
      default: 5432,
      minValue: 1,
      maxValue: 65535,
      description: "PostgreSQL's port (as in the DATABASE_URL secret)",
    }),
    vpcId: new CfnParameter(stack, 'VpcId', { type: 'AWS::EC2::VPC::Id', description: 'the VPC of the tasks and the load balancer' }),
    privateSubnetIds: new CfnParameter(stack, 'PrivateSubnetIds', {
      type: 'List<AWS::EC2::Subnet::Id>',
      description: 'subnets of every task that reaches no Stellar POS (a NAT route to the KLK API and AWS APIs)',
    }),
    vpnSubnetIds: new CfnParameter(stack, 'VpnSubnetIds', {
      type: 'List<AWS::EC2::Subnet::Id>',
      description: "subnets whose route table sends the CEDIs' networks to the WireGuard gateway: only tasks that read a Stellar POS",
    }),
    loadBalancerSubnetIds: new CfnParameter(stack, 'LoadBalancerSubnetIds', {
      type: 'List<AWS::EC2::Subnet::Id>',
      description: "the dashboard load balancer's subnets (two zones)",
    }),
    taskSecurityGroupIds: new CfnParameter(stack, 'TaskSecurityGroupIds', {
      type: 'List<AWS::EC2::SecurityGroup::Id>',
      description:
        'security groups of every task (egress to Kafka, the registry, PostgreSQL, the KLK API, AWS APIs); ' +
        'the first is opened on Kafka and PostgreSQL',
    }),
    vpnSecurityGroupIds: new CfnParameter(stack, 'VpnSecurityGroupIds', {
      type: 'List<AWS::EC2::SecurityGroup::Id>',
      description: 'added to the tasks that read a Stellar POS: the group the WireGuard gateway accepts (TCP 1433 to the CEDIs)',
    }),
    dashboardScheme: text('DashboardScheme', 'internal (reached over the chain network) or internet-facing', {
      default: 'internal',
      allowedValues: ['internal', 'internet-facing'],
    }),
    dashboardAllowedCidr: text('DashboardAllowedCidr', 'who may reach the dashboard load balancer on 443', {
      allowedPattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$',
    }),
    certificateArn: text('CertificateArn', "ACM certificate of the dashboard's HTTPS listener", {
      allowedPattern: '^arn:aws[a-z-]*:acm:.+',
    }),
    notifyFrom: text('NotifyFrom', 'FLUXION_NOTIFY_FROM: the sender verified in SendGrid', { minLength: 3 }),
    notifyTo: text('NotifyTo', 'FLUXION_NOTIFY_TO: comma-separated recipients', { minLength: 3 }),
    logRetentionDays: new CfnParameter(stack, 'LogRetentionDays', {
      type: 'Number',
      default: '30',
      allowedValues: RETENTION_DAYS.map(String),
      description: 'days CloudWatch keeps each log group',
    }),
    running: text(
      'Running',
      'false: services at 0 tasks and every schedule disabled (first deploy, before migrate/topics/schemas; a pause)',
      {
        default: 'true',
        allowedValues: ['true', 'false'],
      },
    ),
    sentryEnvironment: text(
      'SentryEnvironment',
      "SENTRY_ENVIRONMENT: errors and cron check-ins go to this environment of the etl-* monitors (side by side: not the old system's)",
      {
        default: 'production',
        minLength: 1,
      },
    ),
    replicas: Object.fromEntries(SCALED_SERVICES.map((s) => [s, replicas(s)])) as Record<Scaled, CfnParameter>,
  };
}
