// Hot rotation on a running gateway with real TLS on loopback: server certificate, client trust
// bundle and the gateway's upstream client certificate are replaced on disk while traffic flows, and
// broken material (truncated PEM, mismatched key, expired certificate, foreign CRL) never replaces
// the last good state.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRootCa, issueLeaf, type CertificateAuthority } from '../certs/dev-ca.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { captureLogs, metricValue, resumableRequest, runLoad, servedSerial, waitFor, writeAtomically } from './support/lifecycle-harness.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

const HOUR = 3600_000;
const FAST = { debounceMs: 100, pollMs: 0, tickMs: 1000 };

let pki: TestPki;
let upstream: DemoUpstream;
let logs: ReturnType<typeof captureLogs>;
const certs: Record<string, WrittenCert> = {};

beforeAll(async () => {
  pki = await TestPki.create();
  logs = captureLogs();
  certs.upstream = await pki.issue('upstream', { spiffeId: id('payments'), dnsNames: ['localhost'], usage: 'server' });
  certs.frontend = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  upstream = await startDemoUpstream({ certPem: certs.upstream.chainPem, keyPem: certs.upstream.keyPem, caPem: pki.ca.rootPem });
});

afterAll(async () => {
  logs?.restore();
  await upstream?.close();
  pki?.cleanup();
});

/** A gateway whose listener and upstream material lives in its own directory, so tests can rewrite it. */
async function gatewayIn(name: string, opts: { crl?: string; pollMs?: number } = {}) {
  const dir = path.join(pki.dir, name);
  fs.mkdirSync(dir);
  const server = await pki.issue(`${name}/server`, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  const client = await pki.issue(`${name}/client`, { spiffeId: id('gateway'), usage: 'client' });
  const bundle = path.join(dir, 'clients-ca.crt');
  fs.writeFileSync(bundle, pki.ca.rootPem);
  const upstreamBundle = path.join(dir, 'upstream-ca.crt');
  fs.writeFileSync(upstreamBundle, pki.ca.rootPem);
  const config = gatewayConfig(
    [terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: bundle, crl: opts.crl, routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })],
    [mtlsUpstream({ name: 'payments', port: upstream.port, cert: client.certFile, key: client.keyFile, trustBundle: upstreamBundle, expectId: id('payments') })],
  );
  const gateway = await startGateway({ ...config, lifecycle: { ...config.lifecycle, watch: true } }, { admin: false, lifecycle: { ...FAST, pollMs: opts.pollMs ?? 0 } });
  gateways.push(gateway);
  return { gateway, dir, server, client, bundle, upstreamBundle, port: gateway.listeners.get('public')!.address().port };
}

const gateways: RunningGateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

const ca = () => pki.ca.rootPem;
/** The upstream of tests that do not rotate it. */
const payments = () => mtlsUpstream({ name: 'payments', port: upstream.port, cert: certs.frontend.certFile, key: certs.frontend.keyFile, trustBundle: pki.caFile, expectId: id('payments') });
const reloads = (target: string, result: 'success' | 'failure') => metricValue('gatehouse_tls_reload_total', { target, result });

