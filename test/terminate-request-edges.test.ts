// Edges of the HTTP/1.1 request path end to end: a real mTLS client writing raw request bytes
// (pipelined in one write, or dribbled with pauses), the gateway, and a scripted mTLS upstream that
// records every byte it receives, so that "nothing reached the upstream" is checked on the wire.
// Covered: request body timeout and size limits, a response head whose body comes late, pipelined
// requests followed by a malformed one, malformed chunked bodies and transfer codings, HTTP/2.0
// request lines.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { metricValue } from './support/lifecycle-harness.js';
import { connectMtls } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { startScriptedTlsUpstream, type ScriptedRequest, type ScriptedTlsUpstream, type Transcript } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

/** When the upstream sends the body of /late-* responses, after their head. */
const LATE_MS = 2000;
/** The upstream's response-head timeout: shorter than LATE_MS and than a dribbled body takes. */
const UPSTREAM_HEADERS_MS = 700;
/**
 * The listener's timeouts.request_body. Swept every 500 ms, it fires 1500-2000 ms after the last
 * byte, well after the upstream headers timeout would (700-950 ms, on a 250 ms tick) if that ran.
 */
const REQUEST_BODY_MS = 1500;
/** The listener's max_request_body; the /big route allows BIG_LIMIT. */
const LIMIT = 1000;
const BIG_LIMIT = 100_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (bounded) until `done` holds. */
async function until(done: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(20);
  return done();
}

/**
 * The upstream's script: each complete request (head and body, Content-Length or chunked) is
 * answered with `ok METHOD PATH body=LENGTH`; /late-body and /late-chunked send their head at once
 * and their body LATE_MS later; POST /early is answered once its head is in, before its body, and
 * POST /early-open too but with a response that does not end.
 */
function answer({ socket, method, path, bodyLength }: ScriptedRequest): void {
  if (path.endsWith('/early') || path.endsWith('/early-open')) {
    // -open: a response that has begun and goes on (chunked, not ended).
    if (method === 'POST') socket.write(path.endsWith('/early') ? 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nearly' : 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nearly\r\n');
    return;
  }
  void bodyLength.then((length) => {
    if (path.endsWith('/late-body')) {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n');
      setTimeout(() => socket.write('hello'), LATE_MS);
    } else if (path === '/late-chunked') {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      setTimeout(() => socket.write('5\r\nhello\r\n0\r\n\r\n'), LATE_MS);
    } else {
      const body = `ok ${method} ${path} body=${length}`;
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    }
  });
}

let certs: ProxyCerts;
let upstream: ScriptedTlsUpstream;
let gateway: RunningGateway;
let port: number;
const open: TLSSocket[] = [];

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  upstream = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, answer);
  const listener = certs.listener([
    terminateRoute('big', 'origin', allow(id('frontend')), { match: { pathPrefix: '/big' }, maxRequestBodyBytes: BIG_LIMIT }),
    terminateRoute('single', 'single', allow(id('frontend')), { match: { pathPrefix: '/single' } }),
    terminateRoute('main', 'origin', allow(id('frontend'))),
  ]);
  const originUpstream = certs.upstream('origin', upstream.port);
  gateway = await startGateway(
    gatewayConfig(
      [{ ...listener, maxRequestBodyBytes: LIMIT, timeouts: { ...listener.timeouts, requestBodyMs: REQUEST_BODY_MS } }],
      [
        { ...originUpstream, timeouts: { ...originUpstream.timeouts, headersMs: UPSTREAM_HEADERS_MS } },
        // The same upstream through a pool of one connection: a second request waits for it.
        { ...originUpstream, name: 'single', connections: 1 },
      ],
    ),
  );
  port = listenerPort(gateway);
}, 30_000);

afterAll(async () => {
  for (const socket of open) socket.destroy();
  await gateway?.close();
  await upstream?.close();
  certs?.pki.cleanup();
});

/** A raw mTLS client: what it sent is the test's, what came back is recorded with its arrival time. */
class RawClient {
  received = '';
  closed = false;
  /** When each piece of the response arrived (ms since the epoch), with what had arrived by then. */
  readonly arrivals: { at: number; received: string }[] = [];

