// Passthrough end to end, run once per byte pump (passthrough-relay.test.ts: the native pump,
// passthrough-relay-typescript.test.ts: the TypeScript one): real TLS backends that require client
// certificates behind the front door, reached by node:tls, `openssl s_client` and `curl
// --resolve`. The client must see the backend's own certificate and the backend the client's; the
// relay fails over, balances, keeps its buffers bounded for a slow reader, passes half-closes and
// resets on, and counts the bytes.
import { spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Backend } from '../../gateway/config/types.js';
import type { FrontDoor, FrontDoorOptions } from '../../gateway/listener/front-door.js';
import { OpenResources, backend, frontDoorListener, passthroughRoute, rawBackend, rawExchange, run, tlsBackend, tlsClient, type Closable } from './front-door-harness.js';
import { holdRefusedPort } from './refused-port.js';
import { metricValue, waitFor } from './lifecycle-harness.js';
import { id, TestPki, type WrittenCert } from './test-pki.js';

const HELLO = Buffer.from(fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'hellos', 'node.hex'), 'utf8').replace(/\s/g, ''), 'hex'); // SNI node.example.com

let pki: TestPki;
let serverA: WrittenCert;
let serverB: WrittenCert;
let client: WrittenCert;
let stranger: WrittenCert;
const resources = new OpenResources();
const frontDoor = (options: FrontDoorOptions) => resources.frontDoor(options);
const keep = <T extends Closable>(closable: Promise<T>) => resources.keep(closable);

beforeAll(async () => {
  pki = await TestPki.create();
  serverA = await pki.issue('backend-a', { spiffeId: id('backend-a'), dnsNames: ['a.passthrough.test'], usage: 'server' });
  serverB = await pki.issue('backend-b', { spiffeId: id('backend-b'), dnsNames: ['b.passthrough.test'], usage: 'server' });
  client = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  stranger = await pki.issue('stranger', { spiffeId: 'spiffe://wrong.example/ns/x/sa/stranger', usage: 'client' }, pki.otherCa);
});

afterAll(async () => {
  await resources.closeAll();
  pki.cleanup();
});

const fingerprint = (cert: WrittenCert) => new X509Certificate(cert.certPem).fingerprint256;

/**
 * A loopback port where connect() hangs: a listening socket that never accepts, its backlog
 * filled, so the kernel drops further SYNs. Node accepts by itself, so this is a python3 child.
 */
async function blackhole(): Promise<Closable> {
  const script = [
    'import socket, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'fill = []',
    'for _ in range(4):',
    '    c = socket.socket(); c.setblocking(False)',
    '    try: c.connect(s.getsockname())',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'print(s.getsockname()[1], flush=True)',
    'time.sleep(60)',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
    child.once('exit', () => reject(new Error('python3 blackhole exited')));
  });
  return { port, close: async () => void child.kill() };
}

