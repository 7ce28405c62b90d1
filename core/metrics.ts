/** prom-client helpers shared by every long-running component (processors, sink, notifier). */
import { createServer, type Server } from 'node:http';
import {
  Counter,
  Gauge,
  Histogram,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
  type Registry,
} from 'prom-client';

/** Sum of a counter's values matching `labels` (for tests and logs). */
export async function counterValue(counter: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((sum, v) => sum + v.value, 0);
}

/**
 * The metric `config.name` of `registry`, created (and registered there) the first time: two
 * components (or a test's second instance) on one registry share it instead of failing on a
 * duplicate name. The name is written once, in the configuration.
 */
function shared<T>(registry: Registry, name: string, create: (registers: Registry[]) => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create([registry]);
}

export const sharedCounter = (registry: Registry, config: Omit<CounterConfiguration<string>, 'registers'>): Counter<string> =>
  shared(registry, config.name, (registers) => new Counter({ ...config, registers }));

export const sharedGauge = (registry: Registry, config: Omit<GaugeConfiguration<string>, 'registers'>): Gauge<string> =>
  shared(registry, config.name, (registers) => new Gauge({ ...config, registers }));

export const sharedHistogram = (registry: Registry, config: Omit<HistogramConfiguration<string>, 'registers'>): Histogram<string> =>
  shared(registry, config.name, (registers) => new Histogram({ ...config, registers }));

/** Serves `registry` at http://127.0.0.1:<port>/metrics (loopback only: Prometheus scrapes locally or through a sidecar). */
export function serveMetrics(registry: Registry, port: number): Server {
  return createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
  }).listen(port, '127.0.0.1');
}
