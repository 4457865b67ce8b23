// Node's native stream handles (libuv TCP streams, and the TLSWrap over one), used directly by the
// front door, the passthrough relay and the HTTP/1.1 connections (./socket-io.ts). net.Socket
// wraps each handle in a Duplex stream with its own states, events and timers; measured on
// relayed TLS connections (bench scenario 4, perf stat), a minimal relay cost about 2.0 M cycles
// per connection on net.Socket and 1.15 M on the bare handles (HAProxy 1.05 M; gatehouse's relay
// with its routing and metrics ~1.5 M). These are the handles net.Socket itself is built on,
// reached through process.binding and `socket._handle`, so this file is the one place that
// depends on Node's internals; `checkStreamHandles()` fails at start if they are not as expected.
// Sockets that need a stream (TLS termination, plaintext HTTP) get a net.Socket around the
// handle, as net.Server would have made.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { getSystemErrorName } from 'node:util';

/** What every native stream handle has (TCP, and TLS over it). Errors are negative errno values. */
export interface StreamHandle {
  /** Called on every read (its size or error: `lastReadResult()`); with a user buffer, may return the next one. */
  onread: (arrayBuffer: ArrayBuffer | undefined) => Uint8Array | undefined;
  readStart(): number;
  readStop(): number;
  /** Reads land in `buffer` (and in what onread returns next) instead of a fresh allocation. */
  useUserBuffer(buffer: Uint8Array): void;
  writeBuffer(req: WriteRequest, data: Uint8Array): number;
  writeLatin1String(req: WriteRequest, data: string): number;
}

/** A connected TCP handle (tcp_wrap's TCP). */
export interface TcpHandle extends StreamHandle {
  shutdown(req: ShutdownRequest): number;
  /** Closes the socket with a RST instead of a FIN. */
  reset(callback?: () => void): number;
  close(callback?: () => void): void;
  setNoDelay(enable: boolean): number;
  getpeername(out: Partial<AddressOut>): number;
  getsockname(out: Partial<AddressOut>): number;
  connect(req: ConnectRequest, address: string, port: number): number;
  connect6(req: ConnectRequest, address: string, port: number): number;
  /** Bytes queued in libuv, not yet taken by the kernel. */
  readonly writeQueueSize: number;
  /** The socket's file descriptor (-1 once closed). */
  readonly fd: number;
}

interface AddressOut {
  address: string;
  family: string;
  port: number;
}

export interface WriteRequest {
  handle: StreamHandle;
  oncomplete: (status: number) => void;
  async: boolean;
  /** The bytes of a write still in progress: libuv points into them until it completes. */
  buffer?: Uint8Array;
}

interface ShutdownRequest {
  handle: TcpHandle;
  oncomplete: (status: number) => void;
}

interface ConnectRequest {
  oncomplete: (status: number, handle: TcpHandle, req: ConnectRequest, readable: boolean, writable: boolean) => void;
  address: string;
  port: number;
}

interface TcpBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectRequest;
  constants: { SOCKET: number; SERVER: number };
}

interface StreamBinding {
  WriteWrap: new () => WriteRequest;
  ShutdownWrap: new () => ShutdownRequest;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

function binding<T>(name: string): T {
  try {
    return (process as unknown as { binding(name: string): T }).binding(name);
  } catch (err) {
    throw new Error(`Node ${process.version} does not give gatehouse its ${name} binding (${(err as Error).message}); the front door is tested on Node 20 and 24`);
  }
}
const { TCP, TCPConnectWrap, constants } = binding<TcpBinding>('tcp_wrap');
const { WriteWrap, ShutdownWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = binding<StreamBinding>('stream_wrap');

/** libuv's end of stream, the `nread` of a read that found FIN. */
export const UV_EOF = -4095;
/** A reset by the peer, as libuv reports it (a negative errno). */
export const UV_ECONNRESET = -os.constants.errno.ECONNRESET;

/** The byte count (or negative error) of the read that onread is being called for. */
export function lastReadResult(): number {
  return streamBaseState[kReadBytesOrError]!;
}

/** Without a user buffer: the bytes of that read, a view of the `arrayBuffer` onread got. */
export function lastReadBytes(arrayBuffer: ArrayBuffer, length: number): Buffer {
  return Buffer.from(arrayBuffer, streamBaseState[kArrayBufferOffset]!, length);
}

/** 'ECONNRESET' and the like, for a negative status. */
export function errorName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return `E${-status}`;
  }
}

/**
 * Writes `data`; `done` is called only when the write completes later (returns 'queued'), with
 * its status. 'written' means the kernel took all of it now, so `data` may be reused at once.
 */
export function writeTo(handle: StreamHandle, data: Uint8Array, done: (status: number) => void): 'written' | 'queued' | number {
  const req = writeRequest(handle, done);
  const err = handle.writeBuffer(req, data);
  if (err !== 0) return err;
  if (!lastWriteWasAsync()) return 'written';
  // Node's C++ keeps no reference to the bytes of a write it could not finish at once (its
  // net.Socket keeps one on the request, as here), so the collector must not free them.
  req.buffer = data;
  return 'queued';
}

