// A development certificate authority: root and intermediate CAs, X.509-SVID leaves and CRLs,
// ECDSA P-256 on WebCrypto via @peculiar/x509. Used by the `certs` CLI, the embedded default,
// the benchmark and every test, so that no key is ever committed.
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** notBefore is backdated by this much so that peers with a slightly slow clock accept new certificates. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export interface CertificateAuthority {
  readonly name: string;
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  readonly keyPem: string;
  readonly key: CryptoKey;
  /** PEM of this CA followed by its parents up to (excluding) the root: what a leaf's chain file carries. */
  readonly intermediatesPem: string;
  /** PEM of the self-signed root this CA chains to: what peers put in their trust bundle. */
  readonly rootPem: string;
}

export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** Leaf followed by its intermediates: what a TLS endpoint presents. */
  readonly chainPem: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export type LeafUsage = 'server' | 'client' | 'both';

export interface LeafOptions {
  /** The SPIFFE ID placed as the single URI SAN. */
  spiffeId?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  commonName?: string;
  /** Default `both`: most workloads are client and server. */
  usage?: LeafUsage;
  /** Lifetime; default one hour. Ignored when notAfter is given. */
  ttlMs?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** Extra URI SANs, to mint deliberately broken SVIDs in tests. */
  extraUris?: string[];
  /** Mark the leaf as a CA (an X.509-SVID leaf must not be one); for tests of that rule. */
  basicConstraintsCa?: boolean;
}

export interface CaOptions {
  commonName: string;
  trustDomain?: string;
  ttlMs?: number;
  notBefore?: Date;
  notAfter?: Date;
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function pemToPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('no PEM block in private key');
  return webcrypto.subtle.importKey('pkcs8', der, EC_KEY, true, ['sign']);
}

/** PEM with a trailing newline, so that blocks concatenate into valid bundles. */
function pemOf(cert: x509.X509Certificate): string {
  return cert.toString('pem') + '\n';
}

/** A positive 128-bit serial, never zero-leading. */
export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and never zero-leading
  return Buffer.from(bytes).toString('hex');
}

function validity(opts: { ttlMs?: number; notBefore?: Date; notAfter?: Date }, defaultTtl: number) {
  const now = Date.now();
  const notBefore = opts.notBefore ?? new Date(now - CLOCK_SKEW_MS);
  const notAfter = opts.notAfter ?? new Date(now + (opts.ttlMs ?? defaultTtl));
  return { notBefore, notAfter };
}

function caExtensions(keys: CryptoKeyPair, pathLength?: number) {
  return Promise.all([
    x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]).then(([ski]) => [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    ski,
  ]);
}

function caName(opts: CaOptions): string {
  const o = opts.trustDomain ? `, O=${opts.trustDomain}` : '';
  return `CN=${opts.commonName}${o}`;
}

/** A self-signed root CA (default lifetime one year). */
export async function createRootCa(opts: CaOptions): Promise<CertificateAuthority> {
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(opts, 365 * 24 * 3600_000);
  const name = caName(opts);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: EC_SIGN,
    extensions: await caExtensions(keys),
  });
  const certPem = pemOf(cert);
  return { name, cert, certPem, key: keys.privateKey, keyPem: await privateKeyToPem(keys.privateKey), intermediatesPem: '', rootPem: certPem };
}

/** An intermediate CA signed by `parent` (default lifetime thirty days). */
export async function createIntermediateCa(parent: CertificateAuthority, opts: CaOptions): Promise<CertificateAuthority> {
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(opts, 30 * 24 * 3600_000);
  const name = caName(opts);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: name,
    issuer: parent.cert.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: parent.key,
    signingAlgorithm: EC_SIGN,
    extensions: [...(await caExtensions(keys, 0)), await x509.AuthorityKeyIdentifierExtension.create(parent.cert)],
  });
  const certPem = pemOf(cert);
  return {
    name,
    cert,
    certPem,
    key: keys.privateKey,
    keyPem: await privateKeyToPem(keys.privateKey),
    intermediatesPem: certPem + parent.intermediatesPem,
    rootPem: parent.rootPem,
  };
}

