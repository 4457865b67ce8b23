// Retries (issue 19), end to end over real mTLS on loopback, against upstreams that answer 503,
// reset after reading the request, or answer too late: an idempotent request is tried again on the
// other endpoint (its small body kept and sent whole again), a POST is not once its bytes went out
// (the first answer stands), per_try_timeout gives up a slow try for another endpoint, the budget
// caps retries when every endpoint fails, and a route's timeouts.request bounds every try together.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Retries, Upstream } from '../gateway/config/types.js';
import { setLogLevel } from '../gateway/log.js';
import { registry } from '../gateway/metrics/registry.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

const SLOW_MS = 1500;
const PER_TRY_MS = 200;
let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let live: ScriptedTlsUpstream;
let busy: ScriptedTlsUpstream;
let resetting: ScriptedTlsUpstream;
let slow: ScriptedTlsUpstream;
let busy2: ScriptedTlsUpstream;

const noEjection = { consecutiveFailures: 1000, baseEjectionMs: 30_000, maxEjectionPercent: 0 };
const retries = (extra: Partial<Retries> = {}): Retries => ({ attempts: 2, on: ['connect_failure', 'reset', 502, 503, 504], perTryTimeoutMs: 0, budgetPercent: 100, maxBufferedBody: 64 * 1024, ...extra });

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  const ca = certs.pki.ca.rootPem;
  live = await startScriptedTlsUpstream(certs.origin, ca, async ({ socket, path, method, bodyLength }) => socket.write(okResponse(`live ${method} ${path} ${await bodyLength}`)));
  busy = await startScriptedTlsUpstream(certs.origin, ca, async ({ socket, bodyLength }) => {
    await bodyLength;
    socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy');
  });
  busy2 = await startScriptedTlsUpstream(certs.origin, ca, async ({ socket, bodyLength }) => {
    await bodyLength;
    socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nbusy2');
  });
  // Reads the whole request, then closes the connection: the request reached it, no answer came back.
  resetting = await startScriptedTlsUpstream(certs.origin, ca, async ({ socket, bodyLength }) => {
    await bodyLength;
    socket.destroy();
  });
  slow = await startScriptedTlsUpstream(certs.origin, ca, ({ socket, path }) => {
    setTimeout(() => socket.write(okResponse(`slow ${path}`)), SLOW_MS);
  });
  const upstreams: Upstream[] = [
    { ...certs.upstream('busyFirst', 0, { ports: [busy.port, live.port] }), outlierDetection: noEjection, retries: retries() },
    { ...certs.upstream('resetFirst', 0, { ports: [resetting.port, live.port] }), outlierDetection: noEjection, retries: retries() },
    { ...certs.upstream('slowFirst', 0, { ports: [slow.port, live.port] }), outlierDetection: noEjection, retries: retries({ perTryTimeoutMs: PER_TRY_MS, on: ['per_try_timeout'] }) },
    { ...certs.upstream('allSlow', 0, { ports: [slow.port] }), outlierDetection: noEjection, retries: retries({ perTryTimeoutMs: PER_TRY_MS, on: ['per_try_timeout'] }) },
    { ...certs.upstream('allBusy', 0, { ports: [busy.port, busy2.port] }), outlierDetection: noEjection, retries: retries({ budgetPercent: 20 }) },
    { ...certs.upstream('noRetries', 0, { ports: [busy.port, live.port] }), outlierDetection: noEjection },
    // No retries; two resets in a row eject the resetting endpoint.
    { ...certs.upstream('resetEjects', 0, { ports: [resetting.port, live.port] }), outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 30_000, maxEjectionPercent: 50 } },
  ];
  const routes = [
    ...upstreams.map((u) => terminateRoute(u.name, u.name, allow(id('frontend')), { match: { pathPrefix: `/${u.name}` } })),
    terminateRoute('deadline', 'allSlow', allow(id('frontend')), { match: { pathPrefix: '/deadline' }, timeouts: { requestMs: 300 }, retries: retries({ on: [] }) }),
  ];
  setLogLevel('silent');
  gateway = await startGateway(gatewayConfig([certs.listener(routes)], upstreams));
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  for (const u of [live, busy, busy2, resetting, slow]) await u?.close();
  certs?.pki.cleanup();
});

const send = (path: string, method = 'GET', body?: string) =>
  request({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path, method, body, headers: body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) } });

async function retriesCounted(upstream: string, on: string): Promise<number> {
  const metric = await registry.getSingleMetric('gatehouse_upstream_retries_total')!.get();
  return metric.values.find((v) => v.labels.upstream === upstream && v.labels.on === on)?.value ?? 0;
}

