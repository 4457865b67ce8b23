// `inspectCertificate` gives the reason code a real TLS peer would give, with an explanation that
// names what is wrong. Certificates are minted in memory by certs/dev-ca.ts; for the failures a
// handshake can show, a node:tls server on 127.0.0.1 judges the same chain and must agree.
import { once } from 'node:events';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createCrl,
  createIntermediateCa,
  createRootCa,
  issueLeaf,
  type CertificateAuthority,
  type IssuedCertificate,
  type LeafOptions,
} from '../certs/dev-ca.js';
import { inspectCertificate, type InspectInput, type InspectReason } from '../certs/inspect-certificate.js';
import { pemBlocks } from '../certs/pem-blocks.js';
import { certReasonFromOpenssl } from '../gateway/reasons.js';

const TD = 'test.gatehouse';
const id = (name: string) => `spiffe://${TD}/ns/test/sa/${name}`;
const MIN = 60_000;

let root: CertificateAuthority;
let intermediate: CertificateAuthority;
let wrongCa: CertificateAuthority;
/** Same subject as `root`, different key: what `certs init --force` leaves behind. */
let recreatedRoot: CertificateAuthority;
let server: IssuedCertificate;

beforeAll(async () => {
  root = await createRootCa({ commonName: 'Test Root CA', trustDomain: TD });
  intermediate = await createIntermediateCa(root, { commonName: 'Test Intermediate CA', trustDomain: TD });
  wrongCa = await createRootCa({ commonName: 'Wrong Root CA', trustDomain: 'wrong.example' });
  recreatedRoot = await createRootCa({ commonName: 'Test Root CA', trustDomain: TD });
  server = await issueLeaf(root, { spiffeId: id('server'), dnsNames: ['localhost'], usage: 'server' });
});

const leaf = (name: string, opts: Partial<LeafOptions> = {}, ca = root) => issueLeaf(ca, { spiffeId: id(name), ...opts });
const revokedCrl = (ca: CertificateAuthority, certs: IssuedCertificate[], nextUpdate?: Date) =>
  createCrl(ca, certs.map((c) => ({ serialNumber: c.serialNumber, revocationDate: new Date(Date.now() - MIN) })), nextUpdate ? { thisUpdate: new Date(Date.now() - 2 * 3600_000), nextUpdate } : {});

/**
 * What a node:tls server that trusts `bundle` (and loads `crl`) says about a client presenting
 * `client`: our reason code mapped from OpenSSL's, or 'ok'.
 */
