import { describe, expect, it } from 'vitest';
import { loadConfig, loadUbicaciones, requireKafkaBrokers } from '../../cli/config.ts';
import { parseUbicaciones, selectUbicaciones, readSecret, loadUbicacionesFile } from '../../core/config/ubicaciones.ts';
import { projectPath } from '../../core/paths.ts';
import { problemsOf } from '../helpers/config-errors.ts';

const klk = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  nombre: `Tienda ${id}`,
  tipo: 'tienda',
  activa: true,
  pos: 'klk',
  depositos: ['01'],
  klk: { base_url: { local: 'http://127.0.0.1:1/x', production: 'https://klk.example/x' }, api_key_env: 'KLK_KEY' },
  ...extra,
});

describe('the checked-in store list', () => {
  const all = loadUbicacionesFile(projectPath('config/ubicaciones.yaml'));

  it('holds the 20 ubicaciones of docs/configuration.md: 12 KLK and 4 Stellar active, the rest inactive', () => {
    expect(all).toHaveLength(20);
    const active = all.filter((u) => u.activa);
    expect(active.filter((u) => u.pos === 'klk')).toHaveLength(12);
    expect(active.filter((u) => u.pos === 'stellar')).toHaveLength(4);
    expect(all.filter((u) => !u.activa)).toHaveLength(4);
    expect(active.map((u) => u.id)).toEqual(expect.arrayContaining(['cedi_frio', 'cedi_seco', 'cedi_verde']));
  });

  it('picks local or production addresses by ETL_ENVIRONMENT', () => {
    const local = loadUbicaciones(loadConfig({ ETL_ENVIRONMENT: 'local' }));
    const prod = loadUbicaciones(loadConfig({ ETL_ENVIRONMENT: 'production' }));
    const l = local.find((u) => u.id === 'tienda_01')!;
    const p = prod.find((u) => u.id === 'tienda_01')!;
    expect(l.pos === 'klk' && l.klk.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect(p.pos === 'klk' && p.klk.baseUrl).toMatch(/^https:\/\//);
    const cl = local.find((u) => u.id === 'cedi_frio')!;
    const cp = prod.find((u) => u.id === 'cedi_frio')!;
    expect(cl.pos === 'stellar' && cl.stellar.host).toBe('127.0.0.1');
    expect(cp.pos === 'stellar' && cp.stellar.port).toBe(1433);
  });

  it('never holds a secret: only names of environment variables', () => {
    for (const u of all) {
      if (u.klk) expect(u.klk.api_key_env).toMatch(/^[A-Z][A-Z0-9_]*$/);
      if (u.stellar) expect(u.stellar.password_env).toMatch(/^[A-Z][A-Z0-9_]*$/);
    }
  });
});

describe('store list validation names the store and the field', () => {
  it('reports a missing klk block for a KLK store', () => {
    const { klk: _drop, ...noKlk } = klk('tienda_09');
    expect(problemsOf(() => parseUbicaciones({ ubicaciones: [noKlk] }, 'test.yaml'))).toEqual([
      'test.yaml: ubicacion tienda_09 (entry 1): field klk: required when pos is klk',
    ]);
  });

  it('reports every bad field of every store at once', () => {
    const problems = problemsOf(() =>
      parseUbicaciones(
        {
          ubicaciones: [
            klk('tienda_01', { klk: { base_url: { local: 'not a url', production: 'https://x' }, api_key_env: 'sk-live-123' } }),
            klk('tienda_02', { depositos: [] }),
          ],
        },
        'test.yaml',
      ),
    );
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/ubicacion tienda_01 \(entry 1\): field klk\.base_url\.local: must be an http\(s\) URL/);
    expect(problems[1]).toMatch(/ubicacion tienda_01 .*field klk\.api_key_env: must be the NAME of an environment variable/);
    expect(problems[2]).toMatch(/ubicacion tienda_02 .*field depositos: needs at least one deposito/);
  });

  it('refuses duplicate ids and a port out of range', () => {
    const stellar = {
      id: 'cedi_x',
      nombre: 'X',
      tipo: 'cedi',
      activa: true,
      pos: 'stellar',
      depositos: ['01'],
      stellar: {
        host: { local: '127.0.0.1', production: 'h' },
        port: { local: 70000, production: 1433 },
        user_env: 'U',
        password_env: 'P',
      },
    };
    const problems = problemsOf(() => parseUbicaciones({ ubicaciones: [klk('tienda_01'), klk('tienda_01'), stellar] }, 'f'));
    expect(problems.join('\n')).toContain('ubicacion tienda_01 (entry 2): field id: duplicates entry 1');
    expect(problems.join('\n')).toContain('ubicacion cedi_x (entry 3): field stellar.port.local');
  });

  it('selects active stores for todas, and refuses unknown or inactive names', () => {
    const all = loadUbicaciones(loadConfig({}));
    expect(selectUbicaciones(all, 'todas')).toHaveLength(16);
    expect(selectUbicaciones(all, ['tienda_03']).map((u) => u.id)).toEqual(['tienda_03']);
    const problems = problemsOf(() => selectUbicaciones(all, ['tienda_99', 'tienda_15']));
    expect(problems[0]).toMatch(/unknown ubicacion "tienda_99"/);
    expect(problems[1]).toMatch(/ubicacion tienda_15 is inactive/);
  });

  it('reads a secret by its variable name and says which is missing', () => {
    expect(readSecret({ K: 'v' }, 'K', 'API key of tienda_01')).toBe('v');
    expect(problemsOf(() => readSecret({}, 'KLK_API_KEY_TIENDA_01', 'API key of tienda_01'))).toEqual([
      'environment variable KLK_API_KEY_TIENDA_01 (API key of tienda_01) is not set',
    ]);
  });
});

describe('environment configuration', () => {
  it('applies defaults', () => {
    const c = loadConfig({});
    expect(c.environment).toBe('local');
    expect(c.topics.partitions).toBe(6);
    expect(c.kafka.brokers).toBeUndefined();
  });

  it('reports each bad variable, hiding secret values', () => {
    const problems = problemsOf(() =>
      loadConfig({
        ETL_ENVIRONMENT: 'staging',
        KAFKA_BROKERS: 'localhost',
        DATABASE_URL: 'mysql://u:hunter2@h/db',
        FLUXION_TOPIC_PARTITIONS: '0',
      }),
    );
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toContain('ETL_ENVIRONMENT="staging"');
    expect(problems.join('\n')).toContain('KAFKA_BROKERS="localhost": must be host:port');
    expect(problems.join('\n')).toContain('DATABASE_URL=(value hidden)');
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('reads the phantom rules that may open alerts, and names an unknown one', () => {
    expect(loadConfig({}).processors.phantom.rules).toEqual(['SELLING_AT_ZERO', 'FLIP_FLOP', 'UNEXPLAINED_DROP']);
    expect(loadConfig({ FLUXION_PHANTOM_RULES: ' flip_flop, SELLING_AT_ZERO ' }).processors.phantom.rules).toEqual([
      'FLIP_FLOP',
      'SELLING_AT_ZERO',
    ]);
    expect(loadConfig({ FLUXION_PHANTOM_RULES: 'none' }).processors.phantom.rules).toEqual([]);
    expect(problemsOf(() => loadConfig({ FLUXION_PHANTOM_RULES: 'FLIP_FLOP,GHOST' })).join('\n')).toMatch(
      /FLUXION_PHANTOM_RULES.*unknown: GHOST/,
    );
  });

  it('says how to start the services when an address is missing', () => {
    expect(problemsOf(() => requireKafkaBrokers(loadConfig({})))[0]).toMatch(
      /KAFKA_BROKERS is not set: start the local services with `scripts\/services up`/,
    );
  });
});
