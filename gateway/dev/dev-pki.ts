// The development PKI of the embedded default, under .gatehouse/dev/: a CA and one-hour
// X.509-SVIDs for the demo client, the gateway (server and client side) and the demo upstream.
// Created when missing; a leaf past two thirds of its lifetime (or issued by another CA) is
// re-issued, as SPIRE would rotate it.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createRootCa, issueLeaf, loadCa, type CertificateAuthority, type LeafOptions } from '../../certs/dev-ca.js';

/** Where `gatehouse start` keeps the embedded demo's PKI, and where `grpc-health` finds it: relative to the working directory. */
export const DEV_DIR = path.join(process.cwd(), '.gatehouse', 'dev');
export const DEV_TRUST_DOMAIN = 'gatehouse.dev';
export const DEV_CLIENT_ID = 'spiffe://gatehouse.dev/ns/demo/sa/client';
export const DEV_GATEWAY_ID = 'spiffe://gatehouse.dev/ns/gatehouse/sa/gateway';
export const DEV_UPSTREAM_ID = 'spiffe://gatehouse.dev/ns/demo/sa/echo';
export const DEV_PASSTHROUGH_SNI = 'echo.gatehouse.dev';
export const DEV_LEAF_TTL_MS = 3600_000;

/** Each leaf of the dev PKI: file prefix and how it is issued. */
export const DEV_LEAVES: Record<string, LeafOptions> = {
  client: { spiffeId: DEV_CLIENT_ID, usage: 'client' },
  'gateway-server': { spiffeId: DEV_GATEWAY_ID, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' },
  'gateway-client': { spiffeId: DEV_GATEWAY_ID, usage: 'client' },
  upstream: { spiffeId: DEV_UPSTREAM_ID, dnsNames: ['localhost', DEV_PASSTHROUGH_SNI], ipAddresses: ['127.0.0.1'], usage: 'server' },
};

export interface DevPki {
  readonly dir: string;
  readonly ca: CertificateAuthority;
  file(name: string): string;
  /** Leaves (re)issued by the last ensure call. */
  readonly renewed: string[];
}

function writeAtomically(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file); // readers (the file watcher) never see a half-written PEM
}

async function ensureCa(dir: string): Promise<CertificateAuthority> {
  const certFile = path.join(dir, 'ca.crt');
  const keyFile = path.join(dir, 'ca.key');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    const certPem = fs.readFileSync(certFile, 'utf8');
    if (new Date(new X509Certificate(certPem).validTo).getTime() > Date.now() + 24 * 3600_000) {
      return loadCa(certPem, fs.readFileSync(keyFile, 'utf8'));
    }
  }
  const ca = await createRootCa({ commonName: 'gatehouse development CA', trustDomain: DEV_TRUST_DOMAIN });
  writeAtomically(keyFile, ca.keyPem, 0o600);
  writeAtomically(certFile, ca.certPem, 0o644);
  return ca;
}

/** True when the leaf needs re-issuing: missing, from another CA, or past 2/3 of its lifetime. */
export function leafNeedsRenewal(certFile: string, ca: CertificateAuthority, now = Date.now()): boolean {
  if (!fs.existsSync(certFile)) return true;
  try {
    const cert = new X509Certificate(fs.readFileSync(certFile));
    if (!cert.checkIssued(new X509Certificate(ca.certPem))) return true;
    const from = new Date(cert.validFrom).getTime();
    const to = new Date(cert.validTo).getTime();
    return now >= from + ((to - from) * 2) / 3;
  } catch {
    return true;
  }
}

export async function ensureDevPki(dir: string): Promise<DevPki> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await ensureCa(dir);
  const renewed: string[] = [];
  for (const [name, opts] of Object.entries(DEV_LEAVES)) {
    const certFile = path.join(dir, `${name}.crt`);
    if (!leafNeedsRenewal(certFile, ca)) continue;
    const leaf = await issueLeaf(ca, { ...opts, ttlMs: DEV_LEAF_TTL_MS });
    // Key first: a watcher that sees the new certificate finds its key already in place.
    writeAtomically(path.join(dir, `${name}.key`), leaf.keyPem, 0o600);
    writeAtomically(certFile, leaf.chainPem, 0o644);
    renewed.push(name);
  }
  return { dir, ca, file: (name) => path.join(dir, name), renewed };
}
