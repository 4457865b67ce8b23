// The known HTTP/2 attacks against a terminate listener, sent frame by frame over a real mTLS
// connection: rapid reset (CVE-2023-44487), a CONTINUATION flood (CVE-2024-27316), SETTINGS and
// PING floods (CVE-2019-9515, CVE-2019-9512), both in one burst (nghttp2's bound on its queue of
// answers) and paced so that the client reads every answer (the gateway's own rates). Each is
// closed with GOAWAY, counted in gatehouse_http2_connections_closed_total with its reason and
// logged, with the gateway's memory bounded; and the per-listener limits (concurrent streams,
// header list size) hold.
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { gatewayPerTest } from './support/gateway-per-test.js';
import { h2Connect, h2Request, offeringH2 } from './support/h2-client.js';
import { emptySettings, ERROR, FLAG, FRAME, frame, getRequest, headerBlock, ping, RawH2Connection, rstStream } from './support/h2-frames.js';
import { captureLogs, metricValue, waitFor } from './support/lifecycle-harness.js';
import { connectMtls } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

const MB = 1024 * 1024;
/** Node 20's nghttp2 (1.61) answers a client past an acknowledged concurrent stream limit otherwise (RST_STREAM, no GOAWAY). */
const NODE_24 = Number(process.versions.node.split('.')[0]) >= 24;

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let echo: DemoUpstream;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  logs = captureLogs();
  certs = await ProxyCerts.issue();
  const { pki, origin } = certs;
  echo = await startDemoUpstream({ certPem: origin.chainPem, keyPem: origin.keyPem, caPem: pki.ca.rootPem });
  gateway = await startGateway(gatewayConfig([offeringH2(certs.listener([terminateRoute('all', 'echo', allow(id('frontend')))]))], [certs.upstream('echo', echo.port)]));
  port = listenerPort(gateway);
});

afterAll(async () => {
  logs?.restore();
  await gateway?.close();
  await echo?.close();
  certs?.pki.cleanup();
});

const open = () => RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
const closedCount = (reason: string) => metricValue('gatehouse_http2_connections_closed_total', { listener: 'public', reason });

