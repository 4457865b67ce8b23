// Revocation as data: the serials of the loaded CRLs, indexed for a map lookup, each tied to the CA
// that signed its CRL. Used to close established connections that a newly loaded CRL revokes, and
// to enforce a stale CRL in the gateway itself (OpenSSL refuses every peer once a CRL is past its
// nextUpdate, see tls-reloader.ts).
import { X509Certificate } from 'node:crypto';
import '../../certs/dev-ca.js'; // loads reflect-metadata and sets @peculiar/x509's crypto provider first
import * as x509 from '@peculiar/x509';
import type { Socket } from 'node:net';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { log } from '../log.js';
import type { ConnectionContext } from '../session/connection-context.js';
import { revokedConnectionsClosed } from './lifecycle-metrics.js';
import type { LoadedCrl } from './tls-material.js';

/**
 * Serial numbers compare as lowercase hex, whole bytes, without the sign byte a DER INTEGER may carry:
 * `0a3f01` as `openssl x509 -serial` and Node print it (uppercase), where a CRL parser may give `000a3f01`.
 */
export function normalizeSerial(serial: string): string {
  const hex = serial.toLowerCase();
  return (hex.length % 2 ? '0' + hex : hex).replace(/^(?:00)+(?=..)/, '');
}

/** A peer chain is short; the bound only guards against a cyclic issuer reference. */
const MAX_CHAIN = 10;

export class RevocationList {
  readonly #bySerial = new Map<string, LoadedCrl[]>();
  /** Earliest nextUpdate of the CRLs: when the list goes stale. */
  readonly nextUpdateMs: number | undefined;

  constructor(readonly crls: readonly LoadedCrl[]) {
    let next: number | undefined;
    for (const crl of crls) {
      for (const serial of crl.serials) {
        const list = this.#bySerial.get(serial);
        if (list) list.push(crl);
        else this.#bySerial.set(serial, [crl]);
      }
      const t = crl.nextUpdate?.getTime();
      if (t !== undefined && (next === undefined || t < next)) next = t;
    }
    this.nextUpdateMs = next;
  }

  get size(): number {
    return this.#bySerial.size;
  }

  /**
   * True when a CRL lists this certificate's serial and comes from the certificate's issuer: the
   * bundle CA that signed the CRL, or, for an intermediate's CRL, the issuer named by the CRL.
   */
  revokes(cert: X509Certificate): boolean {
    const crls = this.#bySerial.get(normalizeSerial(cert.serialNumber));
    if (crls === undefined) return false;
    let issuerDn: string | undefined; // parsed once, and only on a serial hit
    return crls.some((crl) => (crl.issuer ? cert.checkIssued(crl.issuer) : (issuerDn ??= new x509.X509Certificate(cert.raw).issuer) === crl.issuerDn));
  }

  /** The certificate or any issuer the peer sent along with it. */
  revokesChain(leaf: X509Certificate): boolean {
    let cert: X509Certificate | undefined = leaf;
    for (let depth = 0; cert && depth < MAX_CHAIN; depth++, cert = cert.issuerCertificate) {
      if (this.revokes(cert)) return true;
    }
    return false;
  }

  /** The same for the detailed PeerCertificate an upstream connection's checkServerIdentity receives. */
  revokesPeerChain(leaf: PeerCertificate): boolean {
    let cert: PeerCertificate | undefined = leaf;
    for (let depth = 0; cert && depth < MAX_CHAIN; depth++) {
      // Parse only on a serial hit: the common case is a map miss.
      if (this.#bySerial.has(normalizeSerial(cert.serialNumber)) && this.revokes(new X509Certificate(cert.raw))) return true;
      const next: PeerCertificate | undefined = (cert as Partial<DetailedPeerCertificate>).issuerCertificate;
      cert = next === cert ? undefined : next;
    }
    return false;
  }
}

/** Closes the established client connections whose certificate the list revokes; returns how many. */
export function closeRevokedConnections(listener: string, connections: Iterable<{ readonly socket: Socket; readonly context: ConnectionContext }>, list: RevocationList): number {
  if (list.size === 0) return 0;
  let closed = 0;
  for (const { socket, context } of connections) {
    const identity = context.identity;
    if (!identity || !list.revokesChain(identity.cert)) continue;
    log.warn('revoked_connection_closed', {
      listener,
      reason: 'revoked',
      identity: identity.spiffeId ?? null,
      subject: identity.subject,
      serial: normalizeSerial(identity.serialNumber),
      remote: socket.remoteAddress ?? null,
    });
    socket.destroy();
    closed++;
  }
  if (closed > 0) revokedConnectionsClosed.labels(listener).inc(closed);
  return closed;
}
