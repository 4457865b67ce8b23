// `gatehouse certs` run in-process against real things: openssl verifies what it issues and
// honours its CRLs, node:tls completes an mTLS handshake with its certificates, key files are
// 0600, and every usage mistake is one line on stderr with exit code 2.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../certs/certs-command.js';
import { CLOCK_SKEW_MS, createRootCa, issueLeaf } from '../certs/dev-ca.js';
import { pemBlocks } from '../certs/pem-blocks.js';

const TD = 'example.org';
const id = (name: string) => `spiffe://${TD}/ns/web/sa/${name}`;

interface Run {
  code: number;
  out: string;
  err: string;
}

async function certs(...argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

/** Runs a command that must succeed, failing the test with its stderr otherwise. */
async function ok(...argv: string[]): Promise<string> {
  const run = await certs(...argv);
  expect(run.err).toBe('');
  expect(run.code).toBe(0);
  return run.out;
}

function openssl(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, output: r.stdout + r.stderr };
}

let tmp: string;
let ca: string;
const at = (name: string) => path.join(tmp, name);
const caFile = (name: string) => path.join(ca, name);
const mode = (file: string) => fs.statSync(file).mode & 0o777;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-certs-'));
  ca = at('ca');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('certs init', () => {
  it('writes a root CA, a 0600 key, a state file and an empty CRL openssl reads', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    const root = new X509Certificate(fs.readFileSync(caFile('ca.crt')));
    expect(root.ca).toBe(true);
    expect(root.subject).toContain(`O=${TD}`);
    expect(mode(caFile('ca.key'))).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(caFile('ca.json'), 'utf8'))).toMatchObject({ trustDomain: TD, crlNumber: 1, issued: [], revoked: [] });
    const crl = openssl('crl', '-in', caFile('ca.crl'), '-noout', '-text', '-CAfile', caFile('ca.crt'));
    expect(crl.output).toMatch(/verify OK/);
    expect(crl.output).toMatch(/No Revoked Certificates/);
    expect(crl.output).toMatch(/CRL Number:\s*\n\s*1\b/);
    expect(fs.existsSync(caFile('intermediate.crt'))).toBe(false);
  });

  it('refuses to overwrite an existing CA (exit 1, one line) unless --force', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    const before = fs.readFileSync(caFile('ca.crt'), 'utf8');
    const refused = await certs('init', '--dir', ca, '--trust-domain', TD);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^gatehouse certs init: a CA already exists in .*--force[^\n]*\n$/);
    expect(fs.readFileSync(caFile('ca.crt'), 'utf8')).toBe(before);
    await ok('init', '--dir', ca, '--trust-domain', TD, '--force');
    expect(fs.readFileSync(caFile('ca.crt'), 'utf8')).not.toBe(before);
  });

  it('with --intermediate writes an intermediate CA that chains to the root, its key 0600', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD, '--intermediate', '--ttl', '48h');
    expect(mode(caFile('intermediate.key'))).toBe(0o600);
    expect(openssl('verify', '-CAfile', caFile('ca.crt'), caFile('intermediate.crt')).status).toBe(0);
    const root = new X509Certificate(fs.readFileSync(caFile('ca.crt')));
    const inter = new X509Certificate(fs.readFileSync(caFile('intermediate.crt')));
    expect(Date.parse(root.validTo) - Date.now()).toBeGreaterThan(47 * 3600_000);
    expect(Date.parse(root.validTo) - Date.now()).toBeLessThanOrEqual(48 * 3600_000);
    expect(Date.parse(inter.validTo)).toBeLessThanOrEqual(Date.parse(root.validTo));
  });
});

