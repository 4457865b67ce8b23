// The benchmark's HTTP/2 load generator (bench/load/h2load.c), built with gcc and libnghttp2 and
// run against real node:http2 servers with mTLS: what it presents (client certificate, SNI, ALPN
// h2), how many streams it keeps in flight, what it counts as OK in its two modes, and that it
// stops by itself. Then the HTTP/2 origin of scenarios 9-10 (NGINX) under h2load, where NGINX is
// installed.
import { once } from 'node:events';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintBenchPki } from '../bench/certificates.js';
import { GRPC_PATH, portsFrom } from '../bench/layout.js';
import { runH2load, type H2Mode, type H2Report } from '../bench/load/h2load.js';
import { originH2Keeper, SMALL_BODY_BYTES } from '../bench/origin-h2.js';
import { which } from '../bench/peers/peer.js';
import { buildLoadTool, H2LOAD_LIBRARIES } from '../bench/tools.js';
import { freePort } from './support/gatehouse-cli.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

/** From the source tree (bench/layout.ts finds the repository from dist/, where vitest is not). */
const H2LOAD_SOURCE = fileURLToPath(new URL('../bench/load/h2load.c', import.meta.url));
/** HealthCheckResponse{status: SERVING} with gRPC's prefix. */
const SERVING = Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]);

let pki: TestPki;
let server: WrittenCert;
let client: WrittenCert;
let stranger: WrittenCert;
let binary: string;

