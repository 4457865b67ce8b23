// One relay direction whose source socket reads into pooled buffers (net's `onread` option)
// instead of Node's default read path, which for every read allocates a 64 KiB buffer, copies
// what arrived into a second, zero-filled one of the exact length and frees the first. In bulk
// relays that allocator churn, the page faults of heap memory given back and taken again, and
// the garbage it leaves cost more CPU than the copies through the kernel.
//
// With `onread` a socket always holds the buffer its next read lands in, so an idle connection
// holds a small one; a read that would have filled a small buffer switches the socket to a large
// one until reads get small again. Buffers go back to their pool when the write that carries
// them completes, and the socket's last one when it closes; the pools keep a bounded number.
// A write the destination cannot take at once pauses the source until 'drain', so a direction
// holds a couple of buffers plus the destination's queue.
import type net from 'node:net';

/** What an idle or handshaking connection reads into: a TLS handshake flight fits. */
const SMALL_BYTES = 4 * 1024;
/** Bulk reads: what libuv asks for by default. */
const LARGE_BYTES = 64 * 1024;
/** Pooled buffers kept for reuse: 4 MiB of small ones, 4 MiB of large ones. */
const SMALL_KEPT = 1024;
const LARGE_KEPT = 64;

class BufferPool {
  readonly #free: Buffer[] = [];

  constructor(
    readonly bytes: number,
    readonly kept: number,
  ) {}

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.bytes);
  }

  give(buffer: Buffer): void {
    if (this.#free.length < this.kept) this.#free.push(buffer);
  }
}

const small = new BufferPool(SMALL_BYTES, SMALL_KEPT);
const large = new BufferPool(LARGE_BYTES, LARGE_KEPT);

function release(buffer: Buffer): void {
  (buffer.length === LARGE_BYTES ? large : small).give(buffer);
}

export class BufferPump {
  readonly #destination: net.Socket;
  /** Buffers handed to the destination, in write order (writes complete in order). */
  readonly #writing: Buffer[] = [];
  /** The buffer the source's next read lands in. */
  #next: Buffer | undefined;
  #nextLarge = false;
  #paused = false;
  #source: net.Socket | undefined;

  constructor(destination: net.Socket) {
    this.#destination = destination;
  }

  /** For `net.connect({ onread })`: the socket it creates must then be given to `readFrom`. */
  readonly onread: net.OnReadOpts = {
    buffer: () => {
      this.#next = (this.#nextLarge ? large : small).take();
      return this.#next;
    },
    callback: (bytes: number, buffer: Uint8Array): boolean => this.#forward(bytes, buffer as Buffer),
  };

  /** The socket created with this pump's `onread`. */
  readFrom(source: net.Socket): void {
    this.#source = source;
    source.once('close', this.#onSourceClose);
  }

  #forward(bytes: number, buffer: Buffer): boolean {
    this.#next = undefined;
    this.#nextLarge = bytes >= SMALL_BYTES;
    const destination = this.#destination;
    if (destination.destroyed) {
      release(buffer);
      return true;
    }
    this.#writing.push(buffer);
    if (destination.write(buffer.subarray(0, bytes), this.#written)) return true;
    if (!this.#paused) {
      this.#paused = true;
      destination.once('drain', this.#resume);
    }
    return false; // net stops reading the source until resume()
  }

  readonly #written = (): void => {
    release(this.#writing.shift()!);
  };

  readonly #resume = (): void => {
    this.#paused = false;
    const source = this.#source;
    if (source !== undefined && !source.destroyed) source.resume();
  };

  readonly #onSourceClose = (): void => {
    // The closed handle reads no more: the buffer it held can serve another connection.
    if (this.#next !== undefined) release(this.#next);
    this.#next = undefined;
  };
}
