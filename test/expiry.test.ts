// Expiry visibility and self-renewal: scrape-time gauges for every loaded certificate and CRL, the
// warning when a certificate enters the last fraction of its lifetime, and the development PKI
// renewer that re-issues the embedded default's one-hour leaves at two thirds of their lifetime
// while the gateway picks them up from disk.
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issueLeaf, loadCa } from '../certs/dev-ca.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { DEV_LEAF_TTL_MS, ensureDevPki } from '../gateway/dev/dev-pki.js';
import { nextDevRenewalMs, reloadDemoUpstreamTls, startDevPkiRenewer, type DevPkiRenewer } from '../gateway/lifecycle/dev-pki-renewer.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { captureLogs, metricValue, servedSerial, waitFor, writeAtomically } from './support/lifecycle-harness.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

const MINUTE = 60_000;

let pki: TestPki;
let upstream: DemoUpstream;
let logs: ReturnType<typeof captureLogs>;
const certs: Record<string, WrittenCert> = {};
const gateways: RunningGateway[] = [];
const renewers: DevPkiRenewer[] = [];

beforeAll(async () => {
  pki = await TestPki.create();
  logs = captureLogs();
  certs.upstream = await pki.issue('upstream', { spiffeId: id('payments'), dnsNames: ['localhost'], usage: 'server' });
  certs.gatewayClient = await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
  certs.frontend = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  upstream = await startDemoUpstream({ certPem: certs.upstream.chainPem, keyPem: certs.upstream.keyPem, caPem: pki.ca.rootPem });
});

afterEach(async () => {
  for (const r of renewers.splice(0)) r.close();
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

afterAll(async () => {
  logs?.restore();
  await upstream?.close();
  pki?.cleanup();
});

async function start(server: WrittenCert, crl?: string, warnIntervalMs?: number, admin = false) {
  const config = gatewayConfig(
    [terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: pki.caFile, crl, routes: [terminateRoute('all', 'payments', allow('spiffe://test.gatehouse/*'))] })],
    [mtlsUpstream({ name: 'payments', port: upstream.port, cert: certs.gatewayClient.certFile, key: certs.gatewayClient.keyFile, trustBundle: pki.caFile, expectId: id('payments') })],
  );
  const gateway = await startGateway({ ...config, lifecycle: { ...config.lifecycle, watch: true } }, { admin, lifecycle: { debounceMs: 100, pollMs: 0, warnIntervalMs } });
  gateways.push(gateway);
  return { gateway, port: gateway.listeners.get('public')!.address().port };
}

const expiry = (labels: Record<string, string>) => metricValue('gatehouse_certificate_expiry_seconds', labels);

