// The demo upstream of the embedded default (and of tests): an HTTPS server that itself requires
// mTLS and answers with JSON of the request it received, so a user sees the identity headers the
// gateway forwarded and the identity the gateway presented.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { listenAt } from '../net/shared-port.js';
import type { TLSSocket } from 'node:tls';
import { parseSubjectAltNames } from '../identity/subject-alt-names.js';

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
  headers: Record<string, string | string[] | undefined>;
  /** The URI SAN of the client certificate the peer (the gateway, or a passthrough client) presented. */
  peer: string | null;
  tlsSessionReused: boolean;
  body: string;
}

export interface DemoUpstream {
  readonly server: https.Server;
  readonly port: number;
  readonly received: ReceivedRequest[];
  /** TLS connections accepted (each a full or resumed handshake). */
  readonly connections: { total: number; resumed: number };
  close(): Promise<void>;
}

export async function startDemoUpstream(opts: DemoUpstreamOptions): Promise<DemoUpstream> {
  const received: ReceivedRequest[] = [];
  const connections = { total: 0, resumed: 0 };
  const server = https.createServer(
    { cert: opts.certPem, key: opts.keyPem, ca: opts.caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', keepAliveTimeout: 65_000 },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const socket = req.socket as TLSSocket;
        const peer = parseSubjectAltNames(socket.getPeerCertificate().subjectaltname).uris[0] ?? null;
        const record: ReceivedRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          peer,
          tlsSessionReused: socket.isSessionReused(),
          body: Buffer.concat(chunks).toString('utf8'),
        };
        if (received.length < 1000) received.push(record);
        const body = JSON.stringify({ method: record.method, path: record.path, headers: record.headers, peer }, null, 2) + '\n';
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    },
  );
  server.on('secureConnection', (socket: TLSSocket) => {
    connections.total++;
    if (socket.isSessionReused()) connections.resumed++;
  });
  // On the socket the generation before passed on, after a handover of the embedded demo.
  await listenAt(server, { host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 }, 511);
  return {
    server,
    port: (server.address() as AddressInfo).port,
    received,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
