// `gatehouse certs revoke`: records a certificate the CA issued as revoked and re-signs the CA's
// CRL file with a fresh thisUpdate/nextUpdate and the next CRL number.
import { X509Certificate } from 'node:crypto';
import { issuerRole, openCaDirectory, REVOCATION_REASONS, saveState, withCaLock, writeCrlFile, type RevocationReason } from './ca-directory.js';
import { readInputFile, type CommandIo, type Subcommand } from './command-io.js';
import { humanDuration, parseDuration } from './durations.js';
import { pemBlocks } from './pem-blocks.js';
import { CommandFailure, parseArgs, requireString, UsageError } from './parse-args.js';

const REASON_NAMES = Object.keys(REVOCATION_REASONS) as RevocationReason[];

const HELP = `usage: gatehouse certs revoke --ca DIR CERT [--reason REASON] [--next-update 24h]

Adds the certificate in CERT (the first one in the file) to the revoked list of the CA in DIR
and re-signs DIR/ca.crl: a fresh thisUpdate, the next CRL number, nextUpdate as given. Peers that
load the CRL then refuse the certificate. CERT must have been issued by this CA.

options:
  --ca DIR               the CA directory made by 'gatehouse certs init'
  --reason REASON        one of ${REASON_NAMES.join(', ')} (default: none recorded)
  --next-update DURATION when verifiers should expect a newer CRL (default 24h); a CRL past it is
                         stale and Node refuses every certificate it covers
`;

const FLAGS = { ca: 'string', reason: 'string', 'next-update': 'string' } as const;

function parseReason(text: string | undefined): RevocationReason {
  if (text === undefined) return 'unspecified';
  const match = REASON_NAMES.find((name) => name.toLowerCase() === text.toLowerCase());
  if (!match) throw new UsageError(`--reason '${text}' is not one of ${REASON_NAMES.join(', ')}`);
  return match;
}

async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parseArgs(argv, FLAGS, 1);
  const caDir = requireString(args, 'ca', 'DIR (the CA directory)');
  const certFile = args.positionals[0];
  if (certFile === undefined) throw new UsageError('missing CERT (the certificate file to revoke)');
  const reason = parseReason(args.strings.get('reason'));
  const nextUpdateMs = parseDuration('next-update', args.strings.get('next-update') ?? '24h');
  const pem = pemBlocks(readInputFile(certFile, 'certificate'), 'CERTIFICATE')[0];
  if (!pem) throw new UsageError(`${certFile} holds no PEM certificate`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw new UsageError(`${certFile}: the certificate cannot be parsed (${(err as Error).message})`);
  }
  const serial = cert.serialNumber.toLowerCase();

  return withCaLock(caDir, async () => {
    const ca = await openCaDirectory(caDir);
    if (cert.fingerprint256 === new X509Certificate(ca.root.certPem).fingerprint256) {
      throw new CommandFailure(`${certFile} is the root of the CA in ${caDir}; a root cannot revoke itself (re-create the CA with gatehouse certs init --force)`);
    }
    const role = issuerRole(ca, cert);
    if (!role) {
      const issuer = cert.issuer.split('\n').join(', ');
      throw new CommandFailure(`${certFile} was not issued by the CA in ${caDir} (its issuer is "${issuer}", signature checked against ${ca.intermediate ? 'the intermediate and the root' : 'the root'})`);
    }
    const already = ca.state.revoked.find((r) => r.serial === serial);
    if (already) {
      io.out(`serial ${serial} was already revoked on ${already.revokedAt}; ${ca.dir}/ca.crl is unchanged\n`);
      return 0;
    }
    const notAfter = new Date(cert.validTo);
    ca.state.revoked.push({ serial, revokedAt: new Date().toISOString(), reason, notAfter: notAfter.toISOString(), issuer: role });
    const crl = await writeCrlFile(ca, nextUpdateMs);
    saveState(ca);
    const identity = cert.subjectAltName ? ` (${cert.subjectAltName})` : '';
    const reasonText = reason === 'unspecified' ? '' : `, reason ${reason}`;
    io.out(
      `revoked serial ${serial}${identity}${reasonText}\n` +
        `wrote ${crl.path}: CRL number ${crl.crlNumber}, ${crl.revokedCount} revoked, next update ${crl.nextUpdate.toISOString()} (in ${humanDuration(nextUpdateMs)})\n`,
    );
    return 0;
  });
}

export const revokeCommand: Subcommand = { summary: "revoke a certificate the CA issued and re-sign the CA's CRL", help: HELP, run };
