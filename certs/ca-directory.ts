// The on-disk development CA that `gatehouse certs` manages: a root (and optionally an
// intermediate that signs leaves), their keys, a state file recording what was issued and revoked,
// and the CRL file. Every write goes to a temporary file and is renamed into place, and commands
// that change the state hold a lock file, so an interrupted or concurrent run never leaves a
// half-written CA behind.
import { X509Certificate, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type * as x509 from '@peculiar/x509';
import { createCrl, createIntermediateCa, createRootCa, loadCa, type CertificateAuthority } from './dev-ca.js';
import { CommandFailure, UsageError } from './parse-args.js';

export const CA_FILES = {
  rootCert: 'ca.crt',
  rootKey: 'ca.key',
  intermediateCert: 'intermediate.crt',
  intermediateKey: 'intermediate.key',
  state: 'ca.json',
  crl: 'ca.crl',
  lock: 'ca.lock',
} as const;

export type CaRole = 'root' | 'intermediate';

/** CRL reason codes a user may give (RFC 5280 §5.3.1, without the delta-CRL and attribute-certificate ones). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
} as const satisfies Record<string, x509.X509CrlReason>;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export interface IssuedRecord {
  readonly serial: string;
  readonly identity: string;
  readonly notAfter: string;
  readonly issuer: CaRole;
}

export interface RevokedRecord {
  readonly serial: string;
  readonly revokedAt: string;
  readonly reason: RevocationReason;
  readonly notAfter: string;
  readonly issuer: CaRole;
}

export interface CaState {
  readonly version: 1;
  readonly trustDomain: string;
  /** Last CRL number written; every CRL written gets the next one, so it only grows. */
  crlNumber: number;
  issued: IssuedRecord[];
  revoked: RevokedRecord[];
}

export interface CaDirectory {
  readonly dir: string;
  readonly state: CaState;
  readonly root: CertificateAuthority;
  readonly intermediate: CertificateAuthority | undefined;
  /** The CA that signs leaves: the intermediate when there is one. */
  readonly issuing: CertificateAuthority;
}

const file = (dir: string, name: keyof typeof CA_FILES) => path.join(dir, CA_FILES[name]);

/** Writes `data` to a fresh temporary file (created with `mode`) and renames it over `target`. */
export function writeFileAtomic(target: string, data: string, mode: number): void {
  const tmp = `${target}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
  fs.renameSync(tmp, target);
}

/** Runs `fn` holding `DIR/ca.lock`; a lock left by a process that no longer exists is taken over. */
export async function withCaLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  if (!fs.existsSync(dir)) throw new UsageError(`CA directory ${dir} does not exist`);
  const lock = file(dir, 'lock');
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number(fs.readFileSync(lock, 'utf8').trim());
      // An empty lock is one being written right now, not a stale one.
      if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) {
        throw new CommandFailure(`the CA in ${dir} is in use by another process (pid ${pid || '?'}; remove ${lock} if it is not)`);
      }
      fs.rmSync(lock, { force: true });
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function caExists(dir: string): boolean {
  return (['rootCert', 'rootKey', 'state'] as const).some((name) => fs.existsSync(file(dir, name)));
}

export interface CreateCaOptions {
  dir: string;
  trustDomain: string;
  intermediate: boolean;
  ttlMs: number;
  /** Replace an existing CA (its issued certificates stop chaining to the new one). */
  force: boolean;
}

export async function createCaDirectory(opts: CreateCaOptions): Promise<CaDirectory> {
  const { dir } = opts;
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new UsageError(`--dir ${dir} is not a directory`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return withCaLock(dir, async () => {
    if (!opts.force && caExists(dir)) {
      throw new CommandFailure(`a CA already exists in ${dir} (use --force to replace it; certificates it issued will stop verifying)`);
    }
    const root = await createRootCa({ commonName: 'gatehouse development root CA', trustDomain: opts.trustDomain, ttlMs: opts.ttlMs });
    // Same lifetime as the root but never past it: a CA outliving its issuer is unusable at the end.
    const intermediate = opts.intermediate
      ? await createIntermediateCa(root, { commonName: 'gatehouse development intermediate CA', trustDomain: opts.trustDomain, notAfter: root.cert.notAfter })
      : undefined;
    const ca: CaDirectory = {
      dir,
      state: { version: 1, trustDomain: opts.trustDomain, crlNumber: 0, issued: [], revoked: [] },
      root,
      intermediate,
      issuing: intermediate ?? root,
    };
    writeFileAtomic(file(dir, 'rootKey'), root.keyPem, 0o600);
    writeFileAtomic(file(dir, 'rootCert'), root.certPem, 0o644);
    if (intermediate) {
      writeFileAtomic(file(dir, 'intermediateKey'), intermediate.keyPem, 0o600);
      writeFileAtomic(file(dir, 'intermediateCert'), intermediate.certPem, 0o644);
    } else {
      // A replaced CA must not leave a stale intermediate that no longer chains to ca.crt.
      fs.rmSync(file(dir, 'intermediateKey'), { force: true });
      fs.rmSync(file(dir, 'intermediateCert'), { force: true });
    }
    await writeCrlFile(ca, 24 * 3_600_000);
    saveState(ca);
    return ca;
  });
}

function readText(dir: string, name: keyof typeof CA_FILES): string {
  try {
    return fs.readFileSync(file(dir, name), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${dir} holds no CA (${CA_FILES[name]} is missing; create one with 'gatehouse certs init')`);
    throw new CommandFailure(`cannot read ${file(dir, name)}: ${(err as Error).message}`);
  }
}

