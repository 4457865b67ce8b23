// The native HTTP/2 engine's client role (gateway/http2/native/h2-engine.c: createClient, request)
// driven by hand over mTLS on loopback against a node:http2 server: the server's SETTINGS reach
// TypeScript with its stream limit, a 1xx head is flagged informational and the final head follows,
// the body arrives as DATA, trailers are flagged as such, and the stream closes cleanly. The
// gateway's use of it (upstream-h2-session.ts) is tested end to end in upstream-h2.test.ts.
import http2, { type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EVENT, h2Engine, headerFields, HEADERS_FLAG, SETTING } from '../gateway/http2/native/h2-engine.js';
import { waitFor } from './support/lifecycle-harness.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

/** An engine event as a plain object. */
type Event = { kind: number; id: number; value: number; headers?: string[]; data?: string };

let pki: TestPki;
let client: WrittenCert;
let server: http2.Http2SecureServer;
let port: number;

beforeAll(async () => {
  expect(h2Engine, 'the addon is built by npm run build (needs libnghttp2-dev)').toBeDefined();
  pki = await TestPki.create();
  const serverCert = await pki.issue('server', { spiffeId: id('server'), dnsNames: ['localhost'], usage: 'server' });
  client = await pki.issue('client', { spiffeId: id('client'), usage: 'client' });
  server = http2.createSecureServer({ cert: serverCert.chainPem, key: serverCert.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true, settings: { maxConcurrentStreams: 7 } });
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.additionalHeaders({ ':status': 103, link: '</a.css>; rel=preload' });
    stream.respond({ ':status': 200, 'x-path': String(headers[':path']) }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end('body of ' + String(headers[':path']));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  pki?.cleanup();
});

it('opens streams, reports SETTINGS with the stream limit, a 1xx head flagged, the final head, data, trailers flagged and the close', async () => {
  const engine = h2Engine!;
  const addon = engine.addon;
  const session = addon.createClient([SETTING.ENABLE_PUSH, 0]);
  const events: Event[] = [];
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.rootPem, cert: client.chainPem, key: client.keyPem, ALPNProtocols: ['h2'] });
  const flush = () => {
    for (let n = addon.pending(session); n > 0; n = addon.pending(session)) socket.write(Buffer.from(engine.output.subarray(0, n)));
  };
  const collect = (text: string, bytes: Buffer) => {
    const e = engine.events;
    for (let i = 1; i < 1 + e[0]!; ) {
      const kind = e[i]!;
      if (kind === EVENT.HEADERS) {
        events.push({ kind, id: e[i + 1]!, value: e[i + 2]!, headers: headerFields(e, i, text) });
        i += 4 + 3 * e[i + 3]!;
      } else if (kind === EVENT.DATA) {
        events.push({ kind, id: e[i + 1]!, value: 0, data: bytes.toString('latin1', e[i + 2]!, e[i + 2]! + e[i + 3]!) });
        i += 4;
      } else {
        events.push({ kind, id: e[i + 1]!, value: e[i + 2]! });
        i += 3;
      }
    }
  };
  socket.on('data', (chunk: Buffer) => {
    collect(engine.receive(session, chunk) ?? '', chunk);
    flush();
  });
  try {
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const request = (path: string) => addon.request(session, [':method', 'GET', ':scheme', 'https', ':authority', 'localhost', ':path', path], undefined, true);
    expect([request('/one'), request('/two')]).toEqual([1, 3]);
    flush();
    await waitFor('both streams closed', () => events.filter((e) => e.kind === EVENT.CLOSE).length === 2 || undefined);

    expect(events.find((e) => e.kind === EVENT.SETTINGS)).toEqual({ kind: EVENT.SETTINGS, id: 0, value: 7 });
    const one = events.filter((e) => e.id === 1);
    expect(one.map((e) => [e.kind, e.kind === EVENT.HEADERS ? e.value : undefined])).toEqual([
      [EVENT.HEADERS, HEADERS_FLAG.INFORMATIONAL],
      [EVENT.HEADERS, 0],
      [EVENT.DATA, undefined],
      [EVENT.HEADERS, HEADERS_FLAG.TRAILERS | HEADERS_FLAG.END_STREAM],
      [EVENT.CLOSE, undefined],
    ]);
    expect(one[0]!.headers).toEqual([':status', '103', 'link', '</a.css>; rel=preload']);
    expect(one[1]!.headers!.slice(0, 2)).toEqual([':status', '200']);
    expect(one[1]!.headers).toContain('/one');
    expect(one[2]!.data).toBe('body of /one');
    expect(one[3]!.headers).toEqual(['grpc-status', '0']);
    expect(one[4]!.value).toBe(0);
  } finally {
    socket.destroy();
    addon.destroy(session);
  }
});

it('refuses request() on a server session', () => {
  const addon = h2Engine!.addon;
  const session = addon.createServer([]);
  try {
    expect(() => addon.request(session, [':method', 'GET'], undefined, true)).toThrow(/request\(clientSession/);
  } finally {
    addon.destroy(session);
  }
});
