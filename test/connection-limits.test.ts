// Connections that never show a certificate end in bounded time, on a bare TLS listener and
// through the front door: sending nothing, half a hello, a whole hello and then nothing, a hello
// trickled a byte at a time, or a hello and then a record trickled a byte at a time. The server
// closes each at its time limit (timeouts.hello, timeouts.handshake, from accept or handoff, not
// pushed back by the trickle), counts it once with its reason and logs it once. max_connections
// and max_connections_per_source refusals are counted and logged on both kinds of listener, and
// the slots idle attackers held are free again once their time is up.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Listener, ListenerTimeouts, Route } from '../gateway/config/types.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { backend, passthroughRoute } from './support/front-door-harness.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { captureLogs, metricValue, waitFor } from './support/lifecycle-harness.js';
import { request, type TestResponse } from './support/mtls-client.js';
import { listenerPort, startProxyParties, type ProxyParties } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

/** A real ClientHello (SNI node.example.com), as the front door tests use it. */
const HELLO = Buffer.from(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'hellos', 'node.hex'), 'utf8').replace(/\s/g, ''), 'hex');
/** The header of a 16 KiB handshake record, whose body then never comes in full. */
const LONG_RECORD = Buffer.from([0x16, 0x03, 0x03, 0x40, 0x00]);
const TRICKLE_MS = 300;
const LIMIT_MS = 1000;

let parties: ProxyParties;
let gateway: RunningGateway;
const open = new Set<net.Socket>();

/** The listeners under test, all on one gateway; `door` ones have a passthrough route, which puts the front door before the TLS server. */
function listener(name: string, door: boolean, extra: { maxConnections?: number; maxConnectionsPerSource?: number; timeouts?: Partial<ListenerTimeouts> } = {}): Listener {
  const base = parties.certs.listener([terminateRoute('echo', 'echo', allow(id('frontend')))], { name });
  const routes: Route[] = door ? [...base.routes, passthroughRoute('relay', 'relay', { sni: ['relay.test'] })] : [...base.routes];
  return {
    ...base,
    routes,
    maxConnections: extra.maxConnections ?? 10_000,
    maxConnectionsPerSource: extra.maxConnectionsPerSource,
    timeouts: { ...base.timeouts, helloMs: LIMIT_MS, handshakeMs: LIMIT_MS, ...extra.timeouts },
  };
}

const portOf = (name: string): number => listenerPort(gateway, name);

beforeAll(async () => {
  parties = await startProxyParties();
  const config = {
    ...gatewayConfig(
      [
        listener('slow-bare', false),
        listener('slow-door', true),
        listener('full-bare', false, { maxConnections: 3 }),
        listener('full-door', true, { maxConnections: 3 }),
        listener('source-bare', false, { maxConnectionsPerSource: 2, timeouts: { handshakeMs: 10_000 } }),
        listener('source-door', true, { maxConnectionsPerSource: 2, timeouts: { helloMs: 10_000 } }),
        listener('flood-bare', false),
      ],
      [parties.echo],
    ),
    backends: [backend('relay', [parties.upstream.port])],
  };
  gateway = await startGateway(config, { admin: false });
});

afterEach(() => {
  for (const socket of open) socket.destroy();
  open.clear();
});

afterAll(async () => {
  await gateway?.close();
  await parties?.close();
});

type Attack = 'nothing' | 'half_hello' | 'whole_hello' | 'trickled_hello' | 'hello_then_trickle';

interface Attacker {
  /** Resolves once TCP is connected. */
  readonly connected: Promise<void>;
  /** How long after connecting the server closed the connection, or 'open' if it had not after `waitMs`. */
  readonly closedAfter: Promise<number | 'open'>;
  readonly socket: net.Socket;
}

/** A client that never completes a handshake; it never closes on its own before `waitMs`. */
function attacker(port: number, attack: Attack, opts: { localAddress?: string; waitMs?: number } = {}): Attacker {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress });
  open.add(socket);
  socket.on('error', () => {});
  socket.on('data', () => {}); // read what the server sends (its flight, an alert) and drop it
  let connectedAt = 0;
  let trickle: NodeJS.Timeout | undefined;
  const trickled = (bytes: Buffer): void => {
    let sent = 0;
    trickle = setInterval(() => {
      if (sent < bytes.length && socket.writable) socket.write(bytes.subarray(sent, ++sent));
    }, TRICKLE_MS);
  };
  const connected = new Promise<void>((resolve) =>
    socket.once('connect', () => {
      connectedAt = Date.now();
      if (attack === 'half_hello') socket.write(HELLO.subarray(0, 50));
      else if (attack === 'whole_hello') socket.write(HELLO);
      else if (attack === 'trickled_hello') trickled(HELLO);
      else if (attack === 'hello_then_trickle') {
        socket.write(HELLO);
        trickled(Buffer.concat([LONG_RECORD, Buffer.alloc(64)]));
      }
      resolve();
    }),
  );
  const closedAfter = new Promise<number | 'open'>((resolve) => {
    const timer = setTimeout(() => resolve('open'), opts.waitMs ?? 6000);
    socket.once('close', () => {
      clearTimeout(timer);
      clearInterval(trickle);
      resolve(Date.now() - connectedAt);
    });
  });
  return { connected, closedAfter, socket };
}

