// Which TLS 1.2 cipher suites and key exchange groups the gateway offers and accepts: the secure
// default (ECDHE key exchange, AEAD encryption only: no CBC, so nothing for LUCKY13 and its kin),
// and the checks of `tls.ciphers` / `tls.curves` a config may set instead. TLS 1.3 suites are all
// AEAD; OpenSSL's three stay on unless a list names TLS_* suites itself.
import tls from 'node:tls';
import { closest } from './did-you-mean.js';

/** ECDHE with AES-GCM or ChaCha20-Poly1305, for ECDSA and RSA certificates (Mozilla's "intermediate" TLS 1.2 list). */
export const DEFAULT_TLS12_CIPHERS: readonly string[] = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** The `ciphers` option of a secure context: the configured list, or the default. */
export function cipherString(ciphers: readonly string[] | undefined): string {
  return (ciphers ?? DEFAULT_TLS12_CIPHERS).join(':');
}

/** The `ecdhCurve` option: the configured groups, or OpenSSL's default list ('auto'). */
export function curveString(curves: readonly string[] | undefined): string {
  return curves === undefined ? 'auto' : curves.join(':');
}

const AEAD = /GCM|CHACHA20|CCM/;
const FORWARD_SECRET = /^(ECDHE|DHE)-/;

/** Every cipher suite name this OpenSSL knows, upper case as OpenSSL spells them. */
let known: ReadonlyMap<string, string> | undefined;
function knownCiphers(): ReadonlyMap<string, string> {
  known ??= new Map(tls.getCiphers().map((name) => [name.toLowerCase(), name.toUpperCase()]));
  return known;
}

export type SuiteCheck = { readonly ok: true; readonly value: string; readonly warning?: string } | { readonly ok: false; readonly problem: string };

/** One cipher suite name (OpenSSL's spelling, or a TLS 1.3 TLS_* name); cipher-string syntax (HIGH, !aNULL) is not taken. */
export function checkCipherName(name: string): SuiteCheck {
  const canonical = knownCiphers().get(name.toLowerCase());
  if (canonical === undefined) {
    const guess = closest(name.toUpperCase(), knownCiphers().values());
    return { ok: false, problem: `'${name}' is not a cipher suite this OpenSSL knows${guess ? ` (did you mean '${guess}'?)` : ''}: list one suite name per entry, like ECDHE-ECDSA-AES128-GCM-SHA256 (cipher-string syntax such as HIGH or !aNULL is not taken)` };
  }
  if (canonical.startsWith('TLS_')) return { ok: true, value: canonical };
  if (!AEAD.test(canonical)) return { ok: true, value: canonical, warning: `'${canonical}' is not an AEAD suite (CBC): clients can be attacked through it (LUCKY13); prefer the default` };
  if (!FORWARD_SECRET.test(canonical)) return { ok: true, value: canonical, warning: `'${canonical}' has no forward secrecy (no ECDHE/DHE key exchange); prefer the default` };
  return { ok: true, value: canonical };
}

/** One key exchange group, checked by OpenSSL itself (names like X25519, P-256, secp384r1, X25519MLKEM768). */
export function checkCurveName(name: string): SuiteCheck {
  if (name.includes(':')) return { ok: false, problem: `'${name}': list one group per entry` };
  try {
    tls.createSecureContext({ ecdhCurve: name });
    return { ok: true, value: name };
  } catch {
    return { ok: false, problem: `'${name}' is not a key exchange group this OpenSSL knows (like X25519, P-256, P-384, X25519MLKEM768)` };
  }
}

/** The whole list as OpenSSL will take it: a TLS 1.2 suite when TLS 1.2 is on, and a context OpenSSL accepts. */
export function checkSuites(ciphers: readonly string[] | undefined, curves: readonly string[] | undefined, minVersion: 'TLSv1.2' | 'TLSv1.3'): string | undefined {
  if (ciphers !== undefined && minVersion === 'TLSv1.2' && ciphers.every((c) => c.startsWith('TLS_'))) {
    return 'lists only TLS 1.3 suites, so TLS 1.2 clients could agree on none: add TLS 1.2 suites or set min_version: TLSv1.3';
  }
  try {
    tls.createSecureContext({ ciphers: cipherString(ciphers), ecdhCurve: curveString(curves), minVersion });
    return undefined;
  } catch (err) {
    return `OpenSSL refuses this list: ${(err as Error).message}`;
  }
}