/** Writes `frames` in batches of `batch`, `pauseMs` apart, until done or the gateway closed the connection. */
async function send(raw: RawH2Connection, frames: Buffer[], batch: number, pauseMs: number): Promise<number> {
  let sent = 0;
  while (sent < frames.length) {
    if (!(await raw.write(Buffer.concat(frames.slice(sent, sent + batch))))) break;
    sent += batch;
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  return sent;
}

/** The gateway's memory growth over `attack` (RSS and heap, after the connection closed). */
async function memoryGrowth(attack: () => Promise<void>): Promise<{ rss: number; heap: number }> {
  const before = process.memoryUsage();
  await attack();
  const after = process.memoryUsage();
  return { rss: after.rss - before.rss, heap: after.heapUsed - before.heapUsed };
}

/**
 * Asserts the connection was closed for `reason`: counted once, logged, and (`code`) the GOAWAY
 * read. A client that floods faster than it reads may close before the GOAWAY reaches it.
 */
async function expectClosedFor(raw: RawH2Connection, reason: string, code: number | undefined, countBefore: number): Promise<void> {
  await raw.closed(5000);
  if (code !== undefined) expect(raw.goaway).toMatchObject({ code });
  expect(await closedCount(reason)).toBe(countBefore + 1);
  expect(logs.events('http2_connection_closed').filter((l) => l.reason === reason).length).toBeGreaterThanOrEqual(1);
}

describe('HTTP/2 floods are closed with GOAWAY, counted, with memory bounded', () => {
  it('rapid reset: a client opening and at once resetting stream after stream', async () => {
    const before = await closedCount('rapid_reset');
    const served = echo.received.length;
    const raw = await open();
    let sent = 0;
    const growth = await memoryGrowth(async () => {
      const pairs = Array.from({ length: 5000 }, (_, i) => Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, getRequest(`/reset/${i}`)), rstStream(1 + 2 * i, ERROR.CANCEL)]));
      sent = await send(raw, pairs, 100, 1);
      await expectClosedFor(raw, 'rapid_reset', ERROR.ENHANCE_YOUR_CALM, before);
    });
    // Closed long before the 5000th stream; few of the requests reached the upstream.
    expect(raw.goaway!.lastStreamId).toBeLessThan(2 * 1000);
    expect(sent).toBeLessThan(5000);
    expect(echo.received.length - served).toBeLessThan(500);
    expect(growth.rss).toBeLessThan(96 * MB);
    expect(growth.heap).toBeLessThan(64 * MB);
  });

  it('rapid reset: a client that cancels some of its streams, or cancels late, is not closed', async () => {
    const before = await closedCount('rapid_reset');
    const session = await h2Connect({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      // 150 answered streams, then 120 reset at once: fewer than half of all its streams.
      await Promise.all(Array.from({ length: 150 }, (_, i) => h2Request(session, { ':path': `/fine/${i}` })));
      for (let i = 0; i < 120; i++) {
        const stream = session.request({ ':path': `/cancelled/${i}` });
        stream.on('error', () => {});
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
      // node:http2 counts a reset stream against the concurrent limit until the end of its event loop
      // turn (it may refuse a stream opened in that instant with ENHANCE_YOUR_CALM): give it one.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await h2Request(session, { ':path': '/still-served' })).status).toBe(200);
      expect(session.closed || session.destroyed).toBe(false);
      expect(await closedCount('rapid_reset')).toBe(before);
    } finally {
      session.close();
    }
  });

  it('CONTINUATION flood: a header block that never ends', async () => {
    const before = await closedCount('continuation_flood');
    const raw = await open();
    const growth = await memoryGrowth(async () => {
      const piece = headerBlock([['x-flood', 'c'.repeat(1000)]]);
      const frames = [frame(FRAME.HEADERS, FLAG.END_STREAM, 1, getRequest('/continuation')), ...Array.from({ length: 10_000 }, () => frame(FRAME.CONTINUATION, 0, 1, piece))];
      const sent = await send(raw, frames, 50, 0);
      expect(sent).toBeLessThan(frames.length);
      await expectClosedFor(raw, 'continuation_flood', undefined, before);
    });
    expect(growth.rss).toBeLessThan(96 * MB);
    expect(growth.heap).toBeLessThan(64 * MB);
  });

  it('SETTINGS flood in one burst (more acknowledgements queued than nghttp2 holds)', async () => {
    const before = await closedCount('settings_flood');
    const raw = await open();
    const growth = await memoryGrowth(async () => {
      await send(raw, Array.from({ length: 20_000 }, () => emptySettings()), 5000, 0);
      await expectClosedFor(raw, 'settings_flood', undefined, before);
    });
    expect(growth.rss).toBeLessThan(96 * MB);
  });

  it('SETTINGS flood paced, every acknowledgement read: closed past 50 a second', async () => {
    const before = await closedCount('settings_flood');
    const raw = await open();
    const sent = await send(raw, Array.from({ length: 200 }, () => emptySettings()), 10, 20);
    await expectClosedFor(raw, 'settings_flood', ERROR.ENHANCE_YOUR_CALM, before);
    expect(sent).toBeLessThanOrEqual(70);
  });

  it('PING flood in one burst', async () => {
    const before = await closedCount('ping_flood');
    const raw = await open();
    const growth = await memoryGrowth(async () => {
      await send(raw, Array.from({ length: 20_000 }, (_, i) => ping(i)), 5000, 0);
      await expectClosedFor(raw, 'ping_flood', undefined, before);
    });
    expect(growth.rss).toBeLessThan(96 * MB);
  });

  it('PING flood paced, every acknowledgement read: closed past 500 a second', async () => {
    const before = await closedCount('ping_flood');
    const raw = await open();
    const sent = await send(raw, Array.from({ length: 2000 }, (_, i) => ping(i)), 50, 10);
    await expectClosedFor(raw, 'ping_flood', ERROR.ENHANCE_YOUR_CALM, before);
    expect(sent).toBeLessThanOrEqual(700);
    // Every PING until then was answered.
    expect(raw.frames.filter((f) => f.type === FRAME.PING && (f.flags & FLAG.ACK) !== 0).length).toBeGreaterThanOrEqual(500);
  });

  it('invalid frames: more malformed requests than node:http2 tolerated (1000) close the connection, counted as invalid_frames', async () => {
    const before = await closedCount('invalid_frames');
    const raw = await open();
    // An uppercase name: nghttp2 resets each stream (PROTOCOL_ERROR) and reports the frame invalid.
    const malformed = (i: number) => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, Buffer.concat([getRequest(`/bad/${i}`), headerBlock([['X-Upper', '1']])]));
    await send(raw, Array.from({ length: 1100 }, (_, i) => malformed(i)), 100, 1);
    await expectClosedFor(raw, 'invalid_frames', undefined, before);
  });

  it('a client that sends a broken TLS record mid-connection: that connection is closed, the gateway goes on', async () => {
    const tcp = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => tcp.once('connect', () => resolve()));
    const socket = await connectMtls({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, socket: tcp, ALPNProtocols: ['h2'] });
    socket.on('error', () => {});
    expect(socket.alpnProtocol).toBe('h2');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // An application-data record whose bytes are not what the TLS session encrypted.
    tcp.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), Buffer.alloc(64, 0xab)]));
    await closed;
    expect((await h2Request(await h2Connect({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend }), { ':path': '/after-broken-record' })).status).toBe(200);
  });

  it('a client keeping to the rates is served: a few PINGs and SETTINGS, then a request', async () => {
    const raw = await open();
    try {
      await send(raw, [...Array.from({ length: 20 }, (_, i) => ping(i)), ...Array.from({ length: 5 }, () => emptySettings())], 25, 0);
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, getRequest('/polite')));
      await waitFor('the response', () => raw.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1));
      expect(raw.goaway).toBeUndefined();
    } finally {
      raw.close();
    }
  });
});

