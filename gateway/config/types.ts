// The validated configuration: what the YAML file says, with defaults applied, deep-frozen.
// The parser (config/load-config.ts) produces it; the runtime compiles it into route tables and
// TLS contexts. File paths are absolute (resolved against the config file's directory).

export type MtlsMode = 'STRICT' | 'PERMISSIVE';

/** Envoy's forward_client_cert_details modes. */
export type XfccMode = 'sanitize' | 'forward_only' | 'append_forward' | 'sanitize_set' | 'always_forward_only';

/** Which parts of the client certificate go into our XFCC element (Envoy's set_current_client_cert_details). */
export interface XfccDetails {
  readonly subject: boolean;
  readonly uri: boolean;
  readonly dns: boolean;
  readonly cert: boolean;
  readonly chain: boolean;
}

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface ServerCertificate {
  /** SNI names this certificate serves (exact or `*.suffix`); empty means the listener's default. */
  readonly sni: readonly string[];
  readonly cert: string;
  readonly key: string;
}

/** One SPIFFE trust domain and the file of its CA bundle. */
export interface TrustDomainBundle {
  readonly trustDomain: string;
  readonly bundle: string;
}

/** The CAs that verify a peer: exactly one of the two is set. */
export interface PeerTrust {
  /** One bundle for every CA: a single trust domain. */
  readonly trustBundle?: string;
  /** A bundle per SPIFFE trust domain: a certificate's SPIFFE ID must chain to its own domain's bundle. */
  readonly trustDomains?: readonly TrustDomainBundle[];
}

export interface ClientAuth extends PeerTrust {
  /** CRL files, one or a list (one per issuing CA: roots and intermediates); each file may hold several CRLs. */
  readonly crl?: string | readonly string[];
  /** Refuse certificates without a SPIFFE ID at the handshake (no allow-list can name them). */
  readonly requireSpiffeId: boolean;
}

export interface ListenerTls {
  readonly certificates: readonly ServerCertificate[];
  readonly clientAuth: ClientAuth;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** ALPN offered by terminate routes, in preference order: 'h2' and/or 'http/1.1'. */
  readonly alpn: readonly string[];
  /** TLS 1.2 (and optionally TLS 1.3) cipher suites; absent: ECDHE with AEAD only (config/tls-suites.ts). */
  readonly ciphers?: readonly string[];
  /** Key exchange groups; absent: OpenSSL's default list. */
  readonly curves?: readonly string[];
}

/** One entry of an allow-list: an exact SPIFFE ID, a trust domain, or an ID path prefix. */
export type IdentityPattern =
  | { readonly kind: 'exact'; readonly id: string }
  | { readonly kind: 'trust_domain'; readonly trustDomain: string }
  | { readonly kind: 'prefix'; readonly prefix: string };

export interface Authorization {
  /** Empty: nobody is allowed (default deny). */
  readonly allow: readonly IdentityPattern[];
  /** PERMISSIVE listeners only: let plaintext callers (no identity) through this route. */
  readonly allowPlaintext: boolean;
}

export interface RouteMatch {
  /** Host header / SNI to match, exact or `*.suffix`; absent: any. */
  readonly host?: string;
  readonly pathPrefix: string;
  /** Match the path prefix ignoring ASCII case (default false: case-sensitive). */
  readonly caseInsensitive?: boolean;
  /** Passthrough routes may also require an ALPN protocol offered by the client. */
  readonly alpn?: string;
}

