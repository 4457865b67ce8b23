// Upstream resilience (issue 19), end to end over real mTLS on loopback: requests of every method,
// bodies included, fail over when an endpoint's connection cannot be made (nothing was sent, the
// body not yet read); a pool whose wait queue is full refuses more with 503 upstream_overflow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { setLogLevel, setLogSink, type LogSink } from '../gateway/log.js';
import { registry } from '../gateway/metrics/registry.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { freePort } from './support/gatehouse-cli.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let live: ScriptedTlsUpstream;
let slow: ScriptedTlsUpstream;
/** How long the slow upstream holds each answer: longer than the concurrent requests take to arrive. */
const SLOW_MS = 600;
const MAX_PENDING = 2;
let deadPort: number;
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
  deadPort = await freePort(); // free a moment ago: nothing listens there, connecting is refused
  const upstreams: Upstream[] = [
    certs.upstream('twoEndpoints', 0, { ports: [deadPort, live.port] }),
    { ...certs.upstream('slowSingle', slow.port, { connections: 1 }), limits: { maxPending: MAX_PENDING } },
  ];
  const routes = upstreams.map((u) => terminateRoute(u.name, u.name, allow(id('frontend')), { match: { pathPrefix: `/${u.name}` } }));
  previousSink = setLogSink((line) => logged.push(JSON.parse(line) as Record<string, unknown>));
  setLogLevel('warn');
  gateway = await startGateway(gatewayConfig([certs.listener(routes)], upstreams));
  port = listenerPort(gateway);
});

afterAll(async () => {
  setLogSink(previousSink);
  setLogLevel('silent');
  await gateway?.close();
  await live?.close();
  await slow?.close();
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