describe('the client talks TLS with the backend itself', () => {
  let door: FrontDoor;
  let https443: https.Server;
  let backendA: Awaited<ReturnType<typeof tlsBackend>>;

  beforeAll(async () => {
    const a = (backendA = await keep(tlsBackend({ name: 'a', cert: serverA, ca: pki.ca.rootPem, ALPNProtocols: ['h2', 'http/1.1'] })));
    // An HTTPS backend that requires a client certificate, for curl.
    https443 = https.createServer({ cert: serverB.chainPem, key: serverB.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerX509Certificate();
      res.end(JSON.stringify({ backend: 'b', client: peer?.subjectAltName ?? null }));
    });
    await new Promise<void>((resolve) => https443.listen(0, '127.0.0.1', resolve));
    resources.add({ close: () => new Promise<void>((resolve) => (https443.closeAllConnections(), https443.close(() => resolve()))) });
    const bPort = (https443.address() as net.AddressInfo).port;
    door = await frontDoor({
      listener: frontDoorListener([passthroughRoute('to-a', 'a', { sni: ['a.passthrough.test'] }), passthroughRoute('to-b', 'b', { sni: ['b.passthrough.test'] })]),
      backends: [backend('a', [a.port]), backend('b', [bPort])],
    });
  });

  test('node:tls: the certificate seen is the backend\'s, the backend sees the client certificate, and bytes echo both ways', async () => {
    const { socket, fingerprint: seen, firstLine } = await tlsClient({ port: door.address().port, servername: 'a.passthrough.test', ca: pki.ca.rootPem, cert: client, ALPNProtocols: ['h2'] });
    expect(seen).toBe(fingerprint(serverA));
    expect(firstLine).toEqual({ backend: 'a', client: `URI:${id('frontend')}`, alpn: 'h2', sni: 'a.passthrough.test' });
    const echoed = new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
    socket.write('ping through the relay');
    expect(await echoed).toBe('ping through the relay');
    socket.destroy();
  });

  test('node:tls: the backend, not the gateway, refuses a client certificate from another CA', async () => {
    const errorsBefore = backendA.clientErrors.length;
    const attempt = tlsClient({ port: door.address().port, servername: 'a.passthrough.test', ca: pki.ca.rootPem, cert: stranger });
    await expect(attempt).rejects.toThrow('closed before the first line');
    // The backend's TLS server failed the handshake (as it does when the client connects to it
    // directly): the gateway never looked at the certificate.
    await waitFor('the backend refusal', () => backendA.clientErrors.length > errorsBefore);
  });

  test('openssl s_client: verifies the backend\'s certificate for the SNI and completes mTLS', async () => {
    const port = door.address().port;
    const result = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'a.passthrough.test', '-verify_hostname', 'a.passthrough.test', '-CAfile', pki.caFile, '-cert', client.certFile, '-key', client.keyFile, '-alpn', 'h2,http/1.1', '-verify_return_error', '-ign_eof'], { input: 'hello from openssl\nQUIT\n', timeoutMs: 5000 });
    expect(result.code).toBe(0); // the backend closed the connection after QUIT, not the time limit
    expect(result.stdout).toMatch(/subject=CN ?= ?a\.passthrough\.test/);
    expect(result.stdout).toContain('Verify return code: 0 (ok)');
    expect(result.stdout).toContain('ALPN protocol: h2');
    expect(result.stdout).toContain(`"client":"URI:${id('frontend')}"`);
    expect(result.stdout).toContain('hello from openssl'); // echoed by the backend
  });

  test('curl --resolve: HTTPS to the backend with a client certificate, hostname verified against the backend\'s certificate', async () => {
    const port = door.address().port;
    const result = await run('curl', ['-sS', '--max-time', '5', '--resolve', `b.passthrough.test:${port}:127.0.0.1`, '--cacert', pki.caFile, '--cert', client.certFile, '--key', client.keyFile, `https://b.passthrough.test:${port}/`]);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ backend: 'b', client: `URI:${id('frontend')}` });
  });
});

describe('ALPN in the match', () => {
  test('an ALPN route takes only clients that offer the protocol; the others go to the plain route of the same name', async () => {
    const a = await keep(tlsBackend({ name: 'a', cert: serverA, ca: pki.ca.rootPem, ALPNProtocols: ['h2', 'http/1.1'] }));
    const b = await keep(tlsBackend({ name: 'b', cert: serverA, ca: pki.ca.rootPem, ALPNProtocols: ['h2', 'http/1.1'] }));
    const door = await frontDoor({
      listener: frontDoorListener([passthroughRoute('h1', 'a', { sni: ['a.passthrough.test'] }), passthroughRoute('h2', 'b', { sni: ['a.passthrough.test'], alpn: 'h2' })]),
      backends: [backend('a', [a.port]), backend('b', [b.port])],
    });
    const connect = (alpn: string[]) => tlsClient({ port: door.address().port, servername: 'a.passthrough.test', ca: pki.ca.rootPem, cert: client, ALPNProtocols: alpn });
    const viaH2 = await connect(['h2', 'http/1.1']);
    const viaH1 = await connect(['http/1.1']);
    expect(viaH2.firstLine.backend).toBe('b');
    expect(viaH1.firstLine.backend).toBe('a');
    viaH2.socket.destroy();
    viaH1.socket.destroy();
  });
});

