// The configuration schema: reads the YAML document into a GatewayConfig, section by section,
// with the defaults documented in routes/reference.yaml. This is the shape (keys, types,
// formats, required keys, which keys go together); relations between sections are checked on
// the built config by config-rules.ts. Wrong required values become neutral placeholders (''),
// so that the rules can still run and report what else is wrong; the config is only handed out
// when nothing was reported.
import { isScalar, type Node } from 'yaml';
import { trustDomainOf } from '../identity/spiffe-id.js';
import {
  parseAddress,
  parseAlpn,
  parseByteSize,
  parseDuration,
  parseHeaderNamePattern,
  parseHealthPath,
  parseStatusRange,
  parseHostPattern,
  parseIdentityPattern,
  parseName,
  parsePathPrefix,
  parseSpiffeId,
  parseTrustDomain,
} from './config-values.js';
import type {
  Address,
  Admin,
  Authorization,
  Backend,
  ClientAuth,
  Drain,
  GatewayConfig,
  PeerTrust,
  IdentityPattern,
  Lifecycle,
  Listener,
  ListenerLimits,
  ListenerTimeouts,
  ListenerTls,
  PassthroughRoute,
  Route,
  RouteMatch,
  ServerCertificate,
  SessionTickets,
  TerminateRoute,
  Upstream,
  OutlierDetection,
  HealthCheck,
  AccessLogConfig,
  Retries,
  RetryOn,
  RouteTimeouts,
  UpstreamLimits,
  UpstreamTimeouts,
  UpstreamTls,
  XfccDetails,
} from './types.js';
import { HEALTH_CHECK_DEFAULT, LISTENER_LIMITS_DEFAULT, OUTLIER_DETECTION_DEFAULT, RETRIES_DEFAULT, UPSTREAM_LIMITS_DEFAULT } from './types.js';
import { checkCipherName, checkCurveName, checkSuites, type SuiteCheck } from './tls-suites.js';
import { bool, describe, filePath, formatted, fraction, integer, listOf, mapOf, oneOf, type MapReader, type ReadContext, type Reader } from './yaml-reader.js';

// ---- defaults (routes/reference.yaml) ----

const ADMIN_DEFAULT: Admin = { address: { host: '127.0.0.1', port: 9901 } };
const LIFECYCLE_DEFAULT: Lifecycle = { watch: true, closeRevokedConnections: true, staleCrl: 'enforce', expiryWarningFraction: 0.2 };
const SESSION_TICKETS_DEFAULT: SessionTickets = { enabled: true, rotateMs: 3_600_000, perHandshake: 1 };
const DRAIN_DEFAULT: Drain = { delayMs: 0, timeoutMs: 30_000 };
const LISTENER_TIMEOUTS_DEFAULT: ListenerTimeouts = { helloMs: 5_000, handshakeMs: 10_000, idleMs: 60_000, requestHeadersMs: 30_000, requestBodyMs: 30_000 };
const UPSTREAM_TIMEOUTS_DEFAULT: UpstreamTimeouts = { connectMs: 5_000, headersMs: 30_000, idleMs: 60_000, bodyMs: 60_000 };
const XFCC_DETAILS_DEFAULT: XfccDetails = { subject: true, uri: true, dns: true, cert: false, chain: false };
const MAX_CONNECTIONS_DEFAULT = 10_000;
const MAX_REQUEST_BODY_DEFAULT = 64 * 1024 * 1024;
const UPSTREAM_CONNECTIONS_DEFAULT = 64;
const DNS_REFRESH_DEFAULT = 30_000;
const CONNECT_TIMEOUT_DEFAULT = 5_000;

// ---- placeholders for wrong required values (never in a config that is handed out) ----

const NO_ADDRESS: Address = { host: '', port: 0 };
const NO_CLIENT_AUTH: ClientAuth = { trustBundle: '', requireSpiffeId: true };
const DENY_ALL: Authorization = { allow: [], allowPlaintext: false };
const ANY_PATH: RouteMatch = { pathPrefix: '/' };

// ---- value readers ----

/** Node's timers take at most 2^31-1 ms (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration of at least `minMs` (0: "do not wait" is a valid answer, as for drain.delay). */
function durationFrom(minMs: 0 | 1): Reader<number> {
  return (node, at, cx) => {
    const ms = formatted('a duration with a unit, like 5s', parseDuration)(node, at, cx);
    if (ms === undefined) return undefined;
    if (ms >= minMs && ms <= MAX_TIMER_MS) return ms;
    cx.problems.atValue(at, ms === 0 ? 'must be longer than 0' : 'is longer than a timer can wait (24 days)');
    return undefined;
  };
}
const duration = durationFrom(1);
const durationOrZero = durationFrom(0);

