// Reads the PEM files a config names, with errors that name the config field and the file.
import fs from 'node:fs';
import type { PemText } from '../config/pem-text.js';
import { trustFiles } from '../config/peer-trust.js';
import { crlFiles, type ListenerTls, type PeerTrust, type UpstreamTls } from '../config/types.js';
import type { TrustBundlePem } from '../identity/trust-domain-store.js';
import type { ServerTlsFiles } from '../terminate/server-tls-state.js';
import type { UpstreamTlsFiles } from '../upstream/upstream-tls-state.js';

export class ConfigFileError extends Error {
  constructor(
    readonly field: string,
    readonly file: string,
    problem: string,
  ) {
    super(`${field}: ${file}: ${problem}`);
  }
}

function readPem(field: string, file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigFileError(field, file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigFileError(field, file, 'not a PEM file');
  return text;
}

/** Every CRL file of a `crl` field (one, or a list), and their texts together; nothing when none is configured. */
function readCrls(field: string, crl: string | readonly string[] | undefined): { crls?: PemText[]; crlPem?: string } {
  if (crl === undefined) return {};
  const one = typeof crl === 'string';
  const crls = crlFiles(crl).map((file, i) => {
    const at = one ? field : `${field}[${i}]`;
    return { field: at, file, pem: readPem(at, file) };
  });
  // A file not ending in a newline must not glue its last END line to the next file's BEGIN.
  return { crls, crlPem: crls.map((c) => (c.pem.endsWith('\n') ? c.pem : c.pem + '\n')).join('') };
}

export function readListenerTlsFiles(prefix: string, tls: ListenerTls): ServerTlsFiles {
  return {
    certificates: tls.certificates.map((c, i) => ({
      sni: c.sni,
      certPem: readPem(`${prefix}.certificates[${i}].cert`, c.cert),
      keyPem: readPem(`${prefix}.certificates[${i}].key`, c.key),
    })),
    trust: readTrust(`${prefix}.client_auth`, tls.clientAuth),
    ...readCrls(`${prefix}.client_auth.crl`, tls.clientAuth.crl),
  };
}

export function readUpstreamTlsFiles(prefix: string, tls: UpstreamTls): UpstreamTlsFiles {
  return {
    certPem: readPem(`${prefix}.cert`, tls.cert),
    keyPem: readPem(`${prefix}.key`, tls.key),
    trust: readTrust(prefix, tls),
    ...readCrls(`${prefix}.crl`, tls.crl),
  };
}

function readTrust(prefix: string, trust: PeerTrust): TrustBundlePem[] {
  return trustFiles(trust).map((t) => ({ trustDomain: t.trustDomain, pem: readPem(`${prefix}.${t.field}`, t.file) }));
}
