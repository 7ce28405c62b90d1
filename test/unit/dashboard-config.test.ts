import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.ts';
import { ConfigError } from '../../core/errors.ts';

describe('dashboard and control API configuration', () => {
  it('defaults: loopback, port 8080, a sample every 30 s, 6 h of history, control API off', () => {
    const c = loadConfig({});
    expect(c.dashboard).toMatchObject({ host: '127.0.0.1', port: 8080, sampleMs: 30_000, historyMs: 6 * 3_600_000 });
    expect(c.dashboard.syncToken).toBeUndefined();
  });

  it('reads the variables; the token is readable but never enumerable, so never in a dump of the config', () => {
    const token = 'a-long-enough-token-0123456789';
    const c = loadConfig({
      FLUXION_DASHBOARD_HOST: '0.0.0.0',
      FLUXION_DASHBOARD_PORT: '9090',
      FLUXION_DASHBOARD_SAMPLE_SECONDS: '10',
      FLUXION_DASHBOARD_HISTORY_HOURS: '1.5',
      FLUXION_SYNC_TOKEN: token,
    });
    expect(c.dashboard).toMatchObject({ host: '0.0.0.0', port: 9090, sampleMs: 10_000, historyMs: 5_400_000 });
    expect(c.dashboard.syncToken).toBe(token);
    expect(JSON.stringify(c)).not.toContain(token);
    expect(Object.keys(c.dashboard)).not.toContain('syncToken');
  });

  it('refuses a short token without showing it, and a bad port', () => {
    let err: unknown;
    try {
      loadConfig({ FLUXION_SYNC_TOKEN: 'short-secret', FLUXION_DASHBOARD_PORT: '70000' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as ConfigError).message;
    expect(message).toContain('FLUXION_SYNC_TOKEN=(value hidden): must be at least 16 characters');
    expect(message).toContain('FLUXION_DASHBOARD_PORT="70000": must be a port 1-65535');
    expect(message).not.toContain('short-secret');
  });
});