/** Bytes: a whole number, a size with a unit (64MiB, 10MB) or `unlimited`. */
const byteSize: Reader<number> = (node, at, cx) =>
  isScalar(node) && typeof node.value === 'number'
    ? integer(0, Number.MAX_SAFE_INTEGER)(node, at, cx)
    : formatted('a size with a unit, like 64MiB, or unlimited', parseByteSize)(node, at, cx);

/** A map of durations: YAML key → field, each with its default. */
function timeouts<K extends string, F extends string>(fields: Readonly<Record<K, F>>, defaults: Readonly<Record<F, number>>): Reader<Record<F, number>> {
  const keys = Object.keys(fields) as K[];
  return (node, at, cx) => {
    const m = cx.map(node, at, keys);
    if (!m) return undefined;
    const values = {} as Record<F, number>;
    for (const key of keys) values[fields[key]] = m.withDefault(key, duration, defaults[fields[key]]);
    return values;
  };
}

const name = formatted('a name', parseName);
const address = formatted('an address (host:port)', parseAddress);
const hostPattern = formatted('a host name or *.suffix', (s) => parseHostPattern(s, { wildcard: true, ip: true }));
const sniPattern = formatted('a server name or *.suffix', (s) => parseHostPattern(s, { wildcard: true, ip: false }));
const dnsName = formatted('a DNS name', (s) => parseHostPattern(s, { wildcard: false, ip: false }));
const alpnId = formatted('an ALPN protocol id', parseAlpn);
const pathPrefix = formatted('a path prefix, like /api', parsePathPrefix);
const workloadId = formatted('a SPIFFE ID, like spiffe://example.com/ns/prod/sa/api', (s) => parseSpiffeId(s, { requirePath: true }));
const trustDomain = formatted('a trust domain, like example.com', parseTrustDomain);
const sniList = listOf(sniPattern, { unique: true, example: '[api.example.com, "*.example.com"]' });
const headerNameList = listOf(formatted('a header name, or a prefix ending in *', parseHeaderNamePattern), { unique: true, example: '[x-internal-user, "x-debug-*"]' });
const healthPath = formatted('a request path, like /healthz', parseHealthPath);
/** `200-399`, `200`, or a bare YAML number 200. */
const statusRange: Reader<{ min: number; max: number }> = (node, at, cx) => {
  if (!isScalar(node) || typeof node.value !== 'number') return formatted('a status range, like 200-399', parseStatusRange)(node, at, cx);
  const status = integer(100, 599)(node, at, cx);
  return status === undefined ? undefined : { min: status, max: status };
};
const endpointList = listOf(address, { min: 1, unique: true, example: '[10.0.0.10:8443]' });

/** One file, or a list of them (`crl: a.crl` or `crl: [root.crl, intermediate.crl]`). */
const fileOrFiles: Reader<string | string[]> = (node, at, cx) => (isScalar(node) ? filePath(node, at, cx) : listOf(filePath, { min: 1, unique: true, example: '[root.crl, intermediate.crl]' })(node, at, cx));

/** A cipher suite or group name checked against OpenSSL; a weak but valid choice is a warning. */
function suiteName(what: string, check: (name: string) => SuiteCheck): Reader<string> {
  const asText = formatted(what, (s) => ({ ok: true, value: s }));
  return (node, at, cx) => {
    const name = asText(node, at, cx);
    if (name === undefined) return undefined;
    const result = check(name);
    if (!result.ok) {
      cx.problems.atValue(at, result.problem);
      return undefined;
    }
    if (result.warning !== undefined) cx.problems.warn(at, result.warning);
    return result.value;
  };
}
const cipherList = listOf(suiteName('a cipher suite name', checkCipherName), { min: 1, unique: true, example: '[ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]' });
const curveList = listOf(suiteName('a key exchange group', checkCurveName), { min: 1, unique: true, example: '[X25519, P-256]' });

/** `ciphers` and `curves` together, as OpenSSL will load them (once each name passed). */
function readSuites(m: MapReader<'ciphers' | 'curves'>, minVersion: 'TLSv1.2' | 'TLSv1.3', cx: ReadContext): { ciphers?: string[]; curves?: string[] } {
  const ciphers = m.optional('ciphers', cipherList);
  const curves = m.optional('curves', curveList);
  if ((ciphers !== undefined || curves !== undefined) && !cx.problems.hasProblemAt(m.pathOf('ciphers')) && !cx.problems.hasProblemAt(m.pathOf('curves'))) {
    const problem = checkSuites(ciphers, curves, minVersion);
    if (problem !== undefined) cx.problems.atValue(m.pathOf(ciphers !== undefined ? 'ciphers' : 'curves'), problem);
  }
  return { ...(ciphers && { ciphers }), ...(curves && { curves }) };
}

