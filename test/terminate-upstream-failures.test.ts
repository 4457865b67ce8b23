// What the gateway does when an upstream misbehaves, end to end over real mTLS on loopback: an
// endpoint that refuses connections is failed over, an upstream that never answers gets a 504 at
// its headers deadline, one that stalls mid-body has the client connection cut at its body deadline,
// and a pool never opens more connections than its limit, counted by the upstream as it accepts them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { connectMtls, request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { holdRefusedPort, type RefusedPort } from './support/refused-port.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

/** The pool checks deadlines on a 250 ms tick against a clock read at the last tick: a timeout fires up to one tick early or late. */
const TICK_MS = 250;
const HEADERS_TIMEOUT_MS = 500;
const BODY_TIMEOUT_MS = 750;
const POOL_LIMIT = 2;
const HOLD_MS = 200;

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
const upstreams: Record<'live' | 'silent' | 'stalledAfterHead' | 'stalledMidBody' | 'trickling' | 'limited', ScriptedTlsUpstream> = {} as never;
let dead: RefusedPort;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  const { origin } = certs;
  const ca = certs.pki.ca.rootPem;

  upstreams.live = await startScriptedTlsUpstream(origin, ca, ({ socket, path }) => socket.write(okResponse(`live ${path}`)));
  upstreams.silent = await startScriptedTlsUpstream(origin, ca, () => {}); // reads the request, never answers
  upstreams.stalledAfterHead = await startScriptedTlsUpstream(origin, ca, ({ socket }) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n'); // the head, then not one of the 100 bytes
  });
  upstreams.stalledMidBody = await startScriptedTlsUpstream(origin, ca, ({ socket }) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst ten.'); // 10 of 100 bytes, then nothing
  });
  upstreams.trickling = await startScriptedTlsUpstream(origin, ca, ({ socket }) => {
    // 100 bytes in five pieces 200 ms apart, each inside the body timeout (even a tick early), the whole beyond it.
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
    for (let i = 1; i <= 5; i++) setTimeout(() => socket.write('x'.repeat(20)), i * 200);
  });
  upstreams.limited = await startScriptedTlsUpstream(origin, ca, ({ socket, path }) => {
    setTimeout(() => socket.write(okResponse(`held ${path}`)), HOLD_MS);
  });
  dead = await holdRefusedPort();

  const timeouts = (headersMs: number, bodyMs: number): Upstream['timeouts'] => ({ connectMs: 2000, headersMs, idleMs: 30_000, bodyMs });
  const upstreamList: Upstream[] = [
    certs.upstream('failover', 0, { ports: [dead.port, upstreams.live.port] }),
    { ...certs.upstream('silent', upstreams.silent.port), timeouts: timeouts(HEADERS_TIMEOUT_MS, 30_000) },
    { ...certs.upstream('stalledAfterHead', upstreams.stalledAfterHead.port), timeouts: timeouts(30_000, BODY_TIMEOUT_MS) },
    { ...certs.upstream('stalledMidBody', upstreams.stalledMidBody.port), timeouts: timeouts(30_000, BODY_TIMEOUT_MS) },
    { ...certs.upstream('trickling', upstreams.trickling.port), timeouts: timeouts(30_000, BODY_TIMEOUT_MS) },
    certs.upstream('limited', upstreams.limited.port, { connections: POOL_LIMIT }),
  ];
  const routes = upstreamList.map((u) => terminateRoute(u.name, u.name, allow(id('frontend')), { match: { pathPrefix: `/${u.name}` } }));
  gateway = await startGateway(gatewayConfig([certs.listener(routes)], upstreamList));
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  for (const upstream of Object.values(upstreams)) await upstream.close();
  await dead?.close();
  certs?.pki.cleanup();
});

const get = (path: string) => request({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path });

describe('terminate: upstream failures', () => {
  it('fails over to the next endpoint when one refuses the connection: every request is served', async () => {
    // Round robin alternates between the dead endpoint and the live one: half the first attempts fail.
    const before = upstreams.live.requests.length;
    for (let i = 0; i < 4; i++) {
      const res = await get(`/failover/${i}`);
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe(`live /failover/${i}`);
    }
    expect(upstreams.live.requests.length - before).toBe(4);
  });

  it('retries on the endpoint after the one that failed, whatever round robin hands out meanwhile', async () => {
    // Concurrent first attempts move round robin on while the dead endpoint's refusals come back:
    // a retry that took the next pick from round robin could land on the dead endpoint again.
    const before = upstreams.live.requests.length;
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => get(`/failover/concurrent-${i}`)));
    for (const [i, res] of results.entries()) {
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe(`live /failover/concurrent-${i}`);
    }
    expect(upstreams.live.requests.length - before).toBe(8);
  });

  it('answers 504 upstream_headers_timeout when the upstream does not answer within its headers timeout', async () => {
    const started = Date.now();
    const res = await get('/silent');
    const elapsed = Date.now() - started;
    expect(res.status).toBe(504);
    expect(res.json()).toMatchObject({ reason: 'upstream_headers_timeout', route: 'silent' });
    expect(upstreams.silent.requests).toHaveLength(1); // it did get the request: no retry elsewhere
    expect(elapsed).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - TICK_MS);
    expect(elapsed).toBeLessThan(HEADERS_TIMEOUT_MS + 3000);
  });

  it.each([
    ['stalledAfterHead', ''],
    ['stalledMidBody', 'first ten.'],
  ] as const)('cuts the client connection when the upstream stalls past its body timeout (%s), and closes the upstream connection', async (name, partialBody) => {
    const socket = await connectMtls({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    const started = Date.now();
    socket.on('error', () => {});
    socket.write(`GET /${name} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    // Bounded: the deadline is 750 ms (give or take a tick); give it up to 5 s.
    const closedAt = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 5000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(Date.now());
      });
    });
    socket.destroy();
    expect(closedAt, `client connection still open after 5 s; received: ${JSON.stringify(received)}`).toBeDefined();
    expect(closedAt! - started).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - TICK_MS);
    // What the upstream sent of the 100 bytes, then the cut. The response head leaves the gateway with
    // the first body bytes: with none, the client sees the connection cut before any response.
    if (partialBody !== '') expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received.includes('\r\n\r\n') ? received.slice(received.indexOf('\r\n\r\n') + 4) : '').toBe(partialBody);
    // The gateway let go of the upstream connection too (it cannot be reused mid-response).
    const { connections } = upstreams[name];
    for (let i = 0; i < 50 && connections.open > 0; i++) await sleep(20);
    expect(connections.open).toBe(0);
  });

  it('lets a body through whose pieces each arrive within the body timeout, however long the whole takes', async () => {
    const started = Date.now();
    const res = await get('/trickling');
    expect(res.status).toBe(200);
    expect(res.body).toBe('x'.repeat(100));
    expect(Date.now() - started).toBeGreaterThan(BODY_TIMEOUT_MS);
  });

  it(`opens at most ${POOL_LIMIT} connections to an endpoint limited to ${POOL_LIMIT}, with 8 requests at once; the rest wait their turn`, async () => {
    const { connections } = upstreams.limited;
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => get(`/limited/${i}`)));
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(responses.map((r) => r.body)).toEqual(Array.from({ length: 8 }, (_, i) => `held /limited/${i}`));
    // Seen from the upstream: exactly the limit was reached (the requests did overlap), never passed.
    expect(connections.maxOpen).toBe(POOL_LIMIT);
    expect(connections.accepted).toBe(POOL_LIMIT);
  });
});
