// Upstream resilience (issue 19), end to end over real mTLS on loopback: requests of every method,
// bodies included, fail over when an endpoint's connection cannot be made (nothing was sent, the
// body not yet read); a pool whose wait queue is full refuses more with 503 upstream_overflow; an
// endpoint that resets every connection is ejected after consecutive failures (no connection
// attempts reach it until the ejection ends, then it gets traffic again), and when every endpoint
// is ejected, traffic is tried anyway (panic); least_request sends a slow endpoint fewer requests
// than round robin does.
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { setLogLevel, setLogSink, type LogSink } from '../gateway/log.js';
import { registry } from '../gateway/metrics/registry.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { holdRefusedPort, type RefusedPort } from './support/refused-port.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let live: ScriptedTlsUpstream;
let slow: ScriptedTlsUpstream;
/** Answers after LAGGING_MS: the slow endpoint beside the live one for the balance policies. */
let lagging: ScriptedTlsUpstream;
/** Answers 503 to everything. */
let unavailable: ScriptedTlsUpstream;
/** Answers 503 twice, then 200, over and over: never consecutive_failures (3) failures in a row. */
let flaky: ScriptedTlsUpstream;
const LAGGING_MS = 250;
/** How long the slow upstream holds each answer: longer than the concurrent requests take to arrive. */
const SLOW_MS = 600;
const MAX_PENDING = 2;
/** Listeners that accept TCP and reset at once (before TLS): dead endpoints that count the attempts reaching them. */
let resetting: ResettingEndpoint;
let resettingAlone: ResettingEndpoint;
let resettingPair: [ResettingEndpoint, ResettingEndpoint];
const FAILURES_TO_EJECT = 3;
const BASE_EJECTION_MS = 1000;

interface ResettingEndpoint {
  readonly port: number;
  accepted: number;
  close(): Promise<void>;
}

async function startResettingEndpoint(): Promise<ResettingEndpoint> {
  const server = net.createServer((socket) => {
    endpoint.accepted++;
    socket.on('error', () => {});
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint: ResettingEndpoint = {
    port: (server.address() as AddressInfo).port,
    accepted: 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return endpoint;
}
let dead: RefusedPort;
let previousSink: LogSink;
const logged: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  live = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, async ({ socket, path, method, bodyLength }) => {
    const length = await bodyLength;
    socket.write(okResponse(`${method} ${path} ${length}`));
  });
  slow = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path }) => {
    setTimeout(() => socket.write(okResponse(`slow ${path}`)), SLOW_MS);
  });
  lagging = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path }) => {
    setTimeout(() => socket.write(okResponse(`lagging ${path}`)), LAGGING_MS);
  });
  unavailable = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket }) => {
    socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy');
  });
  flaky = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path }) => {
    if (flaky.requests.length % 3 === 0) socket.write(okResponse(`flaky ${path}`));
    else socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy');
  });
  dead = await holdRefusedPort();
  resetting = await startResettingEndpoint();
  resettingAlone = await startResettingEndpoint();
  resettingPair = [await startResettingEndpoint(), await startResettingEndpoint()];
  const outliers = (maxEjectionPercent: number) => ({ consecutiveFailures: FAILURES_TO_EJECT, baseEjectionMs: BASE_EJECTION_MS, maxEjectionPercent });
  const upstreams: Upstream[] = [
    // Ejection off: every first attempt on the dead endpoint is made, and failed over.
    { ...certs.upstream('twoEndpoints', 0, { ports: [dead.port, live.port] }), outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 0 } },
    { ...certs.upstream('slowSingle', slow.port, { connections: 1 }), limits: { maxPending: MAX_PENDING } },
    { ...certs.upstream('ejecting', 0, { ports: [resetting.port, live.port] }), outlierDetection: outliers(50) },
    { ...certs.upstream('panicking', 0, { ports: [resettingAlone.port] }), outlierDetection: outliers(100) },
    { ...certs.upstream('roundRobin', 0, { ports: [lagging.port, live.port] }), balance: 'round_robin' },
    { ...certs.upstream('leastRequest', 0, { ports: [lagging.port, live.port] }), balance: 'least_request' },
    { ...certs.upstream('random', 0, { ports: [lagging.port, live.port] }), balance: 'random' },
    { ...certs.upstream('answers503', 0, { ports: [unavailable.port, live.port] }), outlierDetection: outliers(50) },
    { ...certs.upstream('flaky', 0, { ports: [flaky.port, live.port] }), outlierDetection: outliers(50) },
    { ...certs.upstream('twoOfThreeDead', 0, { ports: [resettingPair[0].port, resettingPair[1].port, live.port] }), outlierDetection: outliers(50) },
  ];
  const routes = upstreams.map((u) => terminateRoute(u.name, u.name, allow(id('frontend')), { match: { pathPrefix: `/${u.name}` } }));
  previousSink = setLogSink((line) => logged.push(JSON.parse(line) as Record<string, unknown>));
  setLogLevel('info');
  gateway = await startGateway(gatewayConfig([certs.listener(routes)], upstreams));
  port = listenerPort(gateway);
});