describe('endpoints and balancing', () => {
  test('a down endpoint fails over to the next one; the failure is counted per endpoint', async () => {
    const a = await keep(tlsBackend({ name: 'a', cert: serverA, ca: pki.ca.rootPem }));
    const { port: down } = await keep(holdRefusedPort());
    const pool: Backend = backend('failover', [down, a.port], { balance: 'round_robin' });
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('fo', 'failover', { default: true })], { name: 'failover-edge' }), backends: [pool] });
    const failuresBefore = await metricValue('gatehouse_backend_connect_failures_total', { backend: 'failover', endpoint: `127.0.0.1:${down}`, reason: 'upstream_unavailable' });
    // Round robin starts the first connection at the down endpoint, the second at the live one.
    for (let i = 0; i < 2; i++) {
      const { fingerprint: seen, socket } = await tlsClient({ port: door.address().port, servername: 'a.passthrough.test', ca: pki.ca.rootPem, cert: client });
      expect(seen).toBe(fingerprint(serverA));
      socket.destroy();
    }
    expect(await metricValue('gatehouse_backend_connect_failures_total', { backend: 'failover', endpoint: `127.0.0.1:${down}`, reason: 'upstream_unavailable' })).toBe(failuresBefore + 1);
    expect(await metricValue('gatehouse_passthrough_connections_total', { listener: 'failover-edge', route: 'fo', outcome: 'relayed' })).toBe(2);
  });

  test('when every endpoint is down the client is closed after one attempt per endpoint', async () => {
    const ports = [(await keep(holdRefusedPort())).port, (await keep(holdRefusedPort())).port, (await keep(holdRefusedPort())).port];
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('dead', 'dead', { default: true })], { name: 'dead-edge' }), backends: [backend('dead', ports)] });
    const attempts = () => Promise.all(ports.map((p) => metricValue('gatehouse_backend_connect_failures_total', { backend: 'dead', endpoint: `127.0.0.1:${p}` }))).then((v) => v.reduce((a, b) => a + b, 0));
    const ended = await rawExchange(door.address().port, HELLO);
    expect(ended.how).not.toBe('timeout');
    expect(ended.received.length).toBe(0);
    expect(await attempts()).toBe(3);
    expect(await metricValue('gatehouse_passthrough_connections_total', { listener: 'dead-edge', outcome: 'upstream_unavailable' })).toBe(1);
  });

  test('a backend that accepts nothing hits the connect timeout, then the next endpoint is tried', async () => {
    const a = await keep(tlsBackend({ name: 'a', cert: serverA, ca: pki.ca.rootPem }));
    const hole = await keep(blackhole());
    const door = await frontDoor({
      listener: frontDoorListener([passthroughRoute('slow-connect', 'hole', { default: true })]),
      backends: [backend('hole', [hole.port, a.port], { connectTimeoutMs: 300 })],
    });
    const labels = { backend: 'hole', endpoint: `127.0.0.1:${hole.port}`, reason: 'upstream_connect_timeout' };
    const before = await metricValue('gatehouse_backend_connect_failures_total', labels);
    const started = Date.now();
    const { fingerprint: seen, socket } = await tlsClient({ port: door.address().port, servername: 'a.passthrough.test', ca: pki.ca.rootPem, cert: client });
    expect(seen).toBe(fingerprint(serverA));
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(await metricValue('gatehouse_backend_connect_failures_total', labels)).toBe(before + 1);
    socket.destroy();
  });

  test('a client that resets while the backend is still connecting is counted client_closed, and the front door holds nothing of it', async () => {
    const hole = await keep(blackhole());
    const door = await frontDoor({
      listener: frontDoorListener([passthroughRoute('leaver', 'hole-long', { default: true })], { name: 'leaver-edge' }),
      backends: [backend('hole-long', [hole.port], { connectTimeoutMs: 10_000 })],
    });
    const outcome = (o: string) => metricValue('gatehouse_passthrough_connections_total', { listener: 'leaver-edge', route: 'leaver', outcome: o });
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(HELLO);
    // Routed (a hello counted) and then connecting, for as long as the blackhole lets it.
    await waitFor('the hello routed', async () => (await metricValue('gatehouse_client_hello_total', { listener: 'leaver-edge', outcome: 'hello' })) === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(door.openConnections()).toBe(1);
    socket.resetAndDestroy();
    await waitFor('the relay noticed the client leave', () => door.openConnections() === 0);
    expect(await outcome('client_closed')).toBe(1);
    expect(await outcome('upstream_connect_timeout')).toBe(0);
    expect(await outcome('relayed')).toBe(0);
  });

  test('least connections sends a new connection to the endpoint with the fewest open ones', async () => {
    const a = await keep(tlsBackend({ name: 'a', cert: serverA, ca: pki.ca.rootPem }));
    const b = await keep(tlsBackend({ name: 'b', cert: serverA, ca: pki.ca.rootPem }));
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('lc', 'lc', { default: true })]), backends: [backend('lc', [a.port, b.port], { balance: 'least_connections' })] });
    const connect = () => tlsClient({ port: door.address().port, servername: 'a.passthrough.test', ca: pki.ca.rootPem, cert: client });
    const first = await connect();
    const held = [first];
    // With one connection open on the first endpoint, the next three alternate from the other one.
    const seen: unknown[] = [first.firstLine.backend];
    for (let i = 0; i < 3; i++) {
      const c = await connect();
      seen.push(c.firstLine.backend);
      held.push(c);
    }
    expect(seen.filter((s) => s === 'a').length).toBe(2);
    expect(seen.filter((s) => s === 'b').length).toBe(2);
    // Close both on b: the next two go to b.
    for (const c of held.filter((h) => h.firstLine.backend === 'b')) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const next = [await connect(), await connect()];
    expect(next.map((c) => c.firstLine.backend)).toEqual(['b', 'b']);
    for (const c of [...held, ...next]) c.socket.destroy();
  });
});

