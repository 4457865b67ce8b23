// Active health checks (issue 19), end to end over real mTLS on loopback: an endpoint whose health
// path answers 503 is taken out of the balancer after unhealthy_threshold checks and gets no
// requests; when it answers 200 again it is back after healthy_threshold checks. An endpoint that
// presents the wrong identity fails its checks. The state shows in /upstreams, in the
// endpoint_healthy gauge and in the health-check counter; the checks carry the configured path.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { registry } from '../gateway/metrics/registry.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';
import { captureLogs, waitFor } from './support/lifecycle-harness.js';

const INTERVAL_MS = 100;
const UNHEALTHY_THRESHOLD = 2;
const HEALTHY_THRESHOLD = 3;
/** Slack for timers on a busy 2-core machine. */
const SLACK_MS = 1500;

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let steady: ScriptedTlsUpstream;
let changing: ScriptedTlsUpstream;
let impostor: ScriptedTlsUpstream;
/** What `changing` answers on its health path. */
let changingHealth = 200;
let logs: ReturnType<typeof captureLogs>;

const health = (status: number) => `HTTP/1.1 ${status} X\r\ncontent-length: 2\r\n\r\nhc`;

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  steady = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path }) => {
    socket.write(path === '/healthz' ? health(200) : okResponse(`steady ${path}`));
  });
  changing = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path }) => {
    socket.write(path === '/healthz' ? health(changingHealth) : okResponse(`changing ${path}`));
  });
  // A server certificate the CA issued, for another workload than the upstream's expect_id.
  const wrong = await certs.pki.issue('impostor', { spiffeId: id('impostor'), dnsNames: ['localhost'], usage: 'server' });
  impostor = await startScriptedTlsUpstream(wrong, certs.pki.ca.rootPem, ({ socket, path }) => socket.write(path === '/healthz' ? health(200) : okResponse(`impostor ${path}`)));
  const healthCheck = { path: '/healthz', intervalMs: INTERVAL_MS, timeoutMs: INTERVAL_MS, unhealthyThreshold: UNHEALTHY_THRESHOLD, healthyThreshold: HEALTHY_THRESHOLD, expectStatus: { min: 200, max: 299 } };
  // Passive ejection off: what takes an endpoint out here is its checks alone.
  const noEjection = { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 0 };
  const upstreams: Upstream[] = [
    { ...certs.upstream('checked', 0, { ports: [steady.port, changing.port] }), healthCheck, outlierDetection: noEjection },
    { ...certs.upstream('identity', 0, { ports: [steady.port, impostor.port] }), healthCheck, outlierDetection: noEjection },
  ];
  const routes = upstreams.map((u) => terminateRoute(u.name, u.name, allow(id('frontend')), { match: { pathPrefix: `/${u.name}` } }));
  logs = captureLogs();
  gateway = await startGateway(gatewayConfig([certs.listener(routes)], upstreams));
  port = listenerPort(gateway);
});

afterAll(async () => {
  logs?.restore();
  await gateway?.close();
  await steady?.close();
  await changing?.close();
  await impostor?.close();
  certs?.pki.cleanup();
});

const send = (path: string) => request({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path });