beforeAll(async () => {
  pki = await TestPki.create();
  server = await pki.issue('server', { spiffeId: id('origin'), dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  client = await pki.issue('load', { spiffeId: id('load'), usage: 'client' });
  stranger = await pki.issue('stranger', { spiffeId: 'spiffe://wrong.example/ns/x/sa/y', usage: 'client' }, pki.otherCa);
  binary = path.join(pki.dir, 'h2load');
  await buildLoadTool(H2LOAD_SOURCE, binary, H2LOAD_LIBRARIES);
}, 120_000);

afterAll(() => pki?.cleanup());

interface SessionSeen {
  servername: string | false | null;
  alpn: string | undefined;
  peer: string;
  open: number;
  maxOpen: number;
}

interface RequestSeen {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** How the test server answers one stream (after reading its whole request body). */
type Answer = (stream: http2.ServerHttp2Stream) => void;

/** A node:http2 server that requires a client certificate from the test CA, and what it saw. */
async function h2Server(answer: Answer): Promise<{ port: number; sessions: SessionSeen[]; requests: RequestSeen[]; close: () => Promise<void> }> {
  const srv = http2.createSecureServer({ cert: server.chainPem, key: server.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true });
  const sessions: SessionSeen[] = [];
  const requests: RequestSeen[] = [];
  srv.on('session', (session) => {
    const socket = session.socket as tls.TLSSocket;
    const seen: SessionSeen = { servername: socket.servername, alpn: session.alpnProtocol, peer: socket.getPeerCertificate().subjectaltname ?? '', open: 0, maxOpen: 0 };
    sessions.push(seen);
    session.on('stream', (stream, headers) => {
      seen.open++;
      seen.maxOpen = Math.max(seen.maxOpen, seen.open);
      stream.on('close', () => seen.open--);
      stream.on('error', () => undefined); // the reset the test answers with, or h2load leaving at its deadline
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (requests.length < 5) requests.push({ headers, body: Buffer.concat(chunks) });
        // A moment later, so that the client's other streams arrive while this one is open.
        setTimeout(() => {
          if (!stream.destroyed) answer(stream);
        }, 2);
      });
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as AddressInfo).port,
    sessions,
    requests,
    close: () => new Promise((resolve) => srv.close(() => resolve())),
  };
}

async function load(port: number, mode: H2Mode, extra: { connections?: number; streams?: number; requests?: number; seconds?: number; cert?: WrittenCert } = {}): Promise<H2Report> {
  const cert = extra.cert ?? client;
  return runH2load(
    { port, sni: 'localhost', cert: cert.certFile, key: cert.keyFile, mode, connections: extra.connections ?? 2, streams: extra.streams ?? 8, seconds: extra.seconds ?? 20, requests: extra.requests },
    binary,
  );
}

const grpcAnswer =
  (trailers: Record<string, string> | undefined, body: Buffer = SERVING, contentType = 'application/grpc'): Answer =>
  (stream) => {
    stream.respond({ ':status': 200, 'content-type': contentType }, { waitForTrailers: trailers !== undefined });
    if (trailers) stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end(body);
  };

describe('h2load', () => {
  it('presents the client certificate, sends SNI and ALPN h2, keeps S streams in flight on each of C connections, and counts 2xx answers', async () => {
    const srv = await h2Server((stream) => {
      stream.respond({ ':status': 200 });
      stream.end(Buffer.alloc(1024, 'x'));
    });
    try {
      const r = await load(srv.port, 'get', { connections: 2, streams: 8, requests: 400 });
      expect(r).toMatchObject({ requests: 400, errors: 0, non_ok: 0, no_h2: 0, connections: 2, bytes: 400 * 1024 });
      expect(srv.sessions).toHaveLength(2);
      for (const s of srv.sessions) {
        expect(s).toMatchObject({ servername: 'localhost', alpn: 'h2', peer: `URI:${id('load')}`, maxOpen: 8 });
      }
      expect(srv.requests[0]!.headers).toMatchObject({ ':method': 'GET', ':path': '/', ':scheme': 'https', ':authority': `localhost:${srv.port}` });
      expect(r.cpu_seconds).toBeGreaterThan(0);
    } finally {
      await srv.close();
    }
  });

  it('counts answers outside 2xx as not OK', async () => {
    const srv = await h2Server((stream) => {
      stream.respond({ ':status': 503 });
      stream.end('busy');
    });
    try {
      expect(await load(srv.port, 'get', { requests: 50 })).toMatchObject({ requests: 0, errors: 0, non_ok: 50 });
    } finally {
      await srv.close();
    }
  });

  it('is refused by a server that requires a certificate from another CA', async () => {
    const srv = await h2Server(grpcAnswer({ 'grpc-status': '0' }));
    try {
      const r = await load(srv.port, 'get', { cert: stranger, seconds: 1 });
      expect(r.requests).toBe(0);
      expect(r.errors).toBeGreaterThan(0);
      expect(srv.sessions).toHaveLength(0);
    } finally {
      await srv.close();
    }
  });

  it('counts a server that does not pick h2 (no_h2) and makes no request there', async () => {
    const srv = tls.createServer({ cert: server.chainPem, key: server.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true }, (socket) => socket.end());
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    try {
      const r = await load((srv.address() as AddressInfo).port, 'get', { seconds: 1 });
      expect(r.requests).toBe(0);
      expect(r.no_h2).toBeGreaterThan(0);
    } finally {
      srv.close();
    }
  });

  it('sends a gRPC unary call (POST, application/grpc, te: trailers, one length-prefixed message)', async () => {
    const srv = await h2Server(grpcAnswer({ 'grpc-status': '0' }));
    try {
      expect(await load(srv.port, 'grpc', { requests: 100 })).toMatchObject({ requests: 100, errors: 0, non_ok: 0, bytes: 100 * SERVING.length });
      const seen = srv.requests[0]!;
      expect(seen.headers).toMatchObject({ ':method': 'POST', ':path': GRPC_PATH, 'content-type': 'application/grpc', te: 'trailers' });
      // HealthCheckRequest{service: "bench"}: uncompressed, 7 bytes long.
      expect(seen.body).toEqual(Buffer.from([0, 0, 0, 0, 7, 0x0a, 5, ...Buffer.from('bench')]));
    } finally {
      await srv.close();
    }
  });

  // Each answer below ends the stream cleanly, and none of them is a successful unary call.
  const notOk: ReadonlyArray<{ answer: string; serve: Answer; noTrailers: boolean }> = [
    { answer: 'trailers with grpc-status 3', serve: grpcAnswer({ 'grpc-status': '3', 'grpc-message': 'bad' }), noTrailers: false },
    { answer: 'no trailers at all', serve: grpcAnswer(undefined), noTrailers: true },
    {
      answer: 'trailers-only (grpc-status 0 in the response head)',
      serve: (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true }),
      noTrailers: true,
    },
    { answer: 'a message shorter than its prefix says', serve: grpcAnswer({ 'grpc-status': '0' }, Buffer.from([0, 0, 0, 0, 5, 0x08, 0x01])), noTrailers: false },
    { answer: 'two messages', serve: grpcAnswer({ 'grpc-status': '0' }, Buffer.concat([SERVING, SERVING])), noTrailers: false },
    { answer: 'a compressed message', serve: grpcAnswer({ 'grpc-status': '0' }, Buffer.from([1, 0, 0, 0, 2, 0x08, 0x01])), noTrailers: false },
    { answer: 'content-type text/plain', serve: grpcAnswer({ 'grpc-status': '0' }, SERVING, 'text/plain'), noTrailers: false },
  ];
  for (const { answer, serve, noTrailers } of notOk) {
    it(`does not count a gRPC answer with ${answer} as OK`, async () => {
      const srv = await h2Server(serve);
      try {
        expect(await load(srv.port, 'grpc', { requests: 40 })).toMatchObject({ requests: 0, errors: 0, non_ok: 40, no_trailers: noTrailers ? 40 : 0 });
      } finally {
        await srv.close();
      }
    });
  }

  it('counts reset streams as errors', async () => {
    const srv = await h2Server((stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    try {
      expect(await load(srv.port, 'get', { requests: 40 })).toMatchObject({ requests: 0, errors: 40, resets: 40, non_ok: 0 });
    } finally {
      await srv.close();
    }
  });

  it('stops by itself after --seconds when the server never answers', async () => {
    const srv = await h2Server(() => undefined);
    try {
      const started = Date.now();
      const r = await load(srv.port, 'get', { seconds: 1 });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(r.seconds).toBeGreaterThanOrEqual(1);
      expect(r.seconds).toBeLessThan(2);
      expect(r).toMatchObject({ requests: 0, non_ok: 0 });
      expect(srv.sessions).toHaveLength(2);
    } finally {
      await srv.close();
    }
  });
});

describe.skipIf(!which('nginx'))('the HTTP/2 origin of scenarios 9-10 (NGINX)', () => {
  let dir = '';
  let keeper: ReturnType<typeof originH2Keeper> | undefined;
  let port = 0;
  let bench: Awaited<ReturnType<typeof mintBenchPki>>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-origin-h2-'));
    bench = await mintBenchPki(dir);
    port = await freePort();
    keeper = originH2Keeper(bench, { ...portsFrom(1), originH2: port }, path.join(dir, 'origin'), () => undefined);
    expect(await keeper.ensure()).toBeUndefined();
  });

  afterAll(async () => {
    await keeper?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const fromBench = (mode: H2Mode, cert = { certFile: '', keyFile: '' }): Promise<H2Report> =>
    runH2load({ port, sni: 'localhost', cert: cert.certFile || bench.loadClient.cert, key: cert.keyFile || bench.loadClient.key, mode, connections: 2, streams: 8, seconds: 20, requests: 200 }, binary);

  it('answers GET with 1 KB over HTTP/2', async () => {
    expect(await fromBench('get')).toMatchObject({ requests: 200, errors: 0, non_ok: 0, no_h2: 0, bytes: 200 * SMALL_BODY_BYTES });
  });

  it('answers the gRPC health check with one message and the trailer grpc-status: 0', async () => {
    expect(await fromBench('grpc')).toMatchObject({ requests: 200, errors: 0, non_ok: 0, no_trailers: 0, bytes: 200 * SERVING.length });
  });

  it('serves no one without a client certificate from the bench CA', async () => {
    const r = await fromBench('get', stranger);
    expect(r.requests).toBe(0);
    expect(r.non_ok + r.errors).toBeGreaterThan(0);
  });
});
