// The front door's decisions on real sockets: terminate handoff to a real node:tls / node:https
// server (mTLS completes on the native handle, the hello left in the kernel or, when it came in
// pieces, given back), plaintext on
// PERMISSIVE only, refusals with their reasons, alerts and metrics (unknown SNI, not TLS,
// malformed, too large, hello timeout, max connections), reload and close.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Route } from '../gateway/config/types.js';
import { startFrontDoor, type FrontDoorOptions } from '../gateway/listener/front-door.js';
import { LogBudget } from '../gateway/passthrough/log-budget.js';
import { nativePump } from '../gateway/passthrough/native-pump.js';
import type { ClientHello } from '../gateway/passthrough/client-hello.js';
import { terminateRoute, allow } from './support/gateway-config.js';
import { OpenResources, backend, frontDoorListener, passthroughRoute, rawBackend, rawExchange, run, tlsBackend, tlsClient, type Closable } from './support/front-door-harness.js';
import { captureLogs, metricValue, waitFor } from './support/lifecycle-harness.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

const hex = (name: string) => Buffer.from(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'hellos', `${name}.hex`), 'utf8').replace(/\s/g, ''), 'hex');
const NODE_HELLO = hex('node'); // SNI node.example.com
const NO_SNI_HELLO = hex('openssl-tls12-no-sni');
const ALERT_UNRECOGNIZED_NAME = '15030300020270';
const ALERT_DECODE_ERROR = '15030300020232';

let pki: TestPki;
let gatewayCert: WrittenCert;
let backendCert: WrittenCert;
let clientCert: WrittenCert;
const resources = new OpenResources();
const frontDoor = (options: FrontDoorOptions) => resources.frontDoor(options);
const keep = <T extends Closable>(closable: Promise<T>) => resources.keep(closable);

beforeAll(async () => {
  pki = await TestPki.create();
  gatewayCert = await pki.issue('gateway', { spiffeId: id('gateway'), dnsNames: ['app.terminate.test'], usage: 'server' });
  backendCert = await pki.issue('backend', { spiffeId: id('backend'), dnsNames: ['db.passthrough.test'], usage: 'server' });
  clientCert = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
});

afterAll(async () => {
  await resources.closeAll();
  pki.cleanup();
});

const terminateAll: Route = terminateRoute('app', 'app-upstream', allow(id('frontend')));
const terminateHost = (host: string): Route => terminateRoute(`app-${host}`, 'app-upstream', allow(id('frontend')), { match: { host, pathPrefix: '/' } });