function get(port: number, localAddress?: string): Promise<TestResponse> {
  return request({ port, ca: parties.pki.ca.rootPem, cert: parties.frontend, path: '/hello', localAddress });
}

/** A request from `localAddress` served within a few tries: the gateway sees a close a moment after the client does, and until then a try may be refused. */
function servedSoon(port: number, localAddress: string): Promise<boolean> {
  return waitFor(`a slot for ${localAddress}`, () => get(port, localAddress).then((r) => r.status === 200, () => false), 3000, 50);
}

const handshakes = (listener: string, reason: string) => metricValue('gatehouse_tls_handshakes_total', { listener, result: 'rejected', reason });
const refusals = (listener: string, reason: string) => metricValue('gatehouse_front_door_refusals_total', { listener, reason });

describe('every stage before a certificate ends at its time limit (hello 1 s, handshake 1 s)', () => {
  test('bare TLS listener: nothing, half a hello, a whole hello, a trickled hello, a hello then a trickled record: each closed by the server at ~1 s, counted and logged once as timeout', async () => {
    const logs = captureLogs();
    try {
      const attacks: Attack[] = ['nothing', 'half_hello', 'whole_hello', 'trickled_hello', 'hello_then_trickle'];
      const attackers = attacks.map((a) => attacker(portOf('slow-bare'), a));
      const closed = await Promise.all(attackers.map((a) => a.closedAfter));
      for (const [i, after] of closed.entries()) {
        expect(after, attacks[i]).not.toBe('open');
        expect(after as number, attacks[i]).toBeGreaterThanOrEqual(LIMIT_MS - 100);
        expect(after as number, attacks[i]).toBeLessThan(2 * LIMIT_MS + 500);
      }
      expect(await handshakes('slow-bare', 'timeout')).toBe(attacks.length);
      expect(await handshakes('slow-bare', 'client_aborted')).toBe(0); // closing it is not counted again
      const logged = logs.events('handshake_rejected').filter((l) => l.listener === 'slow-bare');
      expect(logged.map((l) => l.reason)).toEqual(attacks.map(() => 'timeout'));
    } finally {
      logs.restore();
    }
  });

  test('front door: the hello stage ends at timeouts.hello (nothing, half, trickled), the handshake at timeouts.handshake from the handoff (whole hello, hello then trickle)', async () => {
    const logs = captureLogs();
    try {
      const helloStage: Attack[] = ['nothing', 'half_hello', 'trickled_hello'];
      const handshakeStage: Attack[] = ['whole_hello', 'hello_then_trickle'];
      const attackers = [...helloStage, ...handshakeStage].map((a) => attacker(portOf('slow-door'), a));
      const closed = await Promise.all(attackers.map((a) => a.closedAfter));
      for (const [i, after] of closed.entries()) {
        const attack = [...helloStage, ...handshakeStage][i]!;
        expect(after, attack).not.toBe('open');
        expect(after as number, attack).toBeGreaterThanOrEqual(LIMIT_MS - 100);
        // A client that sends nothing is accepted by the kernel (TCP_DEFER_ACCEPT) about a second late.
        expect(after as number, attack).toBeLessThan((attack === 'nothing' ? 2 * LIMIT_MS + 1500 : LIMIT_MS) + LIMIT_MS + 500);
      }
      expect(await refusals('slow-door', 'hello_timeout')).toBe(helloStage.length);
      expect(await handshakes('slow-door', 'timeout')).toBe(handshakeStage.length);
      expect(await handshakes('slow-door', 'client_aborted')).toBe(0);
      expect(logs.events('handshake_rejected').filter((l) => l.listener === 'slow-door').map((l) => l.reason)).toEqual(handshakeStage.map(() => 'timeout'));
      await waitFor('the front door holds none of them', () => gateway.listeners.get('slow-door')!.frontDoor!.openConnections() === 0);
    } finally {
      logs.restore();
    }
  });
});