afterAll(async () => {
  setLogSink(previousSink);
  setLogLevel('silent');
  await gateway?.close();
  await live?.close();
  await dead?.close();
  await slow?.close();
  await lagging?.close();
  await unavailable?.close();
  await flaky?.close();
  await resetting?.close();
  await resettingAlone?.close();
  for (const endpoint of resettingPair ?? []) await endpoint.close();
  certs?.pki.cleanup();
});

const send = (path: string, method = 'GET', body?: string) =>
  request({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path, method, body, headers: body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) } });

/** The gateway's failed attempts on the dead endpoint since `from` (log lines), each retried. */
const refusedAttempts = (from: number) => logged.slice(from).filter((l) => l.event === 'upstream_failed' && l.reason === 'upstream_unavailable' && l.upstream === 'twoEndpoints');

describe('upstream resilience: connect failures fail over for every method', () => {
  it('serves every POST with a body (and PUT, PATCH, DELETE) when one of two endpoints refuses connections', async () => {
    const from = logged.length;
    const before = live.requests.length;
    const methods = ['POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'POST'];
    for (let i = 0; i < 12; i++) {
      const method = methods[i % methods.length]!;
      const body = `payload-${i}-`.repeat(i + 1);
      const res = await send(`/twoEndpoints/seq-${i}`, method, body);
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe(`${method} /twoEndpoints/seq-${i} ${body.length}`); // the whole body reached the live endpoint
    }
    expect(live.requests.length - before).toBe(12);
    // Round robin handed half of the first attempts to the dead endpoint; each was retried.
    const refused = refusedAttempts(from);
    expect(refused.length).toBe(6);
    expect(refused.every((l) => l.retry === true && l.attempt === 1)).toBe(true);
  });

  it('serves concurrent POSTs with bodies: zero failures, the dead endpoint tried', async () => {
    const from = logged.length;
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => send(`/twoEndpoints/concurrent-${i}`, 'POST', 'x'.repeat(1000 + i))));
    for (const [i, res] of results.entries()) {
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe(`POST /twoEndpoints/concurrent-${i} ${1000 + i}`);
    }
    expect(refusedAttempts(from).length).toBeGreaterThan(0);
    expect(refusedAttempts(from).every((l) => l.retry === true)).toBe(true);
  });
});