/** A node:tls server that is not listening: it only gets sockets from the front door. */
function mtlsServer(): tls.Server {
  const server = tls.createServer({ cert: gatewayCert.chainPem, key: gatewayCert.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.write(JSON.stringify({ backend: 'terminated', client: socket.getPeerX509Certificate()?.subjectAltName ?? null }) + '\n');
    socket.on('data', (chunk: Buffer) => {
      socket.write(chunk);
      if (chunk.includes('QUIT')) socket.end();
    });
    socket.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  return server;
}

describe('terminate handoff', () => {
  test('a real mTLS handshake completes on the TLS server behind the front door, on the native TCP handle', async () => {
    const server = mtlsServer();
    const handoffs: { dataListeners: number; paused: boolean; buffered: number; helloBytes: number; timeout: unknown }[] = [];
    const secure: tls.TLSSocket[] = [];
    server.on('secureConnection', (s: tls.TLSSocket) => secure.push(s));
    const door = await frontDoor({
      listener: frontDoorListener([terminateAll]),
      backends: [],
      terminate: (socket: net.Socket, hello: ClientHello) => {
        handoffs.push({ dataListeners: socket.listenerCount('data'), paused: socket.isPaused(), buffered: socket.readableLength, helloBytes: hello.bytes, timeout: (socket as net.Socket & { timeout?: number }).timeout });
        server.emit('connection', socket);
      },
    });
    const { socket, fingerprint, firstLine } = await tlsClient({ port: door.address().port, servername: 'app.terminate.test', ca: pki.ca.rootPem, cert: clientCert });
    expect(fingerprint).toBe(new (await import('node:crypto')).X509Certificate(gatewayCert.certPem).fingerprint256);
    expect(firstLine).toEqual({ backend: 'terminated', client: `URI:${id('frontend')}` });
    const echoed = new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
    socket.write('after the handshake');
    expect(await echoed).toBe('after the handshake');
    // The handoff: paused, no 'data' listener, no timeout, and the hello (here whole in one
    // segment) still in the kernel when the native pump could peek at it, else given back.
    expect(handoffs).toHaveLength(1);
    expect(handoffs[0]).toMatchObject({ dataListeners: 0, paused: true });
    if (nativePump !== undefined) expect(handoffs[0]!.buffered).toBe(0);
    else expect(handoffs[0]!.buffered).toBeGreaterThanOrEqual(handoffs[0]!.helloBytes);
    expect(handoffs[0]!.timeout ?? 0).toBe(0);
    // TLS runs in C++ over the TCP handle (a JS stream wrapper would show another parent).
    const handle = (secure[0] as unknown as { _handle: { _parent: object; _parentWrap: unknown } })._handle;
    expect(handle._parent.constructor.name).toBe('TCP');
    socket.destroy();
  });

  test('a hello split across two segments is read as it comes and given back in front of the socket, and the handshake completes', async () => {
    const server = mtlsServer();
    const buffered: number[] = [];
    const door = await frontDoor({
      listener: frontDoorListener([terminateAll]),
      backends: [],
      terminate: (socket: net.Socket, hello: ClientHello) => {
        buffered.push(socket.readableLength - hello.bytes);
        server.emit('connection', socket);
      },
    });
    const raw = net.connect({ host: '127.0.0.1', port: door.address().port });
    await new Promise((resolve) => raw.once('connect', resolve));
    // The TLS client writes through a JS stream, so its first write (the hello) can be split.
    let writes = 0;
    const transport = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        if (writes++ > 0) return raw.write(chunk, done);
        raw.write(chunk.subarray(0, 20));
        setTimeout(() => raw.write(chunk.subarray(20), done), 100);
      },
    });
    raw.on('data', (c: Buffer) => transport.push(c));
    raw.on('end', () => transport.push(null));
    const socket = tls.connect({ socket: transport, servername: 'app.terminate.test', ca: pki.ca.rootPem, cert: clientCert.chainPem, key: clientCert.keyPem });
    socket.setTimeout(5000, () => socket.destroy(new Error('no first line: the hello was lost')));
    const firstLine = await new Promise<string>((resolve, reject) => {
      socket.once('data', (c: Buffer) => resolve(c.toString()));
      socket.once('error', reject);
    });
    expect(JSON.parse(firstLine)).toEqual({ backend: 'terminated', client: `URI:${id('frontend')}` });
    expect(buffered).toEqual([0]); // exactly the hello came back, nothing lost or doubled
    socket.destroy();
    raw.destroy();
  });

  test('accepted connections have TCP_NODELAY (from the listening socket where the native pump set it there)', async () => {
    const fds: number[] = [];
    const door = await frontDoor({
      listener: frontDoorListener([terminateAll]),
      backends: [],
      terminate: (socket: net.Socket) => {
        fds.push((socket as unknown as { _handle: { fd: number } })._handle.fd);
      },
    });
    const client = net.connect({ host: '127.0.0.1', port: door.address().port }, () => client.write(NODE_HELLO));
    client.on('error', () => {});
    await waitFor('the handoff', () => fds.length === 1);
    // Another process reads the option off this one's descriptor (pidfd_getfd, Linux 5.6+).
    const script = [
      'import ctypes, os, socket, sys',
      'pidfd = os.pidfd_open(int(sys.argv[1]))',
      'fd = ctypes.CDLL(None, use_errno=True).syscall(438, pidfd, int(sys.argv[2]), 0)',
      'assert fd >= 0, os.strerror(ctypes.get_errno())',
      'print(socket.socket(fileno=fd).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))',
    ].join('\n');
    const result = await run('python3', ['-c', script, String(process.pid), String(fds[0])], { timeoutMs: 5000 });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).not.toBe('0');
    client.destroy();
  });

  test('a client without a certificate is refused by the TLS server, through the front door', async () => {
    const server = mtlsServer();
    const door = await frontDoor({ listener: frontDoorListener([terminateAll]), backends: [], terminate: (socket) => server.emit('connection', socket) });
    await expect(tlsClient({ port: door.address().port, servername: 'app.terminate.test', ca: pki.ca.rootPem })).rejects.toMatchObject({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
  });

  test('an https server behind the front door answers mTLS requests (HTTP/1.1 keep-alive, several requests)', async () => {
    const server = https.createServer({ cert: gatewayCert.chainPem, key: gatewayCert.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as tls.TLSSocket).getPeerX509Certificate();
      res.end(JSON.stringify({ path: req.url, client: peer?.subjectAltName }));
    });
    const door = await frontDoor({ listener: frontDoorListener([terminateAll]), backends: [], terminate: (socket) => server.emit('connection', socket) });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (p: string) =>
      new Promise<string>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: door.address().port, path: p, servername: 'app.terminate.test', ca: pki.ca.rootPem, cert: clientCert.chainPem, key: clientCert.keyPem, agent }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
    for (const p of ['/one', '/two', '/three']) expect(JSON.parse(await get(p))).toEqual({ path: p, client: `URI:${id('frontend')}` });
    expect(await metricValue('gatehouse_active_connections', { listener: 'edge' })).toBeGreaterThanOrEqual(1);
    agent.destroy();
    server.closeAllConnections();
  });

  test('openssl s_client completes mTLS through the front door to the terminating server', async () => {
    const server = mtlsServer();
    const door = await frontDoor({ listener: frontDoorListener([terminateAll]), backends: [], terminate: (socket) => server.emit('connection', socket) });
    const result = await run('openssl', ['s_client', '-connect', `127.0.0.1:${door.address().port}`, '-servername', 'app.terminate.test', '-CAfile', pki.caFile, '-cert', clientCert.certFile, '-key', clientCert.keyFile, '-verify_return_error', '-ign_eof'], { input: 'QUIT\n', timeoutMs: 5000 });
    expect(result.code).toBe(0); // closed by the server after QUIT, not by the time limit
    expect(result.stdout).toContain('Verify return code: 0 (ok)');
    expect(result.stdout).toContain(`"client":"URI:${id('frontend')}"`);
  });

  test('one listener, both modes: a passthrough SNI is relayed, a terminate host is terminated, others are refused', async () => {
    const db = await keep(tlsBackend({ name: 'db', cert: backendCert, ca: pki.ca.rootPem }));
    const server = mtlsServer();
    const door = await frontDoor({
      listener: frontDoorListener([passthroughRoute('db', 'db', { sni: ['db.passthrough.test'] }), terminateHost('app.terminate.test'), terminateHost('*.apps.terminate.test')]),
      backends: [backend('db', [db.port])],
      terminate: (socket) => server.emit('connection', socket),
    });
    const port = door.address().port;
    const relayed = await tlsClient({ port, servername: 'db.passthrough.test', ca: pki.ca.rootPem, cert: clientCert });
    expect(relayed.firstLine.backend).toBe('db');
    const terminated = await tlsClient({ port, servername: 'app.terminate.test', ca: pki.ca.rootPem, cert: clientCert });
    expect(terminated.firstLine.backend).toBe('terminated');
    relayed.socket.destroy();
    terminated.socket.destroy();
    // *.apps.terminate.test claims one label only.
    const nested = await rawExchange(port, helloFor('a.b.apps.terminate.test'));
    expect(nested.received.toString('hex')).toBe(ALERT_UNRECOGNIZED_NAME);
  });
});