/** Reconstructs a CA from its PEM files (as written by `certs init`). */
export async function loadCa(certPem: string, keyPem: string, intermediatesPem = '', rootPem = certPem): Promise<CertificateAuthority> {
  const cert = new x509.X509Certificate(certPem);
  return { name: cert.subject, cert, certPem: pemOf(cert), keyPem, key: await pemToPrivateKey(keyPem), intermediatesPem, rootPem };
}

function leafExtendedUsages(usage: LeafUsage): x509.ExtendedKeyUsageType[] {
  if (usage === 'server') return [x509.ExtendedKeyUsage.serverAuth];
  if (usage === 'client') return [x509.ExtendedKeyUsage.clientAuth];
  return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
}

/** Issues a leaf certificate; with `spiffeId` it is an X.509-SVID (one URI SAN, not a CA). */
export async function issueLeaf(ca: CertificateAuthority, opts: LeafOptions): Promise<IssuedCertificate> {
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(opts, 3600_000);
  const names: x509.JsonGeneralName[] = [];
  if (opts.spiffeId) names.push({ type: 'url', value: opts.spiffeId });
  for (const uri of opts.extraUris ?? []) names.push({ type: 'url', value: uri });
  for (const dns of opts.dnsNames ?? []) names.push({ type: 'dns', value: dns });
  for (const ip of opts.ipAddresses ?? []) names.push({ type: 'ip', value: ip });
  const commonName = opts.commonName ?? opts.dnsNames?.[0] ?? opts.spiffeId?.split('/').pop() ?? 'gatehouse-leaf';
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(opts.basicConstraintsCa === true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (opts.basicConstraintsCa ? x509.KeyUsageFlags.keyCertSign : 0), true),
    new x509.ExtendedKeyUsageExtension(leafExtendedUsages(opts.usage ?? 'both')),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  // An SVID's identity is its URI SAN; the subject may be empty, which makes the SAN critical.
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const serialNumber = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `CN=${commonName.replace(/[,=+]/g, '_')}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_SIGN,
    extensions,
  });
  const certPem = pemOf(cert);
  return {
    certPem,
    keyPem: await privateKeyToPem(keys.privateKey),
    chainPem: certPem + ca.intermediatesPem,
    serialNumber: cert.serialNumber,
    notBefore,
    notAfter,
  };
}

export interface RevokedEntry {
  serialNumber: string;
  revocationDate: Date;
  /** CRL entry reasonCode; omitted when not given (RFC 5280: better than `unspecified`). */
  reason?: x509.X509CrlReason;
}

export interface CrlOptions {
  /** Monotonic CRL number; default the current Unix time in seconds, which always grows. */
  crlNumber?: number;
  thisUpdate?: Date;
  /** Default: one day after thisUpdate. */
  nextUpdate?: Date;
}

/** A CRL signed by `ca` listing `revoked`. */
export async function createCrl(ca: CertificateAuthority, revoked: RevokedEntry[], opts: CrlOptions = {}): Promise<string> {
  const thisUpdate = opts.thisUpdate ?? new Date(Date.now() - CLOCK_SKEW_MS);
  const nextUpdate = opts.nextUpdate ?? new Date(thisUpdate.getTime() + 24 * 3600_000);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate,
    nextUpdate,
    signingAlgorithm: EC_SIGN,
    signingKey: ca.key,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert), crlNumberExtension(opts.crlNumber ?? Math.floor(Date.now() / 1000))],
    entries: revoked.map((r) => ({ serialNumber: r.serialNumber, revocationDate: r.revocationDate, reason: r.reason })),
  });
  // OpenSSL only reads the RFC 7468 label, "X509 CRL".
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n';
}

const CRL_NUMBER_OID = '2.5.29.20';

function crlNumberExtension(n: number): x509.Extension {
  let hex = Math.max(0, Math.floor(n)).toString(16);
  if (hex.length % 2) hex = '0' + hex;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = '00' + hex; // keep the INTEGER positive
  const body = Buffer.from(hex, 'hex');
  const der = Buffer.concat([Buffer.from([0x02, body.length]), body]);
  return new x509.Extension(CRL_NUMBER_OID, false, der);
}