describe('upstream resilience: a bounded wait for pooled connections', () => {
  it('answers 503 upstream_overflow to requests beyond limits.max_pending, counted and logged; the others are served', async () => {
    // Warm the single connection, so that the next request takes it and the rest wait for it.
    expect((await send('/slowSingle/warm')).status).toBe(200);
    expect(slow.connections.accepted).toBe(1);
    const from = logged.length;
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => send(`/slowSingle/${i}`)));
    const statuses = results.map((r) => r.status).sort();
    // One on the connection, MAX_PENDING waiting for it, the rest refused at once.
    expect(statuses).toEqual([200, 200, 200, 503, 503]);
    for (const res of results.filter((r) => r.status === 503)) expect(res.json()).toMatchObject({ reason: 'upstream_overflow', route: 'slowSingle' });
    expect(slow.requests.length).toBe(1 + 3); // the refused ones never reached the upstream
    expect(slow.connections.accepted).toBe(1);
    const overflowLogs = logged.slice(from).filter((l) => l.event === 'upstream_failed' && l.reason === 'upstream_overflow');
    expect(overflowLogs).toHaveLength(2);
    expect(overflowLogs.every((l) => l.retry === false && l.upstream === 'slowSingle')).toBe(true);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/gatehouse_http_refusals_total\{[^}]*route="slowSingle"[^}]*reason="upstream_overflow"[^}]*\} 2\b/);
  });
});

describe('upstream resilience: passive ejection of an endpoint whose connections fail', () => {
  const metric = async (name: string, upstream: string, endpointPort: number) => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`upstream="${upstream}"`) && l.includes(`:${endpointPort}"`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  it('ejects it after consecutive_failures: no connection attempt reaches it until base_ejection ends, then it gets traffic again, ejected twice as long', async () => {
    const from = logged.length;
    expect(await metric('gatehouse_upstream_endpoint_healthy', 'ejecting', resetting.port)).toBe(1);
    // Round robin puts every other first attempt on the resetting endpoint: each fails over to the live one.
    for (let i = 0; i < 2 * FAILURES_TO_EJECT; i++) expect((await send(`/ejecting/before-${i}`, 'POST', 'body')).status).toBe(200);
    expect(resetting.accepted).toBe(FAILURES_TO_EJECT);
    expect(await metric('gatehouse_upstream_endpoint_healthy', 'ejecting', resetting.port)).toBe(0);
    expect(await metric('gatehouse_upstream_ejections_total', 'ejecting', resetting.port)).toBe(1);
    const ejected = logged.slice(from).filter((l) => l.event === 'upstream_endpoint_ejected');
    expect(ejected).toMatchObject([{ upstream: 'ejecting', endpoint: `127.0.0.1:${resetting.port}`, ejection_ms: BASE_EJECTION_MS }]);

    // Ejected: every request goes to the live endpoint, none tries the resetting one.
    const ejectedAt = Date.now();
    for (let i = 0; i < 10; i++) expect((await send(`/ejecting/ejected-${i}`)).status).toBe(200);
    expect(Date.now() - ejectedAt).toBeLessThan(BASE_EJECTION_MS); // all of them inside the ejection
    expect(resetting.accepted).toBe(FAILURES_TO_EJECT);

    // The ejection over, it is tried again (and fails again: ejected anew for twice as long).
    await new Promise((resolve) => setTimeout(resolve, BASE_EJECTION_MS + 100));
    for (let i = 0; i < 2 * FAILURES_TO_EJECT; i++) expect((await send(`/ejecting/after-${i}`, 'PUT', 'body')).status).toBe(200);
    expect(resetting.accepted).toBe(2 * FAILURES_TO_EJECT);
    expect(logged.slice(from).filter((l) => l.event === 'upstream_endpoint_restored')).toHaveLength(1);
    expect(logged.slice(from).filter((l) => l.event === 'upstream_endpoint_ejected').map((l) => l.ejection_ms)).toEqual([BASE_EJECTION_MS, 2 * BASE_EJECTION_MS]);
    expect(await metric('gatehouse_upstream_ejections_total', 'ejecting', resetting.port)).toBe(2);
    for (let i = 0; i < 4; i++) expect((await send(`/ejecting/again-${i}`)).status).toBe(200);
    expect(resetting.accepted).toBe(2 * FAILURES_TO_EJECT);
  });

  it('never ejects more than max_ejection_percent of the endpoints: with two of three failing at 50%, one stays in and is still tried', async () => {
    for (let i = 0; i < 24; i++) expect((await send(`/twoOfThreeDead/${i}`)).status).toBe(200);
    const ejections = await Promise.all(resettingPair.map((e) => metric('gatehouse_upstream_ejections_total', 'twoOfThreeDead', e.port)));
    expect(ejections.reduce((a, b) => a! + b!, 0)).toBe(1);
    const healthy = await Promise.all(resettingPair.map((e) => metric('gatehouse_upstream_endpoint_healthy', 'twoOfThreeDead', e.port)));
    expect([...healthy].sort()).toEqual([0, 1]);
    const out = resettingPair[healthy.indexOf(0)]!;
    const kept = resettingPair[healthy.indexOf(1)]!;
    expect(out.accepted).toBe(FAILURES_TO_EJECT);
    expect(kept.accepted).toBeGreaterThan(FAILURES_TO_EJECT + 3); // the one kept in goes on being tried
  });

  it('ejects an endpoint that answers 502/503/504 consecutive_failures times in a row; its 503s reach the caller until then', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 2 * FAILURES_TO_EJECT + 6; i++) statuses.push((await send(`/answers503/${i}`)).status);
    // Round robin: every other request to the 503 endpoint until the third, then all to the live one.
    expect(statuses.filter((s) => s === 503)).toHaveLength(FAILURES_TO_EJECT);
    expect(statuses.slice(2 * FAILURES_TO_EJECT)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(unavailable.requests).toHaveLength(FAILURES_TO_EJECT);
    expect(await metric('gatehouse_upstream_ejections_total', 'answers503', unavailable.port)).toBe(1);
  });

  it('does not eject an endpoint whose failures are broken by a good answer before consecutive_failures', async () => {
    for (let i = 0; i < 18; i++) await send(`/flaky/${i}`);
    expect(flaky.requests).toHaveLength(9); // every other request, to the end
    expect(await metric('gatehouse_upstream_ejections_total', 'flaky', flaky.port)).toBe(0);
  });

  it('tries an upstream whose every endpoint is ejected anyway (panic), and logs it', async () => {
    const from = logged.length;
    for (let i = 0; i < FAILURES_TO_EJECT; i++) expect((await send(`/panicking/${i}`)).json()).toMatchObject({ reason: 'upstream_unavailable' });
    expect(resettingAlone.accepted).toBe(FAILURES_TO_EJECT);
    expect(await metric('gatehouse_upstream_endpoint_healthy', 'panicking', resettingAlone.port)).toBe(0);
    // Ejected, and the only one: still tried rather than refused without an attempt.
    for (let i = 0; i < 2; i++) expect((await send(`/panicking/panic-${i}`)).status).toBe(502);
    expect(resettingAlone.accepted).toBe(FAILURES_TO_EJECT + 2);
    expect(logged.slice(from).filter((l) => l.event === 'upstream_panic')).toMatchObject([{ upstream: 'panicking' }]);
  });
});