describe('certs issue', () => {
  it('issues an X.509-SVID openssl verifies: one URI SAN, CA:FALSE, digitalSignature, both EKUs by default', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    const out = await ok('issue', '--ca', ca, '--spiffe-id', id('frontend'), '--dns', 'frontend.local', '--out', at('frontend'));
    const cert = new X509Certificate(fs.readFileSync(at('frontend.crt')));
    expect(out).toContain(at('frontend.crt'));
    expect(out).toContain(at('frontend.key'));
    expect(out).toContain(cert.serialNumber.toLowerCase());
    expect(out).toContain(id('frontend'));
    expect(out).toMatch(/expires\s+\S+ \(in 6\d minutes\)/);
    expect(mode(at('frontend.key'))).toBe(0o600);
    const verify = openssl('verify', '-CAfile', caFile('ca.crt'), at('frontend.crt'));
    expect(verify.output).toContain(': OK');
    expect(verify.status).toBe(0);
    const ext = openssl('x509', '-in', at('frontend.crt'), '-noout', '-ext', 'basicConstraints,keyUsage,extendedKeyUsage,subjectAltName').output;
    expect(ext).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(ext).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(ext).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(cert.subjectAltName).toBe(`URI:${id('frontend')}, DNS:frontend.local`);
    // The key belongs to the certificate.
    expect(openssl('x509', '-in', at('frontend.crt'), '-noout', '-pubkey').output).toBe(openssl('pkey', '-in', at('frontend.key'), '-pubout').output);
  });

  it('--server and --client give serverAuth or clientAuth only', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    await ok('issue', '--ca', ca, '--spiffe-id', id('api'), '--server', '--out', at('server'));
    await ok('issue', '--ca', ca, '--spiffe-id', id('cli'), '--client', '--out', at('client'));
    const eku = (file: string) => new X509Certificate(fs.readFileSync(file)).keyUsage;
    expect(eku(at('server.crt'))).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(eku(at('client.crt'))).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(openssl('verify', '-CAfile', caFile('ca.crt'), '-purpose', 'sslclient', at('server.crt')).output).toMatch(/unsuitable certificate purpose/);
    expect(openssl('verify', '-CAfile', caFile('ca.crt'), '-purpose', 'sslclient', at('client.crt')).status).toBe(0);
  });

  it("backdates notBefore by the clock skew, ends at now + ttl, and never outlives the CA", async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD, '--ttl', '2h');
    const t0 = Date.now();
    await ok('issue', '--ca', ca, '--spiffe-id', id('short'), '--ttl', '30m', '--out', at('short'));
    const short = new X509Certificate(fs.readFileSync(at('short.crt')));
    expect(Math.abs(Date.parse(short.validFrom) - (t0 - CLOCK_SKEW_MS))).toBeLessThan(3000);
    expect(Math.abs(Date.parse(short.validTo) - (t0 + 30 * 60_000))).toBeLessThan(3000);

    const out = await ok('issue', '--ca', ca, '--spiffe-id', id('long'), '--ttl', '10h', '--out', at('long'));
    const long = new X509Certificate(fs.readFileSync(at('long.crt')));
    const root = new X509Certificate(fs.readFileSync(caFile('ca.crt')));
    expect(long.validTo).toBe(root.validTo);
    expect(out).toContain("capped at the CA's expiry");
  });

  it('signs with the intermediate: the chain file carries it and openssl verifies with -untrusted', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD, '--intermediate');
    await ok('issue', '--ca', ca, '--spiffe-id', id('worker'), '--out', at('worker'));
    const chain = pemBlocks(fs.readFileSync(at('worker.crt'), 'utf8'), 'CERTIFICATE');
    expect(chain).toHaveLength(2);
    expect(chain[1]).toBe(fs.readFileSync(caFile('intermediate.crt'), 'utf8'));
    expect(openssl('verify', '-CAfile', caFile('ca.crt'), at('worker.crt')).status).not.toBe(0);
    const verify = openssl('verify', '-CAfile', caFile('ca.crt'), '-untrusted', caFile('intermediate.crt'), at('worker.crt'));
    expect(verify.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(caFile('ca.json'), 'utf8')).issued).toMatchObject([{ identity: id('worker'), issuer: 'intermediate' }]);
  });

  it("rejects a SPIFFE ID outside the CA's trust domain with one line and exit 2", async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    const run = await certs('issue', '--ca', ca, '--spiffe-id', 'spiffe://other.org/ns/x/sa/y', '--out', at('x'));
    expect(run.code).toBe(2);
    expect(run.err).toBe(`gatehouse certs issue: --spiffe-id spiffe://other.org/ns/x/sa/y is in trust domain 'other.org' but the CA in ${ca} issues for '${TD}'\n`);
    expect(fs.existsSync(at('x.key'))).toBe(false);
  });
});

describe('the CA lock', () => {
  it('refuses to change a CA another live process holds, and takes over a lock its dead owner left', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    fs.writeFileSync(caFile('ca.lock'), String(process.pid));
    const busy = await certs('issue', '--ca', ca, '--spiffe-id', id('a'), '--out', at('a'));
    expect(busy.code).toBe(1);
    expect(busy.err).toMatch(/^gatehouse certs issue: the CA in .* is in use by another process \(pid \d+;[^\n]*\n$/);
    const dead = spawnSync('true').pid!;
    fs.writeFileSync(caFile('ca.lock'), String(dead));
    await ok('issue', '--ca', ca, '--spiffe-id', id('a'), '--out', at('a'));
    expect(fs.existsSync(caFile('ca.lock'))).toBe(false);
  });
});

