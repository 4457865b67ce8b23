// Hot reload of one target's TLS material (a listener's certificates, trust bundle and CRL, or an
// upstream's client certificate, bundle and CRL): read every file, check it strictly, build a complete
// new state and swap it in only if every step succeeded; otherwise the last good state keeps serving.
// It also decides who enforces the CRL: OpenSSL while the CRL is fresh; the gateway itself when the
// CRL is (about to be) past nextUpdate and the policy is `enforce`, because OpenSSL then refuses
// every peer with CRL_HAS_EXPIRED (measured on OpenSSL 3.0, Node 20), which is `reject_all`. A timer
// set for the next such moment rebuilds the state on time; the periodic tick is the backstop.
import { createHash } from 'node:crypto';
import type { StaleCrlPolicy } from '../config/types.js';
import type { PeerTrustStore } from '../identity/trust-domain-store.js';
import { log } from '../log.js';
import { ConfigFileError } from '../runtime/read-tls-files.js';
import { tlsReloads, type CrlEntry, type ExpiryEntry } from './lifecycle-metrics.js';
import { LifecycleWarnings } from './lifecycle-warnings.js';
import { normalizeSerial, RevocationList } from './revocation.js';
import { subjectOf, TlsMaterialError, type LoadedCertificate } from './tls-material.js';

export interface ValidatedMaterial {
  readonly certificates: readonly LoadedCertificate[];
  readonly revocation: RevocationList;
  /** What OpenSSL trusts, made from the bundles (with trust_domains, asynchronously: see identity/trust-domain-store.ts). */
  readonly peerTrust: PeerTrustStore;
  /** Not fatal, logged once per load (e.g. an expired CA next to a valid one in a bundle). */
  readonly warnings: readonly string[];
}

/** What a reloader needs to know about a listener or an upstream (see tls-targets.ts). */
export interface TlsTarget<Files, State> {
  /** `listener/<name>` or `upstream/<name>`: the metric label and log field. */
  readonly name: string;
  /** The config field of the TLS block, e.g. `listeners[0].tls`. */
  readonly field: string;
  /** Every file the material comes from: what to watch. */
  readonly paths: readonly string[];
  read(): Files;
  /** The texts read, in a fixed order: a reload whose texts did not change is skipped. */
  contents(files: Files): readonly (string | undefined)[];
  validate(files: Files, now: number): Promise<ValidatedMaterial>;
  /**
   * A complete state. The gateway always checks the material's revocation list too (a resumed TLS
   * session skips OpenSSL's checks); with `enforcement` 'gateway' the CRL is left out of OpenSSL
   * altogether; with 'reject_all' the CRL is stale and every peer is refused.
   */
  build(files: Files, material: ValidatedMaterial, enforcement: CrlEnforcement): State;
  swap(state: State): void;
  /** After a swap: act on what the new CRL revokes (close established connections). */
  revoked?(list: RevocationList): void;
}

export type ReloadOutcome =
  | { readonly kind: 'applied'; readonly target: string }
  | { readonly kind: 'unchanged'; readonly target: string }
  | { readonly kind: 'failed'; readonly target: string; readonly field: string; readonly file: string; readonly problem: string };

/** Who enforces the CRL: OpenSSL (fresh), the gateway (stale under `enforce`), or nobody gets in (stale under `reject_all`). */
export type CrlEnforcement = 'openssl' | 'gateway' | 'reject_all';

export interface ReloadPolicy {
  readonly staleCrl: StaleCrlPolicy;
  /** Hand CRL enforcement to the gateway this long before nextUpdate, so that no handshake meets OpenSSL's expiry check. */
  readonly crlTakeoverMarginMs: number;
  readonly expiryWarningFraction: number;
  readonly warnIntervalMs: number;
}

interface Loaded<Files> {
  readonly files: Files;
  readonly digest: string;
  readonly material: ValidatedMaterial;
  readonly enforcement: CrlEnforcement;
}

export class TlsReloader<Files, State> {
  #current: Loaded<Files> | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #transition: NodeJS.Timeout | undefined;
  #closed = false;
  #queued: Promise<ReloadOutcome> | undefined;
  readonly #warnings: LifecycleWarnings;

  constructor(
    readonly target: TlsTarget<Files, State>,
    private readonly policy: ReloadPolicy,
    private readonly clock: () => number = Date.now,
  ) {
    this.#warnings = new LifecycleWarnings(target.name, { expiryWarningFraction: policy.expiryWarningFraction, staleCrl: policy.staleCrl, intervalMs: policy.warnIntervalMs });
  }

  get name(): string {
    return this.target.name;
  }

  /** Who enforces the CRL of the state now serving (undefined before the first successful load). */
  get enforcement(): CrlEnforcement | undefined {
    return this.#current?.enforcement;
  }

  get material(): ValidatedMaterial | undefined {
    return this.#current?.material;
  }