const captured = new Map<string, Buffer>();
function helloFor(sni: string): Buffer {
  const hello = captured.get(sni);
  if (!hello) throw new Error(`no captured hello for ${sni}: add it to the preloadHello calls`);
  return hello;
}

/** Captures the ClientHello node:tls sends for `sni` (a raw server that never answers). */
async function preloadHello(sni: string): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s: net.Socket) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: sni }).on('error', () => {});
  captured.set(sni, await got);
  c.destroy();
  server.close();
}

beforeAll(() => preloadHello('a.b.apps.terminate.test'));

describe('refusals', () => {
  test('unknown SNI: the TLS alert unrecognized_name (7 bytes), then the connection closes; counted and logged', async () => {
    const logs = captureLogs();
    try {
      const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('db', 'db', { sni: ['db.passthrough.test'] })], { name: 'sni-edge' }), backends: [backend('db', [1])] });
      const ended = await rawExchange(door.address().port, NODE_HELLO);
      expect(ended.received.toString('hex')).toBe(ALERT_UNRECOGNIZED_NAME);
      expect(ended.how).toBe('end');
      const noSni = await rawExchange(door.address().port, NO_SNI_HELLO);
      expect(noSni.received.toString('hex')).toBe(ALERT_UNRECOGNIZED_NAME);
      expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'sni-edge', reason: 'unrecognized_name' })).toBe(2);
      expect(logs.events('front_door_refused')).toContainEqual(expect.objectContaining({ listener: 'sni-edge', reason: 'unrecognized_name', sni: 'node.example.com' }));
    } finally {
      logs.restore();
    }
  });

  test('unknown SNI: a real TLS client reports the alert (node: ERR_SSL_TLSV1_UNRECOGNIZED_NAME, openssl: unrecognized name)', async () => {
    const door = await frontDoor({ listener: frontDoorListener([passthroughRoute('db', 'db', { sni: ['db.passthrough.test'] })]), backends: [backend('db', [1])] });
    const err = await tlsClient({ port: door.address().port, servername: 'nobody.example', ca: pki.ca.rootPem }).catch((e: NodeJS.ErrnoException) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
    const result = await run('openssl', ['s_client', '-connect', `127.0.0.1:${door.address().port}`, '-servername', 'nobody.example'], { timeoutMs: 3000 });
    expect(result.stdout + result.stderr).toMatch(/unrecognized name/i);
  });

  test('STRICT: plaintext HTTP is closed with reason not_tls, without a byte of answer', async () => {
    const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'strict-edge' }), backends: [], plaintext: () => expect.fail('plaintext on a STRICT listener') });
    const ended = await rawExchange(door.address().port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(ended.received.length).toBe(0);
    expect(ended.how).not.toBe('timeout');
    expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'strict-edge', reason: 'not_tls' })).toBe(1);
    expect(await metricValue('gatehouse_client_hello_total', { listener: 'strict-edge', outcome: 'not_tls' })).toBe(1);
    expect(await metricValue('gatehouse_plaintext_connections_total', { listener: 'strict-edge' })).toBe(0);
  });

  test('a malformed hello gets the alert decode_error; a too-large one is closed; both counted by outcome', async () => {
    const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'bad-edge' }), backends: [], maxHelloBytes: 1024 });
    const malformed = Buffer.from(NODE_HELLO);
    malformed[5] = 2; // a ServerHello
    const bad = await rawExchange(door.address().port, malformed);
    expect(bad.received.toString('hex')).toBe(ALERT_DECODE_ERROR);
    const big = await rawExchange(door.address().port, hex('node-big-alpn'));
    expect(big.received.length).toBe(0);
    expect(big.how).not.toBe('timeout');
    expect(await metricValue('gatehouse_client_hello_total', { listener: 'bad-edge', outcome: 'malformed' })).toBe(1);
    expect(await metricValue('gatehouse_client_hello_total', { listener: 'bad-edge', outcome: 'too_large' })).toBe(1);
    expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'bad-edge', reason: 'hello_too_large' })).toBe(1);
  });

  test('hello timeout: a client that sends half a hello and stalls is closed at the time limit', async () => {
    const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'slow-edge', timeouts: { helloMs: 200 } }), backends: [], terminate: () => expect.fail('not a complete hello') });
    const started = Date.now();
    const ended = await rawExchange(door.address().port, NODE_HELLO.subarray(0, 50), 5000);
    expect(ended.how).not.toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await metricValue('gatehouse_client_hello_total', { listener: 'slow-edge', outcome: 'timeout' })).toBe(1);
    expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'slow-edge', reason: 'hello_timeout' })).toBe(1);
  });

  test('the hello time limit is absolute: trickling a byte at a time does not extend it', async () => {
    const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'trickle-edge', timeouts: { helloMs: 300 } }), backends: [] });
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
    socket.on('error', () => {});
    let sent = 0;
    const trickle = setInterval(() => socket.writable && socket.write(NODE_HELLO.subarray(sent, ++sent)), 50);
    const started = Date.now();
    await new Promise((r) => socket.once('close', r));
    clearInterval(trickle);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(sent).toBeLessThan(NODE_HELLO.length);
  });

  test('max_connections: connections over the limit are dropped at once and counted', async () => {
    const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'max-edge', maxConnections: 2 }), backends: [] });
    const held = [net.connect({ host: '127.0.0.1', port: door.address().port }), net.connect({ host: '127.0.0.1', port: door.address().port })];
    for (const s of held) s.on('error', () => {});
    await waitFor('two connections accepted', async () => (await metricValue('gatehouse_active_connections', { listener: 'max-edge' })) === 2);
    const third = await rawExchange(door.address().port, NODE_HELLO, 3000);
    expect(third.how).not.toBe('timeout');
    expect(third.received.length).toBe(0);
    expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'max-edge', reason: 'max_connections' })).toBe(1);
    for (const s of held) s.destroy();
  });
});