describe('PROXY protocol', () => {
  test('v1: the backend reads the client address line, then the ClientHello untouched', async () => {
    const raw = await keep(rawBackend());
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('pp', 'pp', { sni: ['node.example.com'] })]), backends: [backend('pp', [raw.port], { proxyProtocol: 'v1' })] });
    const clientSocket = net.connect({ host: '127.0.0.1', port: door.address().port });
    await new Promise((r) => clientSocket.once('connect', r));
    clientSocket.write(HELLO);
    await waitFor('the hello at the backend', () => raw.received[0] && raw.received[0].length >= HELLO.length);
    const got = raw.received[0]!;
    const line = `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientSocket.localPort} ${door.address().port}\r\n`;
    expect(got.subarray(0, line.length).toString('latin1')).toBe(line);
    expect(got.subarray(line.length).equals(HELLO)).toBe(true);
    clientSocket.destroy();
  });

  test('an IPv6 listener relays to a backend named by host name; v1 carries the TCP6 addresses', async () => {
    const received: Buffer[] = [];
    // Dual stack, so that whichever address 'localhost' resolves to first is served.
    const server = net.createServer((socket) => socket.on('data', (c: Buffer) => received.push(c)));
    await new Promise<void>((resolve) => server.listen(0, '::', resolve));
    resources.add({ close: () => new Promise<void>((resolve) => (server.close(() => resolve()), server.unref())) });
    const port = (server.address() as net.AddressInfo).port;
    const listener = { ...frontDoorListener([passthroughRoute('v6', 'v6', { default: true })]), address: { host: '::1', port: 0 } };
    const door = await frontDoor({ listener, backends: [{ ...backend('v6', [port], { proxyProtocol: 'v1' }), endpoints: [{ host: 'localhost', port }] }] });
    const clientSocket = net.connect({ host: '::1', port: door.address().port });
    await new Promise((r) => clientSocket.once('connect', r));
    clientSocket.write(HELLO);
    await waitFor('the hello at the backend', () => Buffer.concat(received).length >= HELLO.length);
    const got = Buffer.concat(received);
    const line = `PROXY TCP6 ::1 ::1 ${clientSocket.localPort} ${door.address().port}\r\n`;
    expect(got.subarray(0, line.length).toString('latin1')).toBe(line);
    expect(got.subarray(line.length).equals(HELLO)).toBe(true);
    clientSocket.destroy();
  });

  test('v2: signature, TCP over IPv4, both addresses and ports, the SNI as authority TLV, then the ClientHello', async () => {
    const raw = await keep(rawBackend());
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('pp2', 'pp2', { sni: ['node.example.com'] })]), backends: [backend('pp2', [raw.port], { proxyProtocol: 'v2' })] });
    const clientSocket = net.connect({ host: '127.0.0.1', port: door.address().port });
    await new Promise((r) => clientSocket.once('connect', r));
    clientSocket.write(HELLO);
    await waitFor('the hello at the backend', () => raw.received[0] && raw.received[0].length >= 16 + HELLO.length);
    const got = raw.received[0]!;
    expect(got.subarray(0, 12).toString('hex')).toBe('0d0a0d0a000d0a515549540a');
    expect(got[12]).toBe(0x21); // v2, PROXY
    expect(got[13]).toBe(0x11); // TCP over IPv4
    const length = got.readUInt16BE(14);
    const body = got.subarray(16, 16 + length);
    expect([...body.subarray(0, 4)]).toEqual([127, 0, 0, 1]);
    expect([...body.subarray(4, 8)]).toEqual([127, 0, 0, 1]);
    expect(body.readUInt16BE(8)).toBe(clientSocket.localPort);
    expect(body.readUInt16BE(10)).toBe(door.address().port);
    expect(body[12]).toBe(0x02); // PP2_TYPE_AUTHORITY
    expect(body.subarray(15, 15 + body.readUInt16BE(13)).toString()).toBe('node.example.com');
    expect(got.subarray(16 + length).equals(HELLO)).toBe(true);
    clientSocket.destroy();
  });
});

