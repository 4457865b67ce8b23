// Host-name upstream endpoints (issue 19): re-resolved every dns_refresh through the DNS servers in
// dns_resolvers (here a DNS server the test runs on loopback), and an address that appears behind
// the name gets requests from the next refresh on; the addresses show in /upstreams.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { setLogLevel } from '../gateway/log.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { startDnsServer, type TestDnsServer } from './support/dns-server.js';
import { freePort } from './support/gatehouse-cli.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

const REFRESH_MS = 150;
let certs: ProxyCerts;
let dns: TestDnsServer;
let gateway: RunningGateway;
let port: number;
const servers: http.Server[] = [];
const served = new Map<string, number>();
/** Connections the origin on each address saw closed. */
const closed = new Map<string, number>();

/** A plaintext origin on `host`:`upstreamPort` that says which address it is. */
async function origin(host: string, upstreamPort: number): Promise<void> {
  const server = http.createServer((_req, res) => {
    served.set(host, (served.get(host) ?? 0) + 1);
    res.end(host);
  });
  server.on('connection', (socket) => socket.on('close', () => closed.set(host, (closed.get(host) ?? 0) + 1)));
  await new Promise<void>((resolve) => server.listen(upstreamPort, host, resolve));
  servers.push(server);
}

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  dns = await startDnsServer({ 'svc.gatehouse.test': ['127.0.0.1'] });
  const upstreamPort = await freePort();
  await origin('127.0.0.1', upstreamPort);
  await origin('127.0.0.2', upstreamPort);
  const upstream: Upstream = {
    name: 'named',
    endpoints: [{ host: 'svc.gatehouse.test', port: upstreamPort }],
    connections: 8,
    timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 60_000, bodyMs: 5000 },
    dnsRefreshMs: REFRESH_MS,
    dnsResolvers: [{ host: '127.0.0.1', port: dns.port }],
  };
  setLogLevel('silent');
  gateway = await startGateway(gatewayConfig([certs.listener([terminateRoute('all', 'named', allow(id('frontend')))])], [upstream]));
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  await dns?.close();
  certs?.pki.cleanup();
});

const get = () => request({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path: '/' });

describe('dns_refresh', () => {
  it('sends requests to the addresses the name resolves to, and to a new one from the next refresh on', async () => {
    await sleep(REFRESH_MS);
    for (let i = 0; i < 4; i++) expect((await get()).body).toBe('127.0.0.1');
    expect(served.get('127.0.0.2') ?? 0).toBe(0);

    expect(closed.get('127.0.0.1') ?? 0).toBe(0); // one kept-alive connection so far

    dns.records.set('svc.gatehouse.test', ['127.0.0.1', '127.0.0.2']);
    await sleep(REFRESH_MS * 3);
    // The set changed: the endpoint's idle connections were renewed, so the new set shares them.
    expect(closed.get('127.0.0.1')).toBe(1);
    // At once, so that the pool opens several connections: they take the addresses in turn.
    const bodies = new Set((await Promise.all(Array.from({ length: 8 }, get))).map((r) => r.body));
    expect(bodies).toEqual(new Set(['127.0.0.1', '127.0.0.2']));
    expect(dns.queries.get('svc.gatehouse.test')).toBeGreaterThanOrEqual(2);

    const admin = gateway.admin!.server.address() as AddressInfo;
    const page = (await (await fetch(`http://127.0.0.1:${admin.port}/upstreams`)).json()) as { named: { endpoints: Array<{ addresses: string[] }> } };
    expect(page.named.endpoints[0]!.addresses).toEqual(['127.0.0.1', '127.0.0.2']);
  });
});