async function serverVerdict(client: IssuedCertificate, bundle: string, crl?: string): Promise<InspectReason | 'ok' | string> {
  const srv = tls.createServer({
    key: server.keyPem,
    cert: server.chainPem,
    ca: bundle,
    // Node loads only the first CRL of a string: give it each block.
    ...(crl ? { crl: pemBlocks(crl, 'X509 CRL') } : {}),
    requestCert: true,
    rejectUnauthorized: false,
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    const judged = once(srv, 'secureConnection').then((args) => {
      const socket = args[0] as tls.TLSSocket;
      socket.destroy();
      return socket.authorized ? 'ok' : certReasonFromOpenssl(String(socket.authorizationError));
    });
    const conn = tls.connect({
      host: '127.0.0.1',
      port: (srv.address() as AddressInfo).port,
      servername: 'localhost',
      ca: root.rootPem,
      key: client.keyPem,
      cert: client.chainPem,
    });
    conn.on('error', () => {});
    const timeout = new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no handshake within 5 s')), 5000).unref());
    try {
      return await Promise.race([judged, timeout]);
    } finally {
      conn.destroy();
    }
  } finally {
    srv.close();
  }
}

interface Scenario {
  name: string;
  make: () => Promise<{ cert: IssuedCertificate; input?: Partial<InspectInput>; crl?: string; bundle?: string }>;
  reason: InspectReason | 'ok';
  /** Words the explanation must contain: what the user needs to see to fix it. */
  mentions?: (string | RegExp)[];
  /** Whether a TLS server can see this failure (identity and SVID rules are checked after the handshake). */
  tls: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'a valid SVID from the trusted root', make: async () => ({ cert: await leaf('frontend') }), reason: 'ok', tls: true },
  {
    name: 'a valid SVID through an intermediate carried in the chain file',
    make: async () => ({ cert: await leaf('frontend', {}, intermediate) }),
    reason: 'ok',
    tls: true,
  },
  {
    name: 'an expired certificate',
    make: async () => ({ cert: await leaf('expired', { notBefore: new Date(Date.now() - 2 * 3600_000), notAfter: new Date(Date.now() - 12 * MIN) }) }),
    reason: 'expired',
    mentions: ['expired 12 minutes ago', 'leaf'],
    tls: true,
  },
  {
    name: 'a certificate not yet valid (the clock is behind)',
    make: async () => ({ cert: await leaf('early', { notBefore: new Date(Date.now() + 90_000) }) }),
    reason: 'not_yet_valid',
    mentions: [/not valid for another (8\d|9\d) seconds/, 'check the clock'],
    tls: true,
  },
  {
    name: 'a certificate from another CA',
    make: async () => ({ cert: await leaf('wrong-ca', {}, wrongCa) }),
    reason: 'unknown_ca',
    mentions: ['"CN=Wrong Root CA, O=wrong.example"', 'the trust bundle', '"CN=Test Root CA, O=test.gatehouse"'],
    tls: true,
  },
  {
    name: 'a certificate from a re-created CA with the same name',
    make: async () => ({ cert: await leaf('recreated', {}, recreatedRoot) }),
    reason: 'unknown_ca',
    mentions: ['same name', 're-created'],
    tls: true,
  },
  {
    name: 'a leaf whose intermediate is missing from the chain file',
    make: async () => {
      const cert = await leaf('no-intermediate', {}, intermediate);
      return { cert: { ...cert, chainPem: cert.certPem } };
    },
    reason: 'unknown_ca',
    mentions: ['"CN=Test Intermediate CA, O=test.gatehouse"', 'intermediate CA, the chain file must carry it after the leaf'],
    tls: true,
  },
  {
    name: 'a leaf-only chain whose intermediate is in the bundle with the root',
    make: async () => {
      const cert = await leaf('bundled-intermediate', {}, intermediate);
      return { cert: { ...cert, chainPem: cert.certPem }, bundle: intermediate.certPem + root.rootPem };
    },
    reason: 'ok',
    tls: true,
  },
  {
    name: 'a bundle that holds the intermediate but not its root (no partial chains)',
    make: async () => ({ cert: await leaf('partial', {}, intermediate), bundle: intermediate.certPem }),
    reason: 'unknown_ca',
    mentions: ['intermediate "CN=Test Intermediate CA, O=test.gatehouse" was issued by "CN=Test Root CA, O=test.gatehouse"'],
    tls: true,
  },
  {
    name: 'a revoked certificate',
    make: async () => {
      const cert = await leaf('revoked');
      return { cert, crl: await revokedCrl(root, [cert]) };
    },
    reason: 'revoked',
    mentions: ['was revoked on'],
    tls: true,
  },
  {
    name: 'a revoked certificate behind an intermediate, with CRLs of both CAs',
    make: async () => {
      const cert = await leaf('revoked', {}, intermediate);
      return { cert, crl: (await revokedCrl(intermediate, [cert])) + (await revokedCrl(root, [])) };
    },
    reason: 'revoked',
    tls: true,
  },
  {
    name: 'a CRL past its nextUpdate',
    make: async () => ({ cert: await leaf('stale'), crl: await revokedCrl(root, [], new Date(Date.now() - 5 * MIN)) }),
    reason: 'crl_stale',
    mentions: ['expired 5 minutes ago', 're-sign'],
    tls: true,
  },
  {
    name: 'a server-only certificate used as a client',
    make: async () => ({ cert: await leaf('server-only', { usage: 'server' }), input: { usage: 'client' } }),
    reason: 'bad_usage',
    mentions: ['serverAuth', 'needs clientAuth'],
    tls: true,
  },
  {
    name: 'a client-only certificate used as a server',
    make: async () => ({ cert: await leaf('client-only', { usage: 'client' }), input: { usage: 'server' } }),
    reason: 'bad_usage',
    mentions: ['needs serverAuth'],
    tls: false,
  },
  {
    name: 'another SPIFFE ID than expected',
    make: async () => ({ cert: await leaf('payments'), input: { expectId: id('frontend') } }),
    reason: 'identity_mismatch',
    mentions: [`expected SPIFFE ID ${id('frontend')}`, `has ${id('payments')}`],
    tls: false,
  },
  {
    name: 'a DNS name the certificate does not carry',
    make: async () => ({ cert: await leaf('api', { dnsNames: ['api.internal'] }), input: { expectDns: 'web.internal' } }),
    reason: 'identity_mismatch',
    mentions: ['expected DNS name web.internal', 'DNS:api.internal'],
    tls: false,
  },
  {
    name: 'two URI SANs',
    make: async () => ({ cert: await leaf('two-uris', { extraUris: [id('other')] }) }),
    reason: 'bad_svid',
    mentions: ['exactly one URI SAN'],
    tls: false,
  },
  {
    name: 'a leaf marked CA:TRUE',
    make: async () => ({ cert: await leaf('ca-leaf', { basicConstraintsCa: true }) }),
    reason: 'bad_svid',
    mentions: ['CA:TRUE'],
    tls: false,
  },
];

