// Keeps the embedded default's development PKI fresh while the gateway runs, as SPIRE would: its
// leaves live one hour and are re-issued at two thirds of their lifetime (ensureDevPki decides which).
// The files are replaced atomically, so the gateway's file watchers pick them up: `npm start`
// demonstrates live rotation.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { DEV_LEAVES, ensureDevPki, type DevPki } from '../dev/dev-pki.js';
import { log } from '../log.js';

export interface DevPkiRenewerOptions {
  /** Check at least this often, whatever the certificates say (clock jumps, files edited by hand). Default 60 s. */
  checkIntervalMs?: number;
  /** Called after leaves were re-issued, e.g. to reload the in-process demo upstream. */
  onRenewed?: (pki: DevPki) => void | Promise<void>;
}

export interface DevPkiRenewer {
  /** Renews what is due now; resolves with the names of the leaves re-issued. */
  check(): Promise<string[]>;
  close(): void;
}

/** When the first leaf of the dev PKI reaches two thirds of its lifetime (now if one is missing or unreadable). */
export function nextDevRenewalMs(dir: string, now = Date.now()): number {
  let next = Infinity;
  for (const name of Object.keys(DEV_LEAVES)) {
    try {
      const cert = new X509Certificate(fs.readFileSync(path.join(dir, `${name}.crt`)));
      const from = Date.parse(cert.validFrom);
      next = Math.min(next, from + ((Date.parse(cert.validTo) - from) * 2) / 3);
    } catch {
      return now;
    }
  }
  return next;
}

export function startDevPkiRenewer(dir: string, options: DevPkiRenewerOptions = {}): DevPkiRenewer {
  const interval = options.checkIntervalMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running: Promise<string[]> | undefined;

  const check = (): Promise<string[]> =>
    (running ??= (async () => {
      try {
        const pki = await ensureDevPki(dir);
        if (pki.renewed.length > 0) {
          log.info('dev_pki_renewed', { dir, leaves: pki.renewed, note: 'the file watchers reload them into the gateway' });
          await options.onRenewed?.(pki);
        }
        return pki.renewed;
      } catch (err) {
        log.error('dev_pki_renewal_failed', { dir, problem: (err as Error).message });
        return [];
      } finally {
        running = undefined;
      }
    })());

  const schedule = () => {
    if (closed) return;
    // A little after the renewal point, so ensureDevPki sees the leaf as due.
    const wait = Math.min(interval, Math.max(1000, nextDevRenewalMs(dir) - Date.now() + 1000));
    timer = setTimeout(() => void check().then(schedule), wait);
    timer.unref();
  };
  schedule();

  return {
    check,
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}

/** The in-process demo upstream of the embedded default presents `upstream.crt`; give it the renewed files (a new CA re-issues every leaf). */
export function reloadDemoUpstreamTls(server: tls.Server, pki: DevPki): void {
  if (!pki.renewed.includes('upstream')) return;
  server.setSecureContext({
    cert: fs.readFileSync(pki.file('upstream.crt'), 'utf8'),
    key: fs.readFileSync(pki.file('upstream.key'), 'utf8'),
    ca: fs.readFileSync(pki.file('ca.crt'), 'utf8'),
    minVersion: 'TLSv1.2',
  });
}
