// Buffers the relay's sockets read into. Node's default read path allocates a 64 KiB buffer per
// read, copies what arrived into a second, zero-filled one of the exact length and frees the
// first; in bulk relays that allocator churn, the page faults of heap memory given back and
// taken again, and the garbage it leaves cost more CPU than the copies through the kernel
// (measured: 420 -> ~690 MB relayed per CPU-second once reads went into reused buffers).
//
// A relayed socket always holds the buffer its next read lands in, so an idle or handshaking
// connection holds a small one; a read that fills a small buffer moves the direction to a large
// one until reads get small again. Both kinds come from pools that keep a bounded number.

/** What an idle or handshaking connection reads into: a TLS handshake flight fits. */
export const SMALL_READ_BYTES = 4 * 1024;
/** Bulk reads: what libuv asks for by default. */
export const LARGE_READ_BYTES = 64 * 1024;
/** Kept for reuse: 4 MiB of small buffers, 4 MiB of large ones. */
const SMALL_KEPT = 1024;
const LARGE_KEPT = 64;

class BufferPool {
  readonly #free: Buffer[] = [];

  constructor(
    private readonly bytes: number,
    private readonly kept: number,
  ) {}

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.bytes);
  }

  give(buffer: Buffer): void {
    if (this.#free.length < this.kept) this.#free.push(buffer);
  }
}

const small = new BufferPool(SMALL_READ_BYTES, SMALL_KEPT);
const large = new BufferPool(LARGE_READ_BYTES, LARGE_KEPT);

export function takeReadBuffer(size: 'small' | 'large'): Buffer {
  return size === 'large' ? large.take() : small.take();
}

/** Back to its pool: no read or write may still use it. */
export function giveReadBuffer(buffer: Buffer): void {
  (buffer.length === LARGE_READ_BYTES ? large : small).give(buffer);
}
