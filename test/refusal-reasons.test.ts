// Each refusal with its own stable reason, in the metric and in the log line: client certificates
// made by the `openssl` CLI that OpenSSL refuses (self-signed, with and without a CRL configured;
// an RSA-1024 key; a SHA-1 signature), logged with OpenSSL's verification code rather than the
// ECONNRESET of the close; and upstream responses that break HTTP (upstream_protocol_error) apart
// from upstreams that hang up (upstream_reset).
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certReasonFromOpenssl } from '../gateway/reasons.js';
import { captureLogs, metricValue, waitFor } from './support/lifecycle-harness.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, plainUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { gatewayPerTest } from './support/gateway-per-test.js';
import { OpensslPki, type OpensslCa, type OpensslLeaf } from './support/openssl-pki.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

let pki: OpensslPki;
let serverPki: TestPki;
let server: WrittenCert;
let root: OpensslCa;
const leaves: Record<string, OpensslLeaf> = {};
let upstream: net.Server;
let upstreamPort: number;
/** What the raw upstream answers, by request path. */
const answers: Record<string, string | null> = {
  '/ok': 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n',
  '/smuggle': 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  '/garbage': 'this is not HTTP at all\r\n\r\n',
  '/hangup': null,
};
let logs: ReturnType<typeof captureLogs>;
const startGatewayForTest = gatewayPerTest();

beforeAll(async () => {
  logs = captureLogs();
  pki = OpensslPki.create();
  root = pki.ca('reasons-root');
  leaves.good = pki.leaf('good', root, { spiffeId: 'spiffe://ossl.test/ns/a/sa/good' });
  leaves.rsa1024 = pki.leaf('rsa-1024', root, { spiffeId: 'spiffe://ossl.test/ns/a/sa/rsa1024', key: 'rsa1024' });
  leaves.sha1 = pki.leaf('sha-1', root, { spiffeId: 'spiffe://ossl.test/ns/a/sa/sha1', digest: 'sha1' });
  leaves.selfSigned = pki.selfSigned('self-signed', 'spiffe://ossl.test/ns/a/sa/self');
  serverPki = await TestPki.create();
  server = await serverPki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  upstream = net.createServer((socket) => {
    let head = '';
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const answer = answers[head.split(' ')[1] ?? ''];
      if (answer === null || answer === undefined) socket.destroy();
      else socket.end(answer);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterAll(async () => {
  logs?.restore();
  await new Promise((resolve) => upstream?.close(resolve));
  pki?.cleanup();
  serverPki?.cleanup();
});

async function start(crl?: string) {
  const listener = terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: root.certFile, crl, routes: [terminateRoute('all', 'raw', allow('spiffe://ossl.test/*'))] });
  return startGatewayForTest(gatewayConfig([listener], [plainUpstream('raw', upstreamPort)]));
}

const rejected = (reason: string) => metricValue('gatehouse_tls_handshakes_total', { listener: 'public', result: 'rejected', reason });

/** A TLS 1.3 handshake with `leaf` (at security level 0, so that Node lets the client load weak certificates). */
function connect(port: number, leaf: OpensslLeaf | undefined): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: serverPki.ca.rootPem, cert: leaf?.chainPem, key: leaf?.keyPem, ciphers: 'DEFAULT:@SECLEVEL=0' });
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('secureConnect', () => socket.write('GET /ok HTTP/1.1\r\nhost: localhost\r\n\r\n'));
    socket.once('close', () => resolve());
  });
}

async function expectRefusal(port: number, leaf: OpensslLeaf | undefined, reason: string, code: string): Promise<Record<string, unknown>> {
  const before = await rejected(reason);
  const logged = logs.events('handshake_rejected').length;
  await connect(port, leaf);
  await waitFor(`a handshake rejected with ${reason}`, async () => (await rejected(reason)) === before + 1, 3000);
  const line = logs.events('handshake_rejected')[logged]!;
  expect(line).toMatchObject({ listener: 'public', reason, code, sni: 'localhost' });
  return line;
}

describe('client certificates OpenSSL refuses, each with its reason and its verification code', () => {
  it('self-signed: unknown_ca (DEPTH_ZERO_SELF_SIGNED_CERT); with a CRL configured still unknown_ca (UNABLE_TO_GET_CRL), not handshake_failed', async () => {
    await expectRefusal(await start(), leaves.selfSigned, 'unknown_ca', 'DEPTH_ZERO_SELF_SIGNED_CERT');
    await expectRefusal(await start(pki.crl(root)), leaves.selfSigned, 'unknown_ca', 'UNABLE_TO_GET_CRL');
  });

  it("an RSA-1024 key and a SHA-1 signature: bad_certificate (Node names OpenSSL's EE_KEY_TOO_SMALL and CA_MD_TOO_WEAK 'UNSPECIFIED')", async () => {
    const port = await start(pki.crl(root));
    await expectRefusal(port, leaves.rsa1024, 'bad_certificate', 'UNSPECIFIED');
    await expectRefusal(port, leaves.sha1, 'bad_certificate', 'UNSPECIFIED');
    // The same CA's good certificate passes: the refusals were about the key and the digest.
    expect((await request({ port, ca: serverPki.ca.rootPem, cert: leaves.good!, path: '/ok' })).status).toBe(200);
  });

  it('no log line of a refused certificate says ECONNRESET; a missing certificate is no_cert, with the remote address', async () => {
    const port = await start();
    const line = await expectRefusal(port, undefined, 'no_cert', 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
    expect(line.remote).toBe('127.0.0.1');
    expect(logs.events('handshake_rejected').filter((l) => l.code === 'ECONNRESET')).toEqual([]);
  });

  it("OpenSSL's names for weak keys and digests map to weak_key and weak_signature", () => {
    expect(['EE_KEY_TOO_SMALL', 'CA_KEY_TOO_SMALL', 'CA_MD_TOO_WEAK', 'UNSPECIFIED', 'UNABLE_TO_GET_CRL'].map(certReasonFromOpenssl)).toEqual([
      'weak_key',
      'weak_key',
      'weak_signature',
      'bad_certificate',
      'unknown_ca',
    ]);
  });
});

describe('upstream responses that break HTTP', () => {
  it.each([
    ['/smuggle', 'Content-Length beside Transfer-Encoding'],
    ['/garbage', 'not a status line'],
  ])('%s (%s): 502 upstream_protocol_error', async (path) => {
    const port = await start();
    const res = await request({ port, ca: serverPki.ca.rootPem, cert: leaves.good!, path });
    expect(res.status).toBe(502);
    expect(res.json().reason).toBe('upstream_protocol_error');
  });

  it('an upstream that hangs up without answering is still upstream_reset', async () => {
    const port = await start();
    const res = await request({ port, ca: serverPki.ca.rootPem, cert: leaves.good!, path: '/hangup' });
    expect(res.status).toBe(502);
    expect(res.json().reason).toBe('upstream_reset');
    expect((await request({ port, ca: serverPki.ca.rootPem, cert: leaves.good!, path: '/ok' })).status).toBe(200);
  });
});
