// Revocation in a PKI with an intermediate, made by the `openssl` CLI (root → intermediate → client
// leaves, a CRL per CA): `client_auth.crl` takes one CRL per issuing CA; OpenSSL checks every
// certificate of the chain against its issuer's CRL; a CRL of an intermediate that is not in the
// trust bundle loads (its signature is checked against the intermediate the client sends); the
// gateway's own revocation (closing live connections on a new CRL) finds the intermediate's CRL.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, loadConfigFile } from '../gateway/config/load-config.js';
import type { GatewayConfig } from '../gateway/config/types.js';
import { captureLogs, metricValue, waitFor, writeAtomically } from './support/lifecycle-harness.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, plainUpstream, terminateListener, terminateRoute, terminateYaml } from './support/gateway-config.js';
import { gatewayPerTest } from './support/gateway-per-test.js';
import { OpensslPki, type OpensslCa, type OpensslLeaf } from './support/openssl-pki.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

let pki: OpensslPki;
let serverPki: TestPki;
let server: WrittenCert;
let root: OpensslCa;
let intermediate: OpensslCa;
let otherIntermediate: OpensslCa;
const leaves: Record<string, OpensslLeaf> = {};
let origin: http.Server;
let originPort: number;
let logs: ReturnType<typeof captureLogs>;
const startGatewayForTest = gatewayPerTest();

beforeAll(async () => {
  logs = captureLogs();
  pki = OpensslPki.create();
  root = pki.ca('ossl-root');
  intermediate = pki.ca('ossl-issuing', root);
  otherIntermediate = pki.ca('ossl-revoked-issuing', root);
  leaves.good = pki.leaf('good', intermediate, { spiffeId: 'spiffe://ossl.test/ns/a/sa/good' });
  leaves.revoked = pki.leaf('revoked', intermediate, { spiffeId: 'spiffe://ossl.test/ns/a/sa/revoked' });
  leaves.doomed = pki.leaf('doomed', intermediate, { spiffeId: 'spiffe://ossl.test/ns/a/sa/doomed' });
  leaves.underRevokedCa = pki.leaf('under-revoked-ca', otherIntermediate, { spiffeId: 'spiffe://ossl.test/ns/a/sa/orphan' });
  pki.revoke(intermediate, leaves.revoked.certFile);
  pki.revoke(root, otherIntermediate.certFile);
  serverPki = await TestPki.create();
  server = await serverPki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  origin = http.createServer((_req, res) => res.end('origin\n'));
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originPort = (origin.address() as AddressInfo).port;
});

afterAll(async () => {
  logs?.restore();
  await new Promise((resolve) => origin?.close(resolve));
  pki?.cleanup();
  serverPki?.cleanup();
});

async function start(crl: string[] | undefined, opts: { watch?: boolean } = {}) {
  const listener = terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: root.certFile, routes: [terminateRoute('all', 'origin', allow('spiffe://ossl.test/*'))] });
  const base = gatewayConfig([{ ...listener, tls: { ...listener.tls!, clientAuth: { ...listener.tls!.clientAuth, crl } } }], [plainUpstream('origin', originPort)]);
  const config: GatewayConfig = { ...base, lifecycle: { ...base.lifecycle, watch: opts.watch ?? false } };
  return startGatewayForTest(config);
}

const rejected = (reason: string) => metricValue('gatehouse_tls_handshakes_total', { listener: 'public', result: 'rejected', reason });
const get = (port: number, leaf: OpensslLeaf, agent?: https.Agent) => request({ port, ca: serverPki.ca.rootPem, cert: leaf, agent });

async function expectRefused(port: number, leaf: OpensslLeaf, reason: string, code: string): Promise<void> {
  const before = await rejected(reason);
  await expect(get(port, leaf)).rejects.toThrow();
  await waitFor(`a handshake rejected with ${reason}`, async () => (await rejected(reason)) === before + 1, 3000);
  expect(logs.events('handshake_rejected').at(-1)).toMatchObject({ listener: 'public', reason, code });
}

