// What a client's request may and may not make an upstream believe, end to end on loopback: real
// mTLS into the gateway, hand-written request bytes (header case, duplicates and targets exactly
// as sent), a real upstream that echoes what it received. Client identity headers are removed in
// every XFCC mode; Host is one valid header; paths are normalized before routing and forwarded as
// routed; XFCC Chain carries the client's chain; response headers the upstream's Connection
// header names do not reach the client.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIntermediateCa, issueLeaf } from '../certs/dev-ca.js';
import type { TerminateRoute, XfccMode } from '../gateway/config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { rawRequest, rawRequestsOnOneConnection, type RawConnectionOptions, type RawResponse } from './support/raw-https.js';
import { startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { captureLogs, metricValue } from './support/lifecycle-harness.js';
import { id, type TestPki, type WrittenCert } from './support/test-pki.js';

const XFCC_MODES: readonly XfccMode[] = ['sanitize', 'forward_only', 'append_forward', 'sanitize_set', 'always_forward_only'];

let pki: TestPki;
let gateway: RunningGateway;
let upstream: DemoUpstream;
let rawUpstream: ScriptedTlsUpstream;
let port: number;
/** A listener none of whose routes allows ';' parameters or double encoding (the usual config). */
let strictPort: number;
const certs: Record<string, WrittenCert> = {};
let intermediatePem: string;

/** Answers each request with the response its path names (item 13): Connection-named headers. */
const RAW_RESPONSES: Record<string, string> = {
  '/raw/named':
    'HTTP/1.1 200 OK\r\nConnection: set-cookie, X-Hop\r\nSet-Cookie: session=upstream-connection-only\r\nX-Hop: 1\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok',
  '/raw/two-connection-headers':
    'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nSet-Cookie: a=1\r\nconnection: SET-COOKIE\r\nset-cookie: b=2\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok',
  '/raw/keep-alive':
    'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nSet-Cookie: session=kept\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok',
};

beforeAll(async () => {
  const proxyCerts = await ProxyCerts.issue({ serverDnsNames: ['localhost', 'api.test'], serverIpAddresses: ['127.0.0.1'] });
  pki = proxyCerts.pki;
  const intermediate = await createIntermediateCa(pki.ca, { commonName: 'Test Intermediate CA', trustDomain: 'test.gatehouse' });
  intermediatePem = intermediate.certPem;
  certs.frontend = proxyCerts.frontend;
  certs.chained = pki.write('chained', await issueLeaf(intermediate, { spiffeId: id('chained'), usage: 'client' }));
  // The client CAs: the root and the intermediate that issues `chained` (peer-chain.ts says why).
  const bundle = path.join(pki.dir, 'client-cas.crt');
  fs.writeFileSync(bundle, pki.ca.rootPem + intermediate.certPem);

  upstream = await startDemoUpstream({ certPem: proxyCerts.origin.chainPem, keyPem: proxyCerts.origin.keyPem, caPem: pki.ca.rootPem });
  rawUpstream = await startScriptedTlsUpstream(proxyCerts.origin, pki.ca.rootPem, ({ socket, path }) =>
    socket.write(RAW_RESPONSES[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'),
  );

  const callers = allow(id('frontend'), id('chained'));
  const route = (name: string, pathPrefix: string, extra: Partial<TerminateRoute> = {}, upstreamName = 'echo') =>
    terminateRoute(name, upstreamName, callers, { ...extra, match: { pathPrefix, ...extra.match } });
  gateway = await startGateway(
    gatewayConfig(
      [
        proxyCerts.listener(
          [
            // Only spiffe://…/admin may call /admin: every spelling of it must meet this route.
            terminateRoute('admin', 'echo', allow(id('admin')), { match: { pathPrefix: '/admin', caseInsensitive: true } }),
            terminateRoute('internal', 'echo', allow(id('admin')), { match: { pathPrefix: '/internal' } }),
            ...XFCC_MODES.map((mode) => route(`xfcc-${mode}`, `/xfcc/${mode}`, { xfcc: mode })),
            route('strip', '/strip', { stripHeaders: ['x-internal-user', 'x-debug-*'] }),
            route('trusted', '/trusted', { trustClientIdentityHeaders: true }),
            route('chain', '/chain', { xfccDetails: { subject: false, uri: true, dns: false, cert: false, chain: true } }),
            route('params', '/params', { allowPathParameters: true }),
            route('double', '/double', { allowDoubleEncoding: true }),
            route('keep-slashes', '/keep', { mergeSlashes: false }),
            route('raw', '/raw', {}, 'raw'),
            route('catch-all', '/'),
          ],
          { trustBundle: bundle },
        ),
        proxyCerts.listener([terminateRoute('admin', 'echo', allow(id('admin')), { match: { pathPrefix: '/admin' } }), route('catch-all', '/')], { name: 'strict', trustBundle: bundle }),
      ],
      [proxyCerts.upstream('echo', upstream.port), proxyCerts.upstream('raw', rawUpstream.port)],
    ),
  );
  port = listenerPort(gateway);
  strictPort = listenerPort(gateway, 'strict');
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
  await rawUpstream?.close();
  pki?.cleanup();
});

const as = (cert: string, servername = 'localhost'): RawConnectionOptions => ({ port, ca: pki.ca.rootPem, cert: certs[cert]!, servername });
/** As a client that connects by IP address: no SNI. */
const withoutSni = (cert: string): RawConnectionOptions => ({ ...as(cert), servername: undefined });
/** A GET with `lines` (each "Name: value") after Host, unless `lines` brings its own Host lines. */
const get = (target: string, lines: string[] = [], host: string | null = 'localhost') =>
  `GET ${target} HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
const echoed = (res: RawResponse) => {
  expect(res.status, res.body).toBe(200);
  return res.json<{ path: string; headers: Record<string, string> }>();
};

const refusals = (reason: string) => metricValue('gatehouse_http_refusals_total', { listener: 'public', reason });

describe('client identity headers', () => {
  /** One of each kind the product promises to remove (a prefix by a few of its members). */
  const NAMES = [
    'Client-Cert',
    'Client-Cert-Chain',
    'X-SSL-Client-Cert',
    'X-SSL-Client-Verify',
    'X-SSL-Client-S-DN',
    'X-SSL-Client-I-DN',
    'X-SSL-Client-Serial',
    'X-SSL-Cert',
    'X-SSL-Issuer',
    'SSL-Client-Cert',
    'SSL-Client-S-DN',
    'SSL-Client-Verify',
    'X-Client-Cert',
    'X-Client-Cert-Chain-Verified',
    'X-Client-DN',
    'X-Client-S-DN',
    'X-Client-I-DN',
    'X-Client-Verify',
    'X-Forwarded-Tls-Client-Cert',
    'X-Forwarded-Tls-Client-Cert-Info',
    'X-Amzn-Mtls-Clientcert',
    'X-Amzn-Mtls-Clientcert-Subject',
    'X-ARR-ClientCert',
  ];
  const mixedCase = (name: string) => [...name].map((c, i) => (i % 2 ? c.toLowerCase() : c.toUpperCase())).join('');
  /** Every name as written, lowercase, uppercase, in mixed case and with '_' for '-', the lowercase one twice. */
  const forged = NAMES.flatMap((name, i) =>
    [name, name.toLowerCase(), name.toLowerCase(), name.toUpperCase(), mixedCase(name), name.replaceAll('-', '_')].map((spelling, j) => `${spelling}: FORGED-${i}-${j}`),
  );
  /** Near the names above, but not identity headers: they must arrive. */
  const lookalikes = ['X-Client-Id: KEPT-1', 'X-SSL: KEPT-2', 'SSL-Client: KEPT-3', 'Client-Certificate-Hint: KEPT-4', 'X-Client-Request: KEPT-5', 'X-Forwarded-Host: KEPT-6'];
  const kept = ['KEPT-1', 'KEPT-2', 'KEPT-3', 'KEPT-4', 'KEPT-5', 'KEPT-6'];

  it.each(XFCC_MODES)('are removed in xfcc mode %s (every case and duplicate, _ for -), and only they', async (mode) => {
    const seen = echoed(await rawRequest(as('frontend'), get(`/xfcc/${mode}`, [...forged, ...lookalikes])));
    const text = JSON.stringify(seen.headers);
    expect(text).not.toContain('FORGED');
    for (const value of kept) expect(text).toContain(value);
  });

  it('strip_headers removes the names and prefixes a route adds, beside the identity headers', async () => {
    const internal = ['X-Internal-User: FORGED-a', 'x-internal-user: FORGED-b', 'X_INTERNAL_USER: FORGED-c', 'X-Debug-Trace: FORGED-d', 'x-debug-: FORGED-e'];
    const seen = echoed(await rawRequest(as('frontend'), get('/strip', [...internal, ...forged, 'X-Internal-Users: KEPT-x', 'X-Debu: KEPT-y'])));
    const text = JSON.stringify(seen.headers);
    expect(text).not.toContain('FORGED');
    expect(seen.headers['x-internal-users']).toBe('KEPT-x');
    expect(seen.headers['x-debu']).toBe('KEPT-y');
    // The same headers on a route without strip_headers arrive.
    const other = echoed(await rawRequest(as('frontend'), get('/', ['X-Internal-User: KEPT-z'])));
    expect(other.headers['x-internal-user']).toBe('KEPT-z');
  });

  it('trust_client_identity_headers lets every one of them through, as sent', async () => {
    const seen = echoed(await rawRequest(as('frontend'), get('/trusted', NAMES.map((name, i) => `${name}: TRUSTED-${i}`))));
    for (const [i, name] of NAMES.entries()) expect(seen.headers[name.toLowerCase()]).toBe(`TRUSTED-${i}`);
  });
});

describe('Host', () => {
  it.each([
    ['two identical Host headers', ['Host: localhost', 'Host: localhost'], 'duplicate'],
    ['a second Host in another case', ['Host: localhost', 'hOST: evil.test'], 'duplicate'],
    ['a second Host further down', ['Host: localhost', 'X-A: 1', 'host: localhost'], 'duplicate'],
    ['no Host', [], 'missing'],
    ['an empty Host', ['Host: '], 'missing'],
    ['a Host with a path', ['Host: localhost/admin'], 'invalid'],
    ['a Host with userinfo', ['Host: evil@localhost'], 'invalid'],
    ['a Host list', ['Host: localhost,evil.test'], 'invalid'],
    ['a Host with a port that is not a number', ['Host: localhost:x'], 'invalid'],
  ])('answers 400 bad_host to %s, naming the rule, sending the upstream nothing', async (_label, lines, rule) => {
    const before = upstream.received.length;
    const counted = await refusals('bad_host');
    const res = await rawRequest(as('frontend'), get('/', lines, null));
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ reason: 'bad_host', rule });
    expect(upstream.received.length).toBe(before);
    expect(await refusals('bad_host')).toBe(counted + 1);
  });

  it('refuses an HTTP/1.0 request without Host too', async () => {
    const res = await rawRequest(as('frontend'), 'GET / HTTP/1.0\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ reason: 'bad_host', rule: 'missing' });
  });

  it('accepts a host with a port, an IPv4 address and an IPv6 literal when no SNI was sent', async () => {
    for (const host of ['localhost:8443', '127.0.0.1', '[::1]:8443', 'api.test']) {
      const seen = echoed(await rawRequest(withoutSni('frontend'), get('/', [], host)));
      expect(seen.headers.host).toBe(host);
    }
  });

  it('checks every request of a keep-alive connection, whatever Host the one before it sent', async () => {
    const [first, invalid, other, mismatched] = await rawRequestsOnOneConnection(
      as('frontend'),
      get('/', [], 'localhost'),
      get('/', [], 'localhost/admin'),
      get('/', [], 'LOCALHOST'),
      get('/', [], 'api.test'),
    );
    expect(echoed(first!).headers.host).toBe('localhost');
    expect(invalid!.json()).toMatchObject({ reason: 'bad_host', rule: 'invalid' });
    expect(echoed(other!).headers.host).toBe('LOCALHOST');
    expect(mismatched!.status).toBe(421);
  });

  it('compares Host with SNI when the client sent one', async () => {
    const res = await rawRequest(as('frontend', 'localhost'), get('/', [], 'api.test'));
    expect(res.status).toBe(421);
    expect(res.json().reason).toBe('sni_host_mismatch');
  });
});

describe('request paths', () => {
  it.each([
    ['/admin'],
    ['/%61dmin'],
    ['/%41DMIN'],
    ['/ADMIN'],
    ['//admin'],
    ['///admin/x'],
    ['/adm%69n/'],
  ])('%s meets the /admin route (normalized, case-insensitive there) and is refused to the caller it does not allow', async (target) => {
    const before = upstream.received.length;
    const res = await rawRequest(as('frontend'), get(target));
    expect(res.status).toBe(403);
    expect(res.json()).toMatchObject({ reason: 'not_allowed', route: 'admin' });
    expect(upstream.received.length).toBe(before);
  });

  it.each([
    ['/public/..;/admin', 'dot_segment'],
    ['/public/../admin', 'dot_segment'],
    ['/public/%2e%2e/admin', 'dot_segment'],
    ['/public/.%2E;x/admin', 'dot_segment'],
    ['/./admin', 'dot_segment'],
    ['/public/..', 'dot_segment'],
    ['/%2561dmin', 'double_encoding'],
    ['/%252fadmin', 'double_encoding'],
    ['/admin;x=1', 'path_parameters'],
    ['/;x/admin', 'path_parameters'],
    ['/public;/admin', 'path_parameters'],
    ['/public%2fadmin', 'encoded_separator'],
    ['/public%5Cadmin', 'encoded_separator'],
    ['/public\\admin', 'backslash'],
    ['/admin%00.json', 'encoded_control'],
    ['/admin%0a', 'encoded_control'],
    ['/a%zz', 'bad_percent_encoding'],
    ['/a%4', 'bad_percent_encoding'],
    ['/a#/admin', 'fragment'],
    ['*', 'not_origin_form'],
    ['http://localhost/admin', 'not_origin_form'],
  ])('refuses %s with 400 bad_path naming the rule %s, sending the upstream nothing', async (target, rule) => {
    const before = upstream.received.length;
    const counted = await refusals('bad_path');
    const res = await rawRequest(as('frontend'), get(target));
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ reason: 'bad_path', rule });
    expect(upstream.received.length).toBe(before);
    expect(await refusals('bad_path')).toBe(counted + 1);
  });

  it.each([
    ['/%2561dmin', 'double_encoding'],
    ['/admin;x=1', 'path_parameters'],
    ['/;x/admin', 'path_parameters'],
    ['/public/..;/admin', 'dot_segment'],
  ])('refuses %s with rule %s before routing where no route allows ; or double encoding', async (target, rule) => {
    const before = upstream.received.length;
    const res = await rawRequest({ ...as('frontend'), port: strictPort }, get(target));
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ reason: 'bad_path', rule });
    expect(upstream.received.length).toBe(before);
  });

  it('logs a refused path and a refused Host with the rule, as JSON lines', async () => {
    const logs = captureLogs();
    try {
      await rawRequest(as('frontend'), get('/public/..;/admin'));
      await rawRequest(as('frontend'), get('/', ['Host: localhost', 'Host: localhost'], null));
    } finally {
      logs.restore();
    }
    const refused = logs.events('request_refused');
    expect(refused).toEqual([
      expect.objectContaining({ listener: 'public', reason: 'bad_path', rule: 'dot_segment', path: '/public/..;/admin' }),
      expect.objectContaining({ listener: 'public', reason: 'bad_host', rule: 'duplicate' }),
    ]);
  });

  it.each([
    ['/orders/42?x=%61', '/orders/42?x=%61'],
    ['/%7Euser/%61b%63', '/~user/abc'],
    ['/files//a///b/?q=//', '/files/a/b/?q=//'],
    ['/caf%c3%a9?x', '/caf%C3%A9?x'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a.b/c..d/', '/a.b/c..d/'],
    ['/100%25', '/100%25'],
  ])('forwards %s as the path it routed, %s (the query as sent)', async (target, forwarded) => {
    expect(echoed(await rawRequest(as('frontend'), get(target))).path).toBe(forwarded);
  });

  it('matches case-sensitively by default: /INTERNAL is not the /internal route (documented)', async () => {
    expect((await rawRequest(as('frontend'), get('/internal'))).status).toBe(403);
    expect(echoed(await rawRequest(as('frontend'), get('/INTERNAL'))).path).toBe('/INTERNAL');
  });

  it('allow_path_parameters: routed as upstreams that drop them read the path, forwarded as sent', async () => {
    expect(echoed(await rawRequest(as('frontend'), get('/params;jsessionid=1/x;y=2'))).path).toBe('/params;jsessionid=1/x;y=2');
    // Removed, "/;x/params" is "/params": the route that allows them.
    expect(echoed(await rawRequest(as('frontend'), get('/;x/params'))).path).toBe('/;x/params');
    // Removed, "/;x/admin" is "/admin": a route that does not allow them.
    const res = await rawRequest(as('frontend'), get('/;x/admin'));
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ reason: 'bad_path', rule: 'path_parameters' });
    expect((await rawRequest(as('frontend'), get('/params/..;/admin'))).json()).toMatchObject({ rule: 'dot_segment' });
  });

  it('allow_double_encoding: forwarded as sent on the route that allows it, refused elsewhere', async () => {
    expect(echoed(await rawRequest(as('frontend'), get('/double/%2561'))).path).toBe('/double/%2561');
    expect((await rawRequest(as('frontend'), get('/other/%2561'))).json()).toMatchObject({ rule: 'double_encoding' });
  });

  it('merge_slashes: false forwards the slashes as sent, routing on them merged', async () => {
    expect(echoed(await rawRequest(as('frontend'), get('/keep//a/%62'))).path).toBe('/keep//a/b');
    expect(echoed(await rawRequest(as('frontend'), get('//keep/a'))).path).toBe('//keep/a');
  });
});

describe('XFCC Chain', () => {
  const chainOf = (xfcc: string) => {
    const value = /;Chain="([^"]*)"/.exec(xfcc)?.[1];
    expect(value, xfcc).toBeDefined();
    const pem = decodeURIComponent(value!);
    return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).fingerprint256);
  };
  const fingerprints = (pem: string) => [...pem.matchAll(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).fingerprint256);

  it("carries the client's chain, leaf first, without the root: leaf and intermediate", async () => {
    const seen = echoed(await rawRequest(as('chained'), get('/chain')));
    const chain = chainOf(seen.headers['x-forwarded-client-cert']!);
    expect(chain).toEqual(fingerprints(certs.chained!.chainPem));
    expect(chain).toEqual([new X509Certificate(certs.chained!.certPem).fingerprint256, new X509Certificate(intermediatePem).fingerprint256]);
    expect(seen.headers['x-forwarded-client-cert']).toContain(`URI=${id('chained')}`);
  });

  it('carries the leaf alone for a client the root issued', async () => {
    const seen = echoed(await rawRequest(as('frontend'), get('/chain')));
    expect(chainOf(seen.headers['x-forwarded-client-cert']!)).toEqual([new X509Certificate(certs.frontend!.certPem).fingerprint256]);
  });

  it('reads the chain once per connection, and only for a route that asks for it', async () => {
    // Counts the gateway's own detailed reads (its sockets are the ones local to its port), calling through.
    const read = tls.TLSSocket.prototype.getPeerCertificate;
    let reads = 0;
    const spy = vi.spyOn(tls.TLSSocket.prototype, 'getPeerCertificate').mockImplementation(function (this: tls.TLSSocket, detailed?: boolean) {
      if (detailed === true && this.localPort === port) reads++;
      return read.call(this, detailed as true);
    });
    const chainReads = () => reads;
    try {
      const plain = await rawRequestsOnOneConnection(as('chained'), get('/'), get('/xfcc/sanitize_set'));
      for (const res of plain) expect(echoed(res).headers['x-forwarded-client-cert']).not.toContain('Chain=');
      expect(chainReads()).toBe(0);
      const responses = await rawRequestsOnOneConnection(as('chained'), get('/chain'), get('/chain/2'), get('/'), get('/chain/3'));
      const chains = responses.filter((_, i) => i !== 2).map((res) => chainOf(echoed(res).headers['x-forwarded-client-cert']!));
      expect(chains[0]).toHaveLength(2);
      expect(chains).toEqual([chains[0], chains[0], chains[0]]);
      expect(chainReads()).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('response headers named in the upstream Connection header', () => {
  it('are removed (Connection: set-cookie, X-Hop), the others kept', async () => {
    const res = await rawRequest(as('frontend'), get('/raw/named'));
    expect(res.status).toBe(200);
    const names = res.headers.map(([name]) => name.toLowerCase());
    expect(names).not.toContain('set-cookie');
    expect(names).not.toContain('x-hop');
    expect(res.header('x-kept')).toBe('yes');
    expect(res.body).toBe('ok');
  });

  it('are removed whichever of two Connection headers names them, in any case', async () => {
    const res = await rawRequest(as('frontend'), get('/raw/two-connection-headers'));
    expect(res.headers.map(([name]) => name.toLowerCase())).not.toContain('set-cookie');
    expect(res.header('x-kept')).toBe('yes');
  });

  it('leave the others alone when Connection names none (keep-alive)', async () => {
    const res = await rawRequest(as('frontend'), get('/raw/keep-alive'));
    expect(res.header('set-cookie')).toBe('session=kept');
    expect(res.headers.map(([name]) => name.toLowerCase())).not.toContain('keep-alive');
  });
});