describe('per-listener HTTP/2 limits', () => {
  const startGatewayForTest = gatewayPerTest();
  /** A gateway whose listener allows 10 streams at once and 4 KiB header lists. */
  const limited = async () => {
    const listener = offeringH2(certs.listener([terminateRoute('all', 'echo', allow(id('frontend')))]));
    return startGatewayForTest(gatewayConfig([{ ...listener, limits: { maxConcurrentStreams: 10, maxHeaderBytes: 4096 } }], [certs.upstream('echo', echo.port)]));
  };
  /** 15 POST streams left open (no END_STREAM: their bodies never come). */
  const fifteenOpenStreams = () =>
    Buffer.concat(Array.from({ length: 15 }, (_, i) => frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, headerBlock([[':method', 'POST'], [':scheme', 'https'], [':path', `/open/${i}`], [':authority', 'localhost']]))));

  it('advertises limits.max_concurrent_streams and limits.max_header_bytes in its SETTINGS', async () => {
    const raw = await RawH2Connection.open({ port: await limited(), ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      const settings = await waitFor('the SETTINGS', () => raw.frames.find((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0));
      const advertised = new Map<number, number>();
      for (let i = 0; i < settings.payload.length; i += 6) advertised.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
      expect(advertised.get(0x3)).toBe(10); // SETTINGS_MAX_CONCURRENT_STREAMS
      expect(advertised.get(0x6)).toBe(4096); // SETTINGS_MAX_HEADER_LIST_SIZE
    } finally {
      raw.close();
    }
  });

  it('refuses streams beyond limits.max_concurrent_streams (RST_STREAM REFUSED_STREAM) before the client acknowledged it', async () => {
    const raw = await RawH2Connection.open({ port: await limited(), ca: certs.pki.ca.rootPem, cert: certs.frontend });
    raw.ackSettings = false;
    try {
      await raw.write(fifteenOpenStreams());
      await waitFor('five refusals', () => raw.resets().size >= 5);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const resets = raw.resets();
      expect([...resets.keys()].sort((a, b) => a - b)).toEqual([21, 23, 25, 27, 29]);
      expect([...resets.values()]).toEqual(Array(5).fill(ERROR.REFUSED_STREAM));
      expect(raw.goaway).toBeUndefined();
    } finally {
      raw.close();
    }
  });

  it.skipIf(!NODE_24)('closes a connection that exceeds limits.max_concurrent_streams after acknowledging it (GOAWAY PROTOCOL_ERROR), counted', async () => {
    const port = await limited();
    const before = await closedCount('protocol_error');
    const raw = await RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    // The ACK goes out as soon as the SETTINGS arrive, before these streams.
    await waitFor('the SETTINGS', () => raw.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0));
    await raw.write(fifteenOpenStreams());
    await expectClosedFor(raw, 'protocol_error', ERROR.PROTOCOL_ERROR, before);
  });

  it('answers a header list over limits.max_header_bytes 431 (counted) before the client acknowledged it, and node:http2 resets it after', async () => {
    const port = await limited();
    const refused = await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: '-', reason: 'request_header_too_large' });
    const served = echo.received.length;
    const raw = await RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    raw.ackSettings = false;
    try {
      const big = Buffer.concat([getRequest('/big'), headerBlock([['x-big', 'b'.repeat(5000)]])]);
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, big));
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, Buffer.concat([getRequest('/small'), headerBlock([['x-small', 'b'.repeat(3000)]])])));
      await waitFor('both answered', () => raw.frames.filter((f) => f.type === FRAME.DATA && (f.flags & FLAG.END_STREAM) !== 0).length >= 2);
      const body = Buffer.concat(raw.frames.filter((f) => f.type === FRAME.DATA && f.streamId === 1).map((f) => f.payload)).toString();
      expect(JSON.parse(body)).toMatchObject({ reason: 'request_header_too_large', rule: 'header_list_size' });
      expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: '-', reason: 'request_header_too_large' })).toBe(refused + 1);
      expect(echo.received.length).toBe(served + 1); // only /small
      // Acknowledged: node:http2 holds the limit itself (RST_STREAM ENHANCE_YOUR_CALM).
      await raw.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 5, big));
      await waitFor('the reset', () => raw.resets().get(5));
      expect(raw.resets().get(5)).toBe(ERROR.ENHANCE_YOUR_CALM);
      expect(echo.received.length).toBe(served + 1);
    } finally {
      raw.close();
    }
  });
});
