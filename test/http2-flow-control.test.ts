// HTTP/2 flow control through the gateway's session on the native engine, measured on the wire
// with a raw client that sends exactly what the windows allow: a request body nobody reads holds
// the client to one stream window (the engine reopens it only for bytes handed on), a large upload
// to an upstream that does not read stalls the client instead of filling the gateway, and a client
// that opened huge windows but does not read its socket holds the upstream back (the session takes
// nothing more from the engine while the socket is full, the response nothing more than its
// high-water mark from the upstream).
import { createHash } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import type { DownstreamRequest } from '../gateway/session/downstream-request.js';
import type { DownstreamResponse } from '../gateway/session/downstream-response.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { offeringH2 } from './support/h2-client.js';
import { FLAG, FRAME, frame, headerBlock, RawH2Connection } from './support/h2-frames.js';
import { startH2SessionServer, type H2SessionServer } from './support/h2-session-server.js';
import { waitFor } from './support/lifecycle-harness.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { pumpHugeResponse } from './support/huge-response.js';
import { id } from './support/test-pki.js';

const MB = 1024 * 1024;
/** RFC 9113's initial windows (the gateway announces no other). */
const INITIAL_WINDOW = 65_535;
const FRAME_BYTES = 16 * 1024;
/** StreamBody's own buffer: bytes it takes below this are handed on (consumed) at once. */
const BODY_BUFFER = 16 * 1024;

const post = (path: string) => headerBlock([[':method', 'POST'], [':scheme', 'https'], [':path', path], [':authority', 'localhost']]);

/** WINDOW_UPDATE increments the peer sent for `streamId` (0: the connection). */
function windowUpdates(raw: RawH2Connection, streamId: number): number {
  let sum = 0;
  for (const f of raw.frames) if (f.type === FRAME.WINDOW_UPDATE && f.streamId === streamId) sum += f.payload.readUInt32BE(0) & 0x7fffffff;
  return sum;
}

/**
 * Sends `body` on stream 1 from `from` on, as fast as the windows allow, as a well-behaved client;
 * stops when it is all sent (END_STREAM) or the windows stayed shut for `stallMs`. Returns where
 * it stopped; `onProgress` sees every frame.
 */
async function sendWithinWindows(raw: RawH2Connection, body: Buffer, stallMs: number, from = 0, onProgress?: (sent: number) => void): Promise<number> {
  let sent = from;
  let idleSince = Date.now();
  for (let rounds = 0; rounds < 100_000 && sent < body.length; rounds++) {
    const allowed = Math.min(INITIAL_WINDOW + windowUpdates(raw, 1), INITIAL_WINDOW + windowUpdates(raw, 0)) - sent;
    if (allowed <= 0) {
      if (Date.now() - idleSince > stallMs) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
      continue;
    }
    const n = Math.min(allowed, FRAME_BYTES, body.length - sent);
    const last = sent + n === body.length;
    if (!(await raw.write(frame(FRAME.DATA, last ? FLAG.END_STREAM : 0, 1, body.subarray(sent, sent + n))))) break;
    sent += n;
    idleSince = Date.now();
    onProgress?.(sent);
  }
  return sent;
}