describe('the relay', () => {
  test('half-close: the client\'s FIN reaches the backend, which can still answer before its own FIN', async () => {
    const raw = await keep(
      rawBackend((socket) => {
        socket.on('end', () => socket.end('reply after your FIN'));
      }),
    );
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('hc', 'hc', { default: true })]), backends: [backend('hc', [raw.port])] });
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.end(HELLO); // hello, then FIN at once
    await ended;
    expect(Buffer.concat(chunks).toString()).toBe('reply after your FIN');
    expect(raw.received[0]!.equals(HELLO)).toBe(true);
    socket.destroy();
  });

  test('a hello that comes in pieces, and the bytes after it, reach the backend once each and in order (the front door reads it: no peek can route it)', async () => {
    const raw = await keep(rawBackend());
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('pieces', 'pieces', { sni: ['node.example.com'] })]), backends: [backend('pieces', [raw.port])] });
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    const after = Buffer.from('after the hello');
    socket.write(HELLO.subarray(0, 30));
    await new Promise((r) => setTimeout(r, 100));
    socket.write(HELLO.subarray(30));
    socket.write(after);
    const expected = Buffer.concat([HELLO, after]);
    await waitFor('hello and bytes at the backend', () => Buffer.concat(raw.received).length >= expected.length);
    expect(Buffer.concat(raw.received).equals(expected)).toBe(true);
    socket.destroy();
  });

  test('megabytes both ways at once arrive intact (the read buffers are reused between reads and connections)', async () => {
    const SIZE = 12 << 20;
    const upload = randomBytes(SIZE);
    const download = randomBytes(SIZE);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const writeAll = async (socket: net.Socket, data: Buffer) => {
      for (let at = 0; at < data.length; at += 100_000) {
        if (!socket.write(data.subarray(at, at + 100_000))) await new Promise((r) => socket.once('drain', r));
      }
      socket.end();
    };
    let backendSaw: Promise<string> | undefined;
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const hash = createHash('sha256');
      socket.on('data', (c: Buffer) => hash.update(c));
      backendSaw = new Promise((resolve) => socket.once('end', () => resolve(hash.digest('hex'))));
      void writeAll(socket, download);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    resources.add({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('bulk', 'bulk', { default: true })]), backends: [backend('bulk', [(server.address() as net.AddressInfo).port])] });
    for (let round = 0; round < 2; round++) {
      const client = net.connect({ host: '127.0.0.1', port: door.address().port, allowHalfOpen: true });
      const hash = createHash('sha256');
      client.on('data', (c: Buffer) => hash.update(c));
      const clientSaw = new Promise<string>((resolve) => client.once('end', () => resolve(hash.digest('hex'))));
      client.write(HELLO);
      await writeAll(client, upload);
      expect(await clientSaw).toBe(sha(download));
      await waitFor('the backend saw the end', () => backendSaw !== undefined);
      expect(await backendSaw).toBe(sha(Buffer.concat([HELLO, upload])));
      client.destroy();
      backendSaw = undefined;
    }
  }, 30_000);

  test('a reset from the backend reaches the client as a reset', async () => {
    const raw = await keep(rawBackend((socket) => socket.once('data', () => socket.resetAndDestroy())));
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('rst', 'rst', { default: true })]), backends: [backend('rst', [raw.port])] });
    const ended = await rawExchange(door.address().port, HELLO);
    expect(ended.how).toBe('reset');
  });

  test('a reset from the client reaches the backend as a reset; the client\'s FIN as a FIN', async () => {
    const raw = await keep(rawBackend());
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('crst', 'crst', { default: true })]), backends: [backend('crst', [raw.port])] });
    const backendEnd = (index: number) =>
      new Promise<string>((resolve) => {
        const socket = raw.connections[index]!;
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        socket.once('end', () => resolve('end'));
      });
    for (const [index, leave] of [[0, 'reset'], [1, 'end']] as const) {
      const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
      socket.on('error', () => {});
      socket.write(HELLO);
      await waitFor('the backend got the hello', () => raw.received[index]?.equals(HELLO));
      const ended = backendEnd(index);
      if (leave === 'reset') socket.resetAndDestroy();
      else socket.end();
      expect(await ended).toBe(leave === 'reset' ? 'ECONNRESET' : 'end');
      socket.destroy();
    }
  });

  test('closing the front door closes its relays on both sides', async () => {
    const raw = await keep(rawBackend());
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('shut', 'shut', { default: true })]), backends: [backend('shut', [raw.port])] });
    const ended = rawExchange(door.address().port, HELLO, 5000);
    await waitFor('the backend got the hello', () => raw.received[0]?.equals(HELLO));
    expect(door.openConnections()).toBe(1);
    await door.close();
    expect((await ended).how).toBe('end');
    await waitFor('the backend side closed too', () => raw.connections[0]?.readableEnded);
  });

  test('idle timeout: a relay with no traffic either way is closed', async () => {
    const raw = await keep(rawBackend());
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('idle', 'idle', { default: true })], { timeouts: { idleMs: 300 } }), backends: [backend('idle', [raw.port])] });
    const started = Date.now();
    const ended = await rawExchange(door.address().port, HELLO, 5000);
    expect(ended.how).not.toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(3000);
    await waitFor('the backend side closed too', () => raw.connections[0]?.readableEnded);
  });

  test('slow reader: the gateway holds a bounded number of bytes while the backend has megabytes to send', async () => {
    const TOTAL = 16 << 20;
    const CHUNK = Buffer.alloc(64 << 10, 0x61);
    let produced = 0;
    const raw = await keep(
      rawBackend((socket) => {
        const pump = () => {
          while (produced < TOTAL) {
            produced += CHUNK.length;
            if (!socket.write(CHUNK)) return void socket.once('drain', pump);
          }
          socket.end();
        };
        socket.once('data', pump);
      }),
    );
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('slow', 'slow', { default: true })], { name: 'slow-edge' }), backends: [backend('slow', [raw.port])] });
    // What the relay holds, as an operator sees it: the buffered-bytes gauge, sampled while the
    // reader is slow (a relay that ignored backpressure would hold megabytes).
    let maxHeld = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxHeld = Math.max(maxHeld, await metricValue('gatehouse_relay_buffered_bytes'));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      const reader = net.connect({ host: '127.0.0.1', port: door.address().port });
      reader.write(HELLO);
      reader.pause();
      let received = 0;
      // Read 64 KiB every 20 ms: ~3 MiB/s, far slower than loopback.
      const slowRead = setInterval(() => {
        let chunk: Buffer | null;
        let budget = 64 << 10;
        while (budget > 0 && (chunk = reader.read() as Buffer | null) !== null) {
          received += chunk.length;
          budget -= chunk.length;
        }
      }, 20);
      await waitFor('a second of slow reading', () => received > 2 << 20, 10_000);
      clearInterval(slowRead);
      // The backend was held back by the gateway: it has not produced everything.
      expect(produced).toBeLessThan(TOTAL);
      // Then read at full speed to the end: all bytes arrive, in order and complete.
      reader.on('data', (c: Buffer) => (received += c.length));
      reader.resume();
      await new Promise((r) => reader.once('end', r));
      expect(received).toBe(TOTAL);
      reader.destroy();
    } finally {
      sampling = false;
      await sampler;
    }
    // At most one 64 KiB read buffer per direction, not megabytes.
    expect(maxHeld).toBeGreaterThan(0);
    expect(maxHeld).toBeLessThanOrEqual(2 * (64 << 10));
    await waitFor('bytes counted', async () => (await metricValue('gatehouse_relayed_bytes_total', { listener: 'slow-edge', direction: 'to_client' })) === TOTAL);
    expect(await metricValue('gatehouse_relayed_bytes_total', { listener: 'slow-edge', direction: 'to_backend' })).toBe(HELLO.length);
  });

  test('relayed bytes of a connection still open are counted at scrape time', async () => {
    const raw = await keep(
      rawBackend((socket) => {
        socket.once('data', () => socket.write(Buffer.alloc(1000)));
        socket.on('end', () => socket.end());
      }),
    );
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('live', 'live', { default: true })], { name: 'live-edge' }), backends: [backend('live', [raw.port])] });
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
    let got = 0;
    socket.on('data', (c: Buffer) => (got += c.length));
    socket.write(HELLO);
    await waitFor('reply', () => got === 1000);
    socket.write(Buffer.alloc(500));
    await waitFor('upload at the backend', () => raw.received[0]?.length === HELLO.length + 500);
    expect(await metricValue('gatehouse_relayed_bytes_total', { listener: 'live-edge', direction: 'to_backend' })).toBe(HELLO.length + 500);
    expect(await metricValue('gatehouse_relayed_bytes_total', { listener: 'live-edge', direction: 'to_client' })).toBe(1000);
    expect(await metricValue('gatehouse_active_connections', { listener: 'live-edge' })).toBe(1);
    socket.destroy();
    await waitFor('active back to 0', async () => (await metricValue('gatehouse_active_connections', { listener: 'live-edge' })) === 0);
  });
});

