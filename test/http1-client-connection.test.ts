// The gateway's own HTTP/1.1 server side (gateway/http1/client-connection.ts) on real loopback
// sockets, spoken to byte by byte: keep-alive, pipelining, HTTP/1.0, framing, Expect: 100-continue,
// malformed and smuggling-shaped requests, and the head and idle timeouts.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientConnection } from '../gateway/http1/client-connection.js';
import type { DownstreamRequest } from '../gateway/session/downstream-request.js';
import type { DownstreamResponse } from '../gateway/session/downstream-response.js';

const refused: string[] = [];
let server: net.Server;
let port: number;

/** Echoes what it parsed; paths steer the behaviours under test. */
function handler(req: DownstreamRequest, res: DownstreamResponse): void {
  const reply = (status: number, text: string, body: string, headers: string[] = ['content-length', String(Buffer.byteLength(body))]) => {
    res.writeHead(status, text, headers);
    res.end(Buffer.from(body));
  };
  if (req.url === '/deny') return reply(403, 'Forbidden', 'denied');
  if (req.url === '/chunked') {
    res.writeHead(200, 'OK', ['content-type', 'text/plain']);
    res.write(Buffer.from('hello '));
    res.end(Buffer.from('world'));
    return;
  }
  if (req.url.startsWith('/slow')) {
    setTimeout(() => reply(200, 'OK', `slow ${req.url}`), 50);
    return;
  }
  if (req.body === null) return reply(200, 'OK', `${req.method} ${req.url}`);
  if (req.url === '/limited' && !req.body.limit(5)) return reply(413, 'Content Too Large', 'too large');
  const parts: Buffer[] = [];
  req.body.on('data', (c: Buffer) => parts.push(c));
  req.body.on('end', () => reply(200, 'OK', `${req.method} ${req.url} body=${Buffer.concat(parts).toString()}`));
}

