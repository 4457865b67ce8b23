// StreamResponse, the response to one HTTP/2 stream, driven directly on a real TLS server served
// by the gateway's HTTP/2 session (the native engine) and read by a node:http2 client: trailers
// after a streamed body when the client takes them (and with a whole response in hand whatever it
// said), a clean end without them, HEAD and 204 without a body or a reset, the headers HTTP/2
// forbids never sent (and a header nghttp2 cannot carry resetting the stream rather than
// throwing), destroy() resetting the stream only, and write() keeping to the client's backpressure.
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamResponse } from '../gateway/http2/stream-response.js';
import { h2Connect, h2Request } from './support/h2-client.js';
import { startH2SessionServer, type H2SessionServer } from './support/h2-session-server.js';
import { waitFor } from './support/lifecycle-harness.js';

let server: H2SessionServer;
/** How the server answers the next stream: given the StreamResponse the session made for it. */
let serve: (res: StreamResponse) => void;

beforeAll(async () => {
  server = await startH2SessionServer((_req, res) => serve(res as StreamResponse));
});

afterAll(async () => {
  await server?.close();
});

const connect = () => h2Connect({ port: server.port, ca: server.pki.ca.rootPem, cert: server.client });
const text = (s: string) => Buffer.from(s);

describe('StreamResponse', () => {
  it('sends trailers after a streamed body when the client takes them (te: trailers)', async () => {
    serve = (res) => {
      res.writeHead(200, 'OK', ['content-type', 'text/plain']);
      res.write(text('a'));
      setTimeout(() => {
        res.write(text('b'));
        res.end(undefined, ['x-checksum', 'abc', 'x-checksum', 'def', 'connection', 'close']);
      }, 20);
    };
    const session = await connect();
    try {
      const r = await h2Request(session, { te: 'trailers' });
      expect(r.text()).toBe('ab');
      expect(r.trailers).toMatchObject({ 'x-checksum': 'abc, def' });
      expect(r.trailers!.connection).toBeUndefined();
      expect(r.rstCode).toBe(0);
    } finally {
      session.close();
    }
  });

  it('sends the trailers of a response it has whole, whatever the client said', async () => {
    serve = (res) => {
      res.writeHead(200, 'OK', []);
      res.end(text('body'), ['x-t', '1']);
    };
    const session = await connect();
    try {
      const r = await h2Request(session);
      expect(r.text()).toBe('body');
      expect(r.trailers).toMatchObject({ 'x-t': '1' });
    } finally {
      session.close();
    }
  });

  it('ends a streamed response cleanly when the client did not ask for trailers (they are dropped)', async () => {
    serve = (res) => {
      res.writeHead(200, 'OK', []);
      res.write(text('a'));
      setTimeout(() => res.end(text('b'), ['x-t', '1']), 20);
    };
    const session = await connect();
    try {
      const r = await h2Request(session);
      expect(r.text()).toBe('ab');
      expect(r.trailers).toBeUndefined();
      expect(r.rstCode).toBe(0);
    } finally {
      session.close();
    }
  });

  it.each([
    ['a HEAD request', true, 200],
    ['a 204', false, 204],
    ['a 304', false, 304],
  ])('answers %s with the head alone: body bytes dropped, no reset', async (_what, head, status) => {
    let wrote: boolean | undefined;
    serve = (res) => {
      res.writeHead(status, '', ['content-length', '5']);
      wrote = res.write(text('hello'));
      res.end(text('!'));
    };
    const session = await connect();
    try {
      const r = await h2Request(session, { ':method': head ? 'HEAD' : 'GET' });
      expect(r.status).toBe(status);
      expect(r.body.length).toBe(0);
      expect(r.rstCode).toBe(0);
      expect(wrote).toBe(true);
    } finally {
      session.close();
    }
  });

  it('never sends the headers HTTP/2 forbids, and resets the stream for a header nghttp2 cannot carry instead of throwing', async () => {
    serve = (res) => {
      const forbidden = ['connection', 'close', 'keep-alive', '1', 'proxy-connection', 'x', 'transfer-encoding', 'chunked', 'te', 'gzip', 'upgrade', 'h2c', 'http2-settings', 'x'];
      res.writeHead(200, 'OK', [...forbidden, ':path', '/', 'x-ok', '1']);
      res.end(text('ok'));
    };
    const session = await connect();
    try {
      const r = await h2Request(session);
      expect(r.headers['x-ok']).toBe('1');
      for (const name of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade', 'http2-settings', ':path']) expect(r.headers[name]).toBeUndefined();
      let threw: unknown;
      serve = (res) => {
        try {
          res.writeHead(200, 'OK', ['bad name', 'x']);
          res.end(text('never'));
        } catch (err) {
          threw = err;
        }
      };
      const refused = await h2Request(session).catch((err: { rstCode: number }) => err);
      expect(threw).toBeUndefined();
      expect(refused).toMatchObject({ rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR });
    } finally {
      session.close();
    }
  });

  it('destroy() resets its stream (RST_STREAM INTERNAL_ERROR) and nothing else', async () => {
    serve = (res) => {
      res.writeHead(200, 'OK', []);
      res.write(text('part'));
      setTimeout(() => res.destroy(new Error('upstream went away')), 20);
    };
    const session = await connect();
    try {
      const r = await h2Request(session);
      expect(r.rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
      serve = (res) => {
        res.writeHead(200, 'OK', []);
        res.end(text('next'));
      };
      expect((await h2Request(session)).text()).toBe('next');
    } finally {
      session.close();
    }
  });

  it('write() returns false when the client stops reading, onDrain stops coming, and fires again when it reads', async () => {
    const chunk = Buffer.alloc(16 * 1024, 'x');
    let written = 0;
    let drains = 0;
    let finish = false;
    serve = (res) => {
      // A writer that waits for every drain, as the upstream side does; it ends once told to.
      const pump = (): void => {
        for (let i = 0; i < 1000; i++) {
          if (finish) return res.end();
          written += chunk.length;
          if (!res.write(chunk)) return res.onDrain(() => (drains++, pump()));
        }
      };
      pump();
    };
    const session = await connect();
    try {
      const stream = session.request({ ':path': '/' }, { endStream: true });
      stream.on('error', () => {});
      const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      stream.pause();
      // The client's windows take what they take; then the writer waits, drains stop coming.
      await waitFor('the writer to wait', () => written > 0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [writtenThen, drainsThen] = [written, drains];
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect([written, drains]).toEqual([writtenThen, drainsThen]);
      // At most the client's stream window (64 KiB) and the engine's high-water mark (64 KiB), and a chunk.
      expect(written).toBeLessThanOrEqual(64 * 1024 + 64 * 1024 + chunk.length);
      finish = true;
      stream.resume();
      await waitFor('drain', () => drains > drainsThen);
      await closed;
      expect(stream.rstCode).toBe(0);
    } finally {
      session.close();
    }
  });

  it('lets a drain listener pending when the response ends go at once: the upstream it paused is not left paused', async () => {
    let called = false;
    serve = (res) => {
      res.writeHead(200, 'OK', []);
      const chunk = Buffer.alloc(16 * 1024, 'x');
      for (let i = 0; i < 1000 && res.write(chunk); i++);
      res.onDrain(() => (called = true));
      res.end();
    };
    const session = await connect();
    try {
      const stream = session.request({ ':path': '/' }, { endStream: true });
      stream.on('error', () => {});
      stream.pause(); // never reads: no 'drain' will come from the client
      await waitFor('the drain listener', () => called, 1000);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.close();
    }
  });
});