describe('inspectCertificate gives the reason a peer would', () => {
  for (const s of SCENARIOS) {
    it(`${s.name}: ${s.reason}`, async () => {
      const { cert, input, crl, bundle = root.rootPem } = await s.make();
      const result = await inspectCertificate({ chainPem: cert.chainPem, trustBundlePem: bundle, crlPem: crl, ...input });
      if (s.reason === 'ok') {
        expect(result.findings).toEqual([]);
        expect(result.verdict).toEqual({ ok: true });
      } else {
        expect(result.verdict).toMatchObject({ ok: false, reason: s.reason });
        const explanation = result.verdict.ok ? '' : result.verdict.explanation;
        for (const m of s.mentions ?? []) expect(explanation).toMatch(m);
      }
      if (s.tls) expect(await serverVerdict(cert, bundle, crl)).toBe(s.reason);
    });
  }
});

describe('inspectCertificate reports', () => {
  it('the chain with subjects, serials, key type, SANs, fingerprint and the SPIFFE ID', async () => {
    const cert = await leaf('frontend', { dnsNames: ['frontend.local'], ipAddresses: ['127.0.0.1'] }, intermediate);
    const result = await inspectCertificate({ chainPem: cert.chainPem, trustBundlePem: root.rootPem });
    expect(result.chain).toHaveLength(2);
    const [l, i] = result.chain;
    expect(l).toMatchObject({
      role: 'leaf',
      issuer: 'CN=Test Intermediate CA, O=test.gatehouse',
      serialNumber: cert.serialNumber.toLowerCase(),
      keyType: 'ECDSA P-256',
      isCa: false,
      keyUsage: ['digitalSignature'],
      extendedKeyUsage: ['serverAuth', 'clientAuth'],
      uris: [id('frontend')],
      dnsNames: ['frontend.local'],
      ipAddresses: ['127.0.0.1'],
    });
    expect(l!.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(i).toMatchObject({ role: 'intermediate', subject: 'CN=Test Intermediate CA, O=test.gatehouse', isCa: true });
    expect(result.trust).toMatchObject({ status: 'trusted', anchor: { subject: 'CN=Test Root CA, O=test.gatehouse', selfSigned: true } });
    expect(result.spiffeId).toBe(id('frontend'));
    // JSON output is the result itself.
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it('every problem, in the order a TLS verifier meets them: the chain before expiry', async () => {
    const cert = await leaf('both', { notBefore: new Date(Date.now() - 3 * 3600_000), notAfter: new Date(Date.now() - 3600_000) }, wrongCa);
    const result = await inspectCertificate({ chainPem: cert.chainPem, trustBundlePem: root.rootPem, expectId: id('other') });
    expect(result.findings.map((f) => f.reason)).toEqual(['unknown_ca', 'expired', 'identity_mismatch']);
    expect(result.verdict).toMatchObject({ reason: 'unknown_ca' });
  });

  it('an expired intermediate as expired, naming the intermediate', async () => {
    const old = await createIntermediateCa(root, {
      commonName: 'Old Intermediate CA',
      notBefore: new Date(Date.now() - 48 * 3600_000),
      notAfter: new Date(Date.now() - 3 * 3600_000),
    });
    const cert = await leaf('under-old', { notBefore: new Date(Date.now() - 47 * 3600_000), notAfter: new Date(Date.now() + 3600_000) }, old);
    const result = await inspectCertificate({ chainPem: cert.chainPem, trustBundlePem: root.rootPem });
    expect(result.verdict).toMatchObject({ ok: false, reason: 'expired' });
    expect(result.verdict.ok ? '' : result.verdict.explanation).toContain('intermediate "CN=Old Intermediate CA"');
    expect(await serverVerdict(cert, root.rootPem)).toBe('expired');
  });

  it('a CRL signed by another key as a note, not as a revocation', async () => {
    const cert = await leaf('forged-crl');
    const forged = await revokedCrl(recreatedRoot, [cert]);
    const result = await inspectCertificate({ chainPem: cert.chainPem, trustBundlePem: root.rootPem, crlPem: forged });
    expect(result.verdict).toEqual({ ok: true });
    expect(result.notes.join('\n')).toMatch(/not signed by the key of/);
  });

  it('what was not checked when no bundle or CRL is given', async () => {
    const result = await inspectCertificate({ chainPem: (await leaf('plain')).chainPem });
    expect(result.trust).toEqual({ status: 'not_checked' });
    expect(result.notes.join('\n')).toMatch(/no trust bundle given/);
    expect(result.notes.join('\n')).toMatch(/no CRL given/);
    expect(result.verdict).toEqual({ ok: true });
  });

  it('input that holds no certificate as an input error, not a verdict', async () => {
    await expect(inspectCertificate({ chainPem: 'hello' })).rejects.toThrow(/holds no PEM certificate/);
    await expect(inspectCertificate({ chainPem: server.chainPem, crlPem: server.certPem })).rejects.toThrow(/no PEM "X509 CRL"/);
  });
});
