/**
 * A TCP relay, run inside a network namespace by test/helpers/netns.ts:
 *   node test/helpers/tcp-relay.ts <listen-host> <listen-port>:<target-host>:<target-port> ...
 * Prints "ready" once every port listens. Bytes are copied both ways unchanged.
 */
import { connect, createServer } from 'node:net';

const [listenHost, ...routes] = process.argv.slice(2);
await Promise.all(
  routes.map((route) => {
    const [listenPort, targetHost, targetPort] = route.split(':');
    const server = createServer((inbound) => {
      const outbound = connect({ host: targetHost, port: Number(targetPort) });
      inbound.pipe(outbound).pipe(inbound);
      const close = () => {
        inbound.destroy();
        outbound.destroy();
      };
      inbound.on('error', close);
      outbound.on('error', close);
    });
    return new Promise<void>((resolve) => server.listen(Number(listenPort), listenHost, resolve));
  }),
);
process.stdout.write('ready\n');