beforeAll(async () => {
  server = net.createServer((socket) => {
    // Idle longer than the head timeout: keep-alive tests pause between requests on a loaded machine.
    new ClientConnection(socket, { handler, headersMs: 400, idleMs: 1500, bodyMs: 600, onRefused: (status, reason) => refused.push(`${status} ${reason}`) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

const clients: RawClient[] = [];

afterAll(() => {
  for (const c of clients) c.close();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A raw client: what it wrote, what came back, and whether the server closed. */
class RawClient {
  readonly socket = net.connect(port, '127.0.0.1');
  received = '';
  closed = false;
  readonly #waiters: Array<() => void> = [];

  constructor() {
    clients.push(this);
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.received += d;
      this.#waiters.splice(0).forEach((w) => w());
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.#waiters.splice(0).forEach((w) => w());
    });
  }

  send(text: string): this {
    this.socket.write(text, 'latin1');
    return this;
  }

  /** Waits (bounded) until `done` holds for what was received, or the connection closed. */
  async until(done: (received: string) => boolean, ms = 3000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!done(this.received) && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.received;
  }

  responses(): number {
    return this.received.split('HTTP/1.1 ').length - 1;
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('ClientConnection (HTTP/1.1 server side)', () => {
  it('keeps the connection alive across requests', async () => {
    const c = new RawClient().send('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.until(() => c.received.endsWith('GET /a'));
    c.send('GET /b HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.until(() => c.received.endsWith('GET /b'));
    expect(c.responses()).toBe(2);
    expect(c.received).not.toMatch(/connection: close/i);
    expect(c.closed).toBe(false);
    c.close();
  });

  it('answers pipelined requests in order, the slow first one included', async () => {
    const c = new RawClient().send('GET /slow-1 HTTP/1.1\r\nhost: x\r\n\r\nGET /two HTTP/1.1\r\nhost: x\r\n\r\nPOST /three HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc');
    await c.until(() => c.responses() === 3 && c.received.endsWith('body=abc'));
    const bodies = c.received.split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/).filter(Boolean);
    expect(bodies).toEqual(['slow /slow-1', 'GET /two', 'POST /three body=abc']);
    c.close();
  });

  it('HTTP/1.0: closes unless asked to keep alive, and then says keep-alive', async () => {
    const plain = new RawClient().send('GET /old HTTP/1.0\r\n\r\n');
    await plain.until(() => plain.closed);
    expect(plain.received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(plain.received).toMatch(/connection: close\r\n/i);
    expect(plain.closed).toBe(true);

    const kept = new RawClient().send('GET /old HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
    await kept.until(() => kept.received.endsWith('GET /old'));
    expect(kept.received).toMatch(/connection: keep-alive\r\n/i);
    kept.send('GET /again HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
    await kept.until(() => kept.received.endsWith('GET /again'));
    expect(kept.closed).toBe(false);
    kept.close();
  });

  it('frames a response without Content-Length as chunked for HTTP/1.1, close-delimited for HTTP/1.0', async () => {
    const c = new RawClient().send('GET /chunked HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.until(() => c.received.endsWith('0\r\n\r\n'));
    expect(c.received).toMatch(/transfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n$/);
    c.close();

    const old = new RawClient().send('GET /chunked HTTP/1.0\r\n\r\n');
    await old.until(() => old.closed);
    expect(old.received).not.toMatch(/transfer-encoding/i);
    expect(old.received.endsWith('\r\n\r\nhello world')).toBe(true);
  });

  it('sends no body for HEAD and keeps the connection usable', async () => {
    const c = new RawClient().send('HEAD /h HTTP/1.1\r\nhost: x\r\n\r\nGET /after HTTP/1.1\r\nhost: x\r\n\r\n');
    await c.until(() => c.received.endsWith('GET /after'));
    const [head, second] = c.received.split(/(?=HTTP\/1\.1 )/);
    expect(head).toMatch(/content-length: 7\r\n/); // 'HEAD /h', announced and not sent
    expect(head!.endsWith('\r\n\r\n')).toBe(true);
    expect(second).toMatch(/GET \/after$/);
    c.close();
  });

  it('answers Expect: 100-continue only when the body is read, and closes after refusing an unread body', async () => {
    const c = new RawClient().send('POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n');
    await c.until((r) => r.includes('100 Continue'));
    expect(c.received).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    c.send('12345');
    await c.until((r) => r.endsWith('body=12345'));
    expect(c.closed).toBe(false);
    c.close();

    const d = new RawClient().send('POST /deny HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n');
    await d.until(() => d.closed);
    expect(d.received).not.toMatch(/100 Continue/);
    expect(d.received).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*connection: close\r\n/i);
    expect(d.closed).toBe(true);
  });

  it('refuses malformed and smuggling-shaped requests with 400 and closes', async () => {
    const cases = [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
      'GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd',
      'GET / HTTP/1.1\r\nbad header\r\n\r\n',
    ];
    for (const request of cases) {
      const c = new RawClient().send(request);
      await c.until(() => c.closed);
      expect(c.received, request).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*"reason":"bad_request"/);
      expect(c.closed).toBe(true);
    }
    expect(refused.filter((r) => r === '400 bad_request').length).toBeGreaterThanOrEqual(cases.length);
  });

  it('refuses a head larger than the limit with 431', async () => {
    const c = new RawClient().send(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await c.until(() => c.closed);
    expect(c.received).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('answers 408 to a head that does not finish in time, and closes an idle connection quietly', async () => {
    const slow = new RawClient().send('GET / HTTP/1.1\r\nhost: x\r\n');
    await slow.until(() => slow.closed, 3000);
    expect(slow.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(refused).toContain('408 request_timeout');

    // A pipelined head that began while the first request was served gets the head timeout too.
    const pipelined = new RawClient().send('GET /slow-p HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\nhost: x\r\n');
    await pipelined.until(() => pipelined.closed, 3000);
    expect(pipelined.received).toMatch(/slow \/slow-pHTTP\/1\.1 408 /);

    // A head that begins on an idle keep-alive connection runs on the head timeout, not the idle one.
    const idleThenSlow = new RawClient().send('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
    await idleThenSlow.until((r) => r.endsWith('GET /a'), 3000);
    idleThenSlow.send('GET /b HTTP/1.1\r\nhost: x\r\n');
    await idleThenSlow.until(() => idleThenSlow.closed, 3000);
    expect(idleThenSlow.received).toMatch(/GET \/aHTTP\/1\.1 408 /);

    // The same after a request with a body, whose end the read went on past.
    const afterBody = new RawClient().send('POST /slow-b HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nabGET /next HTTP/1.1\r\nhost: x\r\n');
    await afterBody.until(() => afterBody.closed, 3000);
    expect(afterBody.received).toMatch(/slow \/slow-bHTTP\/1\.1 408 /);

    const silent = new RawClient();
    await silent.until(() => silent.closed, 3000);
    expect(silent.closed).toBe(true);
    expect(silent.received).toBe('');

    const idle = new RawClient().send('GET /x HTTP/1.1\r\nhost: x\r\n\r\n');
    await idle.until(() => idle.closed, 5000);
    expect(idle.received.endsWith('GET /x')).toBe(true);
    expect(idle.closed).toBe(true);
  });

  it('answers 408 itself to a body that stops coming while the handler reads it (nobody listens for its error)', async () => {
    const c = new RawClient().send('POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc');
    await c.until(() => c.closed, 3000);
    expect(c.received).toMatch(/^HTTP\/1\.1 408 [^]*connection: close\r\n[^]*"reason":"request_body_timeout"/);
    expect(refused).toContain('408 request_body_timeout');
  });

  it('takes a body up to the limit its handler sets, and answers 413 itself to a chunked one that grows past it', async () => {
    const fits = new RawClient().send('POST /limited HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    await fits.until((r) => r.endsWith('body=hello'));
    expect(fits.received).toMatch(/^HTTP\/1\.1 200 /);
    fits.close();

    const declared = new RawClient().send('POST /limited HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nhello!');
    await declared.until((r) => r.includes('too large'));
    expect(declared.received).toMatch(/^HTTP\/1\.1 413 /);
    declared.close();

    const grows = new RawClient().send('POST /limited HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    grows.send('3\r\ndef\r\n0\r\n\r\n');
    await grows.until(() => grows.closed);
    expect(grows.received).toMatch(/^HTTP\/1\.1 413 [^]*"reason":"request_body_too_large"/);
    expect(refused).toContain('413 request_body_too_large');
  });

  it('refuses CONNECT with 405', async () => {
    const c = new RawClient().send('CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
    await c.until(() => c.closed);
    expect(c.received).toMatch(/^HTTP\/1\.1 405 /);
  });
});