  /**
   * Reads and applies the files. Loads run one at a time; a call made while one runs queues a single
   * follow-up, which reads the newest files. `initial`: the first load after start-up (logged as such).
   */
  reload(opts: { initial?: boolean } = {}): Promise<ReloadOutcome> {
    if (this.#queued) return this.#queued;
    const run = this.#chain.then(() => {
      this.#queued = undefined;
      return this.#load(opts.initial === true);
    });
    this.#queued = run;
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #load(initial: boolean): Promise<ReloadOutcome> {
    const { target } = this;
    const now = this.clock();
    let files: Files;
    let material: ValidatedMaterial;
    let digest: string;
    try {
      files = target.read();
      digest = digestOf(target.contents(files));
      if (this.#current?.digest === digest) return { kind: 'unchanged', target: target.name };
      material = await target.validate(files, now);
    } catch (err) {
      return this.#failed(err);
    }
    const enforcement = this.#enforcementFor(material.revocation, now);
    let state: State;
    try {
      state = target.build(files, material, enforcement);
    } catch (err) {
      return this.#failed(err);
    }
    target.swap(state);
    this.#current = { files, digest, material, enforcement };
    this.#scheduleTransition(material.revocation, now);
    tlsReloads.labels(target.name, 'success').inc();
    log.info(initial ? 'tls_loaded' : 'tls_reloaded', {
      target: target.name,
      certificates: material.certificates.filter((c) => c.role !== 'trust_bundle').map((c) => `${subjectOf(c.cert)} ${normalizeSerial(c.cert.serialNumber)}`),
      trust_bundle_cas: material.certificates.filter((c) => c.role === 'trust_bundle').length,
      crl_revoked: material.revocation.size,
      crl_enforcement: material.revocation.crls.length > 0 ? enforcement : null,
    });
    for (const problem of material.warnings) log.warn('tls_material_warning', { target: target.name, problem });
    target.revoked?.(material.revocation);
    this.#warnings.check(material.certificates, material.revocation.crls, now);
    return { kind: 'applied', target: target.name };
  }

  #failed(err: unknown): ReloadOutcome {
    const { target } = this;
    const where =
      err instanceof TlsMaterialError
        ? { field: err.field, file: err.file, problem: err.problem }
        : err instanceof ConfigFileError
          ? { field: err.field, file: err.file, problem: err.message.slice(`${err.field}: ${err.file}: `.length) }
          : { field: target.field, file: '', problem: (err as Error).message };
    tlsReloads.labels(target.name, 'failure').inc();
    log.error('reload_failed', { target: target.name, ...where, note: 'the last good TLS state keeps serving' });
    return { kind: 'failed', target: target.name, ...where };
  }

  #enforcementFor(list: RevocationList, now: number): CrlEnforcement {
    const at = this.#transitionAt(list);
    if (at === undefined || now < at) return 'openssl';
    return this.policy.staleCrl === 'enforce' ? 'gateway' : 'reject_all';
  }

  /** When the CRL leaves OpenSSL's hands: ahead of nextUpdate under `enforce`, at nextUpdate under `reject_all`. */
  #transitionAt(list: RevocationList): number | undefined {
    const next = list.nextUpdateMs;
    if (next === undefined) return undefined;
    return this.policy.staleCrl === 'enforce' ? next - this.policy.crlTakeoverMarginMs : next;
  }

  #scheduleTransition(list: RevocationList, now: number): void {
    clearTimeout(this.#transition);
    const at = this.#transitionAt(list);
    if (at === undefined || at <= now || this.#closed) return;
    // setTimeout holds at most ~24.8 days; a later transition is re-armed by the tick's reload of the material.
    this.#transition = setTimeout(() => this.tick(), Math.min(at - now + 5, 2 ** 31 - 1));
    this.#transition.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#transition);
  }

  /** Periodic: hands the CRL to the gateway as it goes stale, and logs the warnings that are due. */
  tick(): void {
    const current = this.#current;
    if (!current || this.#closed) return;
    const now = this.clock();
    const enforcement = this.#enforcementFor(current.material.revocation, now);
    if (enforcement !== current.enforcement) {
      try {
        this.target.swap(this.target.build(current.files, current.material, enforcement));
        this.#current = { ...current, enforcement };
        log.warn('crl_enforcement_changed', {
          target: this.name,
          crl_enforcement: enforcement,
          next_update: new Date(current.material.revocation.nextUpdateMs!).toISOString(),
          note:
            enforcement === 'gateway'
              ? 'the CRL is at or near its nextUpdate: the gateway now enforces it, as OpenSSL would refuse every peer'
              : 'the CRL is past its nextUpdate: every peer it covers is refused (stale_crl: reject_all)',
        });
      } catch (err) {
        log.error('crl_enforcement_change_failed', { target: this.name, problem: (err as Error).message });
      }
    }
    this.#scheduleTransition(current.material.revocation, now);
    this.#warnings.check(current.material.certificates, current.material.revocation.crls, now);
  }

  *expiryEntries(): Iterable<ExpiryEntry> {
    for (const { role, cert } of this.#current?.material.certificates ?? []) {
      yield { target: `${this.name}/${role}`, subject: subjectOf(cert), serial: normalizeSerial(cert.serialNumber), notAfterMs: Date.parse(cert.validTo) };
    }
  }

  *crlEntries(): Iterable<CrlEntry> {
    for (const crl of this.#current?.material.revocation.crls ?? []) {
      yield { file: crl.file, thisUpdateMs: crl.thisUpdate.getTime(), nextUpdateMs: crl.nextUpdate?.getTime() };
    }
  }
}

function digestOf(parts: readonly (string | undefined)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part === undefined ? '\0absent\0' : `${part.length}:${part}`);
  return hash.digest('hex');
}