/** Terminate listeners serve HTTP/2 (h2) and HTTP/1.1; offering anything else would break clients that pick it. */
const terminateAlpn = formatted('an ALPN protocol id', (s) =>
  s === 'h2' || s === 'http/1.1' ? { ok: true, value: s } : { ok: false, problem: `'${s}' cannot be offered: terminate routes serve h2 and http/1.1` },
);
const TERMINATE_ALPN_DEFAULT = ['h2', 'http/1.1'];

/** Node's HTTP/2 header list limit tops out at 16 MiB - 1; a few KiB is what real requests use. */
const MAX_HEADER_BYTES = 8 * 1024 * 1024;
const headerBytes: Reader<number> = (node, at, cx) => {
  const bytes = byteSize(node, at, cx);
  if (bytes === undefined) return undefined;
  if (bytes >= 1024 && bytes <= MAX_HEADER_BYTES) return bytes;
  cx.problems.atValue(at, `must be between 1KiB and 8MiB (a header list needs a limit: it is held in memory whole)`);
  return undefined;
};

// ---- sections ----

const ROOT_KEYS = ['workers', 'admin', 'lifecycle', 'session_tickets', 'listeners', 'upstreams', 'backends', 'watch_config', 'drain', 'access_log'] as const;

/** Reads the whole document; undefined when it is not even a mapping. */
export function readGatewayConfig(cx: ReadContext, source: string): GatewayConfig | undefined {
  const contents = cx.doc.contents as Node | null;
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    cx.problems.atValue('', 'the configuration is empty: it needs at least a listeners list (see routes/reference.yaml)');
    return undefined;
  }
  cx.problems.place('', contents.range?.[0] ?? 0);
  const root = cx.map(contents, '', ROOT_KEYS, { routes: 'listeners[].routes', tls: 'listeners[].tls' });
  if (!root) return undefined;
  return cx.track(
    {
      source,
      workers: root.withDefault('workers', integer(0, 1024), 0),
      admin: root.withDefault('admin', readAdmin, ADMIN_DEFAULT),
      lifecycle: root.withDefault('lifecycle', readLifecycle, LIFECYCLE_DEFAULT),
      sessionTickets: root.withDefault('session_tickets', readSessionTickets, SESSION_TICKETS_DEFAULT),
      listeners: root.required('listeners', listOf(readListener, { min: 1 }), 'a gateway needs at least one listener') ?? [],
      upstreams: root.withDefault('upstreams', listOf(readUpstream), []),
      backends: root.withDefault('backends', listOf(readBackend), []),
      watchConfig: root.withDefault('watch_config', bool, false),
      drain: root.withDefault('drain', readDrain, DRAIN_DEFAULT),
      accessLog: root.optional('access_log', readAccessLog),
    },
    '',
  );
}

const readAccessLog: Reader<AccessLogConfig> = (node, at, cx) => {
  const m = cx.map(node, at, ['path', 'sample']);
  if (!m) return undefined;
  return { path: m.withDefault('path', logPath, 'stdout'), sample: m.withDefault('sample', share, 1) };
};

/** stdout, stderr, or a file (resolved against the config's directory). */
const logPath: Reader<string> = (node, at, cx) => (isScalar(node) && (node.value === 'stdout' || node.value === 'stderr') ? node.value : filePath(node, at, cx));

/** A share: more than 0, at most 1. */
const share: Reader<number> = (node, at, cx) => {
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value === 'number' && value > 0 && value <= 1) return value;
  cx.problems.atValue(at, `expected a share above 0 and at most 1 (like 0.1 or 1.0), got ${describe(node)}`);
  return undefined;
};

const readAdmin: Reader<Admin> = (node, at, cx) => {
  const m = cx.map(node, at, ['address', 'token_file']);
  return m && { address: m.withDefault('address', address, ADMIN_DEFAULT.address), tokenFile: m.optional('token_file', filePath) };
};

const readDrain: Reader<Drain> = (node, at, cx) => {
  const m = cx.map(node, at, ['delay', 'timeout']);
  if (!m) return undefined;
  const drain = { delayMs: m.withDefault('delay', durationOrZero, DRAIN_DEFAULT.delayMs), timeoutMs: m.withDefault('timeout', duration, DRAIN_DEFAULT.timeoutMs) };
  // The timeout bounds the whole drain, from the signal: a delay as long would leave nothing to finish in.
  if (drain.delayMs >= drain.timeoutMs) cx.problems.atValue(m.pathOf('delay'), `must be shorter than drain.timeout (${drain.timeoutMs} ms), which counts from the stop signal`);
  return drain;
};

