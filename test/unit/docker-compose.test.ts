/**
 * docker-compose.yml cannot run here (no Docker engine), so this keeps it honest: official
 * images, and every address, port and variable name agreeing with the code's configuration.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../../cli/main.ts';
import { ENV_VARS } from '../../cli/config.ts';
import { loadUbicacionesFile, type UbicacionConfig } from '../../core/config/ubicaciones.ts';
import { PROJECT_ROOT, projectPath } from '../../core/paths.ts';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
}

const compose = parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const fluxion = Object.entries(services).filter(([, s]) => s.build === '.');

/** host:port of a URL-ish value, resolving the compose `${VAR:?msg}` syntax away. */
function hostPort(value: string): { host: string; port: number } {
  const url = new URL(value.includes('://') ? value.replace(/\$\{[^}]+\}/g, 'x') : `tcp://${value}`);
  return { host: url.hostname, port: Number(url.port) };
}

/** The cli/ module that declares a command word (`.command('dashboard')`). */
function commandModule(word: string): string | undefined {
  const dir = join(PROJECT_ROOT, 'cli');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f))
    .find((f) => new RegExp(`\\.command\\('${word}'\\)`).test(readFileSync(f, 'utf8')));
}

const EXTRACTION = join(PROJECT_ROOT, 'extractors', 'extract-run.ts');

/**
 * Whether a module runs the extraction: it reaches extractors/extract-run.ts through the
 * modules it imports for their code (`import type` runs nothing), not counting other
 * command modules (cli/main.ts imports every command).
 */