describe('refusal logs', () => {
  test('a flood of refusals is logged within a budget per second, the next line saying how many were left out', () => {
    const budget = new LogBudget(3);
    const taken = Array.from({ length: 10 }, () => budget.take(1000));
    expect(taken).toEqual([0, 0, 0, undefined, undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(budget.take(2000)).toBe(7);
    expect(budget.take(2001)).toBe(0);
  });

  test('a front door flooded with plaintext logs a bounded number of lines but counts every refusal', async () => {
    const logs = captureLogs();
    try {
      const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'flood-edge' }), backends: [] });
      const started = Date.now();
      await Promise.all(Array.from({ length: 100 }, () => rawExchange(door.address().port, Buffer.from('GET / HTTP/1.0\r\n\r\n'))));
      expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'flood-edge', reason: 'not_tls' })).toBe(100);
      const seconds = Math.ceil((Date.now() - started) / 1000) + 1; // budget windows the flood touched
      const lines = logs.events('front_door_refused').filter((l) => l.listener === 'flood-edge');
      expect(lines.length).toBeLessThanOrEqual(20 * seconds);
      expect(lines.length).toBeLessThan(100);
    } finally {
      logs.restore();
    }
  });

  test('terminate routes without a TLS server: said once at start, each connection refused as no_terminate_handler', async () => {
    const logs = captureLogs();
    try {
      const door = await frontDoor({ listener: frontDoorListener([terminateAll], { name: 'unwired-edge' }), backends: [] });
      expect(logs.events('front_door_misconfigured')).toEqual([expect.objectContaining({ listener: 'unwired-edge' })]);
      const ended = await rawExchange(door.address().port, NODE_HELLO);
      expect(ended.received.length).toBe(0);
      expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'unwired-edge', reason: 'no_terminate_handler' })).toBe(1);
    } finally {
      logs.restore();
    }
  });
});