/** writeTo for a string, written as latin1 (Node copies what it cannot write at once). */
export function writeLatin1To(handle: StreamHandle, data: string, done: (status: number) => void): 'written' | 'queued' | number {
  const err = handle.writeLatin1String(writeRequest(handle, done), data);
  if (err !== 0) return err;
  return lastWriteWasAsync() ? 'queued' : 'written';
}

/** The request object a handle's write takes; `done` is called only if the write completes later. */
function writeRequest(handle: StreamHandle, done: (status: number) => void): WriteRequest {
  const req = new WriteWrap();
  req.handle = handle;
  req.oncomplete = done;
  req.async = false;
  return req;
}

/** Whether the write just made is still in progress (its request's oncomplete will be called). */
function lastWriteWasAsync(): boolean {
  return streamBaseState[kLastWriteWasAsync] !== 0;
}

/** Sends FIN after the queued writes; `done` gets the status. Returns an error or 0. */
export function shutdown(handle: TcpHandle, done: (status: number) => void): number {
  const req = new ShutdownWrap();
  req.handle = handle;
  req.oncomplete = done;
  return handle.shutdown(req);
}

/** Starts connecting to a numeric address of `family`; `done` gets 0 or a negative errno. */
export function connectTo(ip: string, family: number, port: number, done: (status: number) => void): { handle: TcpHandle; error: number } {
  const handle = new TCP(constants.SOCKET);
  const req = new TCPConnectWrap();
  req.oncomplete = (status) => done(status);
  req.address = ip;
  req.port = port;
  const error = family === 6 ? handle.connect6(req, ip, port) : handle.connect(req, ip, port);
  return { handle, error };
}

export function peerAddress(handle: TcpHandle): { address?: string; port?: number } {
  const out: Partial<AddressOut> = {};
  handle.getpeername(out);
  return out;
}

export function localAddress(handle: TcpHandle): { address?: string; port?: number } {
  const out: Partial<AddressOut> = {};
  handle.getsockname(out);
  return out;
}

/**
 * From now on, `server` (listening, cluster workers included) hands every accepted connection
 * to `accept` as a bare handle instead of making a net.Socket of it; its own maxConnections
 * and 'connection' events no longer apply. Round-robin cluster workers get their connections
 * through the same `_handle.onconnection` hook.
 */
export function acceptHandles(server: net.Server, accept: (handle: TcpHandle) => void, failed: (status: number) => void): void {
  const listening = (server as unknown as { _handle: { onconnection: unknown } | null })._handle;
  if (listening === null || typeof listening.onconnection !== 'function') throw new Error('acceptHandles: the server is not listening');
  listening.onconnection = (status: number, handle: TcpHandle | undefined) => {
    if (status !== 0 || handle === undefined) failed(status);
    else accept(handle);
  };
}

/** The descriptor of a listening net.Server's own socket; undefined where it has none (a cluster worker sharing the primary's). */
export function listeningFd(server: net.Server): number | undefined {
  const fd = (server as unknown as { _handle: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The native handle under a connected net.Socket or TLSSocket (TLSWrap for TLS); undefined once closed. */
export function handleOf(socket: net.Socket): StreamHandle | undefined {
  const handle = (socket as unknown as { _handle: StreamHandle | null })._handle;
  return handle === null || typeof handle.writeLatin1String !== 'function' ? undefined : handle;
}

/**
 * A net.Socket around `handle`, paused, for code that needs a stream (a TLS or HTTP server's
 * 'connection'): what net.Server makes of an accepted handle.
 */
export function socketFor(handle: TcpHandle, allowHalfOpen: boolean): net.Socket {
  type HandleOptions = net.SocketConstructorOpts & { handle: TcpHandle; pauseOnCreate: boolean };
  const options: HandleOptions = { handle, allowHalfOpen, pauseOnCreate: true, readable: true, writable: true };
  return new net.Socket(options as net.SocketConstructorOpts);
}

let handlesChecked = false;

/**
 * Throws, with what is missing, when this Node's internals are not the ones this file expects.
 * Every listener calls it at start; the probe itself runs once per process.
 */
export function checkStreamHandles(): void {
  if (handlesChecked) return;
  const handle = new TCP(constants.SOCKET);
  const missing = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'writeLatin1String', 'shutdown', 'reset', 'close', 'getpeername', 'connect', 'connect6'].filter(
    (m) => typeof (handle as unknown as Record<string, unknown>)[m] !== 'function',
  );
  handle.close();
  // A TLSSocket made without a socket wraps a TLSWrap around a TCP handle of its own.
  const tlsSocket = new tls.TLSSocket(undefined as unknown as net.Socket);
  const tlsHandle = handleOf(tlsSocket);
  if (tlsHandle === undefined || typeof tlsHandle.useUserBuffer !== 'function') missing.push('a TLS stream handle with useUserBuffer and writeLatin1String');
  tlsSocket.destroy();
  if (![kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync].every((k) => typeof k === 'number')) missing.push('streamBaseState indexes');
  if (missing.length > 0) throw new Error(`Node ${process.version}: stream handles lack ${missing.join(', ')}; gatehouse is tested on Node 20 and 24`);
  handlesChecked = true;
}
