// The benchmark's scenarios: what each compares, under which peer settings, with which probes.
// Scenarios 1-4 and 6-10 put gatehouse, HAProxy and NGINX side by side (6 adds gatehouse with
// OpenSSL's two tickets per handshake; 9 and 10 are HTTP/2 and gRPC); 5 is gatehouse alone.
import { cpuProfileProbe } from './cpu-profile.js';
import { CORES, H2_LOAD } from './layout.js';
import type { BenchOptions } from './options.js';
import type { PeerName, PeerSettings } from './peers/peer.js';
import type { Probe } from './probe.js';
import { abKeepAliveProbe, H1_TOOL, H2_TOOL, h2Probe, h2Request, handshakeProbe, httpProbe, idleMemoryProbe, relayBulkProbe, relayConnectionsProbe, relayRequest, sTimeHandshakeProbe, terminateRequest } from './probes.js';

const KEEP_ALIVE_PROFILE = cpuProfileProbe({ id: 'keepalive', what: 'keep-alive', per: 'request', tool: H1_TOOL, request: (t) => terminateRequest(t, 'keepalive') });
const RELAY_PROFILE = cpuProfileProbe({ id: 'relay-connections', what: 'relay, new connections', per: 'connection', tool: H1_TOOL, request: (t) => relayRequest(t, 'handshake') });
const H2_PROFILE = cpuProfileProbe({ id: 'h2-get', what: 'HTTP/2', per: 'request', tool: H2_TOOL, request: (t) => h2Request(t, 'get') });
const GRPC_PROFILE = cpuProfileProbe({ id: 'h2-grpc', what: 'gRPC unary', per: 'call', tool: H2_TOOL, request: (t) => h2Request(t, 'grpc') });

export interface Column {
  readonly key: string;
  readonly label: string;
  readonly peer: PeerName;
  readonly settings?: Partial<PeerSettings>;
}

/** One peer configuration the scenario runs every column under; its label suffixes the rows. */
export interface Variant {
  readonly label?: string;
  readonly settings?: Partial<PeerSettings>;
  /** taskset CPU list for the peer; default the proxy core alone. */
  readonly cpus?: string;
  readonly probes: readonly Probe[];
}

export interface Ratio {
  readonly numerator: string;
  readonly denominator: string;
  readonly label: string;
}

export interface Scenario {
  readonly id: number;
  readonly title: string;
  readonly about: string;
  readonly columns: readonly Column[];
  readonly variants: readonly Variant[];
  readonly ratios: readonly Ratio[];
}

const PEERS: readonly Column[] = [
  { key: 'gatehouse', label: 'gatehouse', peer: 'gatehouse' },
  { key: 'haproxy', label: 'HAProxy', peer: 'haproxy' },
  { key: 'nginx', label: 'NGINX', peer: 'nginx' },
];

const VS_PEERS: readonly Ratio[] = [
  { numerator: 'gatehouse', denominator: 'haproxy', label: 'gatehouse÷HAProxy' },
  { numerator: 'gatehouse', denominator: 'nginx', label: 'gatehouse÷NGINX' },
];

/** Scenarios whose peers proxy to the HTTP/2 origin (./origin-h2.ts), which then has to run. */
export function needsH2Origin(scenario: Scenario): boolean {
  return scenario.variants.some((v) => v.settings?.http2 === true);
}

const H2_STREAMS = `${H2_LOAD.connections} client connections with ${H2_LOAD.streams} streams in flight on each`;

