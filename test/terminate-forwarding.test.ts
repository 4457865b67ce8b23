// What the terminate path forwards and what it refuses, judged by what the upstream and the client
// actually receive over real TLS on loopback: a request no route matches is answered 404 and
// reaches no upstream, x-forwarded-client-cert follows each of Envoy's five modes for mTLS and
// plaintext callers, and the upstream's hop-by-hop response headers stop at the gateway.
import { createHash, X509Certificate } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Listener, XfccMode } from '../gateway/config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { connectMtls, request } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id, type TestPki, type WrittenCert } from './support/test-pki.js';

const MODES: readonly XfccMode[] = ['sanitize', 'sanitize_set', 'forward_only', 'append_forward', 'always_forward_only'];
/** What an earlier proxy (or a client pretending to be one) sent. */
const INCOMING = 'By=spiffe://elsewhere/ns/edge/sa/proxy;Hash=0123abcd;URI=spiffe://elsewhere/ns/web/sa/caller';

/** Response headers that describe the upstream connection, each with a value an upstream might send. */
const HOP_BY_HOP: readonly [string, string][] = [
  ['connection', 'keep-alive'],
  ['keep-alive', 'timeout=5, max=100'],
  ['proxy-connection', 'keep-alive'],
  ['te', 'trailers'],
  ['trailer', 'x-checksum'],
  ['upgrade', 'h2c'],
  ['proxy-authenticate', 'Basic realm="upstream"'],
];

let pki: TestPki;
let gateway: RunningGateway;
let echo: DemoUpstream;
let scripted: ScriptedTlsUpstream;
let port: number;
let client: WrittenCert;
/** Our own XFCC element for the `frontend` client certificate. */
let ourElement: string;

beforeAll(async () => {
  const certs = await ProxyCerts.issue({ serverDnsNames: ['localhost', 'api.test'] });
  ({ pki, frontend: client } = certs);
  const { origin } = certs;
  const hash = createHash('sha256').update(new X509Certificate(client.certPem).raw).digest('hex');
  ourElement = `By=${id('gateway')};Hash=${hash};Subject="CN=frontend";URI=${id('frontend')}`;

  echo = await startDemoUpstream({ certPem: origin.chainPem, keyPem: origin.keyPem, caPem: pki.ca.rootPem });
  const hopHeaders = HOP_BY_HOP.map(([name, value]) => `${name}: ${value}\r\n`).join('') + 'x-end-to-end: kept\r\n';
  scripted = await startScriptedTlsUpstream(origin, pki.ca.rootPem, ({ socket, path }) => {
    if (path === '/hop/chunked') {
      // The gateway re-frames the body for its client: the upstream's own framing header must not pass too.
      socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n${hopHeaders}\r\n5\r\nhello\r\n0\r\n\r\n`);
    } else {
      socket.write(okResponse('hello', hopHeaders));
    }
  });

  const callers = { ...allow(id('frontend')), allowPlaintext: true };
  const base = certs.listener([
    ...MODES.map((mode) => terminateRoute(`xfcc-${mode}`, 'echo', callers, { match: { pathPrefix: `/xfcc/${mode}` }, xfcc: mode })),
    terminateRoute('hop', 'scripted', callers, { match: { pathPrefix: '/hop' } }),
    terminateRoute('api-host', 'echo', callers, { match: { host: 'api.test', pathPrefix: '/' } }),
    terminateRoute('wild-host', 'echo', callers, { match: { host: '*.wild.test', pathPrefix: '/' } }),
  ]);
  // PERMISSIVE: the same routes serve mTLS and plaintext callers, which the XFCC modes tell apart.
  const listener: Listener = { ...base, mode: 'PERMISSIVE' };
  gateway = await startGateway(gatewayConfig([listener], [certs.upstream('echo', echo.port), certs.upstream('scripted', scripted.port)]));
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  await echo?.close();
  await scripted?.close();
  pki?.cleanup();
});

/** One plaintext request (PERMISSIVE listener), `Connection: close`; resolves with the raw response. */
function plaintextRequest(path: string, host: string, headers = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n${headers}\r\n`));
    let out = '';
    socket.on('data', (c: Buffer) => (out += c.toString('latin1')));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('plaintext request timed out')));
  });
}

const statusOf = (raw: string) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1]);
const bodyOf = (raw: string) => raw.slice(raw.indexOf('\r\n\r\n') + 4);

/** The x-forwarded-client-cert the upstream received for one request (undefined: none). */
async function xfccSeen(mode: XfccMode, caller: 'mtls' | 'plaintext', incoming: string | undefined): Promise<string | undefined> {
  const path = `/xfcc/${mode}`;
  if (caller === 'mtls') {
    const res = await request({ port, ca: pki.ca.rootPem, cert: client, path, headers: incoming === undefined ? {} : { 'x-forwarded-client-cert': incoming } });
    expect(res.status, res.body).toBe(200);
    return res.json().headers['x-forwarded-client-cert'];
  }
  const raw = await plaintextRequest(path, 'localhost', incoming === undefined ? '' : `x-forwarded-client-cert: ${incoming}\r\n`);
  expect(statusOf(raw), raw).toBe(200);
  return JSON.parse(bodyOf(raw)).headers['x-forwarded-client-cert'];
}

