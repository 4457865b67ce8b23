// Terminate mode end to end on loopback: real mTLS handshakes into the gateway, authorization,
// forwarded identity, and re-originated mTLS to real upstreams, with certificates minted by the
// project's own CA code.
import { createHash, X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

const HOUR = 3600_000;

let pki: TestPki;
let gateway: RunningGateway;
let upstream: DemoUpstream;
let impostor: DemoUpstream;
let port: number;
let adminPort: number;
const certs: Record<string, WrittenCert> = {};

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (want.every((w) => line.includes(w))) total += Number(line.split(' ').pop());
  }
  return total;
}

beforeAll(async () => {
  pki = await TestPki.create();
  certs.gatewayServer = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost', 'api.test'], usage: 'server' });
  certs.gatewayClient = await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
  certs.upstream = await pki.issue('upstream', { spiffeId: id('payments'), dnsNames: ['localhost'], usage: 'server' });
  certs.impostor = await pki.issue('impostor', { spiffeId: id('impostor'), dnsNames: ['localhost'], usage: 'server' });
  certs.frontend = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  certs.batch = await pki.issue('batch', { spiffeId: `spiffe://test.gatehouse/ns/batch/sa/report`, usage: 'client' });
  certs.stranger = await pki.issue('stranger', { spiffeId: id('stranger'), usage: 'client' });
  certs.revoked = await pki.issue('revoked', { spiffeId: id('frontend'), usage: 'client' });
  certs.expired = await pki.issue('expired', { spiffeId: id('frontend'), usage: 'client', notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
  certs.future = await pki.issue('future', { spiffeId: id('frontend'), usage: 'client', notBefore: new Date(Date.now() + HOUR), notAfter: new Date(Date.now() + 2 * HOUR) });
  certs.wrongCa = await pki.issue('wrong-ca', { spiffeId: id('frontend'), usage: 'client' }, pki.otherCa);
  certs.serverOnly = await pki.issue('server-only', { spiffeId: id('frontend'), usage: 'server' });
  certs.twoUris = await pki.issue('two-uris', { spiffeId: id('frontend'), extraUris: [id('admin')], usage: 'client' });
  const crl = await pki.writeCrl('ca.crl', [certs.revoked]);

  upstream = await startDemoUpstream({ certPem: certs.upstream.chainPem, keyPem: certs.upstream.keyPem, caPem: pki.ca.rootPem });
  impostor = await startDemoUpstream({ certPem: certs.impostor.chainPem, keyPem: certs.impostor.keyPem, caPem: pki.ca.rootPem });

  const client = { cert: certs.gatewayClient.certFile, key: certs.gatewayClient.keyFile, trustBundle: pki.caFile };
  const config = gatewayConfig(
    [
      terminateListener({
        cert: certs.gatewayServer.certFile,
        key: certs.gatewayServer.keyFile,
        trustBundle: pki.caFile,
        crl,
        routes: [
          terminateRoute('impostor', 'impostor', allow(id('frontend')), { match: { pathPrefix: '/impostor' } }),
          terminateRoute('batch', 'payments', allow('spiffe://test.gatehouse/ns/batch/*'), { match: { pathPrefix: '/batch' } }),
          terminateRoute('payments', 'payments', allow(id('frontend'))),
        ],
      }),
    ],
    [
      mtlsUpstream({ name: 'payments', port: upstream.port, ...client, expectId: id('payments') }),
      mtlsUpstream({ name: 'impostor', port: impostor.port, ...client, expectId: id('payments') }),
    ],
  );
  gateway = await startGateway(config);
  port = gateway.listeners.get('public')!.address().port;
  adminPort = (gateway.admin!.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
  await impostor?.close();
  pki?.cleanup();
});

const ca = () => pki.ca.rootPem;

describe('terminate mode', () => {
  it('proxies an allowed caller and forwards its verified SPIFFE ID in x-forwarded-client-cert', async () => {
    const res = await request({ port, ca: ca(), cert: certs.frontend, path: '/orders?x=1' });
    expect(res.status).toBe(200);
    const seen = res.json();
    expect(seen.path).toBe('/orders?x=1');
    expect(seen.peer).toBe(id('gateway')); // the upstream saw the gateway's own client certificate
    const xfcc: string = seen.headers['x-forwarded-client-cert'];
    const hash = createHash('sha256').update(new X509Certificate(certs.frontend.certPem).raw).digest('hex');
    expect(xfcc).toBe(`By=${id('gateway')};Hash=${hash};Subject="CN=frontend";URI=${id('frontend')}`);
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('removes an x-forwarded-client-cert header the client tried to smuggle in', async () => {
    const res = await request({
      port,
      ca: ca(),
      cert: certs.frontend,
      headers: { 'x-forwarded-client-cert': `By=spiffe://evil;URI=${id('admin')}` },
    });
    expect(res.status).toBe(200);
    const xfcc: string = res.json().headers['x-forwarded-client-cert'];
    expect(xfcc).not.toContain('evil');
    expect(xfcc).not.toContain(id('admin'));
    expect(xfcc.split(',')).toHaveLength(1);
    expect(xfcc).toContain(`URI=${id('frontend')}`);
  });

  it('drops headers the client names in Connection, but never Host', async () => {
    const res = await request({ port, ca: ca(), cert: certs.frontend, headers: { 'x-internal': 'secret', connection: 'keep-alive, x-internal, host' } });
    expect(res.status).toBe(200);
    const seen = res.json().headers;
    expect(seen['x-internal']).toBeUndefined();
    expect(seen.host).toBe('localhost');
  });

  it('denies a verified caller that is not on the route allow-list with 403 naming reason and identity', async () => {
    const before = await metricValue('gatehouse_http_refusals_total', { route: 'payments', reason: 'not_allowed' });
    const received = upstream.received.length;
    const res = await request({ port, ca: ca(), cert: certs.stranger });
    expect(res.status).toBe(403);
    expect(res.json()).toMatchObject({ reason: 'not_allowed', identity: id('stranger'), route: 'payments' });
    expect(upstream.received.length).toBe(received);
    expect(await metricValue('gatehouse_http_refusals_total', { route: 'payments', reason: 'not_allowed' })).toBe(before + 1);
  });

  it('allows a path-prefix pattern and routes by longest path prefix', async () => {
    const ok = await request({ port, ca: ca(), cert: certs.batch, path: '/batch/run' });
    expect(ok.status).toBe(200);
    const denied = await request({ port, ca: ca(), cert: certs.batch, path: '/other' });
    expect(denied.status).toBe(403);
  });

  it('answers 421 when the Host header does not match the SNI', async () => {
    const res = await request({ port, ca: ca(), cert: certs.frontend, servername: 'localhost', hostHeader: 'api.test' });
    expect(res.status).toBe(421);
    expect(res.json().reason).toBe('sni_host_mismatch');
  });

  it('refuses dot-segment paths that could reach another route upstream', async () => {
    const res = await request({ port, ca: ca(), cert: certs.batch, path: '/batch/../admin' });
    expect(res.status).toBe(400);
    expect(res.json().reason).toBe('bad_path');
  });

  it('answers 502 upstream_identity_mismatch when the upstream presents the wrong identity, sending it nothing', async () => {
    const res = await request({ port, ca: ca(), cert: certs.frontend, path: '/impostor' });
    expect(res.status).toBe(502);
    expect(res.json().reason).toBe('upstream_identity_mismatch');
    expect(impostor.received).toHaveLength(0);
  });

  it.each([
    ['no certificate', undefined, 'no_cert'],
    ['a certificate from an unknown CA', 'wrongCa', 'unknown_ca'],
    ['an expired certificate', 'expired', 'expired'],
    ['a not yet valid certificate', 'future', 'not_yet_valid'],
    ['a revoked certificate', 'revoked', 'revoked'],
    ['a certificate without clientAuth usage', 'serverOnly', 'bad_usage'],
    ['a certificate with two URI SANs (not an X.509-SVID)', 'twoUris', 'bad_svid'],
  ])('refuses the handshake of a client with %s, counted with reason %s', async (_label, certName, reason) => {
    const before = await metricValue('gatehouse_tls_handshakes_total', { result: 'rejected', reason });
    const received = upstream.received.length;
    await expect(request({ port, ca: ca(), cert: certName ? certs[certName] : undefined })).rejects.toThrow();
    // The server counts after its side of the handshake ends; give it a moment.
    for (let i = 0; i < 50 && (await metricValue('gatehouse_tls_handshakes_total', { result: 'rejected', reason })) === before; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await metricValue('gatehouse_tls_handshakes_total', { result: 'rejected', reason })).toBe(before + 1);
    expect(upstream.received.length).toBe(received);
  });

  it('closes a plaintext HTTP connection on a STRICT listener, counted as not_tls', async () => {
    const before = await metricValue('gatehouse_tls_handshakes_total', { reason: 'not_tls' });
    const net = await import('node:net');
    await new Promise<void>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
      socket.on('data', () => undefined);
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(await metricValue('gatehouse_tls_handshakes_total', { reason: 'not_tls' })).toBe(before + 1);
  });

  it('reuses pooled upstream connections: 100 sequential requests open far fewer upstream TLS connections', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const before = upstream.connections.total;
    for (let i = 0; i < 100; i++) {
      const res = await request({ port, ca: ca(), cert: certs.frontend, agent, path: `/seq/${i}` });
      expect(res.status).toBe(200);
    }
    agent.destroy();
    const opened = upstream.connections.total - before;
    expect(opened).toBeLessThanOrEqual(2);
  });

  it('resumes the TLS session when it opens a new upstream connection', async () => {
    await request({ port, ca: ca(), cert: certs.frontend });
    // Drop the pooled connections from the upstream side: the next request needs a new one.
    upstream.closeAllConnections();
    await new Promise((r) => setTimeout(r, 50));
    const resumedBefore = upstream.connections.resumed;
    const res = await request({ port, ca: ca(), cert: certs.frontend });
    expect(res.status).toBe(200);
    expect(upstream.connections.resumed).toBeGreaterThan(resumedBefore);
    expect(upstream.received.at(-1)?.tlsSessionReused).toBe(true);
  });

  it('streams request bodies to the upstream', async () => {
    const body = 'x'.repeat(200_000);
    const res = await request({ port, ca: ca(), cert: certs.frontend, method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(200);
    expect(upstream.received.at(-1)?.body.length).toBe(body.length);
  });

  it('serves health, readiness and metrics on the admin endpoint, the pool gauge counting the connections the upstream holds', async () => {
    const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, 'ok\n']);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    const requestsBefore = await metricValue('gatehouse_http_requests_total', { route: 'payments', status: '200' });
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
    expect(await metricValue('gatehouse_tls_handshakes_total', { result: 'accepted' })).toBeGreaterThan(0);
    expect(await metricValue('gatehouse_http_requests_total', { route: 'payments', status: '200' })).toBe(requestsBefore + 1);
    // The request left a pooled connection open: the gauge shows what the upstream counts on its side.
    const held = await new Promise<number>((resolve, reject) => upstream.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    expect(held).toBeGreaterThan(0);
    expect(await metricValue('gatehouse_upstream_pool_connections', { upstream: 'payments', state: 'connected' })).toBe(held);
  });
});

describe('tls client used by tests', () => {
  it('can see the gateway certificate (sanity of the fixture)', async () => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: ca(), cert: certs.frontend.chainPem, key: certs.frontend.keyPem });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.getPeerX509Certificate()?.subjectAltName).toContain(id('gateway'));
    socket.destroy();
  });
});