export interface TerminateRoute {
  readonly kind: 'terminate';
  readonly name: string;
  readonly match: RouteMatch;
  readonly upstream: string;
  readonly authorization: Authorization;
  readonly xfcc: XfccMode;
  readonly xfccDetails: XfccDetails;
  /** Overrides the listener's maxRequestBodyBytes for this route (larger or smaller). */
  readonly maxRequestBodyBytes?: number;
  /** Request headers removed besides the client identity headers: lowercase names, `prefix*` for a prefix. */
  readonly stripHeaders?: readonly string[];
  /** Let the callers' own client identity headers through (they are trusted proxies). Default false. */
  readonly trustClientIdentityHeaders?: boolean;
  /** Keep the caller's x-request-id instead of the gateway's own. Default false. */
  readonly trustRequestId?: boolean;
  /** The route carries gRPC: its upstream must speak HTTP/2 (protocol h2 or auto). Default false. */
  readonly grpc?: boolean;
  /** Forward '//' merged, as routed (default true); false forwards them as sent (routing still merges). */
  readonly mergeSlashes?: boolean;
  /** Accept ';' path parameters (routed as if removed, forwarded as sent). Default false. */
  readonly allowPathParameters?: boolean;
  /** Accept '%25' before two hex digits (a path an upstream decoding twice reads differently). Default false. */
  readonly allowDoubleEncoding?: boolean;
  /** Overrides the upstream's retries for this route. */
  readonly retries?: Retries;
  readonly timeouts?: RouteTimeouts;
}

export interface RouteTimeouts {
  /** The whole request, every attempt included, until the response head (0: none). */
  readonly requestMs: number;
}

/** What a failed attempt is retried on: no byte sent (any method), the upstream reset, a try too slow, these statuses. */
export type RetryOn = 'connect_failure' | 'reset' | 'per_try_timeout' | number;

export interface Retries {
  /** Tries after the first. */
  readonly attempts: number;
  readonly on: readonly RetryOn[];
  /** Each try's wait for the response head (0: none). */
  readonly perTryTimeoutMs: number;
  /** Retries (connect failures aside) stay within this share of the upstream's requests. */
  readonly budgetPercent: number;
  /** An idempotent request's body is kept for a retry up to this size; a larger one is never retried once sent. */
  readonly maxBufferedBody: number;
}

export const RETRIES_DEFAULT: Retries = Object.freeze({
  attempts: 2,
  on: Object.freeze(['connect_failure', 'reset', 502, 503, 504] as RetryOn[]),
  perTryTimeoutMs: 0,
  budgetPercent: 20,
  maxBufferedBody: 64 * 1024,
});

export interface PassthroughRoute {
  readonly kind: 'passthrough';
  readonly name: string;
  /** Match on SNI only (exact or `*.suffix`); `default: true` catches the rest. */
  readonly sni: readonly string[];
  readonly default: boolean;
  readonly alpn?: string;
  readonly backend: string;
}

export type Route = TerminateRoute | PassthroughRoute;

export interface Listener {
  readonly name: string;
  readonly address: Address;
  readonly mode: MtlsMode;
  /** Absent on passthrough-only listeners. */
  readonly tls?: ListenerTls;
  readonly routes: readonly Route[];
  /** Open connections per worker process; more are closed at accept and counted. */
  readonly maxConnections: number;
  /** Open connections per client address and worker process; absent: no such limit. */
  readonly maxConnectionsPerSource?: number;
  readonly timeouts: ListenerTimeouts;
  /** Largest request body its terminate routes take (413 beyond); Infinity: unlimited. */
  readonly maxRequestBodyBytes: number;
  /** HTTP/2 limits per client connection; absent: LISTENER_LIMITS_DEFAULT. */
  readonly limits?: ListenerLimits;
}

export interface ListenerLimits {
  /** Streams one HTTP/2 client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused. */
  readonly maxConcurrentStreams: number;
  /** Largest HTTP/2 request header list, counted as RFC 9113 §6.5.2 does (name + value + 32 per field, after HPACK). */
  readonly maxHeaderBytes: number;
}

export const LISTENER_LIMITS_DEFAULT: ListenerLimits = Object.freeze({ maxConcurrentStreams: 100, maxHeaderBytes: 16 * 1024 });