/**
 * One request on a fresh mTLS connection without `Connection: close` (so the gateway adds no
 * Connection header of its own); resolves with the raw response head and body once complete.
 */
async function rawGet(path: string): Promise<{ head: string; body: string }> {
  const socket = await connectMtls({ port, ca: pki.ca.rootPem, cert: client });
  try {
    socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
    let raw = '';
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`incomplete response after 5 s: ${JSON.stringify(raw)}`)), 5000);
      socket.on('error', reject);
      socket.on('data', (c: Buffer) => {
        raw += c.toString('latin1');
        const end = raw.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = raw.slice(0, end);
        const body = raw.slice(end + 4);
        const length = /^content-length: (\d+)$/im.exec(head);
        if (length ? body.length >= Number(length[1]) : body.endsWith('0\r\n\r\n')) {
          clearTimeout(timer);
          resolve({ head, body });
        }
      });
    });
  } finally {
    socket.destroy();
  }
}

const headerNames = (head: string) => head.split('\r\n').slice(1).map((line) => line.slice(0, line.indexOf(':')).toLowerCase());

describe('terminate: a request no route matches', () => {
  it('is answered 404 no_route and reaches no upstream, while a route for another host still serves its own', async () => {
    const before = { echo: echo.received.length, scripted: scripted.requests.length };
    // Routes exist for /xfcc/<mode>, /hop (any host), api.test and *.wild.test: none for these.
    for (const path of ['/', '/nothing-here', '/xfcc', '/ho']) {
      const res = await request({ port, ca: pki.ca.rootPem, cert: client, path });
      expect(res.status, `${path}: ${res.body}`).toBe(404);
      expect(res.json().reason).toBe('no_route');
    }
    const plaintext = await plaintextRequest('/anything', 'elsewhere.test');
    expect(statusOf(plaintext), plaintext).toBe(404);
    expect(JSON.parse(bodyOf(plaintext)).reason).toBe('no_route');
    expect({ echo: echo.received.length, scripted: scripted.requests.length }).toEqual(before);

    // The same path on a host that has a route is served by that route.
    for (const host of ['api.test', 'a.wild.test']) {
      const served = await plaintextRequest('/anything', host);
      expect(statusOf(served), served).toBe(200);
      expect(JSON.parse(bodyOf(served)).path).toBe('/anything');
    }
  });
});

describe('terminate: x-forwarded-client-cert per route mode', () => {
  // [mode, caller, what the client sent, what the upstream must receive]: 'theirs' is INCOMING, 'ours' our element.
  const table: [XfccMode, 'mtls' | 'plaintext', 'theirs' | 'nothing', 'theirs' | 'ours' | 'theirs,ours' | 'nothing'][] = [
    ['sanitize', 'mtls', 'theirs', 'nothing'],
    ['sanitize', 'mtls', 'nothing', 'nothing'],
    ['sanitize', 'plaintext', 'theirs', 'nothing'],
    ['sanitize_set', 'mtls', 'theirs', 'ours'],
    ['sanitize_set', 'mtls', 'nothing', 'ours'],
    ['sanitize_set', 'plaintext', 'theirs', 'nothing'],
    ['forward_only', 'mtls', 'theirs', 'theirs'],
    ['forward_only', 'mtls', 'nothing', 'nothing'],
    ['forward_only', 'plaintext', 'theirs', 'nothing'],
    ['append_forward', 'mtls', 'theirs', 'theirs,ours'],
    ['append_forward', 'mtls', 'nothing', 'ours'],
    ['append_forward', 'plaintext', 'theirs', 'nothing'],
    ['always_forward_only', 'mtls', 'theirs', 'theirs'],
    ['always_forward_only', 'mtls', 'nothing', 'nothing'],
    ['always_forward_only', 'plaintext', 'theirs', 'theirs'],
  ];
  it.each(table)('%s, %s caller sending %s: the upstream receives %s', async (mode, caller, sent, expected) => {
    const seen = await xfccSeen(mode, caller, sent === 'theirs' ? INCOMING : undefined);
    expect(seen).toBe(expected === 'nothing' ? undefined : expected.replace('theirs', INCOMING).replace('ours', ourElement));
  });
});

describe('terminate: hop-by-hop response headers', () => {
  it.each(['/hop/sized', '/hop/chunked'])('%s: none of the upstream connection headers reach the client; end-to-end ones do', async (path) => {
    const { head, body } = await rawGet(path);
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    const names = headerNames(head);
    for (const [name] of HOP_BY_HOP) expect(names, `${name} in\n${head}`).not.toContain(name);
    expect(head).toMatch(/^x-end-to-end: kept$/m);
    if (path === '/hop/chunked') {
      // Exactly one framing header: the gateway's own.
      expect(names.filter((n) => n === 'transfer-encoding')).toEqual(['transfer-encoding']);
      expect(body).toBe('5\r\nhello\r\n0\r\n\r\n');
    } else {
      expect(body).toBe('hello');
    }
  });
});