const readLifecycle: Reader<Lifecycle> = (node, at, cx) => {
  const m = cx.map(node, at, ['watch', 'close_revoked_connections', 'stale_crl', 'expiry_warning_fraction']);
  return (
    m && {
      watch: m.withDefault('watch', bool, LIFECYCLE_DEFAULT.watch),
      closeRevokedConnections: m.withDefault('close_revoked_connections', bool, LIFECYCLE_DEFAULT.closeRevokedConnections),
      staleCrl: m.withDefault('stale_crl', oneOf(['enforce', 'reject_all'] as const), LIFECYCLE_DEFAULT.staleCrl),
      expiryWarningFraction: m.withDefault('expiry_warning_fraction', fraction(0, 1), LIFECYCLE_DEFAULT.expiryWarningFraction),
    }
  );
};

const readSessionTickets: Reader<SessionTickets> = (node, at, cx) => {
  const m = cx.map(node, at, ['enabled', 'key_file', 'rotate', 'per_handshake']);
  return (
    m && {
      enabled: m.withDefault('enabled', bool, SESSION_TICKETS_DEFAULT.enabled),
      keyFile: m.optional('key_file', filePath),
      rotateMs: m.withDefault('rotate', duration, SESSION_TICKETS_DEFAULT.rotateMs),
      perHandshake: m.withDefault('per_handshake', integer(1, 8), SESSION_TICKETS_DEFAULT.perHandshake),
    }
  );
};

const LISTENER_KEYS = ['name', 'address', 'mode', 'max_connections', 'max_connections_per_source', 'timeouts', 'tls', 'routes', 'max_request_body', 'limits'] as const;

const readListener: Reader<Listener> = (node, at, cx) => {
  const m = cx.map(node, at, LISTENER_KEYS, { certificates: 'tls.certificates', client_auth: 'tls.client_auth', min_version: 'tls.min_version', alpn: 'tls.alpn' });
  if (!m) return undefined;
  return cx.track(
    {
      name: m.required('name', name) ?? '',
      address: m.required('address', address) ?? NO_ADDRESS,
      mode: m.withDefault('mode', oneOf(['STRICT', 'PERMISSIVE'] as const), 'STRICT'),
      tls: m.optional('tls', readListenerTls),
      routes: m.required('routes', listOf(readRoute, { min: 1 })) ?? [],
      maxConnections: m.withDefault('max_connections', integer(1, 1_000_000), MAX_CONNECTIONS_DEFAULT),
      maxConnectionsPerSource: m.optional('max_connections_per_source', integer(1, 1_000_000)),
      timeouts: m.withDefault('timeouts', readListenerTimeouts, LISTENER_TIMEOUTS_DEFAULT),
      maxRequestBodyBytes: m.withDefault('max_request_body', byteSize, MAX_REQUEST_BODY_DEFAULT),
      limits: m.withDefault('limits', readListenerLimits, LISTENER_LIMITS_DEFAULT),
    },
    at,
  );
};

const readListenerLimits: Reader<ListenerLimits> = (node, at, cx) => {
  const m = cx.map(node, at, ['max_concurrent_streams', 'max_header_bytes']);
  if (!m) return undefined;
  return {
    maxConcurrentStreams: m.withDefault('max_concurrent_streams', integer(1, 100_000), LISTENER_LIMITS_DEFAULT.maxConcurrentStreams),
    maxHeaderBytes: m.withDefault('max_header_bytes', headerBytes, LISTENER_LIMITS_DEFAULT.maxHeaderBytes),
  };
};

const readListenerTimeouts: Reader<ListenerTimeouts> = timeouts(
  { hello: 'helloMs', handshake: 'handshakeMs', idle: 'idleMs', request_headers: 'requestHeadersMs', request_body: 'requestBodyMs' },
  LISTENER_TIMEOUTS_DEFAULT,
);

const readListenerTls: Reader<ListenerTls> = (node, at, cx) => {
  const m = cx.map(node, at, ['certificates', 'client_auth', 'min_version', 'alpn', 'ciphers', 'curves'], {
    trust_bundle: 'client_auth.trust_bundle',
    trust_domains: 'client_auth.trust_domains',
    crl: 'client_auth.crl',
    require_spiffe_id: 'client_auth.require_spiffe_id',
  });
  if (!m) return undefined;
  const minVersion = m.withDefault('min_version', oneOf(['TLSv1.2', 'TLSv1.3'] as const), 'TLSv1.2');
  return {
    certificates: m.required('certificates', listOf(readServerCertificate, { min: 1 }), 'a TLS listener needs a certificate') ?? [],
    clientAuth: m.required('client_auth', readClientAuth, 'mTLS is always on for TLS listeners: name the trust bundle of the client CAs') ?? NO_CLIENT_AUTH,
    minVersion,
    alpn: m.withDefault('alpn', listOf(terminateAlpn, { min: 1, unique: true, example: '[h2, http/1.1]' }), TERMINATE_ALPN_DEFAULT),
    ...readSuites(m, minVersion, cx),
  };
};