export interface ListenerTimeouts {
  /** Time allowed to receive a complete ClientHello (or the first plaintext bytes), from accept. */
  readonly helloMs: number;
  /** Time allowed for the TLS handshake, from accept (or the front door's handoff) to its end. */
  readonly handshakeMs: number;
  /** Idle connection (keep-alive or relay) timeout. */
  readonly idleMs: number;
  readonly requestHeadersMs: number;
  /** Longest silence from a client in the middle of a request body its upstream is waiting for. */
  readonly requestBodyMs: number;
}

export interface UpstreamTls extends PeerTrust {
  /** The gateway's client certificate chain and key toward this upstream. */
  readonly cert: string;
  readonly key: string;
  readonly crl?: string | readonly string[];
  /** SNI sent to the upstream; default: the endpoint host when it is a name. */
  readonly serverName?: string;
  /** The upstream must present this SPIFFE ID (URI SAN)... */
  readonly expectId?: string;
  /** ...or this DNS name. One of the two is required. */
  readonly expectDns?: string;
  /** As for listeners: absent means ECDHE with AEAD only, and OpenSSL's default groups. */
  readonly ciphers?: readonly string[];
  readonly curves?: readonly string[];
}

/** The CRL files of a `crl` field, whether it names one or a list. */
export function crlFiles(crl: string | readonly string[] | undefined): readonly string[] {
  return crl === undefined ? [] : typeof crl === 'string' ? [crl] : crl;
}

export interface UpstreamTimeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  /** Time between body chunks. */
  readonly bodyMs: number;
}

export interface Upstream {
  readonly name: string;
  readonly endpoints: readonly Address[];
  /** Absent: plaintext HTTP to the upstream (allowed, but logged as a warning). */
  readonly tls?: UpstreamTls;
  /** Maximum connections per endpoint. */
  readonly connections: number;
  readonly timeouts: UpstreamTimeouts;
  /** Absent: UPSTREAM_LIMITS_DEFAULT. */
  readonly limits?: UpstreamLimits;
  /** Absent: round_robin. */
  readonly balance?: UpstreamBalance;
  /** Absent: OUTLIER_DETECTION_DEFAULT (passive ejection is on by default). */
  readonly outlierDetection?: OutlierDetection;
  /** Absent: no active checks. */
  readonly healthCheck?: HealthCheck;
  /** Absent: connect failures alone are retried, on each other endpoint once. */
  readonly retries?: Retries;
  /** How often host-name endpoints are resolved again (absent: 30 s). */
  readonly dnsRefreshMs?: number;
  /** DNS servers asked for host-name endpoints; absent: the system's resolver. */
  readonly dnsResolvers?: readonly Address[];
  /** Absent: http1. */
  readonly protocol?: UpstreamProtocol;
}

/** What the gateway speaks to an upstream: HTTP/1.1, HTTP/2 (over TLS by ALPN, plaintext by prior knowledge), or what ALPN agrees (h2 offered first). */
export type UpstreamProtocol = 'http1' | 'h2' | 'auto';

/** Active health checks: a GET over the same (m)TLS and identity check as requests. */
export interface HealthCheck {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Failed checks in a row that mark a healthy endpoint unhealthy. */
  readonly unhealthyThreshold: number;
  /** Passed checks in a row that mark an unhealthy endpoint healthy again. */
  readonly healthyThreshold: number;
  /** Statuses that pass, inclusive. */
  readonly expectStatus: { readonly min: number; readonly max: number };
}

export const HEALTH_CHECK_DEFAULT: Omit<HealthCheck, 'path'> = Object.freeze({
  intervalMs: 5_000,
  timeoutMs: 1_000,
  unhealthyThreshold: 3,
  healthyThreshold: 2,
  expectStatus: Object.freeze({ min: 200, max: 399 }),
});

/** least_request: the power of two choices, by requests in flight or waiting. */
export type UpstreamBalance = 'round_robin' | 'least_request' | 'random';

