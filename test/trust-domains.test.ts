// Trust domains on real mTLS over loopback, with two independent CAs: ours (our CA code, SVIDs
// issued by an intermediate that clients send along) for trust domain test.gatehouse, and a
// partner's (the openssl command line) for partner.example. The attack: the partner CA mints
// spiffe://test.gatehouse/... identities. One merged trust_bundle lets them through (the reason
// trust_domains exists, and what `gatehouse validate` warns about); with a bundle per trust domain
// the handshake is refused (trust_domain_mismatch) while the partner's own identities still work.
// The same for an upstream whose certificate the wrong domain's CA minted for expect_id. And
// certificates without a SPIFFE ID: refused at the handshake by default (require_spiffe_id), or
// counted as their own outcome where a listener lets them in.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIntermediateCa, createRootCa, issueLeaf, type CertificateAuthority } from '../certs/dev-ca.js';
import type { Authorization } from '../gateway/config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { captureLogs, metricValue, waitFor, writeAtomically } from './support/lifecycle-harness.js';
import { request, type ClientCert } from './support/mtls-client.js';
import { OpensslCa, type OpensslCertificate } from './support/openssl-ca.js';
import { id, TestPki, TRUST_DOMAIN, type WrittenCert } from './support/test-pki.js';

const PARTNER = 'partner.example';
const partnerId = (name: string) => `spiffe://${PARTNER}/ns/partner/sa/${name}`;
const PAYMENTS = id('payments');

let pki: TestPki;
let intermediate: CertificateAuthority;
let partner: OpensslCa;
let gateway: RunningGateway;
let echo: DemoUpstream;
let impostor: DemoUpstream;
let logs: ReturnType<typeof captureLogs>;
const ours: Record<string, WrittenCert> = {};
const theirs: Record<string, OpensslCertificate> = {};
const files: Record<string, string> = {};

const partnerDomain: Authorization = { allow: [{ kind: 'trust_domain', trustDomain: PARTNER }], allowPlaintext: false };
const domains = () => [
  { trustDomain: TRUST_DOMAIN, bundle: files.ours! },
  { trustDomain: PARTNER, bundle: files.partner! },
];

