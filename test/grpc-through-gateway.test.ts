// gRPC through the gateway, judged by real gRPC peers on both sides (@grpc/grpc-js with mTLS):
// all four streaming modes with trailers, cancellation both ways, grpc-timeout as the request's
// deadline, the identity the upstream is told (XFCC), the gateway's own refusals as gRPC statuses
// a client can read (trailers-only, reason in grpc-message), and the demo's health service.
// It needs HTTP/2 on both sides of the gateway (issue 17's branches h2down and h2up): until then
// the suite is skipped by a feature probe and only the check that its configuration is otherwise
// valid runs.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, parseConfig } from '../gateway/config/load-config.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { callGrpc } from '../gateway/demo/grpc-call.js';
import { GRPC_STATUS } from '../gateway/grpc/grpc-wire.js';
import { encodeHealthCheckRequest, HEALTH_CHECK_PATH } from '../gateway/demo/health-messages.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { CLI, runCommand } from './support/gatehouse-cli.js';
import { gatewaySpeaksH2, parseH2Probe } from './support/gateway-h2-probe.js';
import { grpcCallScenarios, nextCalls } from './support/grpc-call-scenarios.js';
import { ECHO_PATHS, grpcClient, startStallingUpstream, startTestGrpcServer, type StallingUpstream, type TestGrpcClient, type TestGrpcServer } from './support/grpc-peers.js';
import type { ClientCert } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { holdRefusedPort, type RefusedPort } from './support/refused-port.js';
import { id, type WrittenCert } from './support/test-pki.js';

/** What scheduling on a busy 2-core machine may add to a deadline, a cancel or a reset. */
const SLACK_MS = 1000;

interface UpstreamPorts {
  readonly grpc: number;
  readonly stalling: number;
  /** Nothing listens there. */
  readonly down: number;
  readonly demo: number;
}

/**
 * The gateway of these tests, in YAML because its two HTTP/2 keys (`tls.alpn` with h2,
 * `protocol: h2 | auto`) are not in main's config types yet; `h2: false` leaves them out. Listener
 * `public` routes the test service to a grpc-js server, a stalling service to an upstream that never
 * answers, a down service to a closed port, the health service to the demo upstream, and has no
 * route for anything else; `lenient` takes certificates without a SPIFFE ID (no identity).
 */
function gatewayYaml(ports: UpstreamPorts, h2 = true): string {
  const alpn = h2 ? '      alpn: [h2, http/1.1]\n' : '';
  const protocol = (p: string) => (h2 ? `    protocol: ${p}\n` : '');
  const frontendOnly = `        authorize: { allow: [${id('frontend')}] }\n`;
  const listenerTls = (extra: string) => `    tls:
${alpn}      certificates:
        - cert: gateway-server.crt
          key: gateway-server.key
      client_auth:
        trust_bundle: ca.crt
${extra}`;
  const upstream = (name: string, port: number, proto: string) => `  - name: ${name}
    endpoints: [127.0.0.1:${port}]
${protocol(proto)}    tls:
      cert: gateway-client.crt
      key: gateway-client.key
      trust_bundle: ca.crt
      expect_id: ${id('origin')}
`;
  return `lifecycle:
  watch: false
listeners:
  - name: public
    address: 127.0.0.1:1
${listenerTls('')}    routes:
      - name: echo
        match: { path_prefix: /gatehouse.test.Echo/ }
        upstream: grpc
${frontendOnly}      - name: stalling
        match: { path_prefix: /gatehouse.test.Stalling/ }
        upstream: stalling
${frontendOnly}      - name: down
        match: { path_prefix: /gatehouse.test.Down/ }
        upstream: down
${frontendOnly}      - name: legacy
        match: { path_prefix: /gatehouse.test.Legacy/ }
        upstream: legacy
${frontendOnly}      - name: health
        match: { path_prefix: /grpc.health.v1.Health/ }
        upstream: demo
${frontendOnly}  - name: lenient
    address: 127.0.0.1:2
${listenerTls('        require_spiffe_id: false\n')}    routes:
      - name: echo
        match: { path_prefix: /gatehouse.test.Echo/ }
        upstream: grpc
${frontendOnly}upstreams:
${upstream('grpc', ports.grpc, 'h2')}${upstream('stalling', ports.stalling, 'h2')}${upstream('down', ports.down, 'h2')}${upstream('demo', ports.demo, 'auto')}${upstream('legacy', ports.grpc, 'http1')}`;
}

describe('the configuration of these tests, and the probe that skips them', () => {
  it('the probe is false only for want of the two HTTP/2 keys (a probe false for another reason would skip these tests for ever)', () => {
    const without = parseH2Probe(false);
    expect(without.ok ? [] : without.problems.map(formatProblem)).toEqual([]);
  });

  it('is valid but for the two HTTP/2 keys, so only the HTTP/2 branches stand between it and running', async () => {
    const certs = await ProxyCerts.issue();
    try {
      const ports = { grpc: 1001, stalling: 1002, down: 1003, demo: 1004 };
      const without = parseConfig(gatewayYaml(ports, false), 'grpc-gateway.yaml', certs.pki.dir);
      expect(without.ok ? [] : without.problems.map(formatProblem)).toEqual([]);
      const withH2 = parseConfig(gatewayYaml(ports), 'grpc-gateway.yaml', certs.pki.dir);
      expect(withH2.ok).toBe(gatewaySpeaksH2);
    } finally {
      certs.pki.cleanup();
    }
  });
});