const readServerCertificate: Reader<ServerCertificate> = (node, at, cx) => {
  const m = cx.map(node, at, ['sni', 'cert', 'key']);
  if (!m) return undefined;
  return cx.track({ sni: m.withDefault('sni', sniList, []), cert: m.required('cert', filePath) ?? '', key: m.required('key', filePath) ?? '' }, at);
};

const readClientAuth: Reader<ClientAuth> = (node, at, cx) => {
  const m = cx.map(node, at, ['trust_bundle', 'trust_domains', 'crl', 'require_spiffe_id']);
  if (!m) return undefined;
  const trust = readPeerTrust(m, "the CAs that issue the clients' certificates", cx);
  const requireSpiffeId = m.withDefault('require_spiffe_id', bool, true);
  if (trust.trustDomains && m.has('require_spiffe_id') && !requireSpiffeId) {
    cx.problems.atValue(m.pathOf('require_spiffe_id'), 'cannot be false with trust_domains: a client is verified by the bundle of its SPIFFE ID\'s trust domain, and a certificate without one has none');
  }
  return { ...trust, crl: m.optional('crl', fileOrFiles), requireSpiffeId };
};

const bundleByDomain = mapOf(parseTrustDomain, filePath, { min: 1, example: '{ example.com: ca-example.pem, partner.example: ca-partner.pem }' });

/** trust_bundle (one bundle), or trust_domains (a bundle per SPIFFE trust domain): exactly one of them. */
function readPeerTrust(m: MapReader<'trust_bundle' | 'trust_domains'>, what: string, cx: ReadContext): PeerTrust {
  if (m.has('trust_bundle') && m.has('trust_domains')) {
    cx.problems.atKey(m.pathOf('trust_domains'), 'set trust_bundle or trust_domains, not both: one bundle for a single trust domain, or a bundle per trust domain');
    return { trustBundle: '' };
  }
  if (m.has('trust_domains')) {
    const domains = m.optional('trust_domains', bundleByDomain);
    return { trustDomains: (domains ?? []).map(({ key, value }) => ({ trustDomain: key, bundle: value })) };
  }
  return { trustBundle: m.required('trust_bundle', filePath, `${what} (or trust_domains: a bundle per SPIFFE trust domain)`) ?? '' };
}

// ---- routes ----

const TERMINATE_KEYS = [
  'match',
  'upstream',
  'authorize',
  'xfcc',
  'xfcc_details',
  'max_request_body',
  'strip_headers',
  'trust_client_identity_headers',
  'merge_slashes',
  'allow_path_parameters',
  'allow_double_encoding',
  'retries',
  'timeouts',
  'trust_request_id',
  'grpc',
] as const;
const ROUTE_KEYS = ['name', ...TERMINATE_KEYS, 'passthrough', 'backend'] as const;
type RouteKey = (typeof ROUTE_KEYS)[number];
const PASSTHROUGH_KEYS = ['passthrough', 'backend'] as const;

const readRoute: Reader<Route> = (node, at, cx) => {
  const m = cx.map(node, at, ROUTE_KEYS, {
    host: 'match.host',
    path_prefix: 'match.path_prefix',
    case_insensitive: 'match.case_insensitive',
    allow: 'authorize.allow',
    allow_plaintext: 'authorize.allow_plaintext',
    sni: 'passthrough.sni',
    default: 'passthrough.default',
    alpn: 'passthrough.alpn',
  });
  if (!m) return undefined;
  const routeName = m.required('name', name) ?? '';
  const terminateKeys = TERMINATE_KEYS.filter((k) => m.has(k));
  const passthroughKeys = PASSTHROUGH_KEYS.filter((k) => m.has(k));
  if (terminateKeys.length > 0 && passthroughKeys.length > 0) {
    cx.problems.atValue(
      at,
      `mixes terminate keys (${terminateKeys.join(', ')}) with passthrough keys (${passthroughKeys.join(', ')}): ` +
        'a route either terminates TLS (match, upstream, authorize) or relays it untouched (passthrough, backend)',
    );
    return undefined;
  }
  if (passthroughKeys.length > 0) return cx.track(readPassthroughRoute(m, routeName), at);
  if (terminateKeys.length > 0) return cx.track(readTerminateRoute(m, routeName), at);
  cx.problems.atValue(at, 'a route needs match, upstream and authorize (to terminate TLS) or passthrough and backend (to relay it untouched)');
  return undefined;
};