describe('request bodies are held to HTTP/2 flow control (the session alone)', () => {
  let server: H2SessionServer;
  let request: DownstreamRequest | undefined;
  let response: DownstreamResponse | undefined;
  beforeAll(async () => {
    server = await startH2SessionServer((req, res) => {
      request = req;
      response = res;
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a body nobody reads holds the client to one stream window; read slowly, it arrives whole with at most about a window held', async () => {
    const body = Buffer.alloc(2 * MB);
    for (let i = 0; i < body.length; i += 32) createHash('sha256').update(String(i)).digest().copy(body, i);
    const raw = await RawH2Connection.open({ port: server.port, ca: server.pki.ca.rootPem, cert: server.client });
    try {
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, post('/upload')));
      await waitFor('the request', () => request);
      // Nobody reads: the client fills its stream window, then waits.
      const stalled = await sendWithinWindows(raw, body, 300);
      expect(stalled).toBeGreaterThanOrEqual(INITIAL_WINDOW);
      expect(stalled).toBeLessThanOrEqual(INITIAL_WINDOW + BODY_BUFFER);
      // Read a chunk every 2 ms: the client goes on as the reader takes bytes, never more than about a window ahead.
      const hash = createHash('sha256');
      let read = 0;
      let mostHeld = 0;
      const reader = request!.body!;
      const ended = new Promise<void>((resolve) => reader.once('end', () => resolve()));
      reader.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        read += chunk.length;
        reader.pause();
        setTimeout(() => reader.resume(), 2);
      });
      expect(await sendWithinWindows(raw, body, 5000, stalled, (sent) => (mostHeld = Math.max(mostHeld, sent - read)))).toBe(body.length);
      await ended;
      expect(read).toBe(body.length);
      expect(hash.digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
      // The stream window, the body's buffer and a frame in flight at most.
      expect(mostHeld).toBeLessThanOrEqual(INITIAL_WINDOW + BODY_BUFFER + FRAME_BYTES);
      response!.end(Buffer.from('ok'));
    } finally {
      raw.close();
    }
  });
});

describe('through the gateway', () => {
  let certs: ProxyCerts;
  let gateway: RunningGateway;
  let port: number;
  let upstream: https.Server;
  /** Bytes the upstream has handed to its socket for /huge. */
  let hugeWritten = 0;
  /** Bytes of /upload the upstream has read (it reads none until told). */
  let uploadRead = 0;

  beforeAll(async () => {
    certs = await ProxyCerts.issue();
    const { pki, origin } = certs;
    upstream = https.createServer({ cert: origin.chainPem, key: origin.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      if (req.url === '/upload') {
        req.pause(); // an upstream that does not read
        req.on('data', (c: Buffer) => (uploadRead += c.length));
        res.on('close', () => req.destroy());
      } else if (req.url === '/huge') {
        pumpHugeResponse(res, (bytes) => (hugeWritten += bytes));
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const listener = offeringH2(certs.listener([terminateRoute('all', 'up', allow(id('frontend')))]));
    gateway = await startGateway(gatewayConfig([listener], [certs.upstream('up', (upstream.address() as AddressInfo).port)]));
    port = listenerPort(gateway);
  });

  afterAll(async () => {
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
    certs?.pki.cleanup();
  });

  const open = () => RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });

  it('a 48 MB upload to an upstream that does not read stalls the client: the gateway does not take it', async () => {
    const raw = await open();
    try {
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, post('/upload')));
      const sent = await sendWithinWindows(raw, Buffer.alloc(48 * MB, 'u'), 500);
      // What stalled it: kernel buffers on loopback (a few MB) and a window; the rest stays at the client.
      expect(sent).toBeLessThan(16 * MB);
      expect(uploadRead).toBe(0);
    } finally {
      raw.close();
    }
  });

  it('a client that opened huge windows but does not read its socket holds the upstream back', async () => {
    const raw = await open();
    try {
      // SETTINGS_INITIAL_WINDOW_SIZE and the connection window at their largest: only the socket can hold it back.
      const settings = Buffer.alloc(6);
      settings.writeUInt16BE(0x4, 0);
      settings.writeUInt32BE(2 ** 31 - 1, 2);
      const increment = Buffer.alloc(4);
      increment.writeUInt32BE(2 ** 31 - 1 - INITIAL_WINDOW, 0);
      await raw.write(Buffer.concat([frame(FRAME.SETTINGS, 0, 0, settings), frame(FRAME.WINDOW_UPDATE, 0, 0, increment)]));
      hugeWritten = 0;
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([[':method', 'GET'], [':scheme', 'https'], [':path', '/huge'], [':authority', 'localhost']])));
      await waitFor('the response', () => raw.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1));
      raw.socket.pause(); // reads nothing more
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const written = hugeWritten;
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Kernel buffers on loopback hold a few MB; the rest of the 64 MB must still be at the upstream.
      expect(written).toBeLessThan(24 * MB);
      expect(hugeWritten - written).toBeLessThan(MB); // and it is not moving
    } finally {
      raw.close();
    }
  });
});