describe('certs revoke', () => {
  it('puts the serial in a re-signed CRL: openssl -crl_check then says "certificate revoked"', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    await ok('issue', '--ca', ca, '--spiffe-id', id('victim'), '--out', at('victim'));
    await ok('issue', '--ca', ca, '--spiffe-id', id('bystander'), '--out', at('bystander'));
    const check = (name: string) => openssl('verify', '-CAfile', caFile('ca.crt'), '-crl_check', '-CRLfile', caFile('ca.crl'), at(`${name}.crt`));
    expect(check('victim').status).toBe(0);

    const t0 = Date.now();
    const out = await ok('revoke', '--ca', ca, at('victim.crt'), '--reason', 'keyCompromise', '--next-update', '1h');
    const serial = new X509Certificate(fs.readFileSync(at('victim.crt'))).serialNumber;
    expect(out).toContain(serial.toLowerCase());
    expect(out).toContain('CRL number 2');
    const revoked = check('victim');
    expect(revoked.status).not.toBe(0);
    expect(revoked.output).toMatch(/certificate revoked/);
    expect(check('bystander').status).toBe(0);

    const text = openssl('crl', '-in', caFile('ca.crl'), '-noout', '-text').output;
    expect(text).toContain(`Serial Number: ${serial}`);
    expect(text).toContain('Key Compromise');
    expect(text).toMatch(/CRL Number:\s*\n\s*2\b/);
    const nextUpdate = Date.parse(/Next Update: (.*)/.exec(text)![1]!);
    expect(Math.abs(nextUpdate - (t0 + 3600_000))).toBeLessThan(3000);
    const lastUpdate = Date.parse(/Last Update: (.*)/.exec(text)![1]!);
    expect(lastUpdate).toBeGreaterThan(t0 - CLOCK_SKEW_MS - 3000);

    // A second revocation: the number keeps growing and both serials are listed.
    await ok('revoke', '--ca', ca, at('bystander.crt'));
    expect(openssl('crl', '-in', caFile('ca.crl'), '-noout', '-text').output).toMatch(/CRL Number:\s*\n\s*3\b/);
    expect(check('victim').output).toMatch(/certificate revoked/);
    expect(check('bystander').output).toMatch(/certificate revoked/);
  });

  it('with an intermediate, ca.crl covers the whole chain: openssl -crl_check_all and a node:tls server refuse the revoked client', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD, '--intermediate');
    await ok('issue', '--ca', ca, '--spiffe-id', id('server'), '--server', '--ip', '127.0.0.1', '--out', at('server'));
    await ok('issue', '--ca', ca, '--spiffe-id', id('client'), '--client', '--out', at('client'));
    const verify = () =>
      openssl('verify', '-CAfile', caFile('ca.crt'), '-untrusted', caFile('intermediate.crt'), '-crl_check_all', '-CRLfile', caFile('ca.crl'), at('client.crt'));
    expect(verify().status).toBe(0);
    expect(await handshake({ crl: true })).toEqual({ authorized: true, peerUri: `URI:${id('client')}` });

    await ok('revoke', '--ca', ca, at('client.crt'), '--reason', 'superseded');
    expect(verify().output).toMatch(/certificate revoked/);
    expect(await handshake({ crl: true })).toEqual({ authorized: false, error: 'CERT_REVOKED' });
  });

  it('refuses a certificate this CA did not issue, and the root itself (exit 1, one line)', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    // Same names, different keys: a CA that was re-created.
    await ok('init', '--dir', at('other'), '--trust-domain', TD);
    await ok('issue', '--ca', at('other'), '--spiffe-id', id('stranger'), '--out', at('stranger'));
    const crlBefore = fs.readFileSync(caFile('ca.crl'), 'utf8');
    const run = await certs('revoke', '--ca', ca, at('stranger.crt'));
    expect(run.code).toBe(1);
    expect(run.err).toMatch(/^gatehouse certs revoke: .*stranger\.crt was not issued by the CA in [^\n]*\n$/);
    const root = await certs('revoke', '--ca', ca, caFile('ca.crt'));
    expect(root.code).toBe(1);
    expect(root.err).toMatch(/^gatehouse certs revoke: .*cannot revoke itself[^\n]*\n$/);
    expect(fs.readFileSync(caFile('ca.crl'), 'utf8')).toBe(crlBefore);
  });
});

