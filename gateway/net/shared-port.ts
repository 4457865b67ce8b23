// How cluster workers share a listener's port. Where Node can (22.12+, 23.1+) on Linux, each
// worker binds its own socket with SO_REUSEPORT and the kernel spreads new connections across
// them by their addresses: no hop through the primary, which otherwise accepts every connection
// and passes it to a worker over IPC (cluster's round-robin). Two workers, a full handshake per
// request, alternating runs: 445–658 requests per CPU-second against 373–523 with round-robin.
// The price: a few long-lived connections may land unevenly (hashing, not turns). Elsewhere, and
// for port 0 (each worker would get a port of its own), workers share the primary's socket.
import cluster from 'node:cluster';
import net from 'node:net';
import { listenOnDescriptor, takeInherited } from './inherited-sockets.js';

/** Node versions whose net.Server.listen() takes `reusePort`. */
function nodeHasReusePort(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 23 ? !(major === 23 && minor < 1) : major === 22 && minor >= 12;
}

export const REUSE_PORT_AVAILABLE = process.platform === 'linux' && nodeHasReusePort(process.versions.node);

/** Extra listen() options for a listener on `port` in this process. */
export function sharedPortOptions(port: number): { exclusive?: boolean; reusePort?: boolean } {
  if (!cluster.isWorker || port === 0 || !REUSE_PORT_AVAILABLE) return {};
  return { exclusive: true, reusePort: true };
}

/**
 * Run by the primary before it forks: fails, as a single process would, when a listener's address
 * is taken. Workers with SO_REUSEPORT would otherwise bind beside another gatehouse whose workers
 * do the same, and the two would silently share its connections. A plain bind (no SO_REUSEPORT)
 * conflicts with every socket already there.
 */
export async function checkPortsFree(listeners: ReadonlyArray<{ readonly name: string; readonly address: { readonly host: string; readonly port: number } }>): Promise<void> {
  if (!REUSE_PORT_AVAILABLE) return; // workers share the primary's socket, whose bind reports it
  for (const { name, address } of listeners) {
    if (address.port === 0) continue;
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', (err) => reject(new Error(`listener '${name}': ${err.message}`)));
      probe.listen({ host: address.host, port: address.port, exclusive: true }, () => probe.close(() => resolve()));
    });
  }
}

/**
 * Listens `server` at `address`: on the socket this process was given for it (its primary's held
 * socket, or the generation before's: inherited-sockets.ts) where there is one, else bound here.
 */
export function listenAt(server: net.Server, address: { readonly host: string; readonly port: number }, backlog: number): Promise<void> {
  const fd = takeInherited(address);
  if (fd !== undefined) return listenOnDescriptor(server, fd, backlog);
  const { host, port } = address;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog, ...sharedPortOptions(port) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