describe('upstream resilience: balance policies', () => {
  /** CLIENTS callers, each sending PER_CLIENT requests one after the other; how many reached the slow endpoint. */
  const CLIENTS = 4;
  const PER_CLIENT = 20;
  const toSlowEndpoint = async (upstream: string) => {
    const prefix = `/${upstream}/`;
    const before = lagging.requests.filter((r) => r.path.startsWith(prefix)).length;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; i < PER_CLIENT; i++) expect((await send(`${prefix}${c}-${i}`)).status).toBe(200);
      }),
    );
    return lagging.requests.filter((r) => r.path.startsWith(prefix)).length - before;
  };

  it('least_request sends a slow endpoint fewer requests than round robin (which sends it half)', async () => {
    const roundRobin = await toSlowEndpoint('roundRobin');
    const leastRequest = await toSlowEndpoint('leastRequest');
    expect(roundRobin).toBe((CLIENTS * PER_CLIENT) / 2);
    // While the slow endpoint holds a request, the fast one has fewer in flight and gets the next.
    expect(leastRequest).toBeLessThan(roundRobin / 2);
  });

  it('random sends requests to both endpoints', async () => {
    const random = await toSlowEndpoint('random');
    expect(random).toBeGreaterThan(0);
    expect(random).toBeLessThan(CLIENTS * PER_CLIENT);
  });
});