describe('a CRL per issuing CA (root and intermediate, made by openssl)', () => {
  it('accepts a good leaf of the intermediate, refuses its revoked leaf and every leaf of a revoked intermediate, with `revoked`', async () => {
    const port = await start([pki.crl(root), pki.crl(intermediate)]);
    const ok = await get(port, leaves.good!);
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('origin\n');
    await expectRefused(port, leaves.revoked!, 'revoked', 'CERT_REVOKED');
    // The intermediate itself is on the root's CRL: its leaves go, though their own CA's CRL is missing.
    await expectRefused(port, leaves.underRevokedCa!, 'revoked', 'CERT_REVOKED');
    expect((await get(port, leaves.good!)).status).toBe(200);
  });

  it('one file holding both CRLs works the same as the list', async () => {
    const both = path.join(pki.dir, 'both.crl');
    fs.writeFileSync(both, fs.readFileSync(pki.crl(root), 'utf8') + fs.readFileSync(pki.crl(intermediate), 'utf8'));
    const port = await start([both]);
    expect((await get(port, leaves.good!)).status).toBe(200);
    await expectRefused(port, leaves.revoked!, 'revoked', 'CERT_REVOKED');
  });

  it("without the intermediate's CRL its leaves cannot be checked: refused (UNABLE_TO_GET_CRL, which OpenSSL alerts as unknown_ca)", async () => {
    const port = await start([pki.crl(root)]);
    await expectRefused(port, leaves.good!, 'unknown_ca', 'UNABLE_TO_GET_CRL');
  });

  it('a new CRL of the intermediate closes the live connection of the leaf it revokes, and only that one', async () => {
    const interCrl = path.join(pki.dir, 'live-issuing.crl');
    fs.copyFileSync(pki.crl(intermediate), interCrl);
    const port = await start([pki.crl(root), interCrl], { watch: true });
    const open = async (leaf: OpensslLeaf) => {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      expect((await get(port, leaf, agent)).status).toBe(200);
      return { agent, socket: Object.values(agent.freeSockets).flat()[0] as TLSSocket };
    };
    const doomed = await open(leaves.doomed!);
    const good = await open(leaves.good!);
    pki.revoke(intermediate, leaves.doomed!.certFile);
    writeAtomically(interCrl, fs.readFileSync(pki.crl(intermediate), 'utf8'));
    await waitFor('the revoked leaf’s connection to close', () => doomed.socket.destroyed, 5000);
    expect(logs.events('revoked_connection_closed').at(-1)).toMatchObject({ listener: 'public', identity: 'spiffe://ossl.test/ns/a/sa/doomed' });
    expect(good.socket.destroyed).toBe(false);
    expect((await get(port, leaves.good!, good.agent)).status).toBe(200);
    doomed.agent.destroy();
    good.agent.destroy();
  });
});

describe('checking the CRL files of a configuration', () => {
  const config = (crl: string) => {
    const file = path.join(pki.dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(file, terminateYaml({ certFile: server.certFile, keyFile: server.keyFile, trustBundle: root.certFile, clientAuthLines: `        crl: ${crl}\n` }));
    return { file, result: loadConfigFile(file) };
  };

  it("takes a list: the root's CRL and an intermediate's that is not in the trust bundle", () => {
    const { result } = config(`[${pki.crl(root)}, ${pki.crl(intermediate)}]`);
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it("refuses intermediates' CRLs alone, at the list's line: none covers a CA of the trust bundle", () => {
    const { file, result } = config(`[${pki.crl(intermediate)}]`);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map(formatProblem)).toEqual([
      expect.stringMatching(new RegExp(`^${file}:10:14: listeners\\[0\\]\\.tls\\.client_auth\\.crl: no CRL is from a CA of the trust bundle \\(the first is issued by 'CN=ossl-issuing, O=gatehouse openssl test', which is not in the trust bundle\\)`)),
    ]);
  });
});