describe('max_connections (3): refusals counted and logged, slots freed when idle attackers time out', () => {
  test('bare TLS listener: three silent connections fill it, a real client is refused, then served once they are cut', async () => {
    const logs = captureLogs();
    try {
      const port = portOf('full-bare');
      const attackers = [0, 1, 2].map(() => attacker(port, 'nothing'));
      await Promise.all(attackers.map((a) => a.connected));
      await expect(get(port)).rejects.toThrow();
      expect(await refusals('full-bare', 'max_connections')).toBe(1);
      expect(logs.events('connection_refused')).toEqual([expect.objectContaining({ listener: 'full-bare', reason: 'max_connections', max_connections: 3, remote: '127.0.0.1' })]);
      for (const after of await Promise.all(attackers.map((a) => a.closedAfter))) expect(after).toBeLessThan(2 * LIMIT_MS + 500);
      const served = await get(port);
      expect(served.status).toBe(200);
      expect(await refusals('full-bare', 'max_connections')).toBe(1);
    } finally {
      logs.restore();
    }
  });

  test('front door: three connections stalled after their hello fill it, a real client is refused, then served once they are cut', async () => {
    const logs = captureLogs();
    try {
      const port = portOf('full-door');
      const door = gateway.listeners.get('full-door')!.frontDoor!;
      const attackers = [0, 1, 2].map(() => attacker(port, 'whole_hello'));
      await waitFor('three connections held', () => door.openConnections() === 3);
      await expect(get(port)).rejects.toThrow();
      expect(await refusals('full-door', 'max_connections')).toBe(1);
      expect(logs.events('front_door_refused')).toEqual([expect.objectContaining({ listener: 'full-door', reason: 'max_connections', max_connections: 3 })]);
      for (const after of await Promise.all(attackers.map((a) => a.closedAfter))) expect(after).toBeLessThan(2 * LIMIT_MS + 500);
      expect(await handshakes('full-door', 'timeout')).toBe(3);
      const served = await get(port);
      expect(served.status).toBe(200);
    } finally {
      logs.restore();
    }
  });
});

describe('max_connections_per_source (2): one address is refused, others are not, and a closed connection frees its slot', () => {
  for (const [name, attack] of [
    ['source-bare', 'nothing'],
    ['source-door', 'half_hello'],
  ] as const) {
    test(`${name}: a third connection from 127.0.0.1 is refused, counted and logged; 127.0.0.2 is served meanwhile`, async () => {
      const logs = captureLogs();
      try {
        const port = portOf(name);
        const held = [attacker(port, attack, { waitMs: 20_000 }), attacker(port, attack, { waitMs: 20_000 })];
        await Promise.all(held.map((a) => a.connected));
        const third = attacker(port, attack, { waitMs: 5000 });
        expect(await third.closedAfter).toBeLessThan(1000);
        expect(await refusals(name, 'max_connections_per_source')).toBe(1);
        const event = name === 'source-bare' ? 'connection_refused' : 'front_door_refused';
        expect(logs.events(event)).toEqual([expect.objectContaining({ listener: name, reason: 'max_connections_per_source', max_connections_per_source: 2, remote: '127.0.0.1' })]);
        expect((await get(port, '127.0.0.2')).status).toBe(200);
        // Served connections give their slot back when they close (here after being handed on to
        // TLS): three in turn from an address allowed two.
        for (let i = 0; i < 3; i++) expect(await servedSoon(port, '127.0.0.2')).toBe(true);
        held[0]!.socket.destroy();
        await held[0]!.closedAfter;
        expect(await servedSoon(port, '127.0.0.1')).toBe(true);
      } finally {
        logs.restore();
      }
    });
  }
});

describe('a flood of refused handshakes is a few log lines a second, every one counted', () => {
  test('31 clients that speak no TLS to a bare listener: all 31 counted, at most 20 lines in a second, and the next line says how many were left out', async () => {
    const logs = captureLogs();
    try {
      const port = portOf('flood-bare');
      const before = await handshakes('flood-bare', 'not_tls');
      const plain = (): void => {
        const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
        open.add(socket);
        socket.on('error', () => {});
      };
      for (let i = 0; i < 30; i++) plain();
      await waitFor('30 refusals counted', async () => (await handshakes('flood-bare', 'not_tls')) === before + 30, 5000, 20);
      await new Promise((resolve) => setTimeout(resolve, 1100)); // the next second's budget
      plain();
      await waitFor('the 31st counted', async () => (await handshakes('flood-bare', 'not_tls')) === before + 31, 5000, 20);
      const lines = logs.events('handshake_rejected').filter((l) => l.listener === 'flood-bare');
      const skipped = lines.reduce((n, l) => n + Number(l.skipped_lines ?? 0), 0);
      expect(lines.length).toBeLessThan(31);
      expect(lines.length + skipped).toBe(31);
    } finally {
      logs.restore();
    }
  });
});