describe('PERMISSIVE listeners', () => {
  test('plaintext HTTP is handed to the plaintext side (a real http.Server) and counted', async () => {
    const server = http.createServer((req, res) => res.end(`plain ${req.method} ${req.url}`));
    const handed: { dataListeners: number; buffered: number }[] = [];
    const door = await frontDoor({
      listener: frontDoorListener([terminateAll], { name: 'permissive-edge', mode: 'PERMISSIVE' }),
      backends: [],
      plaintext: (socket) => {
        handed.push({ dataListeners: socket.listenerCount('data'), buffered: socket.readableLength });
        server.emit('connection', socket); // as the terminate side's acceptPlaintext does, no resume()
      },
    });
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: door.address().port, path: '/hello', agent: false }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    expect(body).toBe('plain GET /hello');
    expect(handed).toEqual([{ dataListeners: 0, buffered: expect.any(Number) }]);
    expect(handed[0]!.buffered).toBeGreaterThan(0);
    expect(await metricValue('gatehouse_plaintext_connections_total', { listener: 'permissive-edge' })).toBe(1);
    server.closeAllConnections();
  });

  test('a request line split in tiny segments is still recognized; non-HTTP plaintext is refused as not_tls', async () => {
    const seen: string[] = [];
    const door = await frontDoor({
      listener: frontDoorListener([terminateAll], { name: 'permissive-split', mode: 'PERMISSIVE' }),
      backends: [],
      plaintext: (socket) => {
        socket.once('data', (d: Buffer) => {
          seen.push(d.toString('latin1'));
          socket.end('ok');
        });
      },
    });
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
    const answer = new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (c: Buffer) => (got += c));
      socket.on('close', () => resolve(got));
    });
    for (const piece of ['G', 'E', 'T', ' /x HTTP/1.1\r\n\r\n']) {
      socket.write(piece);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await answer).toBe('ok');
    expect(seen[0]).toMatch(/^GET \/x/);
    const ssh = await rawExchange(door.address().port, Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'));
    expect(ssh.received.length).toBe(0);
    expect(await metricValue('gatehouse_front_door_refusals_total', { listener: 'permissive-split', reason: 'not_tls' })).toBe(1);
  });

  test('TLS still goes to the terminate side on a PERMISSIVE listener', async () => {
    const server = mtlsServer();
    const door = await frontDoor({
      listener: frontDoorListener([terminateAll], { mode: 'PERMISSIVE' }),
      backends: [],
      terminate: (socket) => server.emit('connection', socket),
      plaintext: () => expect.fail('TLS is not plaintext'),
    });
    const { firstLine, socket } = await tlsClient({ port: door.address().port, servername: 'app.terminate.test', ca: pki.ca.rootPem, cert: clientCert });
    expect(firstLine.backend).toBe('terminated');
    socket.destroy();
  });
});