describe('expiry gauges', () => {
  it('report seconds to expiry of every loaded certificate and the age of every CRL, and follow a rotation', async () => {
    const server = await pki.issue('gauges-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server', ttlMs: 60 * MINUTE });
    const crl = await pki.writeCrl('gauges.crl', []);
    const { port } = await start(server, crl);

    const serverLeft = await expiry({ target: 'listener/public/server', serial: server.serialNumber });
    expect(serverLeft).toBeGreaterThan(59 * 60 - 30);
    expect(serverLeft).toBeLessThanOrEqual(60 * 60);
    expect(await expiry({ target: 'listener/public/server', subject: 'CN=localhost' })).toBeCloseTo(serverLeft, 0);
    const caLeft = await expiry({ target: 'listener/public/trust_bundle', serial: pki.ca.cert.serialNumber });
    expect(caLeft).toBeGreaterThan(364 * 24 * 3600);
    expect(await expiry({ target: 'upstream/payments/client', serial: certs.gatewayClient.serialNumber })).toBeGreaterThan(50 * 60);
    expect(await expiry({ target: 'upstream/payments/trust_bundle' })).toBeGreaterThan(364 * 24 * 3600);
    const age = await metricValue('gatehouse_crl_age_seconds', { file: crl });
    expect(age).toBeGreaterThanOrEqual(5 * 60 - 1); // createCrl backdates thisUpdate by five minutes
    expect(age).toBeLessThan(5 * 60 + 60);
    expect(await metricValue('gatehouse_crl_stale', { file: crl })).toBe(0);

    const next = await issueLeaf(pki.ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server', ttlMs: 30 * MINUTE });
    writeAtomically(server.keyFile, next.keyPem);
    writeAtomically(server.certFile, next.chainPem);
    await waitFor('the rotated certificate', async () => (await servedSerial(port, pki.ca.rootPem, certs.frontend)) === next.serialNumber);
    expect(await expiry({ target: 'listener/public/server', serial: next.serialNumber })).toBeLessThanOrEqual(30 * 60);
    expect(await expiry({ target: 'listener/public/server', serial: server.serialNumber })).toBe(0); // gone from the scrape
  });

  it('are listed on the admin page /certs: each certificate with its notAfter (soonest first) and each CRL with its age', async () => {
    const server = await pki.issue('page-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server', ttlMs: 20 * MINUTE });
    const crl = await pki.writeCrl('page.crl', []);
    const { gateway } = await start(server, crl, undefined, true);
    const admin = gateway.admin!.server.address() as AddressInfo;
    const page = (await (await fetch(`http://127.0.0.1:${admin.port}/certs`)).json()) as {
      certificates: Array<{ target: string; serial: string; not_after: string; expires_in_seconds: number }>;
      crls: Array<{ file: string; age_seconds: number; next_update: string | null }>;
    };
    const served = page.certificates.find((c) => c.target === 'listener/public/server');
    expect(served).toMatchObject({ serial: server.serialNumber });
    expect(Math.abs(Date.parse(served!.not_after) - (Date.now() + 20 * MINUTE))).toBeLessThan(60_000);
    expect(page.certificates[0]).toEqual(served); // the one closest to expiry leads
    expect(page.certificates.some((c) => c.target === 'upstream/payments/client')).toBe(true);
    const listed = page.crls.find((c) => c.file === crl);
    expect(listed?.age_seconds).toBeGreaterThanOrEqual(5 * 60 - 1);
    expect(listed?.next_update).not.toBeNull();
  });

  it('warn when a certificate is within lifecycle.expiry_warning_fraction of its lifetime, repeated at the warning interval', async () => {
    // 5 of 60 minutes left: under the default fraction 0.2.
    const late = await pki.issue('late-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server', notBefore: new Date(Date.now() - 55 * MINUTE), notAfter: new Date(Date.now() + 5 * MINUTE) });
    const { gateway } = await start(late, undefined, 300);
    const warned = () => logs.events('certificate_expiring').filter((l) => l.serial === late.serialNumber);
    expect(warned()).toHaveLength(1);
    expect(warned()[0]).toMatchObject({ target: 'listener/public', role: 'server', subject: 'CN=localhost' });
    expect(warned()[0]!.seconds_left).toBeLessThanOrEqual(300);
    // Not for the certificates with most of their lifetime left.
    expect(logs.events('certificate_expiring').some((l) => l.serial === certs.gatewayClient.serialNumber)).toBe(false);

    gateway.lifecycle.tick();
    expect(warned()).toHaveLength(1); // within the interval: not repeated
    await new Promise((r) => setTimeout(r, 350));
    gateway.lifecycle.tick();
    expect(warned()).toHaveLength(2);
  });
});

