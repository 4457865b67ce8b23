// Upstream resilience (issue 19), end to end over real mTLS on loopback: requests of every method,
// bodies included, fail over when an endpoint's connection cannot be made (nothing was sent, the
// body not yet read).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { setLogLevel, setLogSink, type LogSink } from '../gateway/log.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { freePort } from './support/gatehouse-cli.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let live: ScriptedTlsUpstream;
let deadPort: number;
let previousSink: LogSink;
const logged: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  live = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, async ({ socket, path, method, bodyLength }) => {
    const length = await bodyLength;
    socket.write(okResponse(`${method} ${path} ${length}`));
  });
  deadPort = await freePort(); // free a moment ago: nothing listens there, connecting is refused
  const upstreams: Upstream[] = [certs.upstream('twoEndpoints', 0, { ports: [deadPort, live.port] })];
  const routes = upstreams.map((u) => terminateRoute(u.name, u.name, allow(id('frontend')), { match: { pathPrefix: `/${u.name}` } }));
  previousSink = setLogSink((line) => logged.push(JSON.parse(line) as Record<string, unknown>));
  setLogLevel('warn');
  gateway = await startGateway(gatewayConfig([certs.listener(routes)], upstreams));
  port = listenerPort(gateway);
});

afterAll(async () => {
  setLogSink(previousSink);
  setLogLevel('silent');
  await gateway?.close();
  await live?.close();
  certs?.pki.cleanup();
});

const send = (path: string, method = 'GET', body?: string) =>
  request({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path, method, body, headers: body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) } });

/** The gateway's failed attempts on the dead endpoint since `from` (log lines), each retried. */
const refusedAttempts = (from: number) => logged.slice(from).filter((l) => l.event === 'upstream_failed' && l.reason === 'upstream_unavailable' && l.upstream === 'twoEndpoints');

describe('upstream resilience: connect failures fail over for every method', () => {
  it('serves every POST with a body (and PUT, PATCH, DELETE) when one of two endpoints refuses connections', async () => {
    const from = logged.length;
    const before = live.requests.length;
    const methods = ['POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'POST'];
    for (let i = 0; i < 12; i++) {
      const method = methods[i % methods.length]!;
      const body = `payload-${i}-`.repeat(i + 1);
      const res = await send(`/twoEndpoints/seq-${i}`, method, body);
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe(`${method} /twoEndpoints/seq-${i} ${body.length}`); // the whole body reached the live endpoint
    }
    expect(live.requests.length - before).toBe(12);
    // Round robin handed half of the first attempts to the dead endpoint; each was retried.
    const refused = refusedAttempts(from);
    expect(refused.length).toBe(6);
    expect(refused.every((l) => l.retry === true && l.attempt === 1)).toBe(true);
  });

  it('serves concurrent POSTs with bodies: zero failures, the dead endpoint tried', async () => {
    const from = logged.length;
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => send(`/twoEndpoints/concurrent-${i}`, 'POST', 'x'.repeat(1000 + i))));
    for (const [i, res] of results.entries()) {
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe(`POST /twoEndpoints/concurrent-${i} ${1000 + i}`);
    }
    expect(refusedAttempts(from).length).toBeGreaterThan(0);
    expect(refusedAttempts(from).every((l) => l.retry === true)).toBe(true);
  });
});
