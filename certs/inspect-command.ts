// `gatehouse certs inspect`: prints a certificate chain, its SANs and SPIFFE ID, and a VERDICT line
// (`ok` or a reason code with an explanation); exit 0 when ok, 1 when a peer would refuse it.
import { readInputFile, type CommandIo, type Subcommand } from './command-io.js';
import { humanDuration } from './durations.js';
import { inspectCertificate, type CertificateInspection, type CertificateSummary, type TlsRole } from './inspect-certificate.js';
import { parseArgs, UsageError } from './parse-args.js';
import { pemBlocks } from './pem-blocks.js';

const HELP = `usage: gatehouse certs inspect CERT [--ca BUNDLE] [--crl FILE] [--expect-id ID] [--expect-dns NAME]
                               [--usage client|server] [--json]

Explains the certificate in CERT (a leaf, optionally followed by its intermediates): the chain,
validity and time left, key type, SANs, SPIFFE ID, SHA-256 fingerprint, and a VERDICT line: 'ok', or
the reason a peer would refuse it (unknown_ca, expired, not_yet_valid, revoked, crl_stale,
bad_usage, bad_svid, identity_mismatch) and why. Exit code 0 when ok, 1 otherwise.

options:
  --ca BUNDLE        the trust bundle the peer uses (e.g. DIR/ca.crt); checks the signature chain
  --crl FILE         CRL file(s) the peer loads (e.g. DIR/ca.crl); checks revocation
  --expect-id ID     the SPIFFE ID the peer expects
  --expect-dns NAME  the DNS name (or IP address) a client connects to
  --usage ROLE       client or server: the side the certificate is presented on
  --json             print the inspection as JSON
`;

const FLAGS = { ca: 'string', crl: 'string', 'expect-id': 'string', 'expect-dns': 'string', usage: 'string', json: 'boolean' } as const;

function timeLeft(cert: CertificateSummary, now: number): string {
  const notBefore = Date.parse(cert.notBefore);
  const notAfter = Date.parse(cert.notAfter);
  if (now < notBefore) return `NOT YET VALID for another ${humanDuration(notBefore - now)}`;
  if (now > notAfter) return `EXPIRED ${humanDuration(now - notAfter)} ago`;
  return `expires in ${humanDuration(notAfter - now)}`;
}

function describe(cert: CertificateSummary, now: number, indent: string): string[] {
  const usage = [cert.keyUsage?.join(', ') ?? 'any', cert.extendedKeyUsage?.join(', ') ?? 'any'].join('; ');
  const sans = [...cert.uris.map((u) => `URI:${u}`), ...cert.dnsNames.map((d) => `DNS:${d}`), ...cert.ipAddresses.map((ip) => `IP:${ip}`)];
  const lines = [
    `${indent}issuer   ${cert.issuer}`,
    `${indent}serial   ${cert.serialNumber}`,
    `${indent}valid    ${cert.notBefore} to ${cert.notAfter} (${timeLeft(cert, now)})`,
    `${indent}key      ${cert.keyType}${cert.isCa ? ', CA' : ''}${cert.selfSigned ? ', self-signed' : ''}`,
    `${indent}usage    ${usage}`,
  ];
  if (sans.length) lines.push(`${indent}SANs     ${sans.join(', ')}`);
  lines.push(`${indent}sha256   ${cert.sha256}`);
  return lines;
}

export function formatInspection(result: CertificateInspection, bundleFile: string | undefined): string {
  const now = Date.parse(result.now);
  const lines: string[] = [];
  result.chain.forEach((cert, i) => {
    lines.push(`[${i}] ${cert.role} "${cert.subject}"`);
    lines.push(...describe(cert, now, '    '));
  });
  if (result.trust.status === 'trusted') {
    lines.push(`trust      chains to "${result.trust.anchor.subject}" in ${bundleFile} (${timeLeft(result.trust.anchor, now)})`);
  } else {
    lines.push(`trust      ${result.trust.status === 'untrusted' ? `NOT TRUSTED by ${bundleFile}` : 'not checked'}`);
  }
  for (const crl of result.crls) {
    const next = crl.nextUpdate ? `next update ${crl.nextUpdate}` : 'no next update';
    lines.push(`CRL        "${crl.issuer}" number ${crl.crlNumber ?? '?'}, ${crl.revokedCount} revoked, this update ${crl.thisUpdate}, ${next}`);
  }
  lines.push(`SPIFFE ID  ${result.spiffeId ?? '(none)'}`);
  for (const note of result.notes) lines.push(`note: ${note}`);
  // The verdict is the first finding; the others are worth fixing too.
  for (const finding of result.findings.slice(1)) lines.push(`also: ${finding.reason}: ${finding.explanation}`);
  lines.push(result.verdict.ok ? 'VERDICT: ok' : `VERDICT: ${result.verdict.reason}: ${result.verdict.explanation}`);
  return lines.join('\n') + '\n';
}

function parseUsage(text: string | undefined): TlsRole | undefined {
  if (text === undefined || text === 'client' || text === 'server') return text;
  throw new UsageError(`--usage '${text}' must be client or server`);
}

/** Reads a file and checks it holds PEM blocks of `label`, so the error can name the file. */
function readPemFile(file: string, what: string, label: string): string {
  const text = readInputFile(file, what);
  if (pemBlocks(text, label).length === 0) throw new UsageError(`${what} ${file} holds no PEM "${label}" block`);
  return text;
}

async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parseArgs(argv, FLAGS, 1);
  const certFile = args.positionals[0];
  if (certFile === undefined) throw new UsageError('missing CERT (the certificate file to inspect)');
  const usage = parseUsage(args.strings.get('usage'));
  const bundleFile = args.strings.get('ca');
  const crlFile = args.strings.get('crl');
  const result = await inspectCertificate({
    chainPem: readPemFile(certFile, 'certificate', 'CERTIFICATE'),
    trustBundlePem: bundleFile === undefined ? undefined : readPemFile(bundleFile, 'trust bundle', 'CERTIFICATE'),
    crlPem: crlFile === undefined ? undefined : readPemFile(crlFile, 'CRL file', 'X509 CRL'),
    expectId: args.strings.get('expect-id'),
    expectDns: args.strings.get('expect-dns'),
    usage,
  });
  io.out(args.booleans.has('json') ? JSON.stringify(result, null, 2) + '\n' : formatInspection(result, bundleFile));
  return result.verdict.ok ? 0 : 1;
}

export const inspectCommand: Subcommand = { summary: 'explain a certificate: chain, SANs, validity, and why a peer would refuse it', help: HELP, run };