interface Handshake {
  /** The server's judgement of the client certificate. */
  authorized: boolean;
  error?: string;
  /** The client's SANs as the server saw them. */
  peerUri?: string;
  /** With `strict`: the server's SANs as the client, which verified them, saw them. */
  serverUri?: string;
}

/**
 * A node:tls mTLS handshake on 127.0.0.1 between the CLI-issued `server` and `client` in `tmp`.
 * `strict` is rejectUnauthorized on both sides; otherwise the server accepts the socket to report
 * what rejectUnauthorized would have refused.
 */
async function handshake(opts: { crl?: boolean; strict?: boolean } = {}): Promise<Handshake> {
  const read = (file: string) => fs.readFileSync(file, 'utf8');
  const server = tls.createServer({
    cert: read(at('server.crt')),
    key: read(at('server.key')),
    ca: read(caFile('ca.crt')),
    // Node loads only the first CRL of a string; the file holds one per CA of the chain.
    ...(opts.crl ? { crl: pemBlocks(read(caFile('ca.crl')), 'X509 CRL') } : {}),
    requestCert: true,
    rejectUnauthorized: opts.strict === true,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = tls.connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    ca: read(caFile('ca.crt')),
    cert: read(at('client.crt')),
    key: read(at('client.key')),
  });
  client.on('error', () => {});
  const clientSide = once(client, 'secureConnect');
  const within5s = <T>(p: Promise<T>) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no handshake within 5 s')), 5000).unref())]);
  try {
    const [socket] = (await within5s(once(server, 'secureConnection'))) as [tls.TLSSocket];
    const peerUri = socket.getPeerX509Certificate()?.subjectAltName;
    socket.destroy();
    if (!socket.authorized) return { authorized: false, error: String(socket.authorizationError) };
    if (!opts.strict) return { authorized: true, peerUri };
    await within5s(clientSide);
    expect(client.authorized).toBe(true);
    return { authorized: true, peerUri, serverUri: client.getPeerX509Certificate()?.subjectAltName };
  } finally {
    client.destroy();
    server.close();
  }
}

describe('CLI-issued certificates in a real mTLS handshake', () => {
  it('a server and a client certificate complete requestCert + rejectUnauthorized on 127.0.0.1 both ways', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD, '--intermediate');
    await ok('issue', '--ca', ca, '--spiffe-id', id('server'), '--server', '--dns', 'localhost', '--ip', '127.0.0.1', '--out', at('server'));
    await ok('issue', '--ca', ca, '--spiffe-id', id('client'), '--client', '--out', at('client'));
    // The client verified the server (IP SAN 127.0.0.1); the server saw the client's SPIFFE ID.
    expect(await handshake({ strict: true })).toEqual({
      authorized: true,
      peerUri: `URI:${id('client')}`,
      serverUri: `URI:${id('server')}, DNS:localhost, IP Address:127.0.0.1`,
    });
  });

  it('a --server certificate presented as a client is refused by the server for its purpose', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    await ok('issue', '--ca', ca, '--spiffe-id', id('server'), '--server', '--ip', '127.0.0.1', '--out', at('server'));
    await ok('issue', '--ca', ca, '--spiffe-id', id('misused'), '--server', '--out', at('client'));
    expect(await handshake()).toEqual({ authorized: false, error: 'INVALID_PURPOSE' });
    const inspect = await certs('inspect', at('client.crt'), '--ca', caFile('ca.crt'), '--usage', 'client');
    expect(inspect.code).toBe(1);
    expect(inspect.out).toMatch(/^VERDICT: bad_usage: .*needs clientAuth/m);
  });
});

