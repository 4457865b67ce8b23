// Revocation on a running gateway with real TLS on loopback: a newly loaded CRL closes the
// keep-alive connections of the certificates it revokes and refuses their new handshakes; upstream
// certificates are checked against the upstream CRL; and a CRL past nextUpdate follows the
// lifecycle.stale_crl policy (OpenSSL alone would refuse every client: see tls-reloader.ts).
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayConfig, Listener, StaleCrlPolicy } from '../gateway/config/types.js';
import { createCrl, issueLeaf } from '../certs/dev-ca.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { normalizeSerial } from '../gateway/lifecycle/revocation.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { captureLogs, metricValue, resumableRequest, runLoad, waitFor, writeAtomically } from './support/lifecycle-harness.js';
import { h2Connect, h2Request, offeringH2 } from './support/h2-client.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

const MINUTE = 60_000;

let pki: TestPki;
let upstream: DemoUpstream;
let revokedUpstream: DemoUpstream;
let logs: ReturnType<typeof captureLogs>;
const certs: Record<string, WrittenCert> = {};
const gateways: RunningGateway[] = [];

beforeAll(async () => {
  pki = await TestPki.create();
  logs = captureLogs();
  certs.server = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  certs.gatewayClient = await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
  certs.upstream = await pki.issue('upstream', { spiffeId: id('payments'), dnsNames: ['localhost'], usage: 'server' });
  certs.revokedUpstream = await pki.issue('revoked-upstream', { spiffeId: id('payments'), dnsNames: ['localhost'], usage: 'server' });
  certs.frontend = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  certs.batch = await pki.issue('batch', { spiffeId: id('batch'), usage: 'client' });
  certs.doomed = await pki.issue('doomed', { spiffeId: id('doomed'), usage: 'client' });
  upstream = await startDemoUpstream({ certPem: certs.upstream.chainPem, keyPem: certs.upstream.keyPem, caPem: pki.ca.rootPem });
  revokedUpstream = await startDemoUpstream({ certPem: certs.revokedUpstream.chainPem, keyPem: certs.revokedUpstream.keyPem, caPem: pki.ca.rootPem });
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

afterAll(async () => {
  logs?.restore();
  await upstream?.close();
  await revokedUpstream?.close();
  pki?.cleanup();
});

const ca = () => pki.ca.rootPem;

async function start(opts: { crl: string; upstreamCrl?: string; staleCrl?: StaleCrlPolicy; closeRevoked?: boolean; tickMs?: number; takeoverMs?: number; h2?: boolean }) {
  const offering = opts.h2 ? offeringH2 : (listener: Listener) => listener;
  const base = gatewayConfig(
    [
      offering(terminateListener({
        cert: certs.server.certFile,
        key: certs.server.keyFile,
        trustBundle: pki.caFile,
        crl: opts.crl,
        routes: [
          terminateRoute('revoked-upstream', 'revoked-upstream', allow('spiffe://test.gatehouse/*'), { match: { pathPrefix: '/revoked-upstream' } }),
          terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*')),
        ],
      })),
    ],
    [
      mtlsUpstream({ name: 'payments', port: upstream.port, cert: certs.gatewayClient.certFile, key: certs.gatewayClient.keyFile, trustBundle: pki.caFile, expectId: id('payments') }),
      mtlsUpstream({ name: 'revoked-upstream', port: revokedUpstream.port, cert: certs.gatewayClient.certFile, key: certs.gatewayClient.keyFile, trustBundle: pki.caFile, expectId: id('payments') }),
    ],
  );
  const config: GatewayConfig = {
    ...base,
    upstreams: base.upstreams.map((u) => ({ ...u, tls: { ...u.tls!, crl: opts.upstreamCrl } })),
    lifecycle: { ...base.lifecycle, watch: true, staleCrl: opts.staleCrl ?? 'enforce', closeRevokedConnections: opts.closeRevoked ?? true },
  };
  const gateway = await startGateway(config, { admin: false, lifecycle: { debounceMs: 100, pollMs: 0, tickMs: opts.tickMs ?? 1000, crlTakeoverMarginMs: opts.takeoverMs } });
  gateways.push(gateway);
  return { gateway, port: gateway.listeners.get('public')!.address().port };
}

/** One keep-alive connection of `cert`, kept by an agent so that later requests reuse it. */
async function keepAlive(port: number, cert: WrittenCert) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  expect((await request({ port, ca: ca(), cert, agent })).status).toBe(200);
  const socket = Object.values(agent.freeSockets).flat()[0] as TLSSocket;
  expect(socket).toBeDefined();
  return { agent, socket, get: () => request({ port, ca: ca(), cert, agent }) };
}

const rejected = (reason: string) => metricValue('gatehouse_tls_handshakes_total', { listener: 'public', result: 'rejected', reason });

async function expectRefused(port: number, cert: WrittenCert, reason: string): Promise<void> {
  const before = await rejected(reason);
  await expect(request({ port, ca: ca(), cert })).rejects.toThrow();
  await waitFor(`a handshake rejected with ${reason}`, async () => (await rejected(reason)) === before + 1, 2000);
}

describe('revoking a client certificate', () => {
  it('closes its keep-alive connection, refuses its new handshakes with `revoked`, and leaves other clients alone', async () => {
    const crl = await pki.writeCrl('live.crl', []);
    const { port } = await start({ crl });
    const doomed = await keepAlive(port, certs.doomed);
    const other = await keepAlive(port, certs.frontend);
    const closedBefore = await metricValue('gatehouse_revoked_connections_closed_total', { listener: 'public' });

    writeAtomically(crl, fs.readFileSync(await pki.writeCrl('live-next.crl', [certs.doomed]), 'utf8'));
    await waitFor('the revoked connection to be closed', () => doomed.socket.destroyed, 3000);

    expect(await metricValue('gatehouse_revoked_connections_closed_total', { listener: 'public' })).toBe(closedBefore + 1);
    expect(logs.events('revoked_connection_closed').at(-1)).toMatchObject({ listener: 'public', reason: 'revoked', identity: id('doomed'), serial: certs.doomed.serialNumber });
    // Its next request needs a new handshake, which the CRL refuses.
    const before = await rejected('revoked');
    await expect(doomed.get()).rejects.toThrow();
    await waitFor('the refused handshake', async () => (await rejected('revoked')) === before + 1, 2000);
    await expectRefused(port, certs.doomed, 'revoked');
    // The other client's connection was never touched.
    expect(other.socket.destroyed).toBe(false);
    expect((await other.get()).status).toBe(200);
    expect(Object.values(other.agent.freeSockets).flat()[0]).toBe(other.socket);
    doomed.agent.destroy();
    other.agent.destroy();
  });

  it('closes its HTTP/2 connection too (the session found by its socket), and leaves another HTTP/2 client alone', async () => {
    const crl = await pki.writeCrl('live-h2.crl', []);
    const { port } = await start({ crl, h2: true });
    const doomed = await h2Connect({ port, ca: ca(), cert: certs.doomed });
    const other = await h2Connect({ port, ca: ca(), cert: certs.frontend });
    try {
      expect((await h2Request(doomed, { ':path': '/before' })).status).toBe(200);
      expect((await h2Request(other, { ':path': '/before' })).status).toBe(200);
      const closed = new Promise<void>((resolve) => doomed.once('close', () => resolve()));
      const closedBefore = await metricValue('gatehouse_revoked_connections_closed_total', { listener: 'public' });
      writeAtomically(crl, fs.readFileSync(await pki.writeCrl('live-h2-next.crl', [certs.doomed]), 'utf8'));
      await closed;
      expect(await metricValue('gatehouse_revoked_connections_closed_total', { listener: 'public' })).toBe(closedBefore + 1);
      expect(other.closed || other.destroyed).toBe(false);
      expect((await h2Request(other, { ':path': '/after' })).status).toBe(200);
    } finally {
      doomed.destroy();
      other.close();
    }
  });

  it('refuses a revoked client that comes back on a resumed TLS session (which skips OpenSSL\'s CRL check)', async () => {
    const crl = await pki.writeCrl('resume.crl', []);
    const { port } = await start({ crl });
    const first = await resumableRequest(port, ca(), certs.doomed);
    expect(first.status).toBe('HTTP/1.1 200 OK');
    expect(first.session).toBeDefined();
    const resumed = await resumableRequest(port, ca(), certs.doomed, first.session);
    expect(resumed).toMatchObject({ reused: true, status: 'HTTP/1.1 200 OK' });

    const successes = await metricValue('gatehouse_tls_reload_total', { target: 'listener/public', result: 'success' });
    writeAtomically(crl, fs.readFileSync(await pki.writeCrl('resume-next.crl', [certs.doomed]), 'utf8'));
    await waitFor('the CRL reload', async () => (await metricValue('gatehouse_tls_reload_total', { target: 'listener/public', result: 'success' })) > successes);
    const before = await rejected('revoked');
    const after = await resumableRequest(port, ca(), certs.doomed, resumed.session ?? first.session);
    expect(after.reused).toBe(true); // the session was accepted by OpenSSL...
    expect(after.status).toBeUndefined(); // ...and the gateway closed the connection before any request
    await waitFor('the refusal counted as revoked', async () => (await rejected('revoked')) === before + 1, 2000);
  });

  it('with close_revoked_connections off, leaves established connections open but still refuses new handshakes', async () => {
    const crl = await pki.writeCrl('keep-open.crl', []);
    const { gateway, port } = await start({ crl, closeRevoked: false });
    const doomed = await keepAlive(port, certs.doomed);
    const successes = await metricValue('gatehouse_tls_reload_total', { target: 'listener/public', result: 'success' });
    writeAtomically(crl, fs.readFileSync(await pki.writeCrl('keep-open-next.crl', [certs.doomed]), 'utf8'));
    await waitFor('the CRL reload', async () => (await metricValue('gatehouse_tls_reload_total', { target: 'listener/public', result: 'success' })) > successes);
    expect(gateway.lifecycle.reloaders.get('listener/public')!.material!.revocation.size).toBe(1);
    expect((await doomed.get()).status).toBe(200);
    expect(doomed.socket.destroyed).toBe(false);
    await expectRefused(port, certs.doomed, 'revoked');
    doomed.agent.destroy();
  });

  it('keeps enforcing the previous CRL when the new one is broken', async () => {
    const crl = await pki.writeCrl('broken-next.crl', [certs.doomed]);
    const { port } = await start({ crl });
    const failures = await metricValue('gatehouse_tls_reload_total', { target: 'listener/public', result: 'failure' });
    const good = fs.readFileSync(crl, 'utf8');
    writeAtomically(crl, good.slice(0, good.length - 40)); // cut before the END line
    await waitFor('the reload failure', async () => (await metricValue('gatehouse_tls_reload_total', { target: 'listener/public', result: 'failure' })) === failures + 1);
    await expectRefused(port, certs.doomed, 'revoked');
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
  });
});

describe('CRL files', () => {
  it('enforce every CRL of a file with several CAs (OpenSSL reads only the first block of a string)', async () => {
    const bundle = path.join(pki.dir, 'two-cas.crt');
    fs.writeFileSync(bundle, pki.ca.rootPem + pki.otherCa.rootPem);
    const fromOther = await issueLeaf(pki.otherCa, { spiffeId: id('partner'), usage: 'client' });
    const revokedFromOther = await issueLeaf(pki.otherCa, { spiffeId: id('partner'), usage: 'client' });
    const crl = path.join(pki.dir, 'two-cas.crl');
    fs.writeFileSync(crl, (await createCrl(pki.ca, [])) + (await createCrl(pki.otherCa, [{ serialNumber: revokedFromOther.serialNumber, revocationDate: new Date(Date.now() - 1000) }])));
    const config = gatewayConfig(
      [terminateListener({ cert: certs.server.certFile, key: certs.server.keyFile, trustBundle: bundle, crl, routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })],
      [mtlsUpstream({ name: 'payments', port: upstream.port, cert: certs.gatewayClient.certFile, key: certs.gatewayClient.keyFile, trustBundle: pki.caFile, expectId: id('payments') })],
    );
    const gateway = await startGateway(config, { admin: false });
    gateways.push(gateway);
    const port = gateway.listeners.get('public')!.address().port;
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
    expect((await request({ port, ca: ca(), cert: fromOther })).status).toBe(200);
    await expect(request({ port, ca: ca(), cert: revokedFromOther })).rejects.toThrow();
  });

  it.each([
    ['0A3F01', '0a3f01'],
    ['000a3f01', '0a3f01'],
    ['a3f01', '0a3f01'],
    ['00ff', 'ff'],
    ['00', '00'],
  ])('compare serial %s as %s (Node and openssl print whole bytes, CRL parsers may keep the sign byte)', (serial, normal) => {
    expect(normalizeSerial(serial)).toBe(normal);
  });
});

describe('upstream certificates', () => {
  it.each([
    ['a fresh CRL (OpenSSL)', 24 * 60 * MINUTE],
    ['a stale CRL under `enforce` (the gateway)', -MINUTE],
  ])('are checked against the upstream CRL: %s refuses a revoked upstream, accepts the others', async (_label, nextUpdateIn) => {
    const clientCrl = await pki.writeCrl(`clients-${nextUpdateIn}.crl`, []);
    const upstreamCrl = await pki.writeCrl(`upstreams-${nextUpdateIn}.crl`, [certs.revokedUpstream], { nextUpdate: new Date(Date.now() + nextUpdateIn) });
    const { gateway, port } = await start({ crl: clientCrl, upstreamCrl });
    expect(gateway.lifecycle.reloaders.get('upstream/payments')!.enforcement).toBe(nextUpdateIn > 0 ? 'openssl' : 'gateway');
    const received = revokedUpstream.received.length;
    const refused = await request({ port, ca: ca(), cert: certs.frontend, path: '/revoked-upstream/x' });
    expect(refused.status).toBe(502);
    expect(refused.json().reason).toBe('upstream_tls_failed');
    expect(revokedUpstream.received.length).toBe(received);
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
  });
});

describe('a reloaded upstream CRL', () => {
  it('refuses an upstream it revokes even though a resumable TLS session to it is cached', async () => {
    const clientCrl = await pki.writeCrl('clients-upstream-reload.crl', []);
    const upstreamCrl = await pki.writeCrl('upstreams-reload.crl', []);
    const { port } = await start({ crl: clientCrl, upstreamCrl });
    expect((await request({ port, ca: ca(), cert: certs.frontend, path: '/revoked-upstream/1' })).status).toBe(200);
    // A second connection resumes: the session cache is in use.
    revokedUpstream.closeAllConnections();
    await waitFor('a resumed upstream session', async () => (await request({ port, ca: ca(), cert: certs.frontend, path: '/revoked-upstream/2' })).status === 200 && revokedUpstream.received.at(-1)?.tlsSessionReused);

    const successes = await metricValue('gatehouse_tls_reload_total', { target: 'upstream/revoked-upstream', result: 'success' });
    writeAtomically(upstreamCrl, fs.readFileSync(await pki.writeCrl('upstreams-reload-next.crl', [certs.revokedUpstream]), 'utf8'));
    await waitFor('the upstream CRL reload', async () => (await metricValue('gatehouse_tls_reload_total', { target: 'upstream/revoked-upstream', result: 'success' })) > successes);
    const received = revokedUpstream.received.length;
    const refused = await request({ port, ca: ca(), cert: certs.frontend, path: '/revoked-upstream/3' });
    expect(refused.status).toBe(502);
    expect(refused.json().reason).toBe('upstream_tls_failed');
    expect(revokedUpstream.received.length).toBe(received);
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
  });
});

describe('a stale upstream CRL under `reject_all`', () => {
  it('refuses every upstream with upstream_tls_failed, on new and resumed sessions alike', async () => {
    const clientCrl = await pki.writeCrl('clients-reject-all.crl', []);
    const upstreamCrl = await pki.writeCrl('upstreams-reject-all.crl', [], { nextUpdate: new Date(Date.now() + 2500) });
    const { gateway, port } = await start({ crl: clientCrl, upstreamCrl, staleCrl: 'reject_all', tickMs: 200 });
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
    // Drop the pooled connections: the next request opens a new one, offering the cached session.
    upstream.closeAllConnections();
    await waitFor('the upstream CRL to go stale', () => Date.now() > gateway.lifecycle.reloaders.get('upstream/payments')!.material!.revocation.nextUpdateMs!, 4000, 50);
    const refused = await request({ port, ca: ca(), cert: certs.frontend });
    expect(refused.status).toBe(502);
    expect(refused.json().reason).toBe('upstream_tls_failed');
  });
});

describe('a CRL past nextUpdate', () => {
  it('under `enforce` (default): keeps refusing what it revokes, accepts everyone else, flags it and warns', async () => {
    const crl = await pki.writeCrl('stale-enforce.crl', [certs.doomed], { nextUpdate: new Date(Date.now() - MINUTE) });
    const { gateway, port } = await start({ crl, staleCrl: 'enforce' });
    expect(gateway.lifecycle.reloaders.get('listener/public')!.enforcement).toBe('gateway');
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
    await expectRefused(port, certs.doomed, 'revoked');
    expect(await metricValue('gatehouse_crl_stale', { file: crl })).toBe(1);
    expect(logs.events('crl_stale').some((l) => l.file === crl && l.policy === 'enforce')).toBe(true);
  });

  it('under `reject_all`: refuses every client with `crl_stale`', async () => {
    const crl = await pki.writeCrl('stale-reject.crl', [certs.doomed], { nextUpdate: new Date(Date.now() - MINUTE) });
    const { gateway, port } = await start({ crl, staleCrl: 'reject_all' });
    expect(gateway.lifecycle.reloaders.get('listener/public')!.enforcement).toBe('reject_all');
    await expectRefused(port, certs.frontend, 'crl_stale');
    await expectRefused(port, certs.doomed, 'crl_stale');
    expect(await metricValue('gatehouse_crl_stale', { file: crl })).toBe(1);
  });

  it('under `reject_all`: a session resumed from before the CRL went stale is refused too', async () => {
    const crl = await pki.writeCrl('stale-reject-resume.crl', [], { nextUpdate: new Date(Date.now() + 1500) });
    const { gateway, port } = await start({ crl, staleCrl: 'reject_all' });
    const first = await resumableRequest(port, ca(), certs.frontend);
    expect(first.status).toBe('HTTP/1.1 200 OK');
    await waitFor('the CRL to go stale', () => gateway.lifecycle.reloaders.get('listener/public')!.enforcement === 'reject_all', 4000);
    const before = await rejected('crl_stale');
    const resumed = await resumableRequest(port, ca(), certs.frontend, first.session);
    expect(resumed.reused).toBe(true);
    expect(resumed.status).toBeUndefined();
    await waitFor('the refusal counted as crl_stale', async () => (await rejected('crl_stale')) === before + 1, 2000);
  });

  it('going stale while serving under `enforce`: the gateway takes over before OpenSSL would refuse anyone, and no request fails', async () => {
    const nextUpdate = Date.now() + 2500;
    const crl = await pki.writeCrl('going-stale.crl', [certs.doomed], { nextUpdate: new Date(nextUpdate) });
    const { gateway, port } = await start({ crl, staleCrl: 'enforce', tickMs: 200, takeoverMs: 500 });
    const reloader = gateway.lifecycle.reloaders.get('listener/public')!;
    expect(reloader.enforcement).toBe('openssl');
    expect(await metricValue('gatehouse_crl_stale', { file: crl })).toBe(0);

    // New handshakes throughout the transition (fresh: one per request) must all succeed.
    const load = await runLoad({ port, ca: ca(), cert: certs.frontend, durationMs: Math.max(0, nextUpdate - Date.now()) + 700, keepAlive: 1, fresh: 2 });
    expect(load.errors).toEqual([]);
    expect(load.failed).toBe(0);
    expect(reloader.enforcement).toBe('gateway');
    expect(logs.events('crl_enforcement_changed').some((l) => l.crl_enforcement === 'gateway')).toBe(true);
    expect(await metricValue('gatehouse_crl_stale', { file: crl })).toBe(1);
    await expectRefused(port, certs.doomed, 'revoked');
  });

  it('a fresh CRL loaded over a stale one hands enforcement back to OpenSSL', async () => {
    const crl = await pki.writeCrl('refreshed.crl', [certs.doomed], { nextUpdate: new Date(Date.now() - MINUTE) });
    const { gateway, port } = await start({ crl, staleCrl: 'enforce' });
    const reloader = gateway.lifecycle.reloaders.get('listener/public')!;
    expect(reloader.enforcement).toBe('gateway');
    writeAtomically(crl, fs.readFileSync(await pki.writeCrl('refreshed-next.crl', [certs.doomed]), 'utf8'));
    await waitFor('the fresh CRL', () => reloader.enforcement === 'openssl');
    expect(await metricValue('gatehouse_crl_stale', { file: crl })).toBe(0);
    await expectRefused(port, certs.doomed, 'revoked');
    expect((await request({ port, ca: ca(), cert: certs.batch })).status).toBe(200);
  });
});

// The test PKI directory must only hold what the tests wrote.
it('writes CRLs only inside the test PKI directory', () => {
  expect(fs.readdirSync(pki.dir).filter((f) => f.endsWith('.crl')).every((f) => path.join(pki.dir, f).startsWith(pki.dir))).toBe(true);
});