describe('rotation under load', () => {
  it('rotates the server certificate with zero failed requests; new handshakes get the new certificate', async () => {
    const g = await gatewayIn('rotate-server');
    const before = await servedSerial(g.port, ca(), certs.frontend);
    expect(before).toBe(g.server.serialNumber);
    const successes = await reloads('listener/public', 'success');
    const failures = await reloads('listener/public', 'failure');

    const load = runLoad({ port: g.port, ca: ca(), cert: certs.frontend, durationMs: 2000, keepAlive: 3, fresh: 1 });
    await new Promise((r) => setTimeout(r, 500));
    // Written in place, certificate then key, as a naive script would: the debounce reads them together.
    const next = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    fs.writeFileSync(g.server.certFile, next.chainPem);
    fs.writeFileSync(g.server.keyFile, next.keyPem);
    await waitFor('the new certificate on a new handshake', async () => (await servedSerial(g.port, ca(), certs.frontend)) === next.serialNumber, 3000);
    const result = await load;

    expect(result.errors).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.ok).toBeGreaterThan(50);
    expect(await reloads('listener/public', 'success')).toBe(successes + 1);
    expect(await reloads('listener/public', 'failure')).toBe(failures);
  });

  it('rotates the client trust bundle: a new CA is accepted, established connections of a dropped CA continue, its new handshakes are refused', async () => {
    const g = await gatewayIn('rotate-bundle');
    const newCa: CertificateAuthority = await createRootCa({ commonName: 'Next Root CA', trustDomain: 'test.gatehouse' });
    const newClient = await issueLeaf(newCa, { spiffeId: id('frontend'), usage: 'client' });
    await expect(request({ port: g.port, ca: ca(), cert: newClient })).rejects.toThrow();

    // Step 1, under load: old + new CA.
    const load = runLoad({ port: g.port, ca: ca(), cert: certs.frontend, durationMs: 2000, keepAlive: 3, fresh: 1 });
    await new Promise((r) => setTimeout(r, 500));
    writeAtomically(g.bundle, pki.ca.rootPem + newCa.rootPem);
    await waitFor('the new CA to be trusted', () => request({ port: g.port, ca: ca(), cert: newClient }).then((r) => r.status === 200, () => false), 3000);
    const result = await load;
    expect(result.errors).toEqual([]);
    expect(result.failed).toBe(0);

    // Step 2: drop the old CA. A keep-alive connection made under it keeps working; new handshakes with it are refused.
    const https = await import('node:https');
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    expect((await request({ port: g.port, ca: ca(), cert: certs.frontend, agent })).status).toBe(200);
    const successes = await reloads('listener/public', 'success');
    writeAtomically(g.bundle, newCa.rootPem);
    await waitFor('the bundle without the old CA', async () => (await reloads('listener/public', 'success')) > successes);
    expect((await request({ port: g.port, ca: ca(), cert: certs.frontend, agent })).status).toBe(200);
    await expect(request({ port: g.port, ca: ca(), cert: certs.frontend })).rejects.toThrow();
    expect((await request({ port: g.port, ca: ca(), cert: newClient })).status).toBe(200);
    agent.destroy();
  });

  it('a client of a CA dropped from the bundle cannot come back on a resumed TLS session', async () => {
    const g = await gatewayIn('resume-after-drop');
    const newCa = await createRootCa({ commonName: 'Replacement Root CA', trustDomain: 'test.gatehouse' });
    const first = await resumableRequest(g.port, ca(), certs.frontend);
    expect(first.status).toBe('HTTP/1.1 200 OK');
    expect((await resumableRequest(g.port, ca(), certs.frontend, first.session)).reused).toBe(true);

    const successes = await reloads('listener/public', 'success');
    writeAtomically(g.bundle, newCa.rootPem);
    await waitFor('the new bundle', async () => (await reloads('listener/public', 'success')) > successes);
    const after = await resumableRequest(g.port, ca(), certs.frontend, first.session);
    expect(after.reused).toBe(false); // sessions are partitioned by trust bundle: a full handshake...
    expect(after.status).toBeUndefined(); // ...which the new bundle refuses
  });

  it('rotates the gateway client certificate toward the upstream: new upstream connections present the new identity, no request fails', async () => {
    const g = await gatewayIn('rotate-upstream-client');
    const first = await request({ port: g.port, ca: ca(), cert: certs.frontend });
    expect(first.json().peer).toBe(id('gateway'));

    const load = runLoad({ port: g.port, ca: ca(), cert: certs.frontend, durationMs: 1500, keepAlive: 3, fresh: 0 });
    await new Promise((r) => setTimeout(r, 400));
    const next = await issueLeaf(pki.ca, { spiffeId: id('gateway-v2'), usage: 'client' });
    writeAtomically(g.client.keyFile, next.keyPem);
    writeAtomically(g.client.certFile, next.chainPem);
    await waitFor('the upstream to see the new gateway identity', async () => (await request({ port: g.port, ca: ca(), cert: certs.frontend })).json().peer === id('gateway-v2'), 3000);
    const result = await load;
    expect(result.errors).toEqual([]);
    expect(result.failed).toBe(0);
    // Every request after the swap came over a connection made with the new identity.
    const last = await request({ port: g.port, ca: ca(), cert: certs.frontend });
    expect(last.json().peer).toBe(id('gateway-v2'));
  });
});

