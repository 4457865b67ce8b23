// A terminate listener's certificate by SNI (exact, then wildcard, then the default), across TLS
// state swaps between one certificate (handshakes take the server's own context, no SNI callback)
// and several (the callback selects): real handshakes on loopback, certificates from the test CA.
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { IdentityCache } from '../gateway/identity/peer-identity.js';
import { singleBundleStore } from '../gateway/identity/trust-domain-store.js';
import { buildServerTlsState, type ServerTlsState } from '../gateway/terminate/server-tls-state.js';
import { TerminateListener } from '../gateway/terminate/terminate-listener.js';
import { TerminateRouter } from '../gateway/terminate/terminate-router.js';
import { terminateListener } from './support/gateway-config.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

let pki: TestPki;
let first: WrittenCert;
let second: WrittenCert;
let client: WrittenCert;
let listener: TerminateListener;

const config = () => terminateListener({ cert: first.certFile, key: first.keyFile, trustBundle: pki.caFile, routes: [] });

function state(certificates: { cert: WrittenCert; sni: string[] }[]): ServerTlsState {
  const files = { certificates: certificates.map(({ cert, sni }) => ({ sni, certPem: cert.chainPem, keyPem: cert.keyPem })), trust: [{ trustDomain: undefined, pem: pki.ca.rootPem }] };
  return buildServerTlsState(config().tls!, files, singleBundleStore(pki.ca.rootPem), { sessionIdContext: 'terminate-sni-test', sessionTimeoutSec: 300 });
}

/** The certificate the listener shows a client that sends `servername` (undefined: no SNI). */
function served(servername: string | undefined): Promise<string> {
  const { port } = listener.address()!;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.ca.rootPem, cert: client.chainPem, key: client.keyPem, checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const fingerprint = (cert: WrittenCert) => new X509Certificate(cert.certPem).fingerprint256;

beforeAll(async () => {
  pki = await TestPki.create();
  first = await pki.issue('first', { spiffeId: id('first'), dnsNames: ['first.sni.test'], usage: 'server' });
  second = await pki.issue('second', { spiffeId: id('second'), dnsNames: ['second.sni.test', '*.wild.sni.test'], usage: 'server' });
  client = await pki.issue('client', { spiffeId: id('client'), usage: 'client' });
  listener = new TerminateListener({ listener: config(), tls: state([{ cert: first, sni: [] }]), router: new TerminateRouter([]), identities: new IdentityCache() });
  await listener.listen();
});

afterAll(async () => {
  await listener?.close();
  pki.cleanup();
});

test('one certificate is served for every name; after a swap to two, SNI picks; after a swap back, one again', async () => {
  for (const name of ['second.sni.test', 'anything.example', undefined]) expect(await served(name)).toBe(fingerprint(first));

  listener.replaceTls(state([{ cert: first, sni: [] }, { cert: second, sni: ['second.sni.test', '*.wild.sni.test'] }]));
  expect(await served('second.sni.test')).toBe(fingerprint(second));
  expect(await served('SECOND.sni.test')).toBe(fingerprint(second)); // names compare without case
  expect(await served('a.wild.sni.test')).toBe(fingerprint(second));
  expect(await served('a.b.wild.sni.test')).toBe(fingerprint(first)); // a wildcard is one label
  expect(await served('first.sni.test')).toBe(fingerprint(first));
  expect(await served(undefined)).toBe(fingerprint(first));

  listener.replaceTls(state([{ cert: second, sni: [] }]));
  for (const name of ['first.sni.test', 'second.sni.test', undefined]) expect(await served(name)).toBe(fingerprint(second));
});