  private constructor(readonly socket: TLSSocket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.received += d;
      this.arrivals.push({ at: Date.now(), received: this.received });
    });
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
  }

  /** `allowHalfOpen`: keep sending after the gateway ended its side. */
  static async connect(options: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    const socket = await connectMtls({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, ...options });
    open.push(socket);
    return new RawClient(socket);
  }

  send(text: string): this {
    this.socket.write(text, 'latin1');
    return this;
  }

  /** The status codes of the responses received so far, in order. */
  statuses(): number[] {
    return [...this.received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  }

  /** When the first response's head (through its empty line) had arrived. */
  headArrivedAt(): number | undefined {
    return this.arrivals.find((a) => a.received.includes('\r\n\r\n'))?.at;
  }
}

const HEAD = (method: string, path: string, extra = '') => `${method} ${path} HTTP/1.1\r\nhost: localhost\r\n${extra}\r\n`;
const reasonOf = (received: string) => /"reason":"([a-z_]+)"/.exec(received)?.[1];

/**
 * Leaves an idle upstream connection in the gateway's pool, so that a request dispatched now
 * would reach the upstream at once (with no connection to open, a refusal could beat it there).
 */
async function warmPool(): Promise<void> {
  const c = await RawClient.connect();
  c.send(HEAD('GET', '/warm'));
  expect(await until(() => c.received.endsWith('ok GET /warm body=0'))).toBe(true);
  c.socket.destroy();
}

/** The upstream connection that received `marker` (a request line), once it has. */
async function upstreamConnectionWith(marker: string): Promise<Transcript> {
  await until(() => upstream.transcripts.some((c) => c.data.includes(marker)));
  const conn = upstream.transcripts.find((c) => c.data.includes(marker));
  if (conn === undefined) throw new Error(`the upstream never received ${marker}`);
  return conn;
}

describe('a response head whose body comes later', () => {
  it.each(['/late-body', '/late-chunked'])('%s: the client gets the head at once, then the whole response, though the body is later than the upstream headers timeout', async (path) => {
    const c = await RawClient.connect();
    const sent = Date.now();
    c.send(HEAD('GET', path));
    expect(await until(() => c.received.endsWith('hello') || c.received.endsWith('0\r\n\r\n'), LATE_MS + 4000)).toBe(true);
    expect(c.statuses()).toEqual([200]);
    const headAt = c.headArrivedAt()!;
    expect(headAt - sent).toBeLessThan(LATE_MS / 2);
    expect(c.arrivals.at(-1)!.at - sent).toBeGreaterThanOrEqual(LATE_MS - 100);
    // The head arrived alone: the body bytes came in a later piece.
    expect(c.arrivals.find((a) => a.at === headAt)!.received).not.toContain('hello');
    if (path === '/late-body') expect(c.received).toMatch(/\r\ncontent-length: 5\r\n(?:[^]*\r\n)?\r\nhello$/);
    else expect(c.received).toMatch(/\r\ntransfer-encoding: chunked\r\n(?:[^]*\r\n)?\r\n5\r\nhello\r\n0\r\n\r\n$/);
    // The connection stays usable.
    c.send(HEAD('GET', '/after'));
    expect(await until(() => c.received.endsWith('ok GET /after body=0'))).toBe(true);
    c.socket.destroy();
  }, 15_000);
});

