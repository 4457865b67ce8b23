// Handshake outcomes on terminate listeners, by listener, result and reason (reasons.ts).
import { Counter } from 'prom-client';
import type { CertReason } from '../reasons.js';
import { registry } from './registry.js';

export const tlsHandshakes = new Counter({
  name: 'gatehouse_tls_handshakes_total',
  help: 'TLS handshakes on terminate listeners by result (accepted, rejected) and reason (accepted: ok, or no_spiffe_id where require_spiffe_id is off)',
  labelNames: ['listener', 'result', 'reason'] as const,
  registers: [registry],
});

export type HandshakeReason = CertReason | 'ok' | 'not_tls' | 'timeout' | 'client_aborted';

/** Bound counters per listener, so the hot path does not build label objects. */
export function handshakeCounter(listener: string) {
  const accepted = tlsHandshakes.labels(listener, 'accepted', 'ok');
  // A certificate without a SPIFFE ID can reach no route (allow-lists name SPIFFE IDs): its own outcome.
  const acceptedWithoutSpiffeId = tlsHandshakes.labels(listener, 'accepted', 'no_spiffe_id');
  const rejected = new Map<HandshakeReason, ReturnType<typeof tlsHandshakes.labels>>();
  return {
    accepted: (outcome: 'ok' | 'no_spiffe_id') => (outcome === 'ok' ? accepted : acceptedWithoutSpiffeId).inc(),
    rejected: (reason: HandshakeReason) => {
      let counter = rejected.get(reason);
      if (!counter) rejected.set(reason, (counter = tlsHandshakes.labels(listener, 'rejected', reason)));
      counter.inc();
    },
  };
}
