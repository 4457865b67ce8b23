// Access logs and request ids (issue 18), end to end over real mTLS: one JSON line per request in
// the access_log file — 200, 403 and 502 each with the caller's identity, the request id, the
// status and (for refusals) the reason, the route, the endpoint, TLS version, bytes — written in
// batches and complete once the gateway closes; x-request-id generated, sent upstream, returned to
// the client, a client's own kept only on a route that trusts it; traceparent passed through.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { setLogLevel } from '../gateway/log.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request, type TestResponse } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { holdRefusedPort, type RefusedPort } from './support/refused-port.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id, type WrittenCert } from './support/test-pki.js';

let certs: ProxyCerts;
let outsider: WrittenCert;
let upstream: ScriptedTlsUpstream;
let gateway: RunningGateway;
let dead: RefusedPort;
let port: number;
let logFile: string;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  outsider = await certs.pki.issue('outsider', { spiffeId: id('outsider'), usage: 'client' });
  upstream = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path: p }) => socket.write(okResponse(`hello ${p}`)));
  dead = await holdRefusedPort();
  const upstreams: Upstream[] = [certs.upstream('live', upstream.port), certs.upstream('dead', dead.port)];
  const routes = [
    terminateRoute('dead', 'dead', allow(id('frontend')), { match: { pathPrefix: '/dead' } }),
    terminateRoute('trusting', 'live', allow(id('frontend')), { match: { pathPrefix: '/trusting' }, trustRequestId: true }),
    terminateRoute('live', 'live', allow(id('frontend'))),
  ];
  logFile = path.join(certs.pki.dir, 'access.log');
  setLogLevel('silent');
  gateway = await startGateway({ ...gatewayConfig([certs.listener(routes)], upstreams), accessLog: { path: logFile, sample: 1 } });
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
  await dead?.close();
  certs?.pki.cleanup();
});

const send = (p: string, extra: { cert?: WrittenCert; headers?: Record<string, string> } = {}) =>
  request({ port, ca: certs.pki.ca.rootPem, cert: extra.cert ?? certs.frontend, path: p, headers: extra.headers });

type Line = Record<string, unknown>;
const readLines = (): Line[] => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : []);
const requestId = (res: TestResponse) => res.headers['x-request-id'] as string;