describe('request body timeout (timeouts.request_body)', () => {
  it('serves a body dribbled with pauses shorter than request_body, though it takes longer than the upstream headers timeout', async () => {
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/dribble', 'content-length: 10\r\n'));
    for (let i = 0; i < 5; i++) {
      await sleep(400);
      c.send('ab');
    }
    expect(await until(() => c.received.includes('body=10') || c.closed, 5000)).toBe(true);
    expect(c.statuses()).toEqual([200]);
    expect(c.received).toMatch(/ok POST \/dribble body=10$/);
    c.socket.destroy();
  }, 15_000);

  it.each([
    ['Content-Length', 'content-length: 20\r\n', 'abc'],
    ['chunked', 'transfer-encoding: chunked\r\n', 'b\r\nabc\r\n'],
  ])('answers 408 request_body_timeout to a %s body the client stops sending, and drops the upstream request', async (_kind, framing, part) => {
    const before = await metricValue('gatehouse_http_refusals_total', { route: 'main', reason: 'request_body_timeout' });
    const c = await RawClient.connect();
    const path = `/silent-${_kind.toLowerCase()}`;
    c.send(HEAD('POST', path, framing) + part.replace('abc', 'silent-part'));
    const conn = await upstreamConnectionWith(`POST ${path} `);
    expect(await until(() => c.closed, REQUEST_BODY_MS + 4000)).toBe(true);
    expect(c.statuses()).toEqual([408]);
    expect(reasonOf(c.received)).toBe('request_body_timeout');
    expect(c.received).toMatch(/connection: close\r\n/i);
    // The upstream had the head and what came of the body, then its connection was closed (never reused).
    expect(conn.data.slice(conn.data.indexOf(`POST ${path} `))).toContain('silent-part');
    expect(await until(() => conn.closed)).toBe(true);
    expect(await metricValue('gatehouse_http_refusals_total', { route: 'main', reason: 'request_body_timeout' })).toBe(before + 1);
  }, 15_000);

  it('cuts the connection of a client that stops sending its body after the response began, and drops the upstream request', async () => {
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/early-open', 'content-length: 20\r\n') + 'abc');
    expect(await until(() => c.received.endsWith('5\r\nearly\r\n'))).toBe(true);
    const conn = await upstreamConnectionWith('POST /early-open ');
    // Well before the upstream body timeout (5 s without a byte from the upstream) would cut it.
    expect(await until(() => c.closed, REQUEST_BODY_MS + 1700)).toBe(true);
    expect(c.statuses()).toEqual([200]);
    expect(c.received.endsWith('5\r\nearly\r\n')).toBe(true); // cut, not ended
    expect(await until(() => conn.closed)).toBe(true);
  }, 15_000);

  it('answers 400 to a client that ends its side in the middle of a body, and drops the upstream request', async () => {
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/half-closed', 'content-length: 10\r\n') + 'abc');
    const conn = await upstreamConnectionWith('POST /half-closed ');
    c.socket.end();
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([400]);
    expect(reasonOf(c.received)).toBe('bad_request');
    expect(await until(() => conn.closed)).toBe(true);
  });
});

describe('a response that comes before the whole request body', () => {
  it('still forwards the rest of the body from a client that goes on sending, so that the upstream connection can be reused', async () => {
    const c = await RawClient.connect({ allowHalfOpen: true });
    c.send(HEAD('POST', '/early', 'content-length: 10\r\n') + 'abc');
    expect(await until(() => c.received.endsWith('early'))).toBe(true);
    const conn = await upstreamConnectionWith('POST /early ');
    c.send('defghij');
    expect(await until(() => conn.data.endsWith('abcdefghij'))).toBe(true);
    const next = await RawClient.connect();
    next.send(HEAD('GET', '/after-early'));
    expect(await until(() => next.received.endsWith('ok GET /after-early body=0'))).toBe(true);
    expect(conn.data).toContain('GET /after-early ');
    expect(conn.closed).toBe(false);
    c.socket.destroy();
    next.socket.destroy();
  });
});