describe('retries', () => {
  it('try a GET answered 503 again on the other endpoint; the client sees 200 every time', async () => {
    const before = await retriesCounted('busyFirst', '503');
    for (let i = 0; i < 6; i++) {
      const res = await send(`/busyFirst/get-${i}`);
      expect(res.status).toBe(200);
      expect(res.body).toBe(`live GET /busyFirst/get-${i} 0`);
    }
    expect((await retriesCounted('busyFirst', '503')) - before).toBe(3); // round robin sent half to the busy one first
  });

  it('keep a small PUT body and send it whole again; a POST answered 503 stays 503 (its bytes went out)', async () => {
    for (let i = 0; i < 4; i++) {
      const body = `put-body-${i}-`.repeat(50);
      const res = await send(`/busyFirst/put-${i}`, 'PUT', body);
      expect(res.status).toBe(200);
      expect(res.body).toBe(`live PUT /busyFirst/put-${i} ${body.length}`);
    }
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await send(`/busyFirst/post-${i}`, 'POST', 'x')).status);
    expect(statuses.sort()).toEqual([200, 200, 503, 503]);
    // A POST without a body is not idempotent either.
    const bodiless = [];
    for (let i = 0; i < 4; i++) bodiless.push((await send(`/busyFirst/empty-post-${i}`, 'POST')).status);
    expect(bodiless.sort()).toEqual([200, 200, 503, 503]);
  });

  it('without a retries block, a 503 is the answer (connect failures alone are retried)', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await send(`/noRetries/${i}`)).status);
    expect(statuses.sort()).toEqual([200, 200, 503, 503]);
  });

  it('try an idempotent request again after the upstream reset it; a POST gets 502 upstream_reset', async () => {
    const before = await retriesCounted('resetFirst', 'reset');
    for (let i = 0; i < 4; i++) expect((await send(`/resetFirst/get-${i}`)).status).toBe(200);
    expect((await retriesCounted('resetFirst', 'reset')) - before).toBe(2);
    const posts = [];
    for (let i = 0; i < 4; i++) posts.push(await send(`/resetFirst/post-${i}`, 'POST', 'x'));
    const failed = posts.filter((r) => r.status !== 200);
    expect(failed).toHaveLength(2);
    for (const res of failed) expect(res.json()).toMatchObject({ reason: 'upstream_reset' });
  });

  it('count an upstream that resets requests toward its ejection (outlier detection), not only connect failures', async () => {
    const before = resetting.requests.length;
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await send(`/resetEjects/${i}`)).status);
    // Round robin: the first, third (reset: 502) ... until two resets in a row eject it.
    expect(resetting.requests.length - before).toBe(2);
    expect(statuses.filter((s) => s === 502)).toHaveLength(2);
    expect(statuses.slice(4)).toEqual([200, 200, 200, 200]);
  });

  it('give up a try after per_try_timeout for the other endpoint, and answer 504 upstream_per_try_timeout when none is left', async () => {
    for (let i = 0; i < 2; i++) {
      const started = Date.now();
      const res = await send(`/slowFirst/${i}`);
      expect(res.status).toBe(200);
      expect(res.body).toBe(`live GET /slowFirst/${i} 0`);
      expect(Date.now() - started).toBeLessThan(SLOW_MS);
    }
    const started = Date.now();
    const res = await send('/allSlow/x');
    expect(res.status).toBe(504);
    expect(res.json()).toMatchObject({ reason: 'upstream_per_try_timeout' });
    // Three tries of 200 ms on the one endpoint, not the slow answer's 1.5 s.
    expect(Date.now() - started).toBeLessThan(SLOW_MS);
  });

  it('stop retrying when the budget is spent: every endpoint answering 503 does not triple the load', async () => {
    const before = busy.requests.length + busy2.requests.length;
    const N = 40;
    for (let i = 0; i < N; i++) expect((await send(`/allBusy/${i}`)).status).toBe(503);
    const reached = busy.requests.length + busy2.requests.length - before;
    // 20% of the requests (at least 3) may be retried: without the budget, 3 tries each would be 120.
    expect(reached).toBeGreaterThan(N);
    expect(reached).toBeLessThanOrEqual(N + Math.max(3, (N * 20) / 100) + 1);
    const exhausted = await registry.getSingleMetric('gatehouse_upstream_retry_budget_exhausted_total')!.get();
    expect(exhausted.values.find((v) => v.labels.upstream === 'allBusy')?.value).toBeGreaterThan(0);
  });

  it("answer 504 request_timeout at the route's timeouts.request, however the tries go", async () => {
    const started = Date.now();
    const res = await send('/deadline/x');
    expect(res.status).toBe(504);
    expect(res.json()).toMatchObject({ reason: 'request_timeout' });
    expect(Date.now() - started).toBeLessThan(SLOW_MS);
  });
});