/** Ends one relayed connection from the client's side, in one of four ways (the backend plays its part). */
async function relayAndEnd(port: number, way: 'A' | 'B' | 'C' | 'D'): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.once('data', () => {
    if (way === 'A') socket.end(); // the client's FIN first; the backend answers with its own
    if (way === 'C') socket.resetAndDestroy();
  });
  socket.once('end', () => socket.end()); // B: the backend's FIN first
  socket.write(Buffer.concat([HELLO, Buffer.from(way)]));
  await closed; // D: the backend's reset
}

test.runIf(process.platform === 'linux')('200 relays ended every way (FIN or reset, from either side) leave no connection and no descriptor behind', async () => {
  const raw = await keep(
    rawBackend((socket) => {
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received !== HELLO.length + 1) return;
        const way = String.fromCharCode(chunk[chunk.length - 1]!);
        if (way === 'B') socket.end();
        else if (way === 'D') socket.resetAndDestroy();
        else socket.write('x');
      });
      socket.on('end', () => socket.end());
    }),
  );
  const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('e', 'e', { default: true })]), backends: [backend('e', [raw.port])] });
  const port = door.address().port;
  const descriptors = () => fs.readdirSync('/proc/self/fd').length;
  const before = descriptors();
  const ways = ['A', 'B', 'C', 'D'] as const;
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(Array.from({ length: 20 }, (_, i) => relayAndEnd(port, ways[i % 4]!)));
  }
  expect(raw.connections.length).toBe(200);
  await waitFor('every relay closed', () => door.openConnections() === 0);
  await expect.poll(descriptors, { timeout: 5000 }).toBeLessThanOrEqual(before);
});
