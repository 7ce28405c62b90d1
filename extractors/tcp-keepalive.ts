/**
 * TCP keepalive on the POS connections (Stellar's SQL Server sockets, KLK's HTTP(S)
 * connections) as the replaced system set it: the first probe after 30 s without traffic,
 * then one every 10 s, and the connection is given up after 5 unanswered probes. A POS
 * whose VPN tunnel vanished without a FIN or RST is therefore detected 80 s after its last
 * byte, set on each socket by the code (the host's sysctls wait 2 h 11 min on Linux).
 * docs/pos-connections.md says more.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { connect, Socket } from 'node:net';

export interface KeepAlivePolicy {
  initialDelayMs: number;
  intervalMs: number;
  count: number;
}

export const POS_KEEPALIVE: KeepAlivePolicy = { initialDelayMs: 30_000, intervalMs: 10_000, count: 5 };

/** How long after its last byte a silently dead peer is detected. */
export function deadPeerDetectionMs(p: KeepAlivePolicy = POS_KEEPALIVE): number {
  return p.initialDelayMs + p.intervalMs * p.count;
}

/**
 * Interval and count per socket came with Node's `setKeepAlive(options)` (nodejs/node#63825,
 * in the Node 24 the image runs); an older Node would ignore them silently, so it is refused.
 */
export function assertKeepAliveTuning(): void {
  if (Socket.prototype.setKeepAlive.length < 4) {
    throw new Error(
      `Node ${process.version} cannot set TCP_KEEPINTVL/TCP_KEEPCNT per socket (socket.setKeepAlive with interval and count); run the ` +
        `Node 24 of the image`,
    );
  }
}

/**
 * Applies the policy to a connected socket and keeps it: drivers call `setKeepAlive(true,
 * delay)` themselves (tedious after every connect, Node's http Agent whenever a socket goes
 * back to its pool), which makes Node reset the interval to 1 s and the count to 10. The
 * socket's own setKeepAlive is replaced by one that applies the whole policy again.
 */
export function pinKeepAlive<T extends Socket>(socket: T, policy: KeepAlivePolicy = POS_KEEPALIVE): T {
  assertKeepAliveTuning();
  // @types/node does not know the options form yet.
  const original = socket.setKeepAlive as unknown as (o: { enable: boolean; initialDelay: number; interval: number; count: number }) => T;
  const apply = () =>
    original.call(socket, { enable: true, initialDelay: policy.initialDelayMs, interval: policy.intervalMs, count: policy.count });
  socket.setKeepAlive = () => apply();
  // Before the connection exists Node keeps only the idle time: apply on connect.
  if (socket.connecting) socket.once('connect', apply);
  else apply();
  return socket;
}

/**
 * tedious's `options.connector`: the TCP connection to the SQL Server, keepalive pinned.
 * tedious passes (options, lookup, signal); the name resolution is Node's own (it tries
 * every address of the name).
 */
export function keepAliveConnector(policy: KeepAlivePolicy = POS_KEEPALIVE) {
  return (options: { host: string; port: number; localAddress?: string }, _lookup: unknown, signal: AbortSignal): Promise<Socket> => {
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
      const onAbort = () => {
        socket.destroy();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      });
      socket.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve(pinKeepAlive(socket, policy));
      });
    });
  };
}

/**
 * An HTTP(S) agent for one POS: its connections are reused from page to page (as the old
 * system's session did) and every socket it opens has the policy pinned.
 */
export function keepAliveAgent(url: string, policy: KeepAlivePolicy = POS_KEEPALIVE, options: https.AgentOptions = {}): http.Agent {
  const base = { keepAlive: true, keepAliveMsecs: policy.initialDelayMs, maxSockets: 2, ...options };
  type CreateConnection = (o: unknown, cb?: unknown) => Socket;
  const agent = url.startsWith('https:') ? new https.Agent(base) : new http.Agent(base);
  const create = (agent as unknown as { createConnection: CreateConnection }).createConnection.bind(agent);
  (agent as unknown as { createConnection: CreateConnection }).createConnection = (o, cb) => pinKeepAlive(create(o, cb), policy);
  return agent;
}