describe.skipIf(!gatewaySpeaksH2)('gRPC through the gateway (HTTP/2 to clients and to upstreams)', () => {
  let certs: ProxyCerts;
  let intruder: WrittenCert;
  let anonymous: WrittenCert;
  let server: TestGrpcServer;
  let stalling: StallingUpstream;
  let demo: DemoUpstream;
  let down: RefusedPort;
  let gateway: RunningGateway;
  let port: number;
  let lenientPort: number;
  let client: TestGrpcClient;
  const opened: { close(): void }[] = [];

  beforeAll(async () => {
    certs = await ProxyCerts.issue();
    intruder = await certs.pki.issue('intruder', { spiffeId: id('intruder'), usage: 'client' });
    anonymous = await certs.pki.issue('anonymous', { commonName: 'anonymous', dnsNames: ['anonymous.test'], usage: 'client' });
    const tls = { cert: certs.origin, caPem: certs.pki.ca.rootPem };
    server = await startTestGrpcServer(tls);
    stalling = await startStallingUpstream(tls);
    demo = await startDemoUpstream({ certPem: certs.origin.chainPem, keyPem: certs.origin.keyPem, caPem: certs.pki.ca.rootPem });
    const parsed = parseConfig(gatewayYaml({ grpc: server.port, stalling: stalling.port, down: (down = await holdRefusedPort()).port, demo: demo.port }), 'grpc-gateway.yaml', certs.pki.dir);
    if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
    // Listeners on ports the kernel picks (YAML takes no port 0).
    const listeners = parsed.config.listeners.map((l) => ({ ...l, address: { ...l.address, port: 0 } }));
    gateway = await startGateway({ ...parsed.config, listeners, accessLog: { path: accessLogFile(), sample: 1 } }, { admin: false, lifecycle: { debounceMs: 100, pollMs: 0, tickMs: 1000 } });
    port = listenerPort(gateway, 'public');
    lenientPort = listenerPort(gateway, 'lenient');
    client = clientWith(certs.frontend);
  });

  afterEach(() => {
    server.script = {};
  });

  const accessLogFile = () => path.join(certs.pki.dir, 'access.log');
  /** The access log's lines that `match`, once at least one is written (batches leave every 100 ms). */
  async function accessLogLines(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>[]> {
    const read = () => (fs.existsSync(accessLogFile()) ? fs.readFileSync(accessLogFile(), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter(match) : []);
    const deadline = Date.now() + 3000;
    while (read().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return read();
  }

  afterAll(async () => {
    for (const c of opened) c.close();
    client?.close();
    await gateway?.close();
    await server?.close();
    await stalling?.close();
    await demo?.close();
    await down?.close();
    certs?.pki.cleanup();
  });

  function clientWith(cert: ClientCert, listener = port): TestGrpcClient {
    const c = grpcClient({ port: listener, caPem: certs.pki.ca.rootPem, cert });
    opened.push(c);
    return c;
  }

  /** One gRPC call on a fresh HTTP/2 session to the gateway, read off the wire. */
  async function wireCall(pathName: string, opts: { cert?: ClientCert; listener?: number; headers?: Record<string, string>; timeoutMs?: number } = {}) {
    const cert = opts.cert ?? certs.frontend;
    const session = http2.connect(`https://localhost:${opts.listener ?? port}`, { host: '127.0.0.1', servername: 'localhost', ca: certs.pki.ca.rootPem, cert: cert.chainPem, key: cert.keyPem });
    session.on('error', () => {});
    try {
      await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
      return await callGrpc(session, pathName, [Buffer.from('x')], { authority: 'localhost', headers: opts.headers, timeoutMs: opts.timeoutMs });
    } finally {
      session.close();
    }
  }

  grpcCallScenarios(() => ({ client, server, serverSeesPeer: id('gateway') }), { slackMs: SLACK_MS, resets: 'any failure' });

  describe('the identity the upstream is told', () => {
    it('x-forwarded-client-cert names the caller and the gateway', async () => {
      const calls = nextCalls(server);
      expect((await client.unary('x').outcome).code).toBe(grpc.status.OK);
      const xfcc = (await calls.next()).metadata['x-forwarded-client-cert'];
      expect(xfcc).toContain(`URI=${id('frontend')}`);
      expect(xfcc).toContain(`By=${id('gateway')}`);
    });

    it('a client cannot forge it', async () => {
      const calls = nextCalls(server);
      await client.unary('x', { metadata: { 'x-forwarded-client-cert': `URI=${id('admin')}` } }).outcome;
      const xfcc = (await calls.next()).metadata['x-forwarded-client-cert'];
      expect(xfcc).not.toContain(id('admin'));
      expect(xfcc).toContain(`URI=${id('frontend')}`);
    });
  });

  describe('grpc-timeout is the request deadline, enforced by the gateway itself', () => {
    it('an upstream that never answers and enforces nothing: the gateway itself ends the call at grpc-timeout with status 4, and resets the upstream stream', async () => {
      // node:http2 with no client-side timer before 5 s: only the gateway can end this call at 300 ms.
      const before = stalling.streams.length;
      const started = Date.now();
      const result = await wireCall('/gatehouse.test.Stalling/Wait', { headers: { 'grpc-timeout': '300m' }, timeoutMs: 5000 });
      const elapsed = Date.now() - started;
      expect(result).toMatchObject({ httpStatus: 200, grpcStatus: GRPC_STATUS.DEADLINE_EXCEEDED, rstCode: undefined });
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(300 + SLACK_MS);
      expect(stalling.streams.length).toBe(before + 1);
      const closed = await Promise.race([stalling.streams.at(-1)!.closed, new Promise<string>((r) => setTimeout(() => r('still open'), SLACK_MS))]);
      expect(closed, 'the gateway resets the upstream stream it gave up on').not.toBe('still open');
      // The access log says why it ended (not that the client left).
      const lines = await accessLogLines((l) => l.path === '/gatehouse.test.Stalling/Wait');
      expect(lines).toEqual([expect.objectContaining({ status: 504, reason: 'grpc_deadline_exceeded', protocol: 'HTTP/2' })]);
    });
  });

  describe("the gateway's own refusals, as statuses a gRPC client reads (HTTP 200, trailers-only, reason in grpc-message)", () => {
    it.each([
      ['7 PERMISSION_DENIED: an identity not on the allow-list', () => ({ cert: intruder }), ECHO_PATHS.unary, grpc.status.PERMISSION_DENIED, /not_allowed/],
      ['16 UNAUTHENTICATED: a certificate with no SPIFFE ID (no identity)', () => ({ cert: anonymous, listener: lenientPort }), ECHO_PATHS.unary, grpc.status.UNAUTHENTICATED, /no_identity/],
      ['14 UNAVAILABLE: the upstream is down', () => ({}), '/gatehouse.test.Down/Call', grpc.status.UNAVAILABLE, /upstream_unavailable/],
      ['12 UNIMPLEMENTED: no route for the method', () => ({}), '/gatehouse.test.Nowhere/Call', grpc.status.UNIMPLEMENTED, /no_route/],
      ['13 INTERNAL: a route whose upstream speaks HTTP/1.1', () => ({}), '/gatehouse.test.Legacy/Call', grpc.status.INTERNAL, /grpc_needs_http2/],
    ] as const)('%s', async (_name, who, pathName, code, reason) => {
      const { cert = certs.frontend, listener = port } = who() as { cert?: ClientCert; listener?: number };
      const before = server.calls.length;
      const viaClient = await clientWith(cert, listener).unaryAt(pathName, Buffer.from('x'), { deadlineMs: 10_000 }).outcome;
      expect(viaClient.code).toBe(code);
      expect(viaClient.details).toMatch(reason);
      const wire = await wireCall(pathName, { cert, listener });
      expect(wire).toMatchObject({ httpStatus: 200, trailersOnly: true, grpcStatus: code, messages: [] });
      expect(wire.headers['content-type']).toMatch(/^application\/grpc/);
      expect(wire.grpcMessage).toMatch(reason);
      expect(server.calls.length, 'a refused call never reaches the upstream').toBe(before);
    });
  });

  describe("the demo's health service through the gateway", () => {
    it('Check answers SERVING through the gateway, which reached the demo upstream over HTTP/2 (protocol: auto) with XFCC', async () => {
      const result = await client.unaryAt(HEALTH_CHECK_PATH, encodeHealthCheckRequest('')).outcome;
      expect(result.code).toBe(grpc.status.OK);
      expect(result.replies.map((r) => r.toString('hex'))).toEqual(['0801']);
      expect(demo.received.at(-1)).toMatchObject({ path: HEALTH_CHECK_PATH, httpVersion: '2.0', peer: id('gateway') });
      expect(demo.received.at(-1)!.headers['x-forwarded-client-cert']).toContain(`URI=${id('frontend')}`);
    });

    it("a method the demo lacks: its UNIMPLEMENTED, trailers-only, passes through the gateway", async () => {
      const wire = await wireCall('/grpc.health.v1.Health/List');
      expect(wire).toMatchObject({ httpStatus: 200, trailersOnly: true, grpcStatus: GRPC_STATUS.UNIMPLEMENTED });
      expect(wire.grpcMessage).toMatch(/^unknown method/);
    });

    it('`gatehouse grpc-health` through the gateway prints SERVING', async () => {
      const args = [CLI, 'grpc-health', '--address', `127.0.0.1:${port}`, '--servername', 'localhost', '--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile];
      const result = await runCommand([process.execPath, ...args], { cwd: os.tmpdir() });
      expect(result).toMatchObject({ code: 0, stdout: 'SERVING\n' });
    });
  });
});