describe('broken material keeps the last good state', () => {
  it('a truncated PEM written mid-rotation leaves the old certificate serving, counts and logs the failure; the full file then applies', async () => {
    const g = await gatewayIn('truncated');
    const failures = await reloads('listener/public', 'failure');
    const next = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    writeAtomically(g.server.keyFile, next.keyPem);
    writeAtomically(g.server.certFile, next.chainPem.slice(0, Math.floor(next.chainPem.length / 2)));
    await waitFor('the reload failure', async () => (await reloads('listener/public', 'failure')) === failures + 1);

    expect(await servedSerial(g.port, ca(), certs.frontend)).toBe(g.server.serialNumber);
    expect((await request({ port: g.port, ca: ca(), cert: certs.frontend })).status).toBe(200);
    const logged = logs.events('reload_failed').at(-1)!;
    expect(logged).toMatchObject({ target: 'listener/public', field: 'listeners[0].tls.certificates[0].cert', file: g.server.certFile });
    expect(logged.problem).toMatch(/truncated PEM/);

    writeAtomically(g.server.certFile, next.chainPem);
    await waitFor('the complete certificate', async () => (await servedSerial(g.port, ca(), certs.frontend)) === next.serialNumber);
  });

  it.each([
    ['a key that does not match the certificate', 'key_mismatch', /private key does not match/],
    ['an expired certificate', 'expired', /expired at/],
    ['a CRL signed by a CA outside the trust bundle', 'foreign_crl', /not in the trust bundle/],
    ['a CRL that does not parse', 'garbage_crl', /corrupt PEM|does not parse/],
  ])('%s keeps the old state', async (_label, kind, problem) => {
    const crl = await pki.writeCrl(`crl-${kind}.pem`, []);
    const g = await gatewayIn(`broken-${kind}`, { crl });
    const failures = await reloads('listener/public', 'failure');
    if (kind === 'key_mismatch') {
      const other = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
      writeAtomically(g.server.certFile, other.chainPem); // its key is not written: the old key stays
    } else if (kind === 'expired') {
      const old = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server', notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
      writeAtomically(g.server.keyFile, old.keyPem);
      writeAtomically(g.server.certFile, old.chainPem);
    } else if (kind === 'foreign_crl') {
      const { createCrl } = await import('../certs/dev-ca.js');
      writeAtomically(crl, await createCrl(pki.otherCa, []));
    } else {
      writeAtomically(crl, '-----BEGIN X509 CRL-----\nnot base64 at all!\n-----END X509 CRL-----\n');
    }
    await waitFor('the reload failure', async () => (await reloads('listener/public', 'failure')) === failures + 1);
    expect(logs.events('reload_failed').at(-1)!.problem).toMatch(problem);
    expect(await servedSerial(g.port, ca(), certs.frontend)).toBe(g.server.serialNumber);
    expect((await request({ port: g.port, ca: ca(), cert: certs.frontend })).status).toBe(200);
  });
});