describe('development PKI renewal', () => {
  it('schedules the next renewal at two thirds of the shortest leaf lifetime', async () => {
    const dir = path.join(pki.dir, 'dev-schedule');
    await ensureDevPki(dir);
    const next = nextDevRenewalMs(dir);
    expect(next).toBeGreaterThan(Date.now() + (DEV_LEAF_TTL_MS * 2) / 3 - 2 * MINUTE);
    expect(next).toBeLessThan(Date.now() + (DEV_LEAF_TTL_MS * 2) / 3 + MINUTE);
  });

  it('re-issues leaves past two thirds of their lifetime: the running gateway and the demo upstream serve them without a restart', async () => {
    const dir = path.join(pki.dir, 'dev-renew');
    await ensureDevPki(dir);
    // Age the gateway's server certificate: issued 50 minutes ago, 10 minutes left.
    const ca = await loadCa(fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'), fs.readFileSync(path.join(dir, 'ca.key'), 'utf8'));
    const aged = await issueLeaf(ca, { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server', notBefore: new Date(Date.now() - 50 * MINUTE), notAfter: new Date(Date.now() + 10 * MINUTE) });
    fs.writeFileSync(path.join(dir, 'gateway-server.key'), aged.keyPem);
    fs.writeFileSync(path.join(dir, 'gateway-server.crt'), aged.chainPem);
    const agedUpstream = await issueLeaf(ca, { spiffeId: 'spiffe://gatehouse.dev/ns/demo/sa/echo', dnsNames: ['localhost'], usage: 'server', notBefore: new Date(Date.now() - 50 * MINUTE), notAfter: new Date(Date.now() + 10 * MINUTE) });
    fs.writeFileSync(path.join(dir, 'upstream.key'), agedUpstream.keyPem);
    fs.writeFileSync(path.join(dir, 'upstream.crt'), agedUpstream.chainPem);
    const devUpstream = await startDemoUpstream({ certPem: fs.readFileSync(path.join(dir, 'upstream.crt'), 'utf8'), keyPem: fs.readFileSync(path.join(dir, 'upstream.key'), 'utf8'), caPem: ca.certPem });
    try {
      const file = (name: string) => path.join(dir, name);
      const config = gatewayConfig(
        [terminateListener({ cert: file('gateway-server.crt'), key: file('gateway-server.key'), trustBundle: file('ca.crt'), routes: [terminateRoute('all', 'demo', allow('spiffe://gatehouse.dev/*'))] })],
        [mtlsUpstream({ name: 'demo', port: devUpstream.port, cert: file('gateway-client.crt'), key: file('gateway-client.key'), trustBundle: file('ca.crt'), expectId: 'spiffe://gatehouse.dev/ns/demo/sa/echo' })],
      );
      const gateway = await startGateway({ ...config, lifecycle: { ...config.lifecycle, watch: true } }, { admin: false, lifecycle: { debounceMs: 100, pollMs: 0 } });
      gateways.push(gateway);
      const port = gateway.listeners.get('public')!.address().port;
      const client = { chainPem: fs.readFileSync(file('client.crt'), 'utf8'), keyPem: fs.readFileSync(file('client.key'), 'utf8') };
      expect(await servedSerial(port, ca.certPem, client)).toBe(aged.serialNumber);

      const renewed: string[][] = [];
      const gatewayClient = { chainPem: fs.readFileSync(file('gateway-client.crt'), 'utf8'), keyPem: fs.readFileSync(file('gateway-client.key'), 'utf8') };
      expect(await servedSerial(devUpstream.port, ca.certPem, gatewayClient)).toBe(agedUpstream.serialNumber);
      renewers.push(
        startDevPkiRenewer(dir, {
          checkIntervalMs: 60_000,
          onRenewed: (p) => {
            renewed.push(p.renewed);
            reloadDemoUpstreamTls(devUpstream.server, p);
          },
        }),
      );
      // The renewer wakes at the overdue renewal point (within about a second), not at its check interval.
      const serial = await waitFor('the renewed certificate on a new handshake', async () => {
        const s = await servedSerial(port, ca.certPem, client);
        return s !== aged.serialNumber && s;
      }, 5000);
      expect(renewed).toEqual([['gateway-server', 'upstream']]);
      const upstreamSerial = new (await import('node:crypto')).X509Certificate(fs.readFileSync(file('upstream.crt'))).serialNumber.toLowerCase();
      expect(upstreamSerial).not.toBe(agedUpstream.serialNumber);
      expect(await servedSerial(devUpstream.port, ca.certPem, gatewayClient)).toBe(upstreamSerial);
      const issued = new (await import('node:crypto')).X509Certificate(fs.readFileSync(file('gateway-server.crt')));
      expect(serial).toBe(issued.serialNumber.toLowerCase());
      expect(Date.parse(issued.validTo) - Date.now()).toBeGreaterThan(DEV_LEAF_TTL_MS - 2 * MINUTE);
      expect((await request({ port, ca: ca.certPem, cert: client })).status).toBe(200);
    } finally {
      await devUpstream.close();
    }
  });
});
