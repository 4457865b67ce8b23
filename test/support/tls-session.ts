// TLS session resumption from the client side: one handshake that reports whether it resumed and
// the session ticket(s) the server sent, bounded in time. For tests of session ticket keys.
import tls from 'node:tls';
import type { ClientCert } from './mtls-client.js';

export interface HandshakeResult {
  reused: boolean;
  /** The last session the server handed out ('session' events), to resume a later connection with. */
  session: Buffer | undefined;
  /** How many 'session' events (TLS 1.3: one per NewSessionTicket) arrived. */
  sessions: number;
}

export interface HandshakeOptions {
  port: number;
  ca: string;
  cert: ClientCert;
  session?: Buffer;
  servername?: string;
  /** How long to wait for tickets after the handshake (TLS 1.3 sends them after it). Default 300 ms. */
  ticketWaitMs?: number;
}

export function handshake(opts: HandshakeOptions): Promise<HandshakeResult> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let sessions = 0;
    const socket = tls.connect({
      host: '127.0.0.1',
      port: opts.port,
      servername: opts.servername ?? 'localhost',
      ca: opts.ca,
      cert: opts.cert.chainPem,
      key: opts.cert.keyPem,
      session: opts.session,
      minVersion: 'TLSv1.3',
    });
    const deadline = setTimeout(() => {
      socket.destroy();
      reject(new Error('handshake timed out'));
    }, 10_000);
    socket.on('session', (s: Buffer) => {
      session = s;
      sessions++;
    });
    socket.once('secureConnect', () => {
      const reused = socket.isSessionReused();
      setTimeout(() => {
        clearTimeout(deadline);
        socket.destroy();
        resolve({ reused, session, sessions });
      }, opts.ticketWaitMs ?? 300);
    });
    socket.on('data', () => {});
    socket.once('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
  });
}
