// Handshake outcomes on terminate listeners, by listener, result and reason (reasons.ts).
import { Counter } from 'prom-client';
import type { CertReason } from '../reasons.js';
import { registry } from './registry.js';

export const tlsHandshakes = new Counter({
  name: 'gatehouse_tls_handshakes_total',
  help: 'TLS handshakes on terminate listeners by result (accepted, rejected) and reason',
  labelNames: ['listener', 'result', 'reason'] as const,
  registers: [registry],
});

export type HandshakeReason = CertReason | 'ok' | 'not_tls' | 'timeout' | 'client_aborted';

/** Bound counters per listener, so the hot path does not build label objects. */
export function handshakeCounter(listener: string) {
  const accepted = tlsHandshakes.labels(listener, 'accepted', 'ok');
  const rejected = new Map<HandshakeReason, ReturnType<typeof tlsHandshakes.labels>>();
  return {
    accepted: () => accepted.inc(),
    rejected: (reason: HandshakeReason) => {
      let counter = rejected.get(reason);
      if (!counter) rejected.set(reason, (counter = tlsHandshakes.labels(listener, 'rejected', reason)));
      counter.inc();
    },
  };
}
