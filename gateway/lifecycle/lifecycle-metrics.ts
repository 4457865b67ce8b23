// Metrics of the certificate lifecycle: reloads, revocation closes, and the scrape-time gauges of
// certificate expiry and CRL age/staleness. The gauges are filled at scrape time from whatever
// material the attached lifecycles currently hold, so they are never stale and cost nothing between
// scrapes.
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics/registry.js';

export const tlsReloads = new Counter({
  name: 'gatehouse_tls_reload_total',
  help: 'Reloads of TLS material (certificates, keys, trust bundles, CRLs) by target and result (success, failure)',
  labelNames: ['target', 'result'] as const,
  registers: [registry],
});

export const revokedConnectionsClosed = new Counter({
  name: 'gatehouse_revoked_connections_closed_total',
  help: 'Established client connections closed because a newly loaded CRL revokes their certificate',
  labelNames: ['listener'] as const,
  registers: [registry],
});

/** One loaded certificate as the gauges report it. */
export interface ExpiryEntry {
  readonly target: string;
  readonly subject: string;
  readonly serial: string;
  readonly notAfterMs: number;
}

/** One loaded CRL as the gauges report it. */
export interface CrlEntry {
  readonly file: string;
  readonly thisUpdateMs: number;
  readonly nextUpdateMs: number | undefined;
}

/** Something holding loaded material (one attached lifecycle); asked at every scrape. */
export interface MaterialSource {
  certificates(): Iterable<ExpiryEntry>;
  crls(): Iterable<CrlEntry>;
}

const sources = new Set<MaterialSource>();

/** Registers a source for the scrape-time gauges; returns the function that removes it again. */
export function addMaterialSource(source: MaterialSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

export interface CertsPage {
  readonly certificates: Array<{ target: string; subject: string; serial: string; not_after: string; expires_in_seconds: number }>;
  readonly crls: Array<{ file: string; this_update: string; next_update: string | null; age_seconds: number }>;
}

/** /certs: every certificate and CRL loaded now, with its expiry; the soonest to expire first. */
export function certsPage(): CertsPage {
  const now = Date.now();
  const certificates: CertsPage['certificates'] = [];
  const crls: CertsPage['crls'] = [];
  for (const source of sources) {
    for (const c of source.certificates()) {
      certificates.push({ target: c.target, subject: c.subject, serial: c.serial, not_after: new Date(c.notAfterMs).toISOString(), expires_in_seconds: Math.round((c.notAfterMs - now) / 1000) });
    }
    for (const crl of source.crls()) {
      crls.push({ file: crl.file, this_update: new Date(crl.thisUpdateMs).toISOString(), next_update: crl.nextUpdateMs === undefined ? null : new Date(crl.nextUpdateMs).toISOString(), age_seconds: Math.round((now - crl.thisUpdateMs) / 1000) });
    }
  }
  certificates.sort((a, b) => a.expires_in_seconds - b.expires_in_seconds);
  return { certificates, crls };
}

new Gauge({
  name: 'gatehouse_certificate_expiry_seconds',
  aggregator: 'min', // cluster workers each load the certificates: the soonest expiry, not their sum
  help: 'Seconds until notAfter of every loaded certificate (server, upstream client, trust bundle CAs); negative when expired',
  labelNames: ['target', 'subject', 'serial'] as const,
  registers: [registry],
  collect() {
    this.reset();
    const now = Date.now();
    for (const source of sources) {
      for (const c of source.certificates()) this.labels(c.target, c.subject, c.serial).set((c.notAfterMs - now) / 1000);
    }
  },
});

/** Per CRL file, the worst of its CRLs (a file may hold one per CA, and several targets may load it). */
function perFile(value: (crl: CrlEntry, now: number) => number): Map<string, number> {
  const now = Date.now();
  const worst = new Map<string, number>();
  for (const source of sources) {
    for (const crl of source.crls()) worst.set(crl.file, Math.max(worst.get(crl.file) ?? -Infinity, value(crl, now)));
  }
  return worst;
}

new Gauge({
  name: 'gatehouse_crl_age_seconds',
  aggregator: 'max', // cluster workers each load the files: the oldest, not their sum
  help: 'Seconds since thisUpdate of the oldest CRL of each loaded CRL file',
  labelNames: ['file'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [file, age] of perFile((crl, now) => (now - crl.thisUpdateMs) / 1000)) this.labels(file).set(age);
  },
});

new Gauge({
  name: 'gatehouse_crl_stale',
  aggregator: 'max', // cluster workers each load the files: stale in any worker, not their sum
  help: '1 when a CRL of the file is past its nextUpdate (handled by lifecycle.stale_crl), else 0',
  labelNames: ['file'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [file, stale] of perFile((crl, now) => (crl.nextUpdateMs !== undefined && now >= crl.nextUpdateMs ? 1 : 0))) this.labels(file).set(stale);
  },
});