describe('material checked at start', () => {
  it('refuses to start on a truncated trust bundle (OpenSSL would silently drop its last CA), naming field and file', async () => {
    const second = await createRootCa({ commonName: 'Second Root CA', trustDomain: 'test.gatehouse' });
    const bundle = path.join(pki.dir, 'truncated-bundle.crt');
    fs.writeFileSync(bundle, pki.ca.rootPem + second.rootPem.slice(0, 200));
    const server = await pki.issue('start-check-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    const config = gatewayConfig([terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: bundle, routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })], [payments()]);
    await expect(startGateway(config, { admin: false })).rejects.toThrow(`listeners[0].tls.client_auth.trust_bundle: ${bundle}: truncated PEM: block 2 (CERTIFICATE) has no END line`);
  });
});

describe('file watching', () => {
  it("picks up a Kubernetes Secret update (the `..data` symlink swap) through the directory watch alone", async () => {
    // The layout kubelet writes: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    const dir = path.join(pki.dir, 'k8s-secret');
    fs.mkdirSync(path.join(dir, '..2026_01'), { recursive: true });
    const first = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    fs.writeFileSync(path.join(dir, '..2026_01', 'tls.crt'), first.chainPem);
    fs.writeFileSync(path.join(dir, '..2026_01', 'tls.key'), first.keyPem);
    fs.writeFileSync(path.join(dir, '..2026_01', 'ca.crt'), pki.ca.rootPem);
    fs.symlinkSync('..2026_01', path.join(dir, '..data'));
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) fs.symlinkSync(path.join('..data', f), path.join(dir, f));
    const config = gatewayConfig(
      [terminateListener({ cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key'), trustBundle: path.join(dir, 'ca.crt'), routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })],
      [payments()],
    );
    // No stat poll: only the directory watch can see this.
    const gateway = await startGateway({ ...config, lifecycle: { ...config.lifecycle, watch: true } }, { admin: false, lifecycle: { ...FAST, pollMs: 0 } });
    gateways.push(gateway);
    const port = gateway.listeners.get('public')!.address().port;
    expect(await servedSerial(port, ca(), certs.frontend)).toBe(first.serialNumber);

    const second = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    fs.mkdirSync(path.join(dir, '..2026_02'));
    fs.writeFileSync(path.join(dir, '..2026_02', 'tls.crt'), second.chainPem);
    fs.writeFileSync(path.join(dir, '..2026_02', 'tls.key'), second.keyPem);
    fs.writeFileSync(path.join(dir, '..2026_02', 'ca.crt'), pki.ca.rootPem);
    fs.symlinkSync('..2026_02', path.join(dir, '..data_tmp'));
    fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    fs.rmSync(path.join(dir, '..2026_01'), { recursive: true });

    await waitFor('the swapped Secret', async () => (await servedSerial(port, ca(), certs.frontend)) === second.serialNumber, 3000);
    expect((await request({ port, ca: ca(), cert: certs.frontend })).status).toBe(200);
  });

  it('the stat poll catches a change the directory watch cannot see (a symlink into another directory rewritten in place)', async () => {
    const elsewhere = path.join(pki.dir, 'elsewhere');
    const linked = path.join(pki.dir, 'linked');
    fs.mkdirSync(elsewhere);
    fs.mkdirSync(linked);
    const first = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    fs.writeFileSync(path.join(elsewhere, 'server.crt'), first.chainPem);
    fs.writeFileSync(path.join(elsewhere, 'server.key'), first.keyPem);
    fs.symlinkSync(path.join(elsewhere, 'server.crt'), path.join(linked, 'server.crt'));
    fs.symlinkSync(path.join(elsewhere, 'server.key'), path.join(linked, 'server.key'));
    const config = gatewayConfig(
      [terminateListener({ cert: path.join(linked, 'server.crt'), key: path.join(linked, 'server.key'), trustBundle: pki.caFile, routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })],
      [payments()],
    );
    const gateway = await startGateway({ ...config, lifecycle: { ...config.lifecycle, watch: true } }, { admin: false, lifecycle: { ...FAST, pollMs: 200 } });
    gateways.push(gateway);
    const port = gateway.listeners.get('public')!.address().port;
    const second = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    writeAtomically(path.join(elsewhere, 'server.key'), second.keyPem);
    writeAtomically(path.join(elsewhere, 'server.crt'), second.chainPem);
    await waitFor('the poll to see the change', async () => (await servedSerial(port, ca(), certs.frontend)) === second.serialNumber, 3000);
  });

  it('does not watch when lifecycle.watch is false', async () => {
    const dir = path.join(pki.dir, 'unwatched');
    fs.mkdirSync(dir);
    const server = await pki.issue('unwatched/server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    const config = gatewayConfig([terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: pki.caFile, routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })], [payments()]);
    const gateway = await startGateway(config, { admin: false, lifecycle: { ...FAST, pollMs: 100 } });
    gateways.push(gateway);
    const port = gateway.listeners.get('public')!.address().port;
    const next = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    writeAtomically(server.keyFile, next.keyPem);
    writeAtomically(server.certFile, next.chainPem);
    await new Promise((r) => setTimeout(r, 500)); // five poll periods and more than the debounce: a watcher would have acted
    expect(await servedSerial(port, ca(), certs.frontend)).toBe(server.serialNumber);
    // An explicit reload (what SIGHUP would do) still works.
    await gateway.lifecycle.reloadAll();
    expect(await servedSerial(port, ca(), certs.frontend)).toBe(next.serialNumber);
  });
});