function readTerminateRoute(m: MapReader<RouteKey>, routeName: string): TerminateRoute {
  return {
    kind: 'terminate',
    name: routeName,
    match: m.required('match', readMatch, "which requests this route takes (path_prefix: / for all)") ?? ANY_PATH,
    upstream: m.required('upstream', name, 'the upstream that receives the requests') ?? '',
    authorization: m.required('authorize', readAuthorization, 'who may call this route (an empty allow list denies everyone)') ?? DENY_ALL,
    xfcc: m.withDefault('xfcc', oneOf(['sanitize', 'forward_only', 'append_forward', 'sanitize_set', 'always_forward_only'] as const), 'sanitize_set'),
    xfccDetails: m.withDefault('xfcc_details', readXfccDetails, XFCC_DETAILS_DEFAULT),
    maxRequestBodyBytes: m.optional('max_request_body', byteSize),
    stripHeaders: m.withDefault('strip_headers', headerNameList, []),
    trustClientIdentityHeaders: m.withDefault('trust_client_identity_headers', bool, false),
    trustRequestId: m.withDefault('trust_request_id', bool, false),
    grpc: m.withDefault('grpc', bool, false),
    mergeSlashes: m.withDefault('merge_slashes', bool, true),
    allowPathParameters: m.withDefault('allow_path_parameters', bool, false),
    allowDoubleEncoding: m.withDefault('allow_double_encoding', bool, false),
    retries: m.optional('retries', readRetries),
    timeouts: m.optional('timeouts', readRouteTimeouts),
  };
}

const readRouteTimeouts: Reader<RouteTimeouts> = (node, at, cx) => {
  const m = cx.map(node, at, ['request']);
  if (!m) return undefined;
  return { requestMs: m.withDefault('request', duration, 0) };
};

const retryOn: Reader<RetryOn> = (node, at, cx) => {
  if (isScalar(node) && typeof node.value === 'number') return integer(500, 599)(node, at, cx);
  return oneOf(['connect_failure', 'reset', 'per_try_timeout'] as const)(node, at, cx);
};

const readRetries: Reader<Retries> = (node, at, cx) => {
  const m = cx.map(node, at, ['attempts', 'on', 'per_try_timeout', 'budget_percent', 'max_buffered_body']);
  if (!m) return undefined;
  const d = RETRIES_DEFAULT;
  return {
    attempts: m.withDefault('attempts', integer(0, 10), d.attempts),
    on: m.withDefault('on', listOf(retryOn, { unique: true, example: '[connect_failure, reset, 503]' }), d.on),
    perTryTimeoutMs: m.withDefault('per_try_timeout', duration, d.perTryTimeoutMs),
    budgetPercent: m.withDefault('budget_percent', integer(0, 100), d.budgetPercent),
    maxBufferedBody: m.withDefault('max_buffered_body', byteSize, d.maxBufferedBody),
  };
};

const readMatch: Reader<RouteMatch> = (node, at, cx) => {
  const m = cx.map(node, at, ['host', 'path_prefix', 'case_insensitive']);
  return (
    m && {
      host: m.optional('host', hostPattern),
      pathPrefix: m.withDefault('path_prefix', pathPrefix, '/'),
      caseInsensitive: m.withDefault('case_insensitive', bool, false),
    }
  );
};

const readAuthorization: Reader<Authorization> = (node, at, cx) => {
  const m = cx.map(node, at, ['allow', 'allow_plaintext']);
  if (!m) return undefined;
  const authorization = {
    allow: m.withDefault('allow', listOf(readIdentityPattern, { unique: true }), []),
    allowPlaintext: m.withDefault('allow_plaintext', bool, false),
  };
  if (authorization.allow.length === 0 && !authorization.allowPlaintext && !cx.problems.hasProblemAt(at)) {
    cx.problems.warn(at, 'allows nobody: the allow list is empty (default deny)');
  }
  return authorization;
};

const identityString = formatted('a SPIFFE ID', parseIdentityPattern);

/** `spiffe://td/path` (exact), `spiffe://td/path/*` (prefix) or `{trust_domain: td}`. */
const readIdentityPattern: Reader<IdentityPattern> = (node, at, cx) => {
  if (isScalar(node) && typeof node.value === 'string') return identityString(node, at, cx);
  if (isScalar(node)) {
    cx.problems.atValue(at, `expected a SPIFFE ID (spiffe://td/path), a prefix (spiffe://td/path/*) or {trust_domain: td}, got ${describe(node)}`);
    return undefined;
  }
  const m = cx.map(node, at, ['trust_domain']);
  const td = m?.required('trust_domain', trustDomain);
  return td === undefined ? undefined : { kind: 'trust_domain', trustDomain: td };
};

