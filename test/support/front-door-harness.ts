// Helpers for the front door and passthrough tests: listener and backend config literals, real
// TLS and raw TCP backends on 127.0.0.1, TLS clients that report what certificate they saw, a
// raw client that records how the connection ended, and `openssl`/`curl` runs with a time limit.
import { execFile } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import type { Backend, Listener, ListenerTimeouts, MtlsMode, Route } from '../../gateway/config/types.js';
import { startFrontDoor, type FrontDoor, type FrontDoorOptions } from '../../gateway/listener/front-door.js';
import type { ClientCert } from './mtls-client.js';

export const TEST_TIMEOUTS: ListenerTimeouts = { helloMs: 5000, handshakeMs: 10_000, idleMs: 60_000, requestHeadersMs: 30_000, requestBodyMs: 30_000 };

export function frontDoorListener(routes: Route[], extra: { name?: string; mode?: MtlsMode; maxConnections?: number; timeouts?: Partial<ListenerTimeouts> } = {}): Listener {
  return {
    name: extra.name ?? 'edge',
    address: { host: '127.0.0.1', port: 0 },
    mode: extra.mode ?? 'STRICT',
    routes,
    maxConnections: extra.maxConnections ?? 10_000,
    timeouts: { ...TEST_TIMEOUTS, ...extra.timeouts },
    maxRequestBodyBytes: 64 * 1024 * 1024,
  };
}

export function passthroughRoute(name: string, backend: string, match: { sni?: string[]; default?: boolean; alpn?: string }): Route {
  return { kind: 'passthrough', name, sni: match.sni ?? [], default: match.default ?? false, alpn: match.alpn, backend };
}

export function backend(name: string, ports: number[], extra: Partial<Backend> = {}): Backend {
  return { name, endpoints: ports.map((port) => ({ host: '127.0.0.1', port })), balance: 'round_robin', connectTimeoutMs: 2000, ...extra };
}

export interface Closable {
  readonly port: number;
  close(): Promise<void>;
}

/** What a test file started (front doors, backends), closed together in afterAll. */
export class OpenResources {
  readonly #open: { close(): Promise<void> }[] = [];

  async frontDoor(options: FrontDoorOptions): Promise<FrontDoor> {
    return this.add(await startFrontDoor(options));
  }

  async keep<T extends Closable>(closable: Promise<T>): Promise<T> {
    return this.add(await closable);
  }

  add<T extends { close(): Promise<void> }>(resource: T): T {
    this.#open.push(resource);
    return resource;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#open.splice(0).map((c) => c.close()));
  }
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
}

function track(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

/**
 * A TLS backend (node:tls) that, once the handshake is done, writes one JSON line: its name and
 * the client certificate's URI SAN (so a test sees that mTLS reached the backend itself), then
 * echoes what it receives, and closes after a chunk that contains QUIT.
 */
export async function tlsBackend(opts: { name: string; cert: ClientCert; ca: string; requestCert?: boolean; ALPNProtocols?: string[] }): Promise<Closable & { server: tls.Server; clientErrors: string[] }> {
  const clientErrors: string[] = [];
  const server = tls.createServer({ cert: opts.cert.chainPem, key: opts.cert.keyPem, ca: opts.ca, requestCert: opts.requestCert ?? true, rejectUnauthorized: opts.requestCert ?? true, ALPNProtocols: opts.ALPNProtocols }, (socket) => {
    const peer = socket.getPeerX509Certificate();
    socket.write(JSON.stringify({ backend: opts.name, client: peer?.subjectAltName ?? null, alpn: socket.alpnProtocol || null, sni: socket.servername || null }) + '\n');
    socket.on('data', (chunk: Buffer) => {
      socket.write(chunk);
      if (chunk.includes('QUIT')) socket.end();
    });
    socket.on('error', () => {});
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => clientErrors.push(err.code ?? err.message));
  const sockets = track(server);
  return { server, clientErrors, port: await listen(server), close: closer(server, sockets) };
}

/** A raw TCP backend that records what each connection sends and answers with `reply`. */
export async function rawBackend(reply?: (socket: net.Socket) => void): Promise<Closable & { received: Buffer[]; connections: net.Socket[] }> {
  const received: Buffer[] = [];
  const connections: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    connections.push(socket);
    const index = received.push(Buffer.alloc(0)) - 1;
    socket.on('data', (chunk: Buffer) => (received[index] = Buffer.concat([received[index]!, chunk])));
    socket.on('error', () => {});
    reply?.(socket);
  });
  const sockets = track(server);
  return { received, connections, port: await listen(server), close: closer(server, sockets) };
}

export interface TlsResult {
  socket: tls.TLSSocket;
  /** SHA-256 fingerprint of the certificate the client was shown. */
  fingerprint: string;
  /** The first line the backend wrote. */
  firstLine: Record<string, unknown>;
}

export function tlsClient(opts: { port: number; servername?: string; ca: string; cert?: ClientCert; ALPNProtocols?: string[] }): Promise<TlsResult> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: opts.port, servername: opts.servername, ca: opts.ca, cert: opts.cert?.chainPem, key: opts.cert?.keyPem, ALPNProtocols: opts.ALPNProtocols });
    socket.setTimeout(10_000, () => socket.destroy(new Error('tls client timed out')));
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline === -1) return;
      socket.off('data', onData);
      socket.setTimeout(0);
      resolve({ socket, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 ?? '', firstLine: JSON.parse(buffered.slice(0, newline)) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the first line')));
  });
}

export interface RawEnd {
  received: Buffer;
  /** 'end': a FIN; 'reset': ECONNRESET; 'timeout': still open after the wait. */
  how: 'end' | 'reset' | 'timeout' | 'error';
}

/** Writes `bytes` (null: nothing) and records what comes back until the server closes. */
export function rawExchange(port: number, bytes: Buffer | null, waitMs = 5000): Promise<RawEnd> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let how: RawEnd['how'] = 'end';
    const timer = setTimeout(() => {
      how = 'timeout';
      socket.destroy();
    }, waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => (how = err.code === 'ECONNRESET' ? 'reset' : 'error'));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks), how });
    });
    if (bytes) socket.write(bytes);
  });
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a time limit; never rejects (the exit code says how it went). */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 10_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code === undefined || typeof (err as { code?: unknown }).code !== 'number' ? null : ((err as { code: number }).code)) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end(opts.input ?? '');
  });
}