describe('request body size limit (max_request_body)', () => {
  it('answers 413 to a Content-Length over the listener limit before anything goes upstream', async () => {
    await warmPool();
    const before = upstream.received.length;
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/upload', `content-length: ${LIMIT + 1}\r\n`) + 'x'.repeat(100));
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([413]);
    expect(reasonOf(c.received)).toBe('request_body_too_large');
    expect(upstream.received.length).toBe(before);
  });

  it('takes a body of the size of the limit, and a larger one on a route with its own limit', async () => {
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/upload', `content-length: ${LIMIT}\r\n`) + 'x'.repeat(LIMIT));
    expect(await until(() => c.received.endsWith(`body=${LIMIT}`))).toBe(true);
    c.send(HEAD('POST', '/big/upload', 'content-length: 5000\r\n') + 'y'.repeat(5000));
    expect(await until(() => c.received.endsWith('ok POST /big/upload body=5000'))).toBe(true);
    expect(c.statuses()).toEqual([200, 200]);
    c.socket.destroy();
  });

  it('answers 413 to a chunked body over the limit within the read of its head, before anything goes upstream', async () => {
    await warmPool();
    const before = upstream.received.length;
    const chunk = 'z'.repeat(LIMIT + 1);
    const head = HEAD('POST', '/chunky', 'transfer-encoding: chunked\r\n') + `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    // The rest of the body still to come: the connection closes after the answer.
    const c = await RawClient.connect();
    c.send(head);
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([413]);
    expect(reasonOf(c.received)).toBe('request_body_too_large');
    expect(c.received).toMatch(/connection: close\r\n/i);
    // The whole body came: the connection can carry the next request.
    const d = await RawClient.connect();
    d.send(head + '0\r\n\r\n' + HEAD('GET', '/after-413'));
    expect(await until(() => d.received.endsWith('ok GET /after-413 body=0'))).toBe(true);
    expect(d.statuses()).toEqual([413, 200]);
    expect(upstream.received.slice(before)).toMatch(/^GET \/after-413 HTTP\/1\.1\r\n/);
    d.socket.destroy();
  });

  it('stops a chunked body that grows past the limit after its head went upstream: 413, the upstream request dropped', async () => {
    const before = await metricValue('gatehouse_http_refusals_total', { route: 'main', reason: 'request_body_too_large' });
    const c = await RawClient.connect();
    const first = 'a'.repeat(600);
    c.send(HEAD('POST', '/growing', 'transfer-encoding: chunked\r\n') + `${first.length.toString(16)}\r\n${first}\r\n`);
    const conn = await upstreamConnectionWith('POST /growing ');
    expect(await until(() => conn.data.includes(first))).toBe(true);
    const second = 'Q'.repeat(600);
    c.send(`${second.length.toString(16)}\r\n${second}\r\n0\r\n\r\n`);
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([413]);
    expect(reasonOf(c.received)).toBe('request_body_too_large');
    expect(await until(() => conn.closed)).toBe(true);
    expect(conn.data).not.toContain('QQQQ');
    expect(await metricValue('gatehouse_http_refusals_total', { route: 'main', reason: 'request_body_too_large' })).toBe(before + 1);
  });
});

describe('pipelined requests followed by one that is refused', () => {
  it.each([
    ['a malformed head', HEAD('GET', '/two', 'bad header\r\n'), 400, 'bad_request'],
    ['an HTTP/2.0 request line', 'GET /two HTTP/2.0\r\nhost: localhost\r\n\r\n', 505, 'http_version_not_supported'],
    ['a malformed chunked body', HEAD('POST', '/two', 'transfer-encoding: chunked\r\n') + 'zz\r\n', 400, 'bad_request'],
  ])('answers the valid ones, then refuses %s and closes', async (_what, refused, status, reason) => {
    const before = upstream.received.length;
    const c = await RawClient.connect();
    c.send(HEAD('GET', '/one') + HEAD('POST', '/one-and-a-half', 'content-length: 3\r\n') + 'abc' + refused);
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([200, 200, status]);
    const [one, oneAndAHalf, last] = c.received.split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(one).toMatch(/ok GET \/one body=0$/);
    expect(oneAndAHalf).toMatch(/ok POST \/one-and-a-half body=3$/);
    // The valid responses keep the connection open; only the refusal closes it.
    expect(one + oneAndAHalf).not.toMatch(/connection: close/i);
    expect(last).toMatch(/connection: close\r\n/i);
    expect(reasonOf(last!)).toBe(reason);
    const sent = upstream.received.slice(before);
    expect(sent).toContain('GET /one HTTP/1.1');
    expect(sent).toContain('POST /one-and-a-half HTTP/1.1');
    expect(sent).not.toContain('/two');
  });
});

describe('malformed chunked bodies and transfer codings are refused before anything goes upstream', () => {
  it.each([
    ['an invalid character in a chunk size', 400, 'bad_request', 'transfer-encoding: chunked\r\n', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size followed by garbage', 400, 'bad_request', 'transfer-encoding: chunked\r\n', '5x\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size that overflows', 400, 'bad_request', 'transfer-encoding: chunked\r\n', 'fffffffffffffffffff\r\n'],
    ['a negative chunk size', 400, 'bad_request', 'transfer-encoding: chunked\r\n', '-5\r\nhello\r\n0\r\n\r\n'],
    ['chunk data longer than its size', 400, 'bad_request', 'transfer-encoding: chunked\r\n', '5\r\nhello!!\r\n0\r\n\r\n'],
    ['Transfer-Encoding: xchunked without a length', 400, 'bad_request', 'transfer-encoding: xchunked\r\n', 'hello'],
    ['Transfer-Encoding: identity', 400, 'bad_request', 'transfer-encoding: identity\r\n', 'hello'],
    ['Transfer-Encoding: chunked, gzip', 400, 'bad_request', 'transfer-encoding: chunked, gzip\r\n', 'hello'],
    ['Transfer-Encoding: gzip, chunked (a coding the gateway does not decode)', 501, 'unsupported_transfer_coding', 'transfer-encoding: gzip, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'],
  ])('%s: %i %s', async (_what, status, reason, framing, body) => {
    await warmPool();
    const before = upstream.received.length;
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/framing', framing) + body);
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([status]);
    expect(reasonOf(c.received)).toBe(reason);
    expect(upstream.received.length).toBe(before);
  });

  it('refuses a malformed chunk that comes after the head went upstream: 400, the upstream request dropped', async () => {
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/later-bad-chunk', 'transfer-encoding: chunked\r\n') + '5\r\nhello\r\n');
    const conn = await upstreamConnectionWith('POST /later-bad-chunk ');
    expect(await until(() => conn.data.includes('hello'))).toBe(true);
    c.send('zz\r\nworld\r\n0\r\n\r\n');
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([400]);
    expect(reasonOf(c.received)).toBe('bad_request');
    expect(await until(() => conn.closed)).toBe(true);
    expect(conn.data).not.toContain('world');
    // The gateway goes on serving with a fresh upstream connection.
    const next = await RawClient.connect();
    next.send(HEAD('GET', '/next'));
    expect(await until(() => next.received.endsWith('ok GET /next body=0'))).toBe(true);
    next.socket.destroy();
  });
});

describe('a request whose body fails while it waits for an upstream connection', () => {
  it('is answered 400 at once and never sent, when the connection frees up later', async () => {
    const busy = await RawClient.connect();
    busy.send(HEAD('GET', '/single/late-body'));
    await upstreamConnectionWith('GET /single/late-body ');
    const c = await RawClient.connect();
    c.send(HEAD('POST', '/single/waiting', 'transfer-encoding: chunked\r\n') + '5\r\nhello\r\n');
    await sleep(200); // dispatched, waiting for the pool's only connection
    const sent = Date.now();
    c.send('zz\r\n');
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([400]);
    expect(reasonOf(c.received)).toBe('bad_request');
    expect(Date.now() - sent).toBeLessThan(LATE_MS / 2);
    // The busy request completes, its connection goes back to the pool, and the failed one stays unsent.
    expect(await until(() => busy.received.endsWith('hello'), LATE_MS + 4000)).toBe(true);
    await sleep(200);
    expect(upstream.received).not.toContain('/single/waiting');
    busy.socket.destroy();
  }, 15_000);
});

describe('request lines of another HTTP version', () => {
  it.each(['HTTP/2.0', 'HTTP/0.9'])('answers 505 to %s before anything goes upstream', async (version) => {
    await warmPool();
    const before = upstream.received.length;
    const listenerRefusals = await metricValue('gatehouse_http_refusals_total', { route: '-', reason: 'http_version_not_supported' });
    const c = await RawClient.connect();
    c.send(`GET / ${version}\r\nhost: localhost\r\n\r\n`);
    expect(await until(() => c.closed)).toBe(true);
    expect(c.statuses()).toEqual([505]);
    expect(reasonOf(c.received)).toBe('http_version_not_supported');
    expect(upstream.received.length).toBe(before);
    expect(await metricValue('gatehouse_http_refusals_total', { route: '-', reason: 'http_version_not_supported' })).toBe(listenerRefusals + 1);
  });
});