async function loadKeyPair(dir: string, certName: 'rootCert' | 'intermediateCert', keyName: 'rootKey' | 'intermediateKey', rootPem?: string) {
  const certPem = readText(dir, certName);
  const keyPem = readText(dir, keyName);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new CommandFailure(`${file(dir, certName)} is not a PEM certificate`);
  }
  let matches: boolean;
  try {
    matches = createPublicKey(keyPem).export({ type: 'spki', format: 'der' }).equals(cert.publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    throw new CommandFailure(`${file(dir, keyName)} is not a PEM private key`);
  }
  if (!matches) throw new CommandFailure(`${file(dir, keyName)} is not the key of ${file(dir, certName)}`);
  return certName === 'rootCert' ? loadCa(certPem, keyPem) : loadCa(certPem, keyPem, certPem, rootPem);
}

function parseState(dir: string): CaState {
  const where = file(dir, 'state');
  let state: CaState;
  try {
    state = JSON.parse(readText(dir, 'state')) as CaState;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new CommandFailure(`${where} is not valid JSON`);
  }
  const ok =
    state !== null &&
    typeof state === 'object' &&
    state.version === 1 &&
    typeof state.trustDomain === 'string' &&
    Number.isSafeInteger(state.crlNumber) &&
    Array.isArray(state.issued) &&
    Array.isArray(state.revoked);
  if (!ok) throw new CommandFailure(`${where} is not a gatehouse CA state file (version 1)`);
  return state;
}

/** Loads the CA in `dir`, checking that every key belongs to its certificate. */
export async function openCaDirectory(dir: string): Promise<CaDirectory> {
  const state = parseState(dir);
  const root = await loadKeyPair(dir, 'rootCert', 'rootKey');
  const hasIntermediate = fs.existsSync(file(dir, 'intermediateCert'));
  const intermediate = hasIntermediate ? await loadKeyPair(dir, 'intermediateCert', 'intermediateKey', root.certPem) : undefined;
  return { dir, state, root, intermediate, issuing: intermediate ?? root };
}

/** Drops records of certificates expired for over a day: they fail on expiry anyway (RFC 5280 §3.3). */
function prune(state: CaState, now: number): void {
  const live = (r: { notAfter: string }) => Date.parse(r.notAfter) + 86_400_000 > now;
  state.issued = state.issued.filter(live);
  state.revoked = state.revoked.filter(live);
}

export function saveState(ca: CaDirectory): void {
  prune(ca.state, Date.now());
  writeFileAtomic(file(ca.dir, 'state'), JSON.stringify(ca.state, null, 2) + '\n', 0o644);
}

export interface WrittenCrl {
  readonly path: string;
  readonly crlNumber: number;
  readonly nextUpdate: Date;
  readonly revokedCount: number;
}

/**
 * Re-signs `ca.crl` with the next CRL number: the issuing CA's CRL first, then, with an
 * intermediate, the root's. Node's `crl` TLS option checks revocation for every certificate in the
 * chain (X509_V_FLAG_CRL_CHECK_ALL), so a chain through an intermediate needs both.
 */
export async function writeCrlFile(ca: CaDirectory, nextUpdateMs: number): Promise<WrittenCrl> {
  prune(ca.state, Date.now());
  const crlNumber = ++ca.state.crlNumber;
  const nextUpdate = new Date(Date.now() + nextUpdateMs);
  const crlOf = (authority: CertificateAuthority, role: CaRole) =>
    createCrl(
      authority,
      ca.state.revoked
        .filter((r) => r.issuer === role)
        .map((r) => ({ serialNumber: r.serial, revocationDate: new Date(r.revokedAt), reason: REVOCATION_REASONS[r.reason] })),
      { crlNumber, nextUpdate },
    );
  let pem = await crlOf(ca.issuing, ca.intermediate ? 'intermediate' : 'root');
  if (ca.intermediate) pem += await crlOf(ca.root, 'root');
  const target = file(ca.dir, 'crl');
  writeFileAtomic(target, pem, 0o644);
  return { path: target, crlNumber, nextUpdate, revokedCount: ca.state.revoked.length };
}

/** Which CA in the directory signed `cert` (name, key identifier and signature all checked), if any. */
export function issuerRole(ca: CaDirectory, cert: X509Certificate): CaRole | undefined {
  const candidates: [CaRole, CertificateAuthority | undefined][] = [
    ['intermediate', ca.intermediate],
    ['root', ca.root],
  ];
  for (const [role, authority] of candidates) {
    if (!authority) continue;
    const issuer = new X509Certificate(authority.certPem);
    if (cert.checkIssued(issuer) && cert.verify(issuer.publicKey)) return role;
  }
  return undefined;
}