describe('certs inspect', () => {
  it('prints the chain, SANs, SPIFFE ID and fingerprint with VERDICT: ok and exit 0', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD, '--intermediate');
    await ok('issue', '--ca', ca, '--spiffe-id', id('frontend'), '--dns', 'frontend.local', '--out', at('frontend'));
    const out = await ok('inspect', at('frontend.crt'), '--ca', caFile('ca.crt'), '--crl', caFile('ca.crl'), '--expect-id', id('frontend'), '--usage', 'server');
    const cert = new X509Certificate(fs.readFileSync(at('frontend.crt')));
    expect(out).toContain('[0] leaf "CN=frontend.local"');
    expect(out).toContain('[1] intermediate "CN=gatehouse development intermediate CA');
    expect(out).toContain(`URI:${id('frontend')}, DNS:frontend.local`);
    expect(out).toContain(`SPIFFE ID  ${id('frontend')}`);
    expect(out).toContain(cert.fingerprint256);
    expect(out).toMatch(/ECDSA P-256/);
    expect(out).toMatch(/expires in 6\d minutes/);
    expect(out).toMatch(/trust +chains to "CN=gatehouse development root CA/);
    expect(out.trimEnd().split('\n').at(-1)).toBe('VERDICT: ok');
  });

  it('explains a wrong CA and exits 1; --json gives the same verdict as data', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    const other = await createRootCa({ commonName: 'Someone Else CA', trustDomain: TD });
    const stranger = await issueLeaf(other, { spiffeId: id('stranger') });
    fs.writeFileSync(at('stranger.crt'), stranger.chainPem);
    const run = await certs('inspect', at('stranger.crt'), '--ca', caFile('ca.crt'));
    expect(run.code).toBe(1);
    expect(run.out).toMatch(/^VERDICT: unknown_ca: .*"CN=Someone Else CA, O=example.org".*"CN=gatehouse development root CA, O=example.org"/m);
    const json = await certs('inspect', at('stranger.crt'), '--ca', caFile('ca.crt'), '--json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out).verdict).toMatchObject({ ok: false, reason: 'unknown_ca' });
  });
});

describe('usage', () => {
  it('--help prints help and exits 0 for certs and every subcommand', async () => {
    for (const argv of [['--help'], ['init', '--help'], ['issue', '--help'], ['revoke', '-h'], ['inspect', '--help']]) {
      const run = await certs(...argv);
      expect(run.code, argv.join(' ')).toBe(0);
      expect(run.out).toMatch(/^usage: gatehouse certs/);
      expect(run.err).toBe('');
    }
  });

  it('a bad or missing argument prints one line "gatehouse certs <sub>: <problem>" and exits 2', async () => {
    await ok('init', '--dir', ca, '--trust-domain', TD);
    fs.writeFileSync(at('not-a-cert.crt'), 'hello\n');
    const cases: [string[], RegExp][] = [
      [[], /^gatehouse certs: missing subcommand/],
      [['mint'], /^gatehouse certs: unknown subcommand 'mint'/],
      [['init', '--trust-domain', TD], /^gatehouse certs init: missing --dir/],
      [['init', '--dir', at('x'), '--trust-domain', 'Not A Domain'], /^gatehouse certs init: --trust-domain: /],
      [['init', '--dir', at('x'), '--trust-domain', TD, '--ttl', 'forever'], /^gatehouse certs init: --ttl 'forever' is not a duration/],
      [['init', '--dir', '--trust-domain', TD], /^gatehouse certs init: --dir needs a value/],
      [['issue', '--ca', ca, '--out', at('x')], /^gatehouse certs issue: missing --spiffe-id/],
      [['issue', '--ca', ca, '--spiffe-id', 'http://example.org/x', '--out', at('x')], /^gatehouse certs issue: --spiffe-id .*must start with spiffe:\/\//],
      [['issue', '--ca', ca, '--spiffe-id', id('x'), '--out', at('x'), '--ip', '300.1.1.1'], /^gatehouse certs issue: --ip '300.1.1.1'/],
      [['issue', '--ca', at('nowhere'), '--spiffe-id', id('x'), '--out', at('x')], /^gatehouse certs issue: CA directory .* does not exist/],
      [['revoke', '--ca', ca], /^gatehouse certs revoke: missing CERT/],
      [['revoke', '--ca', ca, at('missing.crt')], /^gatehouse certs revoke: cannot read certificate .*: no such file/],
      [['revoke', '--ca', ca, caFile('ca.crt'), '--reason', 'boredom'], /^gatehouse certs revoke: --reason 'boredom' is not one of/],
      [['inspect'], /^gatehouse certs inspect: missing CERT/],
      [['inspect', at('not-a-cert.crt')], /^gatehouse certs inspect: certificate .* holds no PEM "CERTIFICATE" block/],
      [['inspect', caFile('ca.crt'), '--usage', 'both'], /^gatehouse certs inspect: --usage 'both' must be client or server/],
      [['inspect', caFile('ca.crt'), '--verbose'], /^gatehouse certs inspect: unknown option '--verbose'/],
    ];
    for (const [argv, expected] of cases) {
      const run = await certs(...argv);
      expect(run.code, argv.join(' ')).toBe(2);
      expect(run.err, argv.join(' ')).toMatch(expected);
      expect(run.err.split('\n'), argv.join(' ')).toHaveLength(2); // one line and its newline
      expect(run.out).toBe('');
    }
  });
});
