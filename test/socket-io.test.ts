// SocketIo (gateway/net/socket-io.ts) on real loopback sockets, TLS and plaintext: writes made
// while one is in flight leave in order, end() waits for them, a paused reader holds what arrives
// (and the FIN) until it resumes, and write() asks for a drain past its queue limit.
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SocketIo } from '../gateway/net/socket-io.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

let pki: TestPki;
let server: WrittenCert;

beforeAll(async () => {
  pki = await TestPki.create();
  server = await pki.issue('server', { spiffeId: id('server'), dnsNames: ['localhost'], usage: 'server' });
});
afterAll(() => pki.cleanup());

type Kind = 'tls' | 'tcp';

/** A listening server whose accepted sockets go to `serve`; resolves the client socket, connected. */
async function connectPair(kind: Kind, serve: (socket: net.Socket) => void): Promise<{ client: net.Socket; close: () => Promise<void> }> {
  const srv =
    kind === 'tls'
      ? tls.createServer({ cert: server.chainPem, key: server.keyPem, minVersion: 'TLSv1.2' }, serve)
      : net.createServer(serve);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  const client =
    kind === 'tls' ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.rootPem }) : net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    client.once(kind === 'tls' ? 'secureConnect' : 'connect', () => resolve());
    client.once('error', reject);
  });
  return {
    client,
    close: () => {
      client.destroy();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

function readAll(socket: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => parts.push(chunk));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(parts))));
}

describe.each<Kind>(['tls', 'tcp'])('SocketIo over %s', (kind) => {
  it('sends 2,000 back-to-back writes of both kinds in order, and end() lets them all out before the FIN', async () => {
    const expected: Buffer[] = [];
    for (let i = 0; i < 2000; i++) expected.push(i % 2 === 0 ? Buffer.from(`line ${i}\n`, 'latin1') : crypto.randomBytes(1 + (i % 700)));
    const pair = await connectPair(kind, (socket) => {
      const io = new SocketIo(socket, { onData: () => {}, onEnd: () => {} });
      expected.forEach((part, i) => io.write(i % 2 === 0 ? part.toString('latin1') : part));
      io.end();
    });
    const got = await readAll(pair.client);
    expect(got.equals(Buffer.concat(expected))).toBe(true);
    await pair.close();
  });

  it('a paused reader is given nothing, then the bytes and the FIN in order once it resumes', async () => {
    const events: string[] = [];
    let io: SocketIo | undefined;
    const pair = await connectPair(kind, (socket) => {
      io = new SocketIo(socket, {
        onData: (chunk) => events.push(chunk.toString()),
        onEnd: () => {
          events.push('<end>');
          io!.end();
        },
      });
      io.pause();
    });
    pair.client.write('first ');
    pair.client.end('second');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(io).toBeDefined();
    expect(events).toEqual([]);
    io!.resume();
    await expect.poll(() => events.at(-1)).toBe('<end>');
    expect(events.slice(0, -1).join('')).toBe('first second');
    await pair.close();
  });

  it('write() returns false once 64 KiB wait behind a write in flight, and onDrain fires when they have left', async () => {
    let result: { refusedAt: number; drained: Promise<void> } | undefined;
    const pair = await connectPair(kind, (socket) => {
      const io = new SocketIo(socket, { onData: () => {}, onEnd: () => {} });
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      let refusedAt = -1;
      // The client does not read at first, so the kernel's buffers fill and writes start to wait.
      for (let i = 0; i < 2000 && refusedAt < 0; i++) if (!io.write(chunk)) refusedAt = i;
      const drained = new Promise<void>((resolve) => io.onDrain(resolve));
      result = { refusedAt, drained };
      void drained.then(() => io.end());
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(result!.refusedAt).toBeGreaterThan(0);
    const total = readAll(pair.client);
    await result!.drained;
    expect((await total).length).toBe((result!.refusedAt + 1) * 16 * 1024);
    await pair.close();
  });

  it('closes the socket once both sides have ended: the peer FIN first, then ours', async () => {
    let closed: Promise<void> | undefined;
    const pair = await connectPair(kind, (socket) => {
      closed = new Promise((resolve) => socket.once('close', () => resolve()));
      const io = new SocketIo(socket, { onData: () => {}, onEnd: () => setTimeout(() => io.write('bye') && io.end(), 20) });
    });
    const reply = readAll(pair.client);
    pair.client.end();
    expect((await reply).toString()).toBe('bye');
    await closed;
    await pair.close();
  });

  it('bytes the socket held before it was taken over are read first', async () => {
    const got: string[] = [];
    const pair = await connectPair(kind, (socket) => {
      socket.unshift(Buffer.from('held '));
      const io = new SocketIo(socket, {
        onData: (chunk) => got.push(chunk.toString()),
        onEnd: () => io.end(),
      });
    });
    pair.client.write('then read');
    await expect.poll(() => got.join('')).toBe('held then read');
    await pair.close();
  });

  it('a read written back as is arrives intact, while other connections reuse the read buffer and the reader is slow', async () => {
    const sent = [crypto.randomBytes(12 << 20), crypto.randomBytes(4 << 20)];
    let port = 0;
    let garbage: unknown;
    const srv = kind === 'tls' ? tls.createServer({ cert: server.chainPem, key: server.keyPem }) : net.createServer();
    srv.on(kind === 'tls' ? 'secureConnection' : 'connection', (socket: net.Socket) => {
      const io: SocketIo = new SocketIo(socket, {
        onData: (chunk) => {
          // Garbage, so that the collector runs while writes are in progress and would free bytes they still point into.
          garbage = Array.from({ length: 2000 }, (_, i) => ({ i }));
          if (!io.write(chunk)) {
            io.pause();
            io.onDrain(() => io.resume());
          }
        },
        onEnd: () => io.end(),
      });
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    port = (srv.address() as net.AddressInfo).port;
    const echoed = await Promise.all(
      sent.map(async (bytes, i) => {
        const client = kind === 'tls' ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.rootPem }) : net.connect({ host: '127.0.0.1', port });
        await new Promise<void>((resolve) => client.once(kind === 'tls' ? 'secureConnect' : 'connect', () => resolve()));
        const parts: Buffer[] = [];
        const done = new Promise<Buffer>((resolve) => client.once('end', () => resolve(Buffer.concat(parts))));
        // The first client reads nothing for a while, then slowly: the server's writes back to it
        // fill the kernel's buffers and wait, partly written, while the other connection's reads
        // land in the shared buffer.
        client.on('data', (chunk: Buffer) => parts.push(chunk));
        if (i === 0) {
          client.pause();
          setTimeout(() => client.resume(), 400);
        }
        client.end(bytes);
        const back = await done;
        client.destroy();
        return back;
      }),
    );
    expect(garbage).toBeDefined();
    for (const [i, bytes] of sent.entries()) expect(crypto.createHash('sha256').update(echoed[i]!).digest('hex')).toBe(crypto.createHash('sha256').update(bytes).digest('hex'));
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
});
