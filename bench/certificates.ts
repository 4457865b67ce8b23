// The benchmark's PKI, minted fresh on every run with the project's own CA code into bench/.work/
// (gitignored): one root CA that every party trusts, and a certificate per role, written in the
// file shapes each tool wants (HAProxy and ab take certificate and key in one PEM).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRootCa, issueLeaf, type IssuedCertificate } from '../certs/dev-ca.js';
import { ORIGIN_NAME, PASSTHROUGH_SNI } from './layout.js';

export const TRUST_DOMAIN = 'bench.gatehouse.test';
/** Long enough for a full run; minted again next run. */
const TTL_MS = 24 * 3600_000;

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  /** Certificate chain followed by the key, in one file. */
  readonly pem: string;
}

export interface BenchPki {
  readonly caFile: string;
  /** What the proxy presents to clients (localhost, 127.0.0.1). */
  readonly proxyServer: CertFiles;
  /** What the proxy presents to the origin. */
  readonly proxyClient: CertFiles;
  /** What the load generators present (ab -E takes `pem`). */
  readonly loadClient: CertFiles;
  readonly origin: CertFiles;
  readonly loadClientId: string;
}

async function writeLeaf(dir: string, name: string, leaf: IssuedCertificate): Promise<CertFiles> {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`), pem: path.join(dir, `${name}.pem`) };
  await writeFile(files.cert, leaf.chainPem);
  await writeFile(files.key, leaf.keyPem, { mode: 0o600 });
  await writeFile(files.pem, leaf.chainPem + leaf.keyPem, { mode: 0o600 });
  return files;
}

export async function mintBenchPki(workDir: string): Promise<BenchPki> {
  const dir = path.join(workDir, 'pki');
  await mkdir(dir, { recursive: true });
  const ca = await createRootCa({ commonName: 'gatehouse bench CA', trustDomain: TRUST_DOMAIN, ttlMs: TTL_MS });
  const caFile = path.join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPem);
  const id = (sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/bench/sa/${sa}`;
  const loadClientId = id('load');
  const [proxyServer, proxyClient, loadClient, origin] = await Promise.all([
    issueLeaf(ca, { spiffeId: id('proxy'), dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server', ttlMs: TTL_MS }),
    issueLeaf(ca, { spiffeId: id('proxy'), usage: 'client', ttlMs: TTL_MS }),
    issueLeaf(ca, { spiffeId: loadClientId, usage: 'client', ttlMs: TTL_MS }),
    issueLeaf(ca, { spiffeId: id('origin'), dnsNames: [ORIGIN_NAME, PASSTHROUGH_SNI], ipAddresses: ['127.0.0.1'], usage: 'server', ttlMs: TTL_MS }),
  ]);
  return {
    caFile,
    proxyServer: await writeLeaf(dir, 'proxy-server', proxyServer),
    proxyClient: await writeLeaf(dir, 'proxy-client', proxyClient),
    loadClient: await writeLeaf(dir, 'load-client', loadClient),
    origin: await writeLeaf(dir, 'origin', origin),
    loadClientId,
  };
}