function reachesExtraction(file: string, seen = new Set<string>()): boolean {
  if (file === EXTRACTION) return true;
  if (seen.has(file)) return false;
  seen.add(file);
  const source = readFileSync(file, 'utf8');
  const specifiers = [
    ...source.matchAll(/^import\s+(?!type\b)[^;]*?\sfrom\s+'(\.[^']+)'/gms),
    ...source.matchAll(/import\('(\.[^']+)'\)/g),
  ].map((m) => m[1]!);
  return specifiers
    .map((s) => resolve(dirname(file), s))
    .filter((f) => f === EXTRACTION || !(f.startsWith(join(PROJECT_ROOT, 'cli')) && /\.command\('/.test(readFileSync(f, 'utf8'))))
    .some((f) => reachesExtraction(f, seen));
}

/** Whether the fluxion command a compose service runs extracts from the POS (a command's module declares its subcommands too). */
function commandExtracts(command: string[]): boolean {
  const file = commandModule(command[0] ?? '');
  if (!file) throw new Error(`no cli/ module declares the command "${command[0]}"`);
  return reachesExtraction(file);
}

/** The environment variables a store's entry names (credentials, CA file). */
function storeEnvNames(u: UbicacionConfig): string[] {
  return [u.klk?.api_key_env, u.stellar?.user_env, u.stellar?.password_env, u.stellar?.ca_file_env].filter((x): x is string => !!x);
}

function listenerPorts(listeners: string): number[] {
  return listeners.split(',').map((l) => Number(l.split(':').pop()));
}

describe('docker-compose.yml', () => {
  it('uses the official images for the three services', () => {
    expect(services.kafka?.image).toMatch(/^apache\/kafka:4\./);
    expect(services['schema-registry']?.image).toMatch(/^confluentinc\/cp-schema-registry:/);
    expect(services.postgres?.image).toMatch(/^postgres:\d+/);
  });

  it('runs Fluxion processes from the repo image, each with a real fluxion command', () => {
    expect(fluxion.length).toBeGreaterThan(0);
    const program = createProgram({
      context: () => {
        throw new Error('not run');
      },
      out: () => undefined,
      err: () => undefined,
      fail: () => undefined,
    });
    for (const [name, s] of fluxion) {
      const words = s.command ?? [];
      let cmd = program;
      for (const word of words.filter((w) => !w.startsWith('-'))) {
        const sub = cmd.commands.find((c) => c.name() === word);
        if (!sub) break;
        cmd = sub;
      }
      expect(cmd, `${name}: "${words.join(' ')}" is not a fluxion command`).not.toBe(program);
      expect(cmd.commands.length, `${name}: "${words.join(' ')}" names a command group, not a command`).toBe(0);
    }
  });

  it('gives Fluxion processes only variables the code reads', () => {
    const stores = loadUbicacionesFile(projectPath('config/ubicaciones.yaml'));
    const known = new Set([
      'NODE_OPTIONS', // Node's own (heap limits of the processors), not a Fluxion setting
      ...ENV_VARS.map((v) => v.name),
      ...stores.flatMap(storeEnvNames),
    ]);
    for (const [name, s] of fluxion) {
      for (const key of Object.keys(s.environment ?? {})) expect(known.has(key), `${name}: ${key} is not a Fluxion variable`).toBe(true);
    }
  });

  it('gives every service that extracts the POS credentials of every active store, in production', () => {
    const extracting = fluxion.filter(([, s]) => commandExtracts(s.command ?? []));
    expect(extracting.length, 'no compose service runs an extracting command: is the scan of cli/ broken?').toBeGreaterThan(0);
    const needed = loadUbicacionesFile(projectPath('config/ubicaciones.yaml'))
      .filter((u) => u.activa)
      .flatMap((u) => storeEnvNames(u).map((name) => ({ store: u.id, name })));
    expect(needed.length).toBeGreaterThan(0);
    for (const [service, s] of extracting) {
      const env = s.environment ?? {};
      expect(env.ETL_ENVIRONMENT, `${service}: ETL_ENVIRONMENT`).toBe('production');
      for (const { store, name } of needed) {
        expect(env[name], `${service} runs "${s.command!.join(' ')}", which extracts, but lacks ${name} (${store})`).toMatch(
          new RegExp(`^\\$\\{${name}:\\?`),
        );
      }
    }
  });

  it('tells extracting commands apart by what their code imports', () => {
    // The scan behind the test above, checked on commands whose nature is plain.
    expect(commandExtracts(['extract', 'inventario'])).toBe(true);
    expect(commandExtracts(['schedule'])).toBe(true);
    expect(commandExtracts(['dashboard'])).toBe(true);
    expect(commandExtracts(['process', 'differ'])).toBe(false);
    expect(commandExtracts(['migrate'])).toBe(false);
  });

  it('points Fluxion at the services on the ports they listen on', () => {
    for (const [name, s] of fluxion) {
      const env = s.environment ?? {};
      const kafka = hostPort(env.KAFKA_BROKERS!);
      expect(kafka.host, name).toBe('kafka');
      expect(listenerPorts(services.kafka!.environment!.KAFKA_LISTENERS!)).toContain(kafka.port);
      expect(services.kafka!.environment!.KAFKA_ADVERTISED_LISTENERS).toContain(`kafka:${kafka.port}`);

      const registry = hostPort(env.SCHEMA_REGISTRY_URL!);
      expect(registry.host, name).toBe('schema-registry');
      expect(hostPort(services['schema-registry']!.environment!.SCHEMA_REGISTRY_LISTENERS!).port).toBe(registry.port);

      const db = new URL(env.DATABASE_URL!.replace(/\$\{[^}]+\}/g, 'x'));
      expect(db.hostname, name).toBe('postgres');
      expect(db.port).toBe('5432');
      expect(db.username).toBe(services.postgres!.environment!.POSTGRES_USER);
      expect(db.pathname).toBe(`/${services.postgres!.environment!.POSTGRES_DB}`);
    }
  });

  it('holds no secret: passwords come from the environment of docker compose', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (/PASSWORD|API_KEY|SECRET|TOKEN/.test(key)) expect(value, `${name}.${key}`).toMatch(/^\$\{[A-Z][A-Z0-9_]*:\?/);
        if (key === 'DATABASE_URL') expect(value).toMatch(/:\$\{POSTGRES_PASSWORD:\?[^}]*\}@/);
      }
    }
  });

  it('configures the single-node broker like scripts/services does', () => {
    const env = services.kafka!.environment!;
    const template = readFileSync(join(PROJECT_ROOT, 'scripts/services.d/kafka/server.properties.template'), 'utf8');
    const prop = (k: string) => new RegExp(`^${k.replace(/\./g, '\\.')}=(.*)$`, 'm').exec(template)?.[1];
    expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe(prop('auto.create.topics.enable'));
    expect(env.KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR).toBe(prop('transaction.state.log.replication.factor'));
    expect(env.KAFKA_TRANSACTION_MAX_TIMEOUT_MS).toBe(prop('transaction.max.timeout.ms'));
    expect(services.kafka!.image!.split(':')[1]).toBe(
      /<kafka\.version>([^<]+)</.exec(readFileSync(join(PROJECT_ROOT, 'scripts/services.d/kafka/pom.xml'), 'utf8'))?.[1],
    );
  });

  it('builds on the Node.js major the scripts install', () => {
    const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
    const script = readFileSync(join(PROJECT_ROOT, 'scripts/lib/node.sh'), 'utf8');
    const major = /FLUXION_NODE_MAJOR:-(\d+)/.exec(script)?.[1];
    expect(dockerfile).toMatch(new RegExp(`^FROM node:${major}-slim$`, 'm'));
  });
});

describe('the monitoring profile', () => {
  const raw = parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, Service & { profiles?: string[] }>;
  };
  const metricsSource = readFileSync(join(PROJECT_ROOT, 'ops', 'dashboard', 'metrics.ts'), 'utf8');

  it('runs Prometheus and Grafana only under the monitoring profile, scraping the dashboard service', () => {
    expect(raw.services.prometheus?.profiles).toEqual(['monitoring']);
    expect(raw.services.grafana?.profiles).toEqual(['monitoring']);
    const prometheus = parse(readFileSync(join(PROJECT_ROOT, 'ops', 'monitoring', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets).toEqual(['fluxion-dashboard:8080']);
    expect(raw.services['fluxion-dashboard']?.command).toEqual(['dashboard', '--port', '8080']);
  });

  it('charts in Grafana only metrics the dashboard exports', () => {
    const dashboard = JSON.parse(readFileSync(join(PROJECT_ROOT, 'ops', 'monitoring', 'grafana', 'fluxion.json'), 'utf8')) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/fluxion_[a-z0-9_]+/g) ?? [])));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(metricsSource, `${name} is not exported by ops/dashboard/metrics.ts`).toContain(`'${name}'`);
  });
});
