/**
 * A peer that can die silently: a network namespace joined to this one by a veth pair, with a
 * TCP relay inside it to servers that listen on this side's address. `cut()` takes the
 * namespace's end of the link down, so whatever crossed the relay stops without a FIN or an
 * RST, like a VPN tunnel that vanished; the host's neighbour entry for the peer is permanent,
 * so the kernel reports nothing sooner than a timeout either.
 *
 * Needs root and `ip` (iproute2), as the CI machine has. When the namespace cannot be made the
 * error says why: a test using this fails, it is never skipped.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';

export interface NetnsPeer {
  /** This side's address: the servers behind the relay listen here. */
  hostAddress: string;
  /** The namespace's address: clients connect here. */
  peerAddress: string;
  /** Starts the relay: each entry is [port on peerAddress, port on hostAddress]. */
  relay(routes: Array<[number, number]>): Promise<void>;
  /** The peer dies silently. */
  cut(): void;
  close(): void;
}

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `cannot build the network namespace this test needs to make a peer die silently (it needs root and iproute2, as the CI machine ` +
        `has): \`ip ${args.join(' ')}\` failed: ${(e.stderr || e.message).trim()}`,
    );
  }
}

export function createNetnsPeer(): NetnsPeer {
  const tag = `fxka${process.pid % 100_000}${Math.floor(Math.random() * 100)}`;
  const ns = tag;
  const hostIf = `${tag}h`.slice(0, 15);
  const peerIf = `${tag}n`.slice(0, 15);
  const subnet = `10.213.${Math.floor(Math.random() * 256)}.${4 * Math.floor(Math.random() * 64)}`;
  const base = subnet.split('.').map(Number);
  const hostAddress = `${base[0]}.${base[1]}.${base[2]}.${base[3]! + 1}`;
  const peerAddress = `${base[0]}.${base[1]}.${base[2]}.${base[3]! + 2}`;
  let relay: ChildProcess | undefined;
  ip(['netns', 'add', ns]);
  try {
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', ns]);
    ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    ip(['link', 'set', hostIf, 'up']);
    ip(['-n', ns, 'addr', 'add', `${peerAddress}/30`, 'dev', peerIf]);
    ip(['-n', ns, 'link', 'set', peerIf, 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    const mac = (JSON.parse(ip(['-j', '-n', ns, 'link', 'show', 'dev', peerIf])) as Array<{ address: string }>)[0]!.address;
    ip(['neigh', 'replace', peerAddress, 'lladdr', mac, 'dev', hostIf, 'nud', 'permanent']);
  } catch (err) {
    ip(['netns', 'del', ns]);
    throw err;
  }
  return {
    hostAddress,
    peerAddress,
    async relay(routes) {
      const args = [
        'netns',
        'exec',
        ns,
        process.execPath,
        join(PROJECT_ROOT, 'test', 'helpers', 'tcp-relay.ts'),
        peerAddress,
        ...routes.map(([p, t]) => `${p}:${hostAddress}:${t}`),
      ];
      relay = spawn('ip', args, { stdio: ['ignore', 'pipe', 'inherit'] });
      const [line] = (await Promise.race([
        once(relay.stdout!, 'data'),
        once(relay, 'exit').then(() => [Buffer.from('relay exited')]),
      ])) as [Buffer];
      if (!String(line).startsWith('ready')) throw new Error(`the relay in ${ns} did not start: ${String(line)}`);
    },
    cut() {
      ip(['-n', ns, 'link', 'set', peerIf, 'down']);
    },
    close() {
      relay?.kill('SIGKILL');
      // Deleting one end removes both at once; the namespace itself can linger while the
      // kernel times out the relay's orphaned connections on the dead link.
      for (const args of [
        ['link', 'del', hostIf],
        ['netns', 'del', ns],
      ]) {
        try {
          ip(args);
        } catch {
          // already gone
        }
      }
    },
  };
}
