// The dead endpoint the failover tests use (support/refused-port.ts): connecting to it is refused,
// and nothing else can take the port while a test holds it, which a port that was merely free a
// moment ago does not promise (another test file could bind it, and "refused" attempts reach that).
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { holdRefusedPort } from './support/refused-port.js';

/** `reusePort`: SO_REUSEPORT (Node 22.12+, which the type definitions we build with predate). */
function tryListen(options: net.ListenOptions & { reusePort?: boolean }): Promise<string> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen(options, () => server.close(() => resolve('listening')));
  });
}

function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(5000, () => socket.destroy(new Error('connect timed out')));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
  });
}

describe('a held refused port', () => {
  it('refuses connections, and no one can bind it (any address, SO_REUSEPORT too) while it is held', async () => {
    const dead = await holdRefusedPort();
    try {
      expect(await tryConnect(dead.port)).toBe('ECONNREFUSED');
      // undefined: Node's default, the unspecified IPv6 address where there is one (dual stack), else 0.0.0.0.
      const hosts = ['127.0.0.1', '0.0.0.0', undefined];
      const outcomes: string[] = [];
      for (const host of hosts) outcomes.push(await tryListen({ host, port: dead.port })); // one at a time: none in another's way
      expect(outcomes).toEqual(hosts.map(() => 'EADDRINUSE'));
      expect(await tryListen({ host: '127.0.0.1', port: dead.port, reusePort: true })).toBe('EADDRINUSE');
      expect(await tryConnect(dead.port)).toBe('ECONNREFUSED');
    } finally {
      await dead.close();
    }
  });
});
