// GatewayConfig literals for tests, with the defaults the YAML loader applies, so runtime tests do
// not depend on the parser. Every address is loopback with an ephemeral port.
import type { Authorization, GatewayConfig, Listener, TerminateRoute, TrustDomainBundle, Upstream, XfccMode } from '../../gateway/config/types.js';

export const DEFAULT_XFCC_DETAILS = { subject: true, uri: true, dns: true, cert: false, chain: false } as const;

export function allow(...ids: string[]): Authorization {
  return { allow: ids.map((id) => (id.endsWith('/*') ? { kind: 'prefix' as const, prefix: id.slice(0, -1) } : { kind: 'exact' as const, id })), allowPlaintext: false };
}

export function terminateRoute(name: string, upstream: string, authorization: Authorization, extra: Partial<TerminateRoute> = {}): TerminateRoute {
  return {
    kind: 'terminate',
    name,
    match: { pathPrefix: '/' },
    upstream,
    authorization,
    xfcc: 'sanitize_set' as XfccMode,
    xfccDetails: DEFAULT_XFCC_DETAILS,
    ...extra,
  };
}

export function terminateListener(opts: {
  name?: string;
  cert: string;
  key: string;
  sni?: string[];
  /** One of the two: a single bundle, or a bundle per trust domain. */
  trustBundle?: string;
  trustDomains?: TrustDomainBundle[];
  crl?: string;
  requireSpiffeId?: boolean;
  routes: TerminateRoute[];
}): Listener {
  return {
    name: opts.name ?? 'public',
    address: { host: '127.0.0.1', port: 0 },
    mode: 'STRICT',
    tls: {
      certificates: [{ sni: opts.sni ?? [], cert: opts.cert, key: opts.key }],
      clientAuth: { trustBundle: opts.trustBundle, trustDomains: opts.trustDomains, crl: opts.crl, requireSpiffeId: opts.requireSpiffeId ?? true },
      minVersion: 'TLSv1.2',
      alpn: ['http/1.1'],
    },
    routes: opts.routes,
    maxConnections: 10_000,
    timeouts: { helloMs: 5000, handshakeMs: 10_000, idleMs: 60_000, requestHeadersMs: 30_000, requestBodyMs: 30_000 },
    maxRequestBodyBytes: 64 * 1024 * 1024, // the default of the YAML
  };
}

export function mtlsUpstream(opts: {
  name: string;
  port: number;
  cert: string;
  key: string;
  trustBundle?: string;
  trustDomains?: TrustDomainBundle[];
  expectId?: string;
  expectDns?: string;
  connections?: number;
  ports?: number[];
}): Upstream {
  return {
    name: opts.name,
    endpoints: (opts.ports ?? [opts.port]).map((port) => ({ host: '127.0.0.1', port })),
    tls: { cert: opts.cert, key: opts.key, trustBundle: opts.trustBundle, trustDomains: opts.trustDomains, expectId: opts.expectId, expectDns: opts.expectDns },
    connections: opts.connections ?? 8,
    timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 30_000, bodyMs: 5000 },
  };
}

/** An upstream reached in plaintext HTTP (a test origin that is not the subject of the test). */
export function plainUpstream(name: string, port: number): Upstream {
  return { name, endpoints: [{ host: '127.0.0.1', port }], connections: 4, timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 30_000, bodyMs: 5000 } };
}

export function gatewayConfig(listeners: Listener[], upstreams: Upstream[]): GatewayConfig {
  return {
    source: '<test>',
    admin: { address: { host: '127.0.0.1', port: 0 } },
    listeners,
    upstreams,
    backends: [],
    lifecycle: { watch: false, closeRevokedConnections: true, staleCrl: 'enforce', expiryWarningFraction: 0.2 },
    sessionTickets: { enabled: true, rotateMs: 3600_000, perHandshake: 1 },
    workers: 1,
    drain: { delayMs: 0, timeoutMs: 30_000 },
  };
}

/**
 * The YAML of a one-listener terminate config (not started: for load/validate tests), its server
 * certificate and trust bundle given; `tlsLines` / `clientAuthLines` / `upstreamTls` are extra lines
 * already indented for their place. Line 10 is the first of `clientAuthLines`, then of `tlsLines`.
 */
export function terminateYaml(opts: { certFile: string; keyFile: string; trustBundle: string; clientAuthLines?: string; tlsLines?: string; upstreamTls?: string }): string {
  return `listeners:
  - name: public
    address: 127.0.0.1:18443
    tls:
      certificates:
        - cert: ${opts.certFile}
          key: ${opts.keyFile}
      client_auth:
        trust_bundle: ${opts.trustBundle}
${opts.clientAuthLines ?? ''}${opts.tlsLines ?? ''}    routes:
      - name: all
        match: { path_prefix: / }
        upstream: origin
        authorize: { allow: [{ trust_domain: example.org }] }
upstreams:
  - name: origin
    endpoints: [127.0.0.1:18080]
${opts.upstreamTls ?? ''}`;
}
