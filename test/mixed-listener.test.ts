// One port, three kinds of traffic, through the assembled runtime: SNI passthrough to a backend
// that terminates TLS itself, mTLS terminated by the gateway, and (PERMISSIVE) plaintext HTTP
// from callers not yet migrated, which only reaches routes that allow it and carries no identity.
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Listener } from '../gateway/config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { backend, passthroughRoute } from './support/front-door-harness.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

let pki: TestPki;
let gateway: RunningGateway;
let upstream: DemoUpstream;
let port: number;
let adminPort: number;
const certs: Record<string, WrittenCert> = {};

function plaintextGet(path: string, headers = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}\r\n`));
    let out = '';
    socket.on('data', (c) => (out += c));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
  });
}

beforeAll(async () => {
  pki = await TestPki.create();
  certs.gatewayServer = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  certs.gatewayClient = await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
  certs.upstream = await pki.issue('upstream', { spiffeId: id('echo'), dnsNames: ['localhost', 'echo.test'], usage: 'server' });
  certs.frontend = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  upstream = await startDemoUpstream({ certPem: certs.upstream.chainPem, keyPem: certs.upstream.keyPem, caPem: pki.ca.rootPem });

  const base = terminateListener({
    cert: certs.gatewayServer.certFile,
    key: certs.gatewayServer.keyFile,
    sni: ['localhost'],
    trustBundle: pki.caFile,
    routes: [
      terminateRoute('legacy', 'echo', { ...allow(id('frontend')), allowPlaintext: true }, { match: { host: 'localhost', pathPrefix: '/legacy' } }),
      terminateRoute('private', 'echo', allow(id('frontend')), { match: { host: 'localhost', pathPrefix: '/' } }),
    ],
  });
  const listener: Listener = {
    ...base,
    mode: 'PERMISSIVE',
    routes: [...base.routes, passthroughRoute('echo-passthrough', 'echo-tls', { sni: ['echo.test'] })],
  };
  const config = {
    ...gatewayConfig(
      [listener],
      [mtlsUpstream({ name: 'echo', port: upstream.port, cert: certs.gatewayClient.certFile, key: certs.gatewayClient.keyFile, trustBundle: pki.caFile, expectId: id('echo') })],
    ),
    backends: [backend('echo-tls', [upstream.port])],
  };
  gateway = await startGateway(config);
  port = gateway.listeners.get('public')!.address().port;
  adminPort = (gateway.admin!.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
  pki?.cleanup();
});

describe('a PERMISSIVE listener mixing passthrough and terminate routes on one port', () => {
  it('terminates mTLS for the gateway SNI and forwards the verified identity', async () => {
    const res = await request({ port, ca: pki.ca.rootPem, cert: certs.frontend, path: '/private' });
    expect(res.status).toBe(200);
    expect(res.json().headers['x-forwarded-client-cert']).toContain(`URI=${id('frontend')}`);
  });

  it('relays the passthrough SNI without decrypting: the client sees the backend certificate and the backend sees the client', async () => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'echo.test', ca: pki.ca.rootPem, cert: certs.frontend.chainPem, key: certs.frontend.keyPem });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.getPeerX509Certificate()?.fingerprint256).toBe(new (await import('node:crypto')).X509Certificate(certs.upstream.certPem).fingerprint256);
    socket.write('GET /direct HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n');
    let body = '';
    for await (const chunk of socket) body += chunk;
    expect(body).toContain('"peer": "' + id('frontend') + '"');
    expect(body).not.toContain('x-forwarded-client-cert');
  });

  it('accepts plaintext on a route that allows it, with no identity and any smuggled XFCC removed', async () => {
    const response = await plaintextGet('/legacy/x', `x-forwarded-client-cert: URI=${id('admin')}\r\n`);
    expect(response).toMatch(/^HTTP\/1.1 200/);
    expect(response).not.toContain('x-forwarded-client-cert');
    expect(response).toContain('"x-forwarded-proto": "http"');
  });

  it('refuses plaintext on a route that requires mTLS with 403 no_identity, and counts plaintext callers', async () => {
    const response = await plaintextGet('/private');
    expect(response).toMatch(/^HTTP\/1.1 403/);
    expect(response).toContain('"reason":"no_identity"');
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith('gatehouse_plaintext_connections_total{listener="public"}'));
    expect(Number(line?.split(' ').pop())).toBeGreaterThanOrEqual(2);
  });
});