export interface OutlierDetection {
  /** Failures in a row (connect failures, 502/503/504 answers) that eject an endpoint. */
  readonly consecutiveFailures: number;
  /** The first ejection's length; each repeat doubles it, up to ten times this. */
  readonly baseEjectionMs: number;
  /** At most this share of the endpoints (rounded down) is ejected at once; 0 turns ejection off. */
  readonly maxEjectionPercent: number;
}

export const OUTLIER_DETECTION_DEFAULT: OutlierDetection = Object.freeze({ consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 50 });

export interface UpstreamLimits {
  /** Requests that may wait for one endpoint's pooled connection; beyond: 503 upstream_overflow. */
  readonly maxPending: number;
  /** Streams one HTTP/2 session to the endpoint carries at once (fewer if the upstream's SETTINGS say so). Absent: 100. */
  readonly maxConcurrentStreams?: number;
}

export const UPSTREAM_LIMITS_DEFAULT: UpstreamLimits = Object.freeze({ maxPending: 1024, maxConcurrentStreams: 100 });

export type BalancePolicy = 'round_robin' | 'least_connections';

export interface Backend {
  readonly name: string;
  readonly endpoints: readonly Address[];
  readonly balance: BalancePolicy;
  readonly proxyProtocol?: 'v1' | 'v2';
  readonly connectTimeoutMs: number;
}

export type StaleCrlPolicy = 'enforce' | 'reject_all';

/** Certificate lifecycle: reload, revocation and expiry warnings (issue: certificate lifecycle). */
export interface Lifecycle {
  /** Watch certificate, key, bundle and CRL files and hot-reload them. */
  readonly watch: boolean;
  /** Close established client connections whose certificate a new CRL revokes. */
  readonly closeRevokedConnections: boolean;
  /** What to do with a CRL past its nextUpdate: keep enforcing it (warned, counted) or refuse every client. */
  readonly staleCrl: StaleCrlPolicy;
  /** Warn when a certificate has less than this fraction of its lifetime left. */
  readonly expiryWarningFraction: number;
}

export interface SessionTickets {
  readonly enabled: boolean;
  /** Optional 48-byte-per-key file shared by replicas; absent: keys generated by the primary. */
  readonly keyFile?: string;
  readonly rotateMs: number;
  /** TLS 1.3 tickets issued per full handshake (1..8); OpenSSL's default is 2. */
  readonly perHandshake: number;
}

export interface Admin {
  readonly address: Address;
  /** A file holding the bearer token that POST endpoints (/reload) require; read at each request. */
  readonly tokenFile?: string;
}

/** Graceful stop (SIGTERM, SIGINT, POST /drain; docs/operations.md). */
export interface Drain {
  /** Listeners keep accepting this long after /readyz turns 503, so load balancers deregister first. */
  readonly delayMs: number;
  /** Then connections still open after this long (relays, tunnels, slow requests) are closed. */
  readonly timeoutMs: number;
}

export interface GatewayConfig {
  /** Where the config came from: a file path or `<embedded default>`. */
  readonly source: string;
  readonly admin: Admin;
  readonly listeners: readonly Listener[];
  readonly upstreams: readonly Upstream[];
  readonly backends: readonly Backend[];
  readonly lifecycle: Lifecycle;
  readonly sessionTickets: SessionTickets;
  /** Worker processes; 0 means one per core. */
  readonly workers: number;
  /** Reload when the configuration file changes (as SIGHUP does). Opt-in; absent: false. */
  readonly watchConfig?: boolean;
  readonly drain: Drain;
  /** Absent: no access log. */
  readonly accessLog?: AccessLogConfig;
}

/** One JSON line per request and per relayed connection. */
export interface AccessLogConfig {
  /** `stdout`, `stderr`, or an absolute file path (appended to). */
  readonly path: string;
  /** The share of requests logged, 0 < sample <= 1. */
  readonly sample: number;
}
