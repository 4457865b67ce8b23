// A client that asks for a large response, takes one read of it and then stops reading: what a test
// of backpressure needs to see whether the gateway holds the rest back (its side of the client
// connection stays small) instead of buffering it.
import type { TLSSocket } from 'node:tls';
import { expect } from 'vitest';
import type { RunningGateway } from '../../gateway/runtime/gateway.js';
import { connectMtls, type ClientCert } from './mtls-client.js';

export interface StalledReader {
  /** Bytes taken before it stopped reading. */
  readonly received: number;
  /** The gateway's side of this client's connection. */
  readonly gatewaySide: TLSSocket | undefined;
  close(): void;
}

/** GET `path` on the listener at `port`, one read, then `stallMs` without reading. */
export async function stalledReader(gateway: RunningGateway, port: number, client: { ca: string; cert: ClientCert }, path: string, stallMs = 2000): Promise<StalledReader> {
  const socket = await connectMtls({ port, ca: client.ca, cert: client.cert });
  socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
  let received = 0;
  // The first bytes may be slow on a loaded machine (a new upstream connection): wait for them
  // (bounded), then give the gateway time to fill buffers.
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      received += c.length;
      socket.pause();
      resolve();
    });
    setTimeout(resolve, 10_000);
  });
  await new Promise((resolve) => setTimeout(resolve, stallMs));
  // Earlier connections to the listener may still be listed.
  const gatewaySide = [...gateway.listeners.get('public')!.terminate!.connections].find((c) => c.remotePort === socket.localPort);
  return { received, gatewaySide, close: () => socket.destroy() };
}

/**
 * Asserts that a reader stalled on `path` holds the response back: the upstream, `written()` bytes
 * into its `total`, makes no progress while the client does not read (a gateway that buffered
 * would keep taking it), and the gateway's side of the client connection holds less than 2 MB.
 */
export async function expectHeldBack(gateway: RunningGateway, port: number, client: { ca: string; cert: ClientCert }, path: string, written: () => number, total: number): Promise<void> {
  const reader = await stalledReader(gateway, port, client, path);
  try {
    expect(reader.received).toBeGreaterThan(0);
    expect(reader.gatewaySide).toBeDefined();
    const stalledAt = written();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(written()).toBe(stalledAt);
    expect(stalledAt).toBeLessThan(total);
    expect(reader.gatewaySide!.writableLength).toBeLessThan(2 * 1024 * 1024);
  } finally {
    reader.close();
  }
}