describe('access log and request ids', () => {
  let ok: TestResponse;
  let denied: TestResponse;
  let failed: TestResponse;

  beforeAll(async () => {
    ok = await send('/hello?secret=1');
    denied = await send('/hello', { cert: outsider });
    failed = await send('/dead/x');
    // Batches leave every 100 ms.
    const deadline = Date.now() + 3000;
    while (readLines().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  });

  it('writes one line for a 200 with identity, request id, route, endpoint, TLS facts and bytes; the query is left out', () => {
    expect(ok.status).toBe(200);
    expect(requestId(ok)).toMatch(UUID);
    const line = readLines().find((l) => l.request_id === requestId(ok));
    expect(line).toMatchObject({
      kind: 'request',
      listener: 'public',
      route: 'live',
      method: 'GET',
      path: '/hello',
      protocol: 'HTTP/1.1',
      status: 200,
      upstream: 'live',
      endpoint: `127.0.0.1:${upstream.port}`,
      attempts: 1,
      bytes_in: 0,
      bytes_out: Buffer.byteLength('hello /hello?secret=1'),
      identity: id('frontend'),
      tls_version: 'TLSv1.3',
      resumed: false,
    });
    expect(line!.reason).toBeUndefined();
    expect(typeof line!.duration_ms).toBe('number');
    expect(line!.upstream_ms as number).toBeLessThanOrEqual(line!.duration_ms as number);
    expect(Date.parse(line!.time as string)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('writes the 403 and the 502 with their reasons, identities and request ids, which the client got too', () => {
    const lines = readLines();
    expect(denied.status).toBe(403);
    expect(lines.find((l) => l.request_id === requestId(denied))).toMatchObject({ status: 403, reason: 'not_allowed', route: 'live', identity: id('outsider') });
    expect(failed.status).toBe(502);
    expect(lines.find((l) => l.request_id === requestId(failed))).toMatchObject({ status: 502, reason: 'upstream_unavailable', route: 'dead', upstream: 'dead', identity: id('frontend') });
    expect(requestId(denied)).toMatch(UUID);
    expect(requestId(failed)).toMatch(UUID);
    expect(new Set([requestId(ok), requestId(denied), requestId(failed)]).size).toBe(3);
  });

  it('sends the request id upstream; replaces a client id unless the route trusts it; passes traceparent through', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const before = upstream.requests.length;
    const replaced = await send('/hello', { headers: { 'x-request-id': 'client-chosen', traceparent } });
    expect(requestId(replaced)).toMatch(UUID);
    const head = upstream.requests[before]!.head.toLowerCase();
    expect(head).toContain(`x-request-id: ${requestId(replaced)}`);
    expect(head).not.toContain('client-chosen');
    expect(head).toContain(`traceparent: ${traceparent}`);

    const kept = await send('/trusting/x', { headers: { 'x-request-id': 'client-chosen' } });
    expect(requestId(kept)).toBe('client-chosen');
    expect(upstream.requests[before + 1]!.head.toLowerCase()).toContain('x-request-id: client-chosen');
    // The log names the id the upstream and the client saw.
    const deadline = Date.now() + 3000;
    const logged = () => readLines().filter((l) => l.path === '/trusting/x');
    while (logged().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(logged().map((l) => l.request_id)).toEqual(['client-chosen']);
  });
});

describe('request duration histogram', () => {
  it('observes each answered request of a route once, from the route to the end of the answer (gatehouse_request_duration_seconds)', async () => {
    const { registry } = await import('../gateway/metrics/registry.js');
    const count = async () => {
      const metric = await registry.getSingleMetric('gatehouse_request_duration_seconds')!.get();
      return metric.values.find((v) => (v as { metricName?: string }).metricName === 'gatehouse_request_duration_seconds_count' && v.labels.route === 'public/live')?.value ?? 0;
    };
    const before = await count();
    for (let i = 0; i < 3; i++) expect((await send(`/timed-${i}`)).status).toBe(200);
    expect((await count()) - before).toBe(3);
    const metric = await registry.getSingleMetric('gatehouse_request_duration_seconds')!.get();
    const sum = metric.values.find((v) => (v as { metricName?: string }).metricName === 'gatehouse_request_duration_seconds_sum' && v.labels.route === 'public/live')!.value;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(10);
  });
});

describe('access log of passthrough relays', () => {
  it('writes one line per relayed connection when it ends: route, backend, endpoint, SNI, bytes each way', async () => {
    const { backend, frontDoorListener, passthroughRoute, tlsBackend, tlsClient } = await import('./support/front-door-harness.js');
    const serverCert = await certs.pki.issue('relay-backend', { spiffeId: id('relay-backend'), dnsNames: ['a.passthrough.test'], usage: 'server' });
    const target = await tlsBackend({ name: 'a', cert: serverCert, ca: certs.pki.ca.rootPem });
    const relayLog = path.join(certs.pki.dir, 'relay-access.log');
    const relaying = await startGateway({
      ...gatewayConfig([frontDoorListener([passthroughRoute('to-a', 'a', { sni: ['a.passthrough.test'] })])], []),
      backends: [backend('a', [target.port])],
      accessLog: { path: relayLog, sample: 1 },
    });
    try {
      const edge = relaying.listeners.get('edge')!.address().port;
      const { socket, firstLine } = await tlsClient({ port: edge, servername: 'a.passthrough.test', ca: certs.pki.ca.rootPem, cert: certs.frontend });
      expect(firstLine.backend).toBe('a');
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.end();
      });
      await relaying.close(); // the last batch is written on close
      const lines = fs.readFileSync(relayLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ kind: 'relay', listener: 'edge', route: 'to-a', upstream: 'a', endpoint: `127.0.0.1:${target.port}`, sni: 'a.passthrough.test' });
      expect(lines[0]!.bytes_in as number).toBeGreaterThan(200); // the ClientHello and the rest of the handshake
      expect(lines[0]!.bytes_out as number).toBeGreaterThan(200);
    } finally {
      await relaying.close();
      await target.close();
    }
  });
});
