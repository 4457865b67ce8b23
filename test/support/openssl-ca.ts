// An independent PKI for tests: a CA made and run by the `openssl` command line, not by our CA code,
// as a partner organisation's would be. Its certificates are written to a directory and read back.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface OpensslCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate as a TLS endpoint presents it (no intermediates here: the root issues directly). */
  readonly chainPem: string;
  readonly keyPem: string;
}

export interface OpensslLeafOptions {
  /** subjectAltName entries, e.g. ['URI:spiffe://partner.example/ns/a/sa/b', 'DNS:localhost']; none: no SAN at all. */
  readonly san?: readonly string[];
  readonly usage?: 'client' | 'server';
  /** `-newkey` argument; default an EC P-256 key. */
  readonly key?: string;
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

export class OpensslCa {
  private constructor(
    readonly dir: string,
    readonly certFile: string,
    readonly keyFile: string,
  ) {}

  /** A self-signed P-256 root. `extensions`: extra `-addext` values, e.g. a nameConstraints line. */
  static create(dir: string, name: string, commonName: string, extensions: readonly string[] = []): OpensslCa {
    fs.mkdirSync(dir, { recursive: true });
    const certFile = path.join(dir, `${name}.crt`);
    const keyFile = path.join(dir, `${name}.key`);
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
      '-subj', `/O=${name}/CN=${commonName}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      ...extensions.flatMap((e) => ['-addext', e]),
      '-keyout', keyFile, '-out', certFile,
    ]);
    return new OpensslCa(dir, certFile, keyFile);
  }

  get pem(): string {
    return fs.readFileSync(this.certFile, 'utf8');
  }

  /** A leaf signed by this CA. */
  issue(name: string, opts: OpensslLeafOptions): OpensslCertificate {
    const certFile = path.join(this.dir, `${name}.crt`);
    const keyFile = path.join(this.dir, `${name}.key`);
    const csr = path.join(this.dir, `${name}.csr`);
    const ext = path.join(this.dir, `${name}.ext`);
    const lines = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      `extendedKeyUsage=${opts.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
      'authorityKeyIdentifier=keyid',
      ...(opts.san && opts.san.length > 0 ? [`subjectAltName=${opts.san.join(',')}`] : []),
    ];
    fs.writeFileSync(ext, lines.join('\n') + '\n');
    const key = opts.key === undefined ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', opts.key];
    openssl(['req', '-new', ...key, '-nodes', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', csr]);
    openssl(['x509', '-req', '-in', csr, '-CA', this.certFile, '-CAkey', this.keyFile, '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', certFile]);
    return { certFile, keyFile, chainPem: fs.readFileSync(certFile, 'utf8'), keyPem: fs.readFileSync(keyFile, 'utf8') };
  }
}
