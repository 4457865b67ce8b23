// Reads and writes on a connected socket's native handle (TLSWrap for TLS, TCPWrap for plaintext),
// for the HTTP/1.1 connections on both sides of the proxy. net.Socket puts a Duplex stream on
// every read and write: a Readable push and 'data' emit per read; per write a Writable state
// machine, its completion through process.nextTick and, on TLS, a second completion through
// setImmediate. Here a read is one call into the owner and a write goes straight to the handle;
// writes made while one is in flight wait in a small queue and leave together, because a TLSWrap
// takes one write at a time. Reads land in one buffer shared by every connection, so a read
// allocates nothing (Node would allocate, shrink and wrap a 64 KiB buffer per read); what must
// outlive the read is copied by whoever keeps it. The socket stays the owner of the connection:
// 'close', destroy(), end(), its address and TLS state are used as before.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { Socket } from 'node:net';
import { handleOf, lastReadResult, type StreamHandle, UV_EOF, writeLatin1To, writeTo } from './stream-handles.js';

export interface SocketIoEvents {
  /** Bytes read: a view of the shared read buffer, valid during this call only (copy to keep). */
  onData(chunk: Buffer): void;
  /**
   * The peer sent FIN (or TLS close_notify): nothing more will be read. Our side stays open
   * until end() (unlike net.Socket's default), so what is in flight can still be answered.
   */
  onEnd(): void;
}

/** Queued bytes beyond which write() asks the caller to wait for onDrain. */
const HIGH_WATER_BYTES = 64 * 1024;

/**
 * Where every read lands, for all connections: each read is handled to its end before the next
 * (a TLS read is at most one 16 KiB record; a TCP read what the kernel has, up to 64 KiB).
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/** Whether `chunk` is (part of) the shared read buffer, which the next read overwrites. */
export function isReadBufferView(chunk: Uint8Array): boolean {
  return chunk.buffer === READ_BUFFER.buffer;
}

export class SocketIo {
  readonly #handle: StreamHandle | undefined;
  #paused = false;
  /** Reads that arrived while paused (a TLSWrap keeps decrypting what it has). */
  #held: Buffer[] | undefined;
  #heldEnd = false;
  /** TLSWrap encrypts a write before returning; a TCP handle may keep pointing at its bytes. */
  readonly #encrypted: boolean;
  #inFlight = false;
  #queue: (Buffer | string)[] = [];
  #queuedBytes = 0;
  #ending = false;
  #readEnded = false;
  #drain: (() => void) | undefined;

  constructor(
    readonly socket: Socket,
    private readonly events: SocketIoEvents,
  ) {
    const handle = (this.#handle = handleOf(socket));
    this.#encrypted = (socket as { encrypted?: boolean }).encrypted === true;
    if (handle === undefined) {
      socket.destroy(); // closed before it could be served
      return;
    }
    // Bytes the socket already holds (peeked bytes given back, a read during the handshake) come first.
    const buffered: Buffer[] = [];
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) buffered.push(chunk);
    handle.useUserBuffer(READ_BUFFER);
    handle.onread = this.#onRead;
    if (buffered.length > 0) queueMicrotask(() => buffered.forEach((chunk) => this.#deliver(chunk)));
    handle.readStart();
  }

  /** Writes `data` (a string is written as latin1); false when the caller should wait for onDrain. */
  write(data: Buffer | string): boolean {
    if (this.socket.destroyed || this.#ending || this.#handle === undefined) return false;
    if (data.length === 0) return true; // an empty write on TLS would only stir its state machine
    if (this.#inFlight) {
      // A read buffer may be reused or a caller's chunk changed before it leaves: keep a copy.
      this.#queue.push(typeof data === 'string' ? data : Buffer.from(data));
      this.#queuedBytes += data.length;
      return this.#queuedBytes < HIGH_WATER_BYTES;
    }
    this.#send(data);
    return true;
  }

  /** Called once when the queue has drained after write() returned false. */
  onDrain(listener: () => void): void {
    this.#drain = listener;
  }

  get writableEnded(): boolean {
    return this.#ending || this.socket.writableEnded;
  }

  /** Ends our side once every queued write has left. */
  end(): void {
    if (this.#ending) return;
    this.#ending = true;
    if (!this.#inFlight) this.#endSocket();
  }

  /** A connection both of whose sides have ended is closed, as net.Socket would close it. */
  #endSocket(): void {
    this.socket.end(() => {
      if (this.#readEnded) this.socket.destroy();
    });
  }

  #readEnd(): void {
    this.#readEnded = true;
    this.events.onEnd();
    if (this.socket.writableFinished) this.socket.destroy();
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#handle?.readStop();
  }

  resume(): void {
    if (!this.#paused || this.socket.destroyed) return;
    this.#paused = false;
    // What was held is given in a microtask: resume() may be called from inside the owner's
    // parser, which must not be entered again.
    if (this.#held !== undefined || this.#heldEnd) queueMicrotask(this.#giveHeld);
    else this.#handle?.readStart();
  }

  readonly #giveHeld = (): void => {
    const held = this.#held ?? [];
    this.#held = undefined;
    let i = 0;
    while (i < held.length && !this.#paused && !this.socket.destroyed) this.events.onData(held[i++]!);
    if (i < held.length) {
      this.#held = held.slice(i).concat(this.#held ?? []);
      return; // paused again: the rest (and a held FIN) wait for the next resume
    }
    if (this.#paused || this.socket.destroyed) return;
    if (this.#heldEnd) {
      this.#heldEnd = false;
      this.#readEnd();
    } else {
      this.#handle?.readStart();
    }
  };

  readonly #onRead = (): undefined => {
    const n = lastReadResult();
    if (n > 0) {
      this.#deliver(READ_BUFFER.subarray(0, n));
    } else if (n === UV_EOF) {
      if (this.#paused) this.#heldEnd = true;
      else this.#readEnd();
    } else if (n < 0) {
      this.socket.destroy(); // a reset or a TLS error: the socket's 'close' tells the owner
    }
    return undefined;
  };

  #deliver(chunk: Buffer): void {
    if (this.#paused) (this.#held ??= []).push(isReadBufferView(chunk) ? Buffer.from(chunk) : chunk);
    else this.events.onData(chunk);
  }

  #send(data: Buffer | string): void {
    const handle = this.#handle!;
    let result: 'written' | 'queued' | number;
    if (typeof data === 'string') result = writeLatin1To(handle, data, this.#afterWrite);
    else if (!this.#encrypted && isReadBufferView(data)) result = writeTo(handle, Buffer.from(data), this.#afterWrite);
    else result = writeTo(handle, data, this.#afterWrite);
    if (typeof result === 'number') {
      this.socket.destroy();
      return;
    }
    this.#inFlight = result === 'queued';
  }

  readonly #afterWrite = (status: number): void => {
    this.#inFlight = false;
    if (status < 0 || this.socket.destroyed) {
      this.socket.destroy();
      return;
    }
    const queue = this.#queue;
    if (queue.length > 0) {
      this.#queue = [];
      this.#queuedBytes = 0;
      this.#send(queue.length === 1 ? queue[0]! : Buffer.concat(queue.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : part))));
      if (this.#inFlight) {
        this.#takeDrain()?.();
        return;
      }
    }
    if (this.#ending) this.#endSocket();
    else this.#takeDrain()?.();
  };

  #takeDrain(): (() => void) | undefined {
    const drain = this.#drain;
    this.#drain = undefined;
    return drain;
  }
}