const XFCC_DETAILS = ['subject', 'uri', 'dns', 'cert', 'chain'] as const;

const readXfccDetails: Reader<XfccDetails> = (node, at, cx) => {
  const parts = listOf(oneOf(XFCC_DETAILS), { unique: true, example: '[subject, uri, dns]' })(node, at, cx);
  if (parts === undefined) return undefined;
  const has = (part: (typeof XFCC_DETAILS)[number]) => parts.includes(part);
  return { subject: has('subject'), uri: has('uri'), dns: has('dns'), cert: has('cert'), chain: has('chain') };
};

interface PassthroughMatch {
  readonly sni: readonly string[];
  readonly default: boolean;
  readonly alpn: string | undefined;
}

function readPassthroughRoute(m: MapReader<RouteKey>, routeName: string): PassthroughRoute {
  const match = m.required('passthrough', readPassthroughMatch, 'which connections to relay (sni names, or default: true)');
  return {
    kind: 'passthrough',
    name: routeName,
    sni: match?.sni ?? [],
    default: match?.default ?? false,
    alpn: match?.alpn,
    backend: m.required('backend', name, 'the backend that receives the connections') ?? '',
  };
}

const readPassthroughMatch: Reader<PassthroughMatch> = (node, at, cx) => {
  const m = cx.map(node, at, ['sni', 'default', 'alpn']);
  if (!m) return undefined;
  const match = { sni: m.withDefault('sni', sniList, []), default: m.withDefault('default', bool, false), alpn: m.optional('alpn', alpnId) };
  if (match.sni.length === 0 && !match.default && !cx.problems.hasProblemAt(at)) {
    cx.problems.atValue(at, 'matches nothing: list sni names, or set default: true to take the connections no other route claims');
  }
  return match;
};

// ---- upstreams and backends ----

const readUpstream: Reader<Upstream> = (node, at, cx) => {
  const m = cx.map(node, at, ['name', 'endpoints', 'connections', 'timeouts', 'tls', 'limits', 'outlier_detection', 'balance', 'health_check', 'retries', 'dns_refresh', 'dns_resolvers', 'protocol']);
  if (!m) return undefined;
  return cx.track(
    {
      name: m.required('name', name) ?? '',
      endpoints: m.required('endpoints', endpointList) ?? [],
      tls: m.optional('tls', readUpstreamTls),
      connections: m.withDefault('connections', integer(1, 100_000), UPSTREAM_CONNECTIONS_DEFAULT),
      timeouts: m.withDefault('timeouts', readUpstreamTimeouts, UPSTREAM_TIMEOUTS_DEFAULT),
      balance: m.withDefault('balance', oneOf(['round_robin', 'least_request', 'random'] as const), 'round_robin'),
      limits: m.withDefault('limits', readUpstreamLimits, UPSTREAM_LIMITS_DEFAULT),
      outlierDetection: m.withDefault('outlier_detection', readOutlierDetection, OUTLIER_DETECTION_DEFAULT),
      healthCheck: m.optional('health_check', readHealthCheck),
      retries: m.optional('retries', readRetries),
      dnsRefreshMs: m.withDefault('dns_refresh', duration, DNS_REFRESH_DEFAULT),
      dnsResolvers: m.optional('dns_resolvers', listOf(address, { min: 1, unique: true, example: '[10.0.0.2:53]' })),
      protocol: m.withDefault('protocol', oneOf(['http1', 'h2', 'auto'] as const), 'http1'),
    },
    at,
  );
};

const readUpstreamLimits: Reader<UpstreamLimits> = (node, at, cx) => {
  const m = cx.map(node, at, ['max_pending', 'max_concurrent_streams']);
  if (!m) return undefined;
  const d = UPSTREAM_LIMITS_DEFAULT;
  return {
    maxPending: m.withDefault('max_pending', integer(1, 1_000_000), d.maxPending),
    maxConcurrentStreams: m.withDefault('max_concurrent_streams', integer(1, 10_000), d.maxConcurrentStreams!),
  };
};

const readOutlierDetection: Reader<OutlierDetection> = (node, at, cx) => {
  const m = cx.map(node, at, ['consecutive_failures', 'base_ejection', 'max_ejection_percent']);
  if (!m) return undefined;
  const d = OUTLIER_DETECTION_DEFAULT;
  return {
    consecutiveFailures: m.withDefault('consecutive_failures', integer(1, 1_000_000), d.consecutiveFailures),
    baseEjectionMs: m.withDefault('base_ejection', duration, d.baseEjectionMs),
    maxEjectionPercent: m.withDefault('max_ejection_percent', integer(0, 100), d.maxEjectionPercent),
  };
};

