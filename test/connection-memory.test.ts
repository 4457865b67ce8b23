// A closed connection leaves nothing behind: after many proxied requests, each on a new client
// connection, and after the upstream pool has let its idle connections go, no ClientConnection or
// UpstreamConnection is still alive once the garbage collector has run (v8.queryObjects runs a
// full collection first). Their llhttp parsers used to keep them, and with them the socket and
// its TLS state, through a strong handle until the process ended: ~5 KB of V8 heap and ~1 KB of
// buffers per handshake, never given back.
import v8 from 'node:v8';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ClientConnection } from '../gateway/http1/client-connection.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { UpstreamConnection } from '../gateway/upstream/upstream-connection.js';
import { allow, gatewayConfig, terminateListener, terminateRoute } from './support/gateway-config.js';
import { metricValue, waitFor } from './support/lifecycle-harness.js';
import { request } from './support/mtls-client.js';
import { startProxyParties, type ProxyParties } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

const CONNECTIONS = 60;

let parties: ProxyParties;
let gateway: RunningGateway;

/** Live instances of `type` after a full garbage collection. */
function alive(type: abstract new (...args: never[]) => unknown): number {
  const query = (v8 as unknown as { queryObjects(ctor: unknown, options: { format: 'count' }): number }).queryObjects;
  return query(type, { format: 'count' });
}

beforeAll(async () => {
  parties = await startProxyParties();
  const { pki, server, echo } = parties;
  const listener = terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: pki.caFile, routes: [terminateRoute('echo', 'echo', allow(id('frontend')))] });
  gateway = await startGateway(gatewayConfig([listener], [{ ...echo, timeouts: { ...echo.timeouts, idleMs: 200 } }]), { admin: false });
});

afterAll(async () => {
  await gateway?.close();
  await parties?.close();
});

test(`after ${CONNECTIONS} connections, each with a proxied request, closed on both sides, none of their connection objects is alive`, async () => {
  const port = gateway.listeners.get('public')!.address().port;
  for (let batch = 0; batch < CONNECTIONS / 4; batch++) {
    const responses = await Promise.all([0, 1, 2, 3].map(() => request({ port, ca: parties.pki.ca.rootPem, cert: parties.frontend, path: '/hello' })));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
  }
  expect(gateway.clusters.get('echo')!.stats().connected).toBeGreaterThan(0);
  await waitFor('the gateway has closed every client connection', () => gateway.listeners.get('public')!.terminate!.connections.size === 0);
  await waitFor('the pool has closed its idle upstream connections', () => gateway.clusters.get('echo')!.stats().connected === 0, 5000, 50);
  expect(alive(ClientConnection)).toBe(0);
  expect(alive(UpstreamConnection)).toBe(0);
});

test('the gateway reports its memory (resident, V8 heap and its young generation, external) and its identity cache on /metrics', async () => {
  gateway.refreshGauges(); // what the admin server does before a scrape
  const rss = await metricValue('gatehouse_process_memory_bytes', { kind: 'rss' });
  const now = process.memoryUsage();
  expect(rss).toBeGreaterThan(now.rss / 2);
  expect(rss).toBeLessThan(now.rss * 2);
  expect(await metricValue('gatehouse_process_memory_bytes', { kind: 'heap_total' })).toBeGreaterThan(now.heapTotal / 2);
  expect(await metricValue('gatehouse_process_memory_bytes', { kind: 'v8_new_space' })).toBeGreaterThan(0);
  expect(await metricValue('gatehouse_process_memory_bytes', { kind: 'external' })).toBeGreaterThan(0);
  expect(gateway.identities.size).toBe(1); // one client certificate made every request
  expect(await metricValue('gatehouse_identity_cache_entries')).toBe(1);
});
