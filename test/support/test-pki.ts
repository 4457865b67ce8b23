// Test PKI minted in memory by the project's own CA code, with named identities, written to a
// temp dir so configs can point at files. Nothing here is ever committed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCrl, createRootCa, issueLeaf, type CertificateAuthority, type IssuedCertificate, type LeafOptions } from '../../certs/dev-ca.js';

export const TRUST_DOMAIN = 'test.gatehouse';
export const id = (name: string) => `spiffe://${TRUST_DOMAIN}/ns/test/sa/${name}`;

export interface WrittenCert extends IssuedCertificate {
  certFile: string;
  keyFile: string;
}

export class TestPki {
  private constructor(
    readonly dir: string,
    readonly ca: CertificateAuthority,
    readonly otherCa: CertificateAuthority,
  ) {}

  static async create(): Promise<TestPki> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-test-'));
    const ca = await createRootCa({ commonName: 'Test Root CA', trustDomain: TRUST_DOMAIN });
    const otherCa = await createRootCa({ commonName: 'Wrong Root CA', trustDomain: 'wrong.example' });
    fs.writeFileSync(path.join(dir, 'ca.crt'), ca.rootPem);
    return new TestPki(dir, ca, otherCa);
  }

  get caFile(): string {
    return path.join(this.dir, 'ca.crt');
  }

  async issue(name: string, opts: LeafOptions, ca: CertificateAuthority = this.ca): Promise<WrittenCert> {
    const cert = await issueLeaf(ca, opts);
    return this.write(name, cert);
  }

  write(name: string, cert: IssuedCertificate): WrittenCert {
    const certFile = path.join(this.dir, `${name}.crt`);
    const keyFile = path.join(this.dir, `${name}.key`);
    fs.writeFileSync(certFile, cert.chainPem);
    fs.writeFileSync(keyFile, cert.keyPem, { mode: 0o600 });
    return { ...cert, certFile, keyFile };
  }

  async writeCrl(name: string, revoked: IssuedCertificate[], opts: { nextUpdate?: Date } = {}): Promise<string> {
    const file = path.join(this.dir, name);
    const pem = await createCrl(this.ca, revoked.map((c) => ({ serialNumber: c.serialNumber, revocationDate: new Date(Date.now() - 1000) })), opts);
    fs.writeFileSync(file, pem);
    return file;
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
