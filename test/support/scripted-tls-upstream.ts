// An mTLS upstream (node:tls, real handshakes) whose answers a test writes itself, byte for byte:
// each request head is handed to `answer` with its socket, so a test can hold a response, stall a
// body or send headers no well-behaved server would. It counts the TCP connections it accepts, seen
// from the upstream's side, which is how a test observes the gateway's pool. Requests carry no body.
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';

export interface ScriptedRequest {
  /** The request line and headers, without the final empty line. */
  readonly head: string;
  /** The request target (path and query). */
  readonly path: string;
  readonly socket: TLSSocket;
}

export interface ScriptedTlsUpstream {
  readonly port: number;
  readonly requests: ScriptedRequest[];
  /** TCP connections accepted, open now, and the most open at any one time. */
  readonly connections: { accepted: number; open: number; maxOpen: number };
  close(): Promise<void>;
}

export async function startScriptedTlsUpstream(
  identity: { chainPem: string; keyPem: string },
  caPem: string,
  answer: (request: ScriptedRequest) => void,
): Promise<ScriptedTlsUpstream> {
  const requests: ScriptedRequest[] = [];
  const connections = { accepted: 0, open: 0, maxOpen: 0 };
  const sockets = new Set<TLSSocket>();
  const server = tls.createServer({ cert: identity.chainPem, key: identity.keyPem, ca: caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const request = { head, path: head.split(' ')[1] ?? '', socket };
        requests.push(request);
        answer(request);
      }
    });
  });
  // Counted at TCP accept, before the handshake: every connection the gateway opened.
  server.on('connection', (raw) => {
    connections.accepted++;
    connections.maxOpen = Math.max(connections.maxOpen, ++connections.open);
    raw.once('close', () => connections.open--);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A complete response with a Content-Length body. */
export function okResponse(body: string, extraHeaders = ''): string {
  return `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`;
}
