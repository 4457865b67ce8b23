// UpstreamConnection (gateway/upstream/upstream-connection.ts) against a scripted upstream on a
// real loopback socket: how each kind of response framing reaches the exchange handler, split
// across reads or not, and whether the connection is handed back for the next request or closed.
// A Content-Length body is counted off the reads past llhttp, so these check that it ends exactly
// where the header says and that the parser is ready for the next response afterwards.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamConnection } from '../gateway/upstream/upstream-connection.js';
import type { SessionOwner } from '../gateway/upstream/upstream-session.js';
import type { UpstreamExchangeHandler, UpstreamRequest } from '../gateway/upstream/upstream-exchange.js';

/** What an upstream sends for one request: pieces written with a pause between them (separate reads), or its side closed. */
type Piece = string | { close: true };
const CLOSE: Piece = { close: true };
const PAUSE_MS = 30;

interface Upstream {
  readonly port: number;
  /** Every request head the upstream received, in order. */
  readonly heads: string[];
  close(): Promise<void>;
}

/** Answers the n-th request on a connection with scripts[n]. */
async function scriptedUpstream(scripts: Piece[][]): Promise<Upstream> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let pending = '';
    let served = 0;
    socket.on('data', async (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
        heads.push(pending.slice(0, end));
        pending = pending.slice(end + 4);
        for (const piece of scripts[served++] ?? []) {
          if (typeof piece !== 'string') socket.end();
          else socket.write(piece);
          await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
        }
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    heads,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Outcome {
  status?: number;
  headers?: string[];
  body: string;
  completed: number;
  error?: string;
}

class RecordingHandler implements UpstreamExchangeHandler {
  readonly outcome: Outcome = { body: '', completed: 0 };
  readonly settled: Promise<Outcome>;
  #settle!: (o: Outcome) => void;
  constructor() {
    this.settled = new Promise((resolve) => (this.#settle = resolve));
  }
  onConnect(): void {}
  onHeaders(status: number, headers: string[]): void {
    this.outcome.status = status;
    this.outcome.headers = headers;
  }
  onData(chunk: Buffer): boolean {
    this.outcome.body += chunk.toString('latin1'); // copied now: the chunk may be a view of a shared read buffer
    return true;
  }
  onComplete(): void {
    this.outcome.completed++;
    this.#settle(this.outcome);
  }
  onError(err: Error): void {
    this.outcome.error = (err as Error & { code?: string }).code ?? err.message;
    this.#settle(this.outcome);
  }
  onReadDone(): void {}
}

class Owner implements SessionOwner {
  readonly now = Date.now();
  readonly headersMs = 5_000;
  readonly bodyMs = 5_000;
  releases = 0;
  closedOnce: Promise<void>;
  #closed!: () => void;
  constructor() {
    this.closedOnce = new Promise((resolve) => (this.#closed = resolve));
  }
  get isClosed(): Promise<boolean> {
    return Promise.race([this.closedOnce.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 4 * PAUSE_MS))]);
  }
  released(): void {
    this.releases++;
  }
  closed(): void {
    this.#closed();
  }
}

const GET: UpstreamRequest = { method: 'GET', scheme: 'https', authority: undefined, path: '/', headers: [], hasLength: false, body: null };
const HEAD: UpstreamRequest = { ...GET, method: 'HEAD' };

let upstream: Upstream | undefined;
afterEach(async () => {
  await upstream?.close();
  upstream = undefined;
});

async function connection(scripts: Piece[][]): Promise<{ conn: UpstreamConnection; owner: Owner; socket: net.Socket }> {
  upstream = await scriptedUpstream(scripts);
  const socket = net.connect({ host: '127.0.0.1', port: upstream.port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const owner = new Owner();
  return { conn: new UpstreamConnection(socket, owner, 'origin.test'), owner, socket };
}

async function exchange(conn: UpstreamConnection, request: UpstreamRequest = GET): Promise<Outcome> {
  const handler = new RecordingHandler();
  conn.run(request, handler);
  return handler.settled;
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;

/** A client that cannot take more (its buffer full) and never drains: onData says wait. */
class BackedUpHandler extends RecordingHandler {
  override onData(chunk: Buffer): boolean {
    super.onData(chunk);
    return false;
  }
}

describe('upstream connection: backpressure', () => {
  it('a response whose last bytes met a backed-up client goes back to the pool reading: the next request on it is answered', async () => {
    const { conn, owner } = await connection([[ok('first')], [ok('second')]]);
    const backedUp = new BackedUpHandler();
    conn.run(GET, backedUp);
    expect(await backedUp.settled).toMatchObject({ status: 200, body: 'first', completed: 1 });
    expect(owner.releases).toBe(1);
    // The first client never drains: its pause must not outlive its exchange.
    const stalled = new Promise<string>((resolve) => setTimeout(() => resolve('stalled'), 2000));
    expect(await Promise.race([exchange(conn), stalled])).toMatchObject({ status: 200, body: 'second', completed: 1 });
  });
});

describe('upstream connection: response framing', () => {
  it('takes a Content-Length body that came with its head, and the next response on the same connection', async () => {
    const { conn, owner } = await connection([[ok('hello')], [ok('second', 'x-n: 2\r\n')]]);
    const first = await exchange(conn);
    expect(first).toMatchObject({ status: 200, body: 'hello', completed: 1 });
    expect(first.error).toBeUndefined();
    expect(owner.releases).toBe(1);
    const second = await exchange(conn);
    expect(second).toMatchObject({ status: 200, body: 'second', completed: 1 });
    expect(second.headers).toContain('x-n');
    expect(owner.releases).toBe(2);
    expect(upstream!.heads[0]).toMatch(/^GET \/ HTTP\/1\.1\r\nhost: origin\.test$/);
  });

  it('counts a Content-Length body across reads: head alone, then the body in three pieces', async () => {
    const body = 'a'.repeat(700) + 'b'.repeat(700) + 'c'.repeat(7);
    const head = `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`;
    const { conn, owner } = await connection([[head.slice(0, 20), head.slice(20), body.slice(0, 700), body.slice(700, 1400), body.slice(1400)], [ok('next')]]);
    const first = await exchange(conn);
    expect(first).toMatchObject({ status: 200, completed: 1 });
    expect(first.body).toBe(body);
    expect(owner.releases).toBe(1);
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'next', completed: 1 });
  });

  it('fails a response whose upstream closes before the announced length, and does not complete it', async () => {
    const { conn, owner } = await connection([['HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345', CLOSE]]);
    const outcome = await exchange(conn);
    expect(outcome.error).toBe('GATEHOUSE_UPSTREAM_BAD_RESPONSE');
    expect(outcome.completed).toBe(0);
    expect(outcome.body).toBe('12345');
    expect(owner.releases).toBe(0);
    expect(await owner.isClosed).toBe(true);
  });

  it('completes a response followed by bytes nobody asked for, then closes the connection instead of reusing it', async () => {
    const { conn, owner } = await connection([[ok('hello') + 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbad']]);
    const outcome = await exchange(conn);
    expect(outcome).toMatchObject({ status: 200, body: 'hello', completed: 1 });
    expect(owner.releases).toBe(0);
    expect(await owner.isClosed).toBe(true);
  });

  it('takes 204 and HEAD responses as bodiless whatever their Content-Length, and stays usable', async () => {
    const { conn, owner } = await connection([['HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n'], ['HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n'], [ok('after')]]);
    expect(await exchange(conn)).toMatchObject({ status: 204, body: '', completed: 1 });
    expect(await exchange(conn, HEAD)).toMatchObject({ status: 200, body: '', completed: 1 });
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'after', completed: 1 });
    expect(owner.releases).toBe(3);
  });

  it('completes an empty Content-Length: 0 body and reuses the connection', async () => {
    const { conn, owner } = await connection([[ok('')], [ok('x')]]);
    expect(await exchange(conn)).toMatchObject({ status: 200, body: '', completed: 1 });
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'x', completed: 1 });
    expect(owner.releases).toBe(2);
  });

  it('leaves a chunked body to llhttp, split across reads, and reuses the connection', async () => {
    const chunked = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n';
    const { conn, owner } = await connection([[chunked + '5\r\nhel', 'lo\r\n6\r\n world\r\n', '0\r\n\r\n'], [ok('next')]]);
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'hello world', completed: 1 });
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'next', completed: 1 });
    expect(owner.releases).toBe(2);
  });

  it('passes over a 100 Continue to the final response and its counted body', async () => {
    const { conn, owner } = await connection([['HTTP/1.1 100 Continue\r\n\r\n', ok('final')], [ok('next')]]);
    const outcome = await exchange(conn);
    expect(outcome).toMatchObject({ status: 200, body: 'final', completed: 1 });
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'next', completed: 1 });
    expect(owner.releases).toBe(2);
  });

  it('reads a body delimited by the close of the connection to its end, and does not reuse the connection', async () => {
    const { conn, owner } = await connection([['HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil ', 'the end', CLOSE]]);
    expect(await exchange(conn)).toMatchObject({ status: 200, body: 'until the end', completed: 1 });
    expect(owner.releases).toBe(0);
    expect(await owner.isClosed).toBe(true);
  });

  it('refuses a response with both Content-Length and Transfer-Encoding (llhttp, strict) as a bad response', async () => {
    const { conn } = await connection([['HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n']]);
    const outcome = await exchange(conn);
    expect(outcome.error).toBe('GATEHOUSE_UPSTREAM_BAD_RESPONSE');
    expect(outcome.completed).toBe(0);
  });

  it('refuses a response with two different Content-Lengths (llhttp, strict) as a bad response', async () => {
    const { conn } = await connection([['HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd']]);
    const outcome = await exchange(conn);
    expect(outcome.error).toBe('GATEHOUSE_UPSTREAM_BAD_RESPONSE');
    expect(outcome.completed).toBe(0);
  });
});
