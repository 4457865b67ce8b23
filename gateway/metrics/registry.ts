// The one Prometheus registry. Each area declares its own metrics in its own file
// (tls-metrics.ts, proxy-metrics.ts, passthrough-metrics.ts, ...) against this registry, with the
// `gatehouse_` prefix and label values from reasons.ts.
import { Registry } from 'prom-client';

export const registry = new Registry();
