// `gatehouse certs issue`: a short-lived X.509-SVID leaf from the CA directory: exactly one URI SAN
// (the SPIFFE ID), CA:FALSE, digitalSignature, serverAuth and/or clientAuth, never outliving its CA.
import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { issueLeaf, type LeafUsage } from './dev-ca.js'; // before @peculiar/x509: it loads reflect-metadata
import * as x509 from '@peculiar/x509';
import { openCaDirectory, saveState, withCaLock, writeFileAtomic } from './ca-directory.js';
import type { CommandIo, Subcommand } from './command-io.js';
import { humanDuration, parseDuration } from './durations.js';
import { CommandFailure, parseArgs, requireString, UsageError } from './parse-args.js';
import { checkSpiffeId } from '../gateway/identity/spiffe-id.js';

const HELP = `usage: gatehouse certs issue --ca DIR --spiffe-id spiffe://DOMAIN/PATH --out PREFIX
                            [--dns NAME ...] [--ip ADDR ...] [--ttl 1h] [--server | --client]

Issues a leaf X.509-SVID signed by the CA in DIR (its intermediate, when it has one) and writes
  PREFIX.crt  the certificate followed by its intermediates: what a TLS endpoint presents
  PREFIX.key  its private key (mode 0600)

options:
  --ca DIR           the CA directory made by 'gatehouse certs init'
  --spiffe-id ID     the identity, in the CA's trust domain (the certificate's one URI SAN)
  --out PREFIX       where to write PREFIX.crt and PREFIX.key
  --dns NAME         a DNS name to add (repeatable; '*.example.org' allowed), for server certificates
  --ip ADDR          an IP address to add (repeatable)
  --ttl DURATION     lifetime (default 1h); capped at the CA's own expiry
  --server           serverAuth only
  --client           clientAuth only (default: both, as most workloads are client and server)
`;

const FLAGS = {
  ca: 'string',
  'spiffe-id': 'string',
  out: 'string',
  dns: 'list',
  ip: 'list',
  ttl: 'string',
  server: 'boolean',
  client: 'boolean',
} as const;

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

function checkDnsName(name: string): void {
  const labels = (name.startsWith('*.') ? name.slice(2) : name).split('.');
  if (name.length > 253 || !labels.every((label) => DNS_LABEL.test(label))) {
    throw new UsageError(`--dns '${name}' is not a DNS name (letters, digits and '-' in dot-separated labels; '*.' only as the first label)`);
  }
}

function usageOf(server: boolean, client: boolean): LeafUsage {
  if (server && !client) return 'server';
  if (client && !server) return 'client';
  return 'both';
}

const EKU_TEXT: Record<LeafUsage, string> = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth, clientAuth' };

async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parseArgs(argv, FLAGS, 0);
  const caDir = requireString(args, 'ca', 'DIR (the CA directory)');
  const spiffeId = requireString(args, 'spiffe-id', 'spiffe://DOMAIN/PATH (the identity to certify)');
  const out = requireString(args, 'out', 'PREFIX (writes PREFIX.crt and PREFIX.key)');
  const check = checkSpiffeId(spiffeId);
  if (!check.ok) throw new UsageError(`--spiffe-id '${spiffeId}': ${check.problem}`);
  if (check.path === '') throw new UsageError(`--spiffe-id '${spiffeId}' has no path; a workload identity needs one, e.g. spiffe://${check.trustDomain}/ns/NS/sa/NAME`);
  const dnsNames = [...(args.lists.get('dns') ?? [])];
  dnsNames.forEach(checkDnsName);
  const ipAddresses = [...(args.lists.get('ip') ?? [])];
  for (const ip of ipAddresses) if (!isIP(ip)) throw new UsageError(`--ip '${ip}' is not an IPv4 or IPv6 address`);
  const ttlMs = parseDuration('ttl', args.strings.get('ttl') ?? '1h');
  const usage = usageOf(args.booleans.has('server'), args.booleans.has('client'));

  return withCaLock(caDir, async () => {
    const ca = await openCaDirectory(caDir);
    if (check.trustDomain !== ca.state.trustDomain) {
      throw new UsageError(`--spiffe-id ${spiffeId} is in trust domain '${check.trustDomain}' but the CA in ${caDir} issues for '${ca.state.trustDomain}'`);
    }
    const now = Date.now();
    const caExpiry = ca.issuing.cert.notAfter.getTime();
    if (caExpiry <= now) throw new CommandFailure(`the CA in ${caDir} expired at ${new Date(caExpiry).toISOString()}; create a new one (gatehouse certs init --force)`);
    const capped = now + ttlMs > caExpiry;
    const issued = await issueLeaf(ca.issuing, { spiffeId, dnsNames, ipAddresses, usage, notAfter: new Date(capped ? caExpiry : now + ttlMs) });
    const cert = new x509.X509Certificate(issued.certPem);

    const certFile = `${out}.crt`;
    const keyFile = `${out}.key`;
    fs.mkdirSync(path.dirname(path.resolve(certFile)), { recursive: true });
    writeFileAtomic(keyFile, issued.keyPem, 0o600);
    writeFileAtomic(certFile, issued.chainPem, 0o644);
    ca.state.issued.push({ serial: cert.serialNumber.toLowerCase(), identity: spiffeId, notAfter: cert.notAfter.toISOString(), issuer: ca.intermediate ? 'intermediate' : 'root' });
    saveState(ca);

    const intermediates = ca.intermediate ? ' + 1 intermediate' : '';
    const lines = [
      `issued ${spiffeId}`,
      `  certificate  ${certFile} (leaf${intermediates})`,
      `  private key  ${keyFile} (mode 0600)`,
      `  serial       ${cert.serialNumber.toLowerCase()}`,
      `  usage        ${EKU_TEXT[usage]}`,
    ];
    if (dnsNames.length) lines.push(`  dns          ${dnsNames.join(', ')}`);
    if (ipAddresses.length) lines.push(`  ip           ${ipAddresses.join(', ')}`);
    const cap = capped ? ", capped at the CA's expiry" : '';
    lines.push(`  expires      ${cert.notAfter.toISOString()} (in ${humanDuration(cert.notAfter.getTime() - now)}${cap})`);
    io.out(lines.join('\n') + '\n');
    return 0;
  });
}

export const issueCommand: Subcommand = { summary: 'issue a leaf X.509-SVID (SPIFFE ID, DNS/IP SANs, server/client usage)', help: HELP, run };