beforeAll(async () => {
  pki = await TestPki.create();
  logs = captureLogs();
  intermediate = await createIntermediateCa(pki.ca, { commonName: 'Test Issuing CA', trustDomain: TRUST_DOMAIN });
  const svid = (name: string, opts: Parameters<typeof issueLeaf>[1]) => issueLeaf(intermediate, opts).then((c) => pki.write(name, c));
  ours.server = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  ours.gatewayClient = await svid('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
  ours.frontend = await svid('frontend', { spiffeId: id('frontend'), usage: 'client' });
  ours.payments = await svid('payments', { spiffeId: PAYMENTS, dnsNames: ['localhost'], usage: 'server' });
  ours.elsewhere = await svid('elsewhere', { spiffeId: 'spiffe://elsewhere.example/ns/x/sa/y', usage: 'client' });
  ours.noSan = await svid('no-san', { commonName: 'legacy-client', usage: 'client' });
  ours.httpsUri = await svid('https-uri', { extraUris: ['https://legacy.test.gatehouse/client'], usage: 'client' });

  partner = OpensslCa.create(path.join(pki.dir, 'partner'), 'partner-ca', 'Partner Root CA');
  theirs.own = partner.issue('partner-client', { san: [`URI:${partnerId('client')}`] });
  theirs.forged = partner.issue('forged', { san: [`URI:${id('frontend')}`] });
  theirs.forgedUpstream = partner.issue('forged-upstream', { san: [`URI:${PAYMENTS}`, 'DNS:localhost'], usage: 'server' });

  files.ours = pki.caFile;
  files.partner = partner.certFile;
  files.merged = path.join(pki.dir, 'merged.crt');
  fs.writeFileSync(files.merged, pki.ca.rootPem + partner.pem);

  echo = await startDemoUpstream({ certPem: ours.payments.chainPem, keyPem: ours.payments.keyPem, caPem: pki.ca.rootPem });
  impostor = await startDemoUpstream({ certPem: theirs.forgedUpstream.chainPem, keyPem: theirs.forgedUpstream.keyPem, caPem: pki.ca.rootPem });

  const server = { cert: ours.server.certFile, key: ours.server.keyFile };
  const client = { cert: ours.gatewayClient.certFile, key: ours.gatewayClient.keyFile, expectId: PAYMENTS };
  const routes = (suffix: string) => [
    terminateRoute('impostor', `impostor-${suffix}`, allow(id('frontend')), { match: { pathPrefix: '/impostor' } }),
    terminateRoute('partner', `echo-${suffix}`, partnerDomain, { match: { pathPrefix: '/partner' } }),
    terminateRoute('ours', `echo-${suffix}`, allow(id('frontend'))),
  ];
  gateway = await startGateway(
    gatewayConfig(
      [
        terminateListener({ name: 'merged', ...server, trustBundle: files.merged, routes: routes('merged') }),
        // require_spiffe_id: false cannot be written with trust_domains (config error); set here, it shows that trust_domains requires a SPIFFE ID by itself.
        terminateListener({ name: 'domains', ...server, trustDomains: domains(), requireSpiffeId: false, routes: routes('domains') }),
        terminateListener({ name: 'lenient', ...server, trustBundle: files.ours, requireSpiffeId: false, routes: routes('merged') }),
      ],
      [
        mtlsUpstream({ name: 'echo-merged', port: echo.port, ...client, trustBundle: files.merged }),
        mtlsUpstream({ name: 'impostor-merged', port: impostor.port, ...client, trustBundle: files.merged }),
        mtlsUpstream({ name: 'echo-domains', port: echo.port, ...client, trustDomains: domains() }),
        mtlsUpstream({ name: 'impostor-domains', port: impostor.port, ...client, trustDomains: domains() }),
      ],
    ),
    { admin: false },
  );
});

afterAll(async () => {
  logs?.restore();
  await gateway?.close();
  await echo?.close();
  await impostor?.close();
  pki?.cleanup();
});

const portOf = (listener: string) => gateway.listeners.get(listener)!.address().port;
const get = (listener: string, cert: ClientCert, urlPath = '/') => request({ port: portOf(listener), ca: pki.ca.rootPem, cert, path: urlPath });
const handshakes = (listener: string, result: string, reason: string) => metricValue('gatehouse_tls_handshakes_total', { listener, result, reason });

/** The handshake fails for the client, and the gateway counts it under `reason`. */
async function expectRefused(listener: string, cert: ClientCert, reason: string): Promise<void> {
  const before = await handshakes(listener, 'rejected', reason);
  await expect(get(listener, cert)).rejects.toThrow();
  // The server counts when its side of the handshake ends, which can be after the client saw it fail.
  await waitFor(`a ${reason} refusal on ${listener}`, async () => (await handshakes(listener, 'rejected', reason)) === before + 1, 2000);
}

describe('one trust bundle holding both CAs (trust_bundle)', () => {
  it("lets the partner CA's certificate for one of our SPIFFE IDs pass our allow-list: the attack trust_domains stops", async () => {
    const received = echo.received.length;
    const res = await get('merged', theirs.forged);
    expect(res.status).toBe(200);
    expect(echo.received.length).toBe(received + 1);
    expect(echo.received.at(-1)!.headers['x-forwarded-client-cert']).toContain(`URI=${id('frontend')}`);
  });

  it("lets an upstream whose certificate the partner CA minted for expect_id through", async () => {
    const res = await get('merged', ours.frontend, '/impostor');
    expect(res.status).toBe(200);
    expect(impostor.received.length).toBeGreaterThan(0);
  });
});

describe('a bundle per trust domain (trust_domains)', () => {
  it("refuses the partner CA's certificate for one of our SPIFFE IDs in the handshake, as trust_domain_mismatch, logged with address, subject and SPIFFE ID", async () => {
    const received = echo.received.length;
    await expectRefused('domains', theirs.forged, 'trust_domain_mismatch');
    expect(echo.received.length).toBe(received);
    const line = logs.events('handshake_rejected').find((l) => l.listener === 'domains' && l.reason === 'trust_domain_mismatch' && l.identity === id('frontend'));
    expect(line).toMatchObject({ level: 'warn', subject: 'CN=forged', detail: `its chain does not end in the bundle of trust domain '${TRUST_DOMAIN}'` });
    expect(String(line!.remote)).toMatch(/127\.0\.0\.1$/);
  });

  it("still lets the partner's own identities in, and ours with the intermediate their clients send", async () => {
    const theirsRes = await get('domains', theirs.own, '/partner');
    expect(theirsRes.status).toBe(200);
    expect(echo.received.at(-1)!.headers['x-forwarded-client-cert']).toContain(`URI=${partnerId('client')}`);
    const oursRes = await get('domains', ours.frontend);
    expect(oursRes.status).toBe(200);
    expect(echo.received.at(-1)!.peer).toBe(id('gateway'));
  });

  it("refuses our CA's certificate for a trust domain that has no bundle on the listener", async () => {
    await expectRefused('domains', ours.elsewhere, 'trust_domain_mismatch');
  });

  it('refuses a certificate without a SPIFFE ID: it has no trust domain to be verified by', async () => {
    await expectRefused('domains', ours.noSan, 'no_spiffe_id');
  });

  it("fails the connection to an upstream whose certificate the partner CA minted for expect_id as upstream_identity_mismatch, sending it nothing", async () => {
    const received = impostor.received.length;
    const res = await get('domains', ours.frontend, '/impostor');
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ reason: 'upstream_identity_mismatch' });
    expect(impostor.received.length).toBe(received);
    const line = logs.events('upstream_failed').find((l) => l.upstream === 'impostor-domains');
    expect(String(line?.error)).toContain(`does not end in the bundle of trust domain '${TRUST_DOMAIN}'`);
  });
});

describe('certificates without a SPIFFE ID', () => {
  it.each([
    ['no SAN', 'noSan', 'the certificate has no URI SAN'],
    ['a URI SAN that is not a SPIFFE ID', 'httpsUri', "the certificate's URI SAN is not a SPIFFE ID: https://legacy.test.gatehouse/client"],
  ])('with %s are refused at the handshake by default (require_spiffe_id), as no_spiffe_id', async (_label, name, detail) => {
    await expectRefused('merged', ours[name]!, 'no_spiffe_id');
    expect(logs.events('handshake_rejected').filter((l) => l.listener === 'merged' && l.reason === 'no_spiffe_id').map((l) => l.detail)).toContain(detail);
  });

  it('are let in with require_spiffe_id: false, counted as accepted with reason no_spiffe_id (not ok), and get 403 no_identity', async () => {
    const before = { ok: await handshakes('lenient', 'accepted', 'ok'), none: await handshakes('lenient', 'accepted', 'no_spiffe_id') };
    const res = await get('lenient', ours.noSan);
    expect(res.status).toBe(403);
    expect(res.json()).toMatchObject({ reason: 'no_identity' });
    expect(await handshakes('lenient', 'accepted', 'no_spiffe_id')).toBe(before.none + 1);
    expect(await handshakes('lenient', 'accepted', 'ok')).toBe(before.ok);
    expect((await get('lenient', ours.frontend)).status).toBe(200);
    expect(await handshakes('lenient', 'accepted', 'ok')).toBe(before.ok + 1);
  });
});
