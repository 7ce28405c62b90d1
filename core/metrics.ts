/** prom-client helpers shared by every long-running component (processors, sink, notifier). */
import { createServer, type Server } from 'node:http';
import type { Counter, Registry } from 'prom-client';

/** Sum of a counter's values matching `labels` (for tests and logs). */
export async function counterValue(counter: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((sum, v) => sum + v.value, 0);
}

/**
 * The metric `name` of `registry`, created by `create` the first time: two components (or a
 * test's second instance) on one registry share it instead of failing on a duplicate name.
 */
export function registeredMetric<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

/** Serves `registry` at http://127.0.0.1:<port>/metrics (loopback only: Prometheus scrapes locally or through a sidecar). */
export function serveMetrics(registry: Registry, port: number): Server {
  return createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
  }).listen(port, '127.0.0.1');
}