async function upstreamsPage(): Promise<Record<string, { endpoints: Array<{ endpoint: string; healthy: boolean; health_check: { check: string; last: string } }> }>> {
  const admin = gateway.admin!.server.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${admin.port}/upstreams`);
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}


const changingEndpoint = () => `127.0.0.1:${changing.port}`;
const served = (upstream: ScriptedTlsUpstream) => upstream.requests.filter((r) => r.path !== '/healthz').length;
const gauge = async (upstream: string, endpoint: string) => {
  const metric = await registry.getSingleMetric('gatehouse_upstream_endpoint_healthy')!.get();
  return metric.values.find((v) => v.labels.upstream === upstream && v.labels.endpoint === endpoint)?.value;
};

describe('active health checks', () => {
  it('send GET <path> over mTLS to every endpoint, as gatehouse-health-check', async () => {
    await waitFor('a check on each endpoint', () => steady.requests.some((r) => r.path === '/healthz') && changing.requests.some((r) => r.path === '/healthz'), SLACK_MS);
    const check = changing.requests.find((r) => r.path === '/healthz')!;
    expect(check.method).toBe('GET');
    expect(check.head.toLowerCase()).toContain('user-agent: gatehouse-health-check');
  });

  it('take an endpoint whose checks fail out of the balancer within interval x threshold, and bring it back after healthy_threshold passes', async () => {
    // Both in: round robin gives each of them requests.
    const before = served(changing);
    for (let i = 0; i < 4; i++) expect((await send(`/checked/in-${i}`)).status).toBe(200);
    expect(served(changing) - before).toBe(2);

    changingHealth = 503;
    const from = logs.lines().length;
    const started = Date.now();
    await waitFor('changing marked unhealthy', () => logs.lines().slice(from).some((l) => l.event === 'upstream_endpoint_unhealthy' && l.endpoint === changingEndpoint()), INTERVAL_MS * UNHEALTHY_THRESHOLD + SLACK_MS);
    expect(Date.now() - started).toBeLessThan(INTERVAL_MS * (UNHEALTHY_THRESHOLD + 1) + SLACK_MS);
    expect(logs.lines().slice(from).find((l) => l.event === 'upstream_endpoint_unhealthy' && l.endpoint === changingEndpoint())).toMatchObject({ upstream: 'checked', last_check: 'status 503' });
    expect(await gauge('checked', changingEndpoint())).toBe(0);
    const page = await upstreamsPage();
    expect(page.checked!.endpoints.find((e) => e.endpoint === changingEndpoint())).toMatchObject({ healthy: false, health_check: { check: 'unhealthy', last: 'status 503' } });

    // Out: every request goes to the healthy endpoint.
    const out = served(changing);
    for (let i = 0; i < 6; i++) {
      const res = await send(`/checked/out-${i}`);
      expect(res.status).toBe(200);
      expect(res.body).toBe(`steady /checked/out-${i}`);
    }
    expect(served(changing)).toBe(out);

    changingHealth = 200;
    const back = logs.lines().length;
    await waitFor('changing healthy again', () => logs.lines().slice(back).some((l) => l.event === 'upstream_endpoint_healthy' && l.endpoint === changingEndpoint()), INTERVAL_MS * HEALTHY_THRESHOLD + SLACK_MS);
    expect(await gauge('checked', changingEndpoint())).toBe(1);
    const again = served(changing);
    for (let i = 0; i < 4; i++) expect((await send(`/checked/back-${i}`)).status).toBe(200);
    expect(served(changing) - again).toBe(2);
  });

  it('mark an endpoint that presents the wrong identity unhealthy, the check failing in the handshake', async () => {
    const impostorEndpoint = `127.0.0.1:${impostor.port}`;
    await waitFor('impostor unhealthy', async () => (await upstreamsPage()).identity!.endpoints.find((e) => e.endpoint === impostorEndpoint)!.healthy === false, INTERVAL_MS * UNHEALTHY_THRESHOLD + SLACK_MS);
    const entry = (await upstreamsPage()).identity!.endpoints.find((e) => e.endpoint === impostorEndpoint)!;
    expect(entry.health_check.check).toBe('unhealthy');
    expect(entry.health_check.last).toMatch(/impostor|identity/i);
    expect(impostor.requests).toHaveLength(0); // no check (and no request) got past the handshake
    const metric = await registry.getSingleMetric('gatehouse_upstream_health_checks_total')!.get();
    const failed = metric.values.find((v) => v.labels.upstream === 'identity' && v.labels.endpoint === impostorEndpoint && v.labels.result === 'fail');
    expect(failed?.value).toBeGreaterThanOrEqual(UNHEALTHY_THRESHOLD);
  });
});

describe('health verdicts beside passive ejection (OutlierDetector)', () => {
  it('counts an endpoint that is both ejected and unhealthy out once, and in only when both have ended', async () => {
    const { OutlierDetector } = await import('../gateway/upstream/outlier-detector.js');
    const detector = new OutlierDetector('unit', ['a:1', 'b:2'], { consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionPercent: 50 });
    detector.connectFailed(1); // ejected for a minute
    detector.setUnhealthy(1, true);
    expect(detector.outCount).toBe(1);
    detector.setUnhealthy(1, false); // its checks pass again, but the ejection still holds
    expect(detector.outCount).toBe(1);
    expect(detector.usable(1)).toBe(0);
    detector.setUnhealthy(0, true); // both out: panic tries the one asked for
    expect(detector.outCount).toBe(2);
    expect(detector.usable(1)).toBe(1);
    detector.setUnhealthy(0, false);
    expect(detector.outCount).toBe(1);
    expect(detector.usable(1)).toBe(0);
  });
});
