// `gatehouse certs init`: creates a development CA directory (root, optional intermediate, state
// file and an empty CRL) for one SPIFFE trust domain.
import path from 'node:path';
import { CA_FILES, createCaDirectory } from './ca-directory.js';
import type { CommandIo, Subcommand } from './command-io.js';
import { humanDuration, parseDuration } from './durations.js';
import { parseArgs, requireString, UsageError } from './parse-args.js';
import { checkSpiffeId } from '../gateway/identity/spiffe-id.js';

const HELP = `usage: gatehouse certs init --dir DIR --trust-domain DOMAIN [--intermediate] [--ttl 8760h] [--force]

Creates a development certificate authority (ECDSA P-256) in DIR:
  ca.crt            the root certificate: the trust bundle peers are given
  ca.key            the root's private key (mode 0600)
  intermediate.crt  with --intermediate: the CA that signs leaves (key in intermediate.key)
  ca.json           state: trust domain, certificates issued and revoked, last CRL number
  ca.crl            the certificate revocation list, empty at first

options:
  --dir DIR              directory for the CA (created when missing, mode 0700)
  --trust-domain DOMAIN  SPIFFE trust domain of every identity the CA issues, e.g. example.org
  --intermediate         also create an intermediate CA; it signs the leaves
  --ttl DURATION         lifetime of the CA certificates (default 8760h, one year)
  --force                replace an existing CA in DIR (what it issued stops verifying)
`;

const FLAGS = { dir: 'string', 'trust-domain': 'string', intermediate: 'boolean', ttl: 'string', force: 'boolean' } as const;

/** A trust domain is a SPIFFE ID without a path. */
export function checkTrustDomain(domain: string): string | undefined {
  const check = checkSpiffeId(`spiffe://${domain}`);
  if (!check.ok) return check.problem;
  if (check.path !== '') return `'${domain}' is a trust domain plus a path; give the trust domain alone`;
  return undefined;
}

async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parseArgs(argv, FLAGS, 0);
  const dir = requireString(args, 'dir', 'DIR (where to create the CA)');
  const trustDomain = requireString(args, 'trust-domain', 'DOMAIN (e.g. example.org)');
  const problem = checkTrustDomain(trustDomain);
  if (problem) throw new UsageError(`--trust-domain: ${problem}`);
  const ttlMs = parseDuration('ttl', args.strings.get('ttl') ?? '8760h');
  const ca = await createCaDirectory({ dir, trustDomain, intermediate: args.booleans.has('intermediate'), ttlMs, force: args.booleans.has('force') });
  const at = (name: string) => path.join(dir, name).padEnd(path.join(dir, CA_FILES.intermediateCert).length + 2);
  const expiry = ca.root.cert.notAfter;
  const lines = [
    `created a development CA for trust domain ${trustDomain} in ${dir}`,
    `  ${at(CA_FILES.rootCert)}root "${ca.root.cert.subject}", expires ${expiry.toISOString()} (in ${humanDuration(expiry.getTime() - Date.now())})`,
    `  ${at(CA_FILES.rootKey)}root private key (mode 0600)`,
  ];
  if (ca.intermediate) {
    lines.push(`  ${at(CA_FILES.intermediateCert)}intermediate "${ca.intermediate.cert.subject}": signs the leaves`);
    lines.push(`  ${at(CA_FILES.intermediateKey)}intermediate private key (mode 0600)`);
  }
  lines.push(`  ${at(CA_FILES.state)}state: issued and revoked certificates`);
  lines.push(`  ${at(CA_FILES.crl)}CRL number ${ca.state.crlNumber}, no revoked certificates`);
  lines.push(`next: gatehouse certs issue --ca ${dir} --spiffe-id spiffe://${trustDomain}/ns/default/sa/NAME --out NAME`);
  io.out(lines.join('\n') + '\n');
  return 0;
}

export const initCommand: Subcommand = { summary: 'create a development CA (root, optional intermediate, empty CRL)', help: HELP, run };
