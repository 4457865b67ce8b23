// An independent PKI made by the `openssl` CLI, for tests that must not lean on our own CA code:
// roots and intermediates (each with its own CRL database, `openssl ca -gencrl`; a root may carry a
// URI name constraint), client or server leaves with a chosen key (EC P-256, RSA 1024/2048) and
// digest (SHA-256, SHA-1), revocations, and self-signed certificates. Files live in a temporary
// directory removed by cleanup().
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const EXTENSIONS = `[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = URI:$ENV::SPIFFE_ID
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = URI:$ENV::SPIFFE_ID, DNS:localhost
[constrained_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
nameConstraints = critical, permitted;URI:$ENV::PERMITTED_URI
`;

const CA_DATABASE = `[ca]
default_ca = db
[db]
database = $ENV::CA_DIR/index.txt
crlnumber = $ENV::CA_DIR/crlnumber
default_md = sha256
default_crl_days = 1
`;

export type KeyKind = 'ec' | 'rsa1024' | 'rsa2048';

const KEY_ARGS: Record<KeyKind, string[]> = {
  ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  rsa1024: ['-newkey', 'rsa:1024'],
  rsa2048: ['-newkey', 'rsa:2048'],
};

export interface OpensslCa {
  readonly name: string;
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
  /** The CAs between this one and its root, this one first (empty for a root). */
  readonly chain: readonly OpensslCa[];
}

export interface OpensslLeaf {
  readonly certFile: string;
  readonly keyFile: string;
  /** The leaf followed by its intermediates: what a client presents. */
  readonly chainPem: string;
  readonly keyPem: string;
  readonly subject: string;
}

export class OpensslPki {
  private constructor(readonly dir: string) {}

  static create(): OpensslPki {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-openssl-pki-'));
    fs.writeFileSync(path.join(dir, 'extensions.cnf'), EXTENSIONS);
    fs.writeFileSync(path.join(dir, 'ca.cnf'), CA_DATABASE);
    return new OpensslPki(dir);
  }

  #openssl(args: string[], env: Record<string, string> = {}): void {
    execFileSync('openssl', args, { cwd: this.dir, env: { ...process.env, SPIFFE_ID: 'spiffe://unused', PERMITTED_URI: 'unused', CA_DIR: this.dir, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /**
   * A root CA (no issuer) or an intermediate signed by `issuer`; EC P-256 unless `key` says otherwise.
   * `permittedUri`: a root that carries a name constraint of its own, permitting URIs of that host only.
   */
  ca(name: string, issuer?: OpensslCa, key: KeyKind = 'ec', permittedUri?: string): OpensslCa {
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'index.txt'), '');
    fs.writeFileSync(path.join(dir, 'crlnumber'), '01\n');
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    const subject = `/CN=${name}/O=gatehouse openssl test`;
    if (!issuer) {
      const extensions = permittedUri === undefined ? 'ca' : 'constrained_ca';
      this.#openssl(['req', '-x509', ...KEY_ARGS[key], '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', subject, '-days', '2', '-config', 'extensions.cnf', '-extensions', extensions], { PERMITTED_URI: permittedUri ?? 'unused' });
    } else {
      const csr = path.join(dir, 'csr.pem');
      this.#openssl(['req', '-new', ...KEY_ARGS[key], '-nodes', '-keyout', keyFile, '-out', csr, '-subj', subject]);
      this.#sign(csr, certFile, issuer, 'sha256', 'ca');
    }
    const ca: OpensslCa = { name, dir, certFile, keyFile, certPem: fs.readFileSync(certFile, 'utf8'), chain: [] };
    return { ...ca, chain: issuer ? [ca, ...issuer.chain] : [] };
  }

  /** A client certificate with one SPIFFE ID, issued by `issuer`; with `usage: 'server'`, a server certificate for that ID and localhost. */
  leaf(name: string, issuer: OpensslCa, opts: { spiffeId: string; key?: KeyKind; digest?: 'sha256' | 'sha1'; usage?: 'client' | 'server' }): OpensslLeaf {
    const certFile = path.join(this.dir, `${name}.crt`);
    const keyFile = path.join(this.dir, `${name}.key`);
    const csr = path.join(this.dir, `${name}.csr`);
    const subject = `/CN=${name}/O=gatehouse openssl test`;
    this.#openssl(['req', '-new', ...KEY_ARGS[opts.key ?? 'ec'], '-nodes', '-keyout', keyFile, '-out', csr, '-subj', subject]);
    this.#sign(csr, certFile, issuer, opts.digest ?? 'sha256', opts.usage ?? 'client', opts.spiffeId);
    const intermediates = issuer.chain.map((ca) => ca.certPem).join('');
    return { certFile, keyFile, chainPem: fs.readFileSync(certFile, 'utf8') + intermediates, keyPem: fs.readFileSync(keyFile, 'utf8'), subject: `CN=${name},O=gatehouse openssl test` };
  }

  /** A self-signed client certificate: no CA of any bundle issued it. */
  selfSigned(name: string, spiffeId: string): OpensslLeaf {
    const certFile = path.join(this.dir, `${name}.crt`);
    const keyFile = path.join(this.dir, `${name}.key`);
    this.#openssl(['req', '-x509', ...KEY_ARGS.ec, '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${name}`, '-days', '1', '-config', 'extensions.cnf', '-extensions', 'client'], { SPIFFE_ID: spiffeId });
    return { certFile, keyFile, chainPem: fs.readFileSync(certFile, 'utf8'), keyPem: fs.readFileSync(keyFile, 'utf8'), subject: `CN=${name}` };
  }

  #sign(csr: string, out: string, issuer: OpensslCa, digest: string, extensions: 'ca' | 'client' | 'server', spiffeId = 'spiffe://unused'): void {
    this.#openssl(
      ['x509', '-req', '-in', csr, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-CAcreateserial', '-out', out, '-days', '1', `-${digest}`, '-extfile', 'extensions.cnf', '-extensions', extensions],
      { SPIFFE_ID: spiffeId },
    );
  }

  /** Adds the certificate to the CA's revocation database (the next crl() lists it). */
  revoke(ca: OpensslCa, certFile: string): void {
    this.#openssl(['ca', '-config', 'ca.cnf', '-keyfile', ca.keyFile, '-cert', ca.certFile, '-revoke', certFile], { CA_DIR: ca.dir });
  }

  /** The CA's CRL, signed now; written to `file` (default: DIR/<ca>.crl). */
  crl(ca: OpensslCa, file = path.join(this.dir, `${ca.name}.crl`)): string {
    this.#openssl(['ca', '-config', 'ca.cnf', '-keyfile', ca.keyFile, '-cert', ca.certFile, '-gencrl', '-out', file], { CA_DIR: ca.dir });
    return file;
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
