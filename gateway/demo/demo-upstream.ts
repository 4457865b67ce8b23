// The demo upstream of the embedded default (and of tests): an HTTPS server that itself requires
// mTLS and answers with JSON of the request it received, so a user sees the identity headers the
// gateway forwarded and the identity the gateway presented. It speaks HTTP/1.1 and HTTP/2, the
// client's pick by ALPN, and over HTTP/2 also serves gRPC: the standard health service
// (grpc-health-service.ts).
import http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenAt } from '../net/shared-port.js';
import type { TLSSocket } from 'node:tls';
import { parseSubjectAltNames } from '../identity/subject-alt-names.js';
import { serveGrpcHealth } from './grpc-health-service.js';
import { isGrpcContentType } from './grpc-wire.js';

export interface DemoUpstreamOptions {
  certPem: string;
  keyPem: string;
  /** Trust bundle for client certificates (the gateway's). */
  caPem: string;
  host?: string;
  port?: number;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  /** '1.1' or '2.0': the protocol the client (the gateway, or a passthrough client) chose by ALPN. */
  httpVersion: string;
  /** As received; over HTTP/2 with the pseudo-headers (`:authority`, …). */
  headers: Record<string, string | string[] | undefined>;
  /** The URI SAN of the client certificate the peer (the gateway, or a passthrough client) presented. */
  peer: string | null;
  tlsSessionReused: boolean;
  /** The request body as text; empty for gRPC calls, whose messages the health service reads. */
  body: string;
}

export interface DemoUpstream {
  readonly server: http2.Http2SecureServer;
  readonly port: number;
  readonly received: ReceivedRequest[];
  /** TLS connections accepted (each a full or resumed handshake). */
  readonly connections: { total: number; resumed: number };
  /** Drops every open connection (HTTP/1.1 and HTTP/2 alike), still listening: the next request needs a new one. */
  closeAllConnections(): void;
  close(): Promise<void>;
}

/** Kept longer than the gateway's upstream idle timeout, so the gateway is the one closing an idle connection. */
const HTTP1_KEEP_ALIVE_MS = 65_000;
const MAX_RECORDED = 1000;

export async function startDemoUpstream(opts: DemoUpstreamOptions): Promise<DemoUpstream> {
  const received: ReceivedRequest[] = [];
  const connections = { total: 0, resumed: 0 };
  const sockets = new Set<TLSSocket>();
  const record = (req: IncomingMessage | http2.Http2ServerRequest, body: string): ReceivedRequest => {
    const socket = req.socket as TLSSocket;
    const entry: ReceivedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      httpVersion: req.httpVersion,
      headers: req.headers,
      peer: parseSubjectAltNames(socket.getPeerCertificate().subjectaltname).uris[0] ?? null,
      tlsSessionReused: socket.isSessionReused(),
      body,
    };
    if (received.length < MAX_RECORDED) received.push(entry);
    return entry;
  };
  // allowHTTP1: one server for both protocols; ALPN offers h2 and http/1.1, and a client offering
  // neither (or no ALPN at all) gets HTTP/1.1.
  const server = http2.createSecureServer(
    { cert: opts.certPem, key: opts.keyPem, ca: opts.caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', allowHTTP1: true },
    (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse) => {
      if (req instanceof http2.Http2ServerRequest && isGrpcContentType(req.headers['content-type'])) {
        record(req, '');
        return serveGrpcHealth(req, res as http2.Http2ServerResponse);
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { method, path, httpVersion, headers, peer } = record(req, Buffer.concat(chunks).toString('utf8'));
        const body = JSON.stringify({ method, path, httpVersion, headers, peer }, null, 2) + '\n';
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    },
  );
  // Read by Node's HTTP/1.1 code for the connections allowHTTP1 serves; an HTTP/2 server has no such option.
  Object.assign(server, { keepAliveTimeout: HTTP1_KEEP_ALIVE_MS });
  server.on('secureConnection', (socket: TLSSocket) => {
    connections.total++;
    if (socket.isSessionReused()) connections.resumed++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const closeAllConnections = () => {
    for (const socket of sockets) socket.destroy();
  };
  // On the socket the generation before passed on, after a handover of the embedded demo.
  await listenAt(server, { host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 }, 511);
  return {
    server,
    port: (server.address() as AddressInfo).port,
    received,
    connections,
    closeAllConnections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open HTTP/2 sessions (a gRPC Watch never ends by itself) and kept-alive HTTP/1.1 connections.
        closeAllConnections();
      }),
  };
}
