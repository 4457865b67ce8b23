// The loud part of the lifecycle: warnings for certificates near or past their expiry and for CRLs
// past their nextUpdate, repeated at a fixed interval while the condition lasts (not at every tick,
// so a log stays readable), and forgotten when the material is replaced.
import type { StaleCrlPolicy } from '../config/types.js';
import { log } from '../log.js';
import { normalizeSerial } from './revocation.js';
import { subjectOf, type LoadedCertificate, type LoadedCrl } from './tls-material.js';

export interface WarningPolicy {
  /** Warn when less than this fraction of a certificate's lifetime is left. */
  readonly expiryWarningFraction: number;
  readonly staleCrl: StaleCrlPolicy;
  /** Repeat a warning this often while its condition lasts. */
  readonly intervalMs: number;
}

export class LifecycleWarnings {
  /** Key → when it was last logged; only keys of the current material are kept. */
  readonly #last = new Map<string, number>();

  constructor(
    private readonly target: string,
    private readonly policy: WarningPolicy,
  ) {}

  /** Logs what is due at `now` for the material currently loaded. */
  check(certificates: readonly LoadedCertificate[], crls: readonly LoadedCrl[], now: number): void {
    const seen = new Set<string>();
    for (const { role, cert } of certificates) {
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      const left = to - now;
      const expired = left <= 0;
      if (!expired && left >= (to - from) * this.policy.expiryWarningFraction) continue;
      const serial = normalizeSerial(cert.serialNumber);
      const key = `cert:${role}:${serial}:${cert.fingerprint256}`;
      seen.add(key);
      if (!this.#due(key, now)) continue;
      const fields = { target: this.target, role, subject: subjectOf(cert), serial, not_after: new Date(to).toISOString(), seconds_left: Math.round(left / 1000) };
      if (expired) log.error('certificate_expired', fields);
      else log.warn('certificate_expiring', { ...fields, lifetime_left: Number((left / (to - from)).toFixed(3)) });
    }
    for (const crl of crls) {
      const next = crl.nextUpdate?.getTime();
      if (next === undefined || now < next) continue;
      const key = `crl:${crl.file}:${crl.issuerDn}`;
      seen.add(key);
      if (!this.#due(key, now)) continue;
      log.warn('crl_stale', {
        target: this.target,
        file: crl.file,
        issuer: crl.issuerName,
        next_update: new Date(next).toISOString(),
        stale_for_s: Math.round((now - next) / 1000),
        policy: this.policy.staleCrl,
        effect:
          this.policy.staleCrl === 'enforce'
            ? 'still enforcing the revocations of this CRL; publish a fresh one'
            : 'refusing every peer certificate this CRL covers until a fresh CRL is loaded',
      });
    }
    for (const key of this.#last.keys()) if (!seen.has(key)) this.#last.delete(key);
  }

  #due(key: string, now: number): boolean {
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.policy.intervalMs) return false;
    this.#last.set(key, now);
    return true;
  }
}