describe('lifecycle', () => {
  test('update: new connections follow the new routes; an open relay keeps its backend', async () => {
    const one = await keep(rawBackend((s) => s.once('data', () => s.write('one'))));
    const two = await keep(rawBackend((s) => s.once('data', () => s.write('two'))));
    const listener = frontDoorListener([passthroughRoute('r', 'one', { default: true })]);
    const door = await frontDoor({ listener, backends: [backend('one', [one.port])] });
    const first = net.connect({ host: '127.0.0.1', port: door.address().port });
    const firstAnswer = new Promise<string>((r) => first.once('data', (d: Buffer) => r(d.toString())));
    first.write(NODE_HELLO);
    expect(await firstAnswer).toBe('one');
    door.update(frontDoorListener([passthroughRoute('r', 'two', { default: true })]), [backend('two', [two.port])]);
    const second = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: door.address().port });
      s.once('data', (d: Buffer) => (resolve(d.toString()), s.destroy()));
      s.write(NODE_HELLO);
    });
    expect(second).toBe('two');
    first.write('still here');
    await waitFor('the old relay still carries bytes', () => one.received[0]?.includes('still here'));
    first.destroy();
  });

  test('close: stops listening and closes every connection, including ones still sending their hello', async () => {
    const door = await startFrontDoor({ listener: frontDoorListener([terminateAll]), backends: [] });
    const port = door.address().port;
    const pending = rawExchange(port, NODE_HELLO.subarray(0, 10), 5000);
    await waitFor('accepted', () => door.openConnections() === 1);
    await door.close();
    expect((await pending).how).not.toBe('timeout');
    const refused = await new Promise<string>((resolve) => net.connect({ host: '127.0.0.1', port }).once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')));
    expect(refused).toBe('ECONNREFUSED');
  });
});