const readHealthCheck: Reader<HealthCheck> = (node, at, cx) => {
  const m = cx.map(node, at, ['path', 'interval', 'timeout', 'unhealthy_threshold', 'healthy_threshold', 'expect_status']);
  if (!m) return undefined;
  const d = HEALTH_CHECK_DEFAULT;
  const check = {
    path: m.required('path', healthPath, 'the path the checks GET, e.g. /healthz') ?? '/',
    intervalMs: m.withDefault('interval', duration, d.intervalMs),
    timeoutMs: m.withDefault('timeout', duration, d.timeoutMs),
    unhealthyThreshold: m.withDefault('unhealthy_threshold', integer(1, 1_000), d.unhealthyThreshold),
    healthyThreshold: m.withDefault('healthy_threshold', integer(1, 1_000), d.healthyThreshold),
    expectStatus: m.withDefault('expect_status', statusRange, d.expectStatus),
  };
  if (check.timeoutMs > check.intervalMs) cx.problems.atValue(m.pathOf('timeout'), `a check's timeout (${check.timeoutMs} ms) must not be longer than the interval (${check.intervalMs} ms)`);
  return check;
};

const readUpstreamTimeouts: Reader<UpstreamTimeouts> = timeouts({ connect: 'connectMs', headers: 'headersMs', idle: 'idleMs', body: 'bodyMs' }, UPSTREAM_TIMEOUTS_DEFAULT);

const readUpstreamTls: Reader<UpstreamTls> = (node, at, cx) => {
  const m = cx.map(node, at, ['cert', 'key', 'trust_bundle', 'trust_domains', 'crl', 'server_name', 'expect_id', 'expect_dns', 'ciphers', 'curves']);
  if (!m) return undefined;
  if (m.has('expect_id') && m.has('expect_dns')) {
    cx.problems.atKey(m.pathOf('expect_dns'), "set expect_id or expect_dns, not both: the upstream's identity is one or the other");
  } else if (!m.has('expect_id') && !m.has('expect_dns')) {
    cx.problems.atValue(m.pathOf('expect_id'), "required key is missing: the upstream's identity to verify, expect_id (a SPIFFE ID) or expect_dns (a DNS name)");
  }
  const tls = {
    cert: m.required('cert', filePath, "the gateway's client certificate chain toward this upstream") ?? '',
    key: m.required('key', filePath) ?? '',
    ...readPeerTrust(m, "the CAs that issue the upstream's certificate", cx),
    crl: m.optional('crl', fileOrFiles),
    serverName: m.optional('server_name', dnsName),
    expectId: m.optional('expect_id', workloadId),
    expectDns: m.optional('expect_dns', dnsName),
    ...readSuites(m, 'TLSv1.2', cx),
  };
  if (tls.trustDomains) checkExpectedTrustDomain(tls, m, cx);
  return tls;
};

/** With a bundle per trust domain, the upstream is verified by the bundle of expect_id's trust domain. */
function checkExpectedTrustDomain(tls: UpstreamTls, m: MapReader<'expect_id' | 'expect_dns' | 'trust_domains'>, cx: ReadContext): void {
  const domains = tls.trustDomains ?? [];
  if (tls.expectDns !== undefined) {
    cx.problems.atKey(m.pathOf('expect_dns'), "trust_domains picks the upstream's bundle by the trust domain of expect_id, and a DNS name has none: use expect_id, or trust_bundle");
    return;
  }
  const expected = tls.expectId === undefined ? undefined : trustDomainOf(tls.expectId);
  if (expected === undefined || domains.length === 0 || cx.problems.hasProblemAt(m.pathOf('trust_domains'))) return;
  if (!domains.some((d) => d.trustDomain === expected)) {
    cx.problems.atValue(
      m.pathOf('expect_id'),
      `trust domain '${expected}' has no bundle in trust_domains (${domains.map((d) => d.trustDomain).join(', ')}): the upstream's certificate could never be verified`,
    );
  }
}

const readBackend: Reader<Backend> = (node, at, cx) => {
  const m = cx.map(node, at, ['name', 'endpoints', 'balance', 'proxy_protocol', 'connect_timeout']);
  if (!m) return undefined;
  return cx.track(
    {
      name: m.required('name', name) ?? '',
      endpoints: m.required('endpoints', endpointList) ?? [],
      balance: m.withDefault('balance', oneOf(['round_robin', 'least_connections'] as const), 'round_robin'),
      proxyProtocol: m.optional('proxy_protocol', oneOf(['v1', 'v2'] as const)),
      connectTimeoutMs: m.withDefault('connect_timeout', duration, CONNECT_TIMEOUT_DEFAULT),
    },
    at,
  );
};