export function allScenarios(options: Pick<BenchOptions, 'idleConnections' | 'quick'>): Scenario[] {
  // The profiles explain a full run's ratios; a smoke check has no time for them.
  const profiled = (probe: Probe): Probe[] => (options.quick ? [] : [probe]);
  return [
    {
      id: 1,
      title: 'Keep-alive, proxied mTLS → mTLS, 1 KB',
      about:
        'Clients keep their mTLS connections open and send requests back to back; the proxy verifies the client certificate once per connection and forwards each request over pooled keep-alive mTLS connections to the origin. The last rows say where each proxy\'s CPU time per request goes, from `perf record` samples during the same load (bench/cpu-profile.ts).',
      columns: PEERS,
      variants: [{ probes: [httpProbe('keepalive'), abKeepAliveProbe(), ...profiled(KEEP_ALIVE_PROFILE)] }],
      ratios: VS_PEERS,
    },
    {
      id: 2,
      title: 'A new client connection per request',
      about:
        'Every request opens a new connection with a full TLS 1.3 mTLS handshake (ECDSA P-256), and the proxy forwards it over its pooled upstream connections. Then handshakes alone (connect, handshake, close), by h1load and, as a cross-check, by openssl s_time.',
      columns: PEERS,
      variants: [{ probes: [httpProbe('close'), handshakeProbe(), sTimeHandshakeProbe()] }],
      ratios: VS_PEERS,
    },
    {
      id: 3,
      title: 'Resumed client connections',
      about:
        "A new connection per request that resumes the session ticket its slot's previous connection received (TLS 1.3 PSK with (EC)DHE); the share of connections actually resumed is shown.",
      columns: PEERS,
      variants: [{ probes: [httpProbe('resume')] }],
      ratios: VS_PEERS,
    },
    {
      id: 4,
      title: 'Passthrough: SNI relay without terminating',
      about:
        'The client talks TLS to the origin itself through the relay listener (SNI origin.bench.test): bulk throughput of 10 MB bodies, and new connections per second (the origin does the handshakes, on the load core). The last rows say where each proxy\'s CPU time per relayed connection goes, from `perf record` samples during the same connection load.',
      columns: PEERS,
      variants: [{ settings: { relay: true }, probes: [relayBulkProbe(), relayConnectionsProbe(), ...profiled(RELAY_PROFILE)] }],
      ratios: VS_PEERS,
    },
    {
      id: 5,
      title: 'gatehouse front door vs bare TLS listener',
      about:
        'The same terminate listener, with and without a passthrough route on it: the route makes gatehouse peek at every ClientHello before handing the socket to its TLS server. Expected ~1.0×.',
      columns: [
        { key: 'bare', label: 'gatehouse, bare TLS listener', peer: 'gatehouse', settings: { frontDoor: false } },
        { key: 'front', label: 'gatehouse, front door', peer: 'gatehouse', settings: { frontDoor: true } },
      ],
      variants: [{ probes: [httpProbe('keepalive'), httpProbe('close')] }],
      ratios: [{ numerator: 'front', denominator: 'bare', label: 'front door÷bare' }],
    },
    {
      id: 6,
      title: 'Session tickets on vs off',
      about:
        "OpenSSL 3.0 re-encodes the client certificate into every session ticket (two per TLS 1.3 handshake by default), so tickets make full handshakes dearer and resumed ones cheap. gatehouse sends one (session_tickets.per_handshake: 1); its second column sends OpenSSL's two, as HAProxy and NGINX do. NGINX has a shared session cache (stateful resumption can remain with tickets off), HAProxy its default cache.",
      columns: [...PEERS, { key: 'gatehouse-2', label: 'gatehouse, 2 tickets per handshake', peer: 'gatehouse', settings: { ticketsPerHandshake: 2 } }],
      variants: [
        { label: 'tickets on', settings: { tickets: true }, probes: [handshakeProbe(), httpProbe('resume')] },
        { label: 'tickets off', settings: { tickets: false }, probes: [handshakeProbe(), httpProbe('resume')] },
      ],
      ratios: [...VS_PEERS, { numerator: 'gatehouse', denominator: 'gatehouse-2', label: '1 ticket÷2 tickets' }],
    },
    {
      id: 7,
      title: 'One worker vs two',
      about:
        'Worker processes (gatehouse, NGINX) or threads (HAProxy). Two workers run on both cores, which they share with the load generator and the origin: compare per-CPU-second figures.',
      columns: PEERS,
      variants: [
        { label: '1 worker', settings: { workers: 1 }, probes: [httpProbe('keepalive'), httpProbe('close')] },
        { label: '2 workers', settings: { workers: 2 }, cpus: CORES.proxyTwoWorkers, probes: [httpProbe('keepalive'), httpProbe('close')] },
      ],
      ratios: VS_PEERS,
    },
    {
      id: 8,
      title: 'Memory per idle mTLS connection',
      about:
        `Resident memory (VmRSS of every process of the peer) before and after a client opens ${options.idleConnections.toLocaleString('en-US')} mTLS connections, completes their handshakes and leaves them idle.`,
      columns: PEERS,
      variants: [{ probes: [idleMemoryProbe()] }],
      ratios: VS_PEERS,
    },
    {
      id: 9,
      title: 'HTTP/2 keep-alive, proxied mTLS → mTLS (many streams per connection), 1 KB',
      about:
        `${H2_STREAMS} (h2load: client certificate, SNI, ALPN h2), GET / answered with 1 KB by an HTTP/2 origin (NGINX, mTLS). HAProxy speaks HTTP/2 to the origin (\`proto h2\`, many streams per connection) and gatehouse too (\`protocol: h2\`); NGINX can only proxy HTTP/1.1 to an upstream (proxy_pass), one request per upstream connection at a time, from a pool of keep-alive connections large enough that it never handshakes per request. The last rows (full runs) say where each proxy's CPU time per request goes (perf, as in scenario 1).`,
      columns: PEERS,
      variants: [{ settings: { http2: true }, probes: [h2Probe('get'), ...profiled(H2_PROFILE)] }],
      ratios: VS_PEERS,
    },
    {
      id: 10,
      title: 'gRPC unary, mTLS → mTLS',
      about:
        `${H2_STREAMS}: gRPC unary calls (\`grpc.health.v1.Health/Check\`, a 12-byte request and a 7-byte answer, gRPC's 5-byte prefix included), counted only when the answer ends with the trailer grpc-status: 0. HAProxy and gatehouse as in scenario 9; NGINX with \`grpc_pass grpcs://\` (HTTP/2 to the origin, one call per upstream connection at a time). The origin is the same NGINX, answering with a HealthCheckResponse and the trailer. The last rows (full runs): CPU time per call by where it goes.`,
      columns: PEERS,
      variants: [{ settings: { http2: true }, probes: [h2Probe('grpc'), ...profiled(GRPC_PROFILE)] }],
      ratios: VS_PEERS,
    },
  ];
}
