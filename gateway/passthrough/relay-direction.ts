// One direction of a passthrough relay on bare stream handles: what the source reads is written
// to the destination from the same buffer. A write the kernel cannot take at once stops reading
// the source until it completes, so a direction holds at most one read buffer of bytes however
// slow the reader is (HAProxy's model). The source's FIN becomes the destination's FIN after the
// bytes before it (libuv's shutdown waits for queued writes).
import { lastReadResult, shutdown, UV_EOF, writeTo, type TcpHandle } from '../net/stream-handles.js';
import { giveReadBuffer, LARGE_READ_BYTES, SMALL_READ_BYTES, takeReadBuffer } from './read-buffers.js';

export interface DirectionEvents {
  /**
   * The source sent FIN, every byte before it was written. True: pass the FIN on (shutdown);
   * false: the relay closes both sides now (the other direction finished already, and closing
   * sends the FIN without a shutdown call of its own).
   */
  ended(direction: RelayDirection): boolean;
  /** The FIN was passed on to the destination. */
  finished(direction: RelayDirection): void;
  /** Reading `failing` (the source) or writing it (the destination) failed: a negative errno. */
  failed(status: number, failing: TcpHandle): void;
}

export class RelayDirection {
  /** Bytes read from the source; all of them written to the destination, or being written. */
  bytes = 0;
  /** The source's FIN was passed on. */
  finished = false;
  readonly #source: TcpHandle;
  readonly #destination: TcpHandle;
  readonly #events: DirectionEvents;
  /** The buffer the source reads into; undefined once given back. */
  #buffer: Buffer | undefined;
  /** A write is queued in libuv: the source is not being read, the buffer is in use. */
  #writing = false;
  /** The source is being read (each stop and start is an epoll_ctl: only when needed). */
  #reading = false;
  /** The source sent FIN: nothing more to read. */
  #done = false;
  /** The relay is closing: events from here on are ignored. */
  #stopped = false;

  constructor(source: TcpHandle, destination: TcpHandle, events: DirectionEvents) {
    this.#source = source;
    this.#destination = destination;
    this.#events = events;
  }

  /**
   * Takes over the source's reads, writes `first` (bytes read before the relay began), then
   * relays. `reading`: the source is being read already and goes on without a stop; with
   * `sourceEnded` it already sent its FIN, which is passed on after `first`.
   */
  start(first: Buffer | undefined, state: { reading: boolean; sourceEnded: boolean }): void {
    this.#reading = state.reading;
    this.#done = state.sourceEnded;
    this.#buffer = takeReadBuffer('small');
    this.#source.onread = this.#onRead;
    this.#source.useUserBuffer(this.#buffer);
    if (first !== undefined && first.length > 0) {
      this.bytes += first.length;
      const result = writeTo(this.#destination, first, this.#written);
      if (typeof result === 'number') return this.#events.failed(result, this.#destination);
      if (result === 'queued') {
        this.#writing = true;
        this.#pause();
        return;
      }
    }
    this.#resume();
  }

  /** Bytes the destination has not taken yet (libuv's queue). */
  held(): number {
    return this.#writing ? this.#destination.writeQueueSize : 0;
  }

  /** The relay is closing: stop, and give the buffer back unless a write still uses it. */
  stop(): void {
    this.#stopped = true;
    if (this.#buffer !== undefined && !this.#writing) giveReadBuffer(this.#buffer);
    this.#buffer = undefined;
  }

  #pause(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.#source.readStop();
  }

  /** Reads again, or passes on the FIN that came before. */
  #resume(): void {
    if (this.#done) {
      this.#end();
      return;
    }
    if (this.#reading) return;
    this.#reading = true;
    const err = this.#source.readStart();
    if (err !== 0) this.#events.failed(err, this.#source);
  }

  readonly #onRead = (): Uint8Array | undefined => {
    const nread = lastReadResult();
    if (nread > 0) return this.#forward(nread);
    if (nread === UV_EOF) {
      this.#reading = false; // libuv stops reading at EOF
      this.#done = true;
      this.#end();
    } else if (nread < 0) this.#events.failed(nread, this.#source);
    return undefined;
  };

  #forward(nread: number): Uint8Array | undefined {
    this.bytes += nread;
    const buffer = this.#buffer!;
    const result = writeTo(this.#destination, nread === buffer.length ? buffer : buffer.subarray(0, nread), this.#written);
    if (result === 'written') return this.#resize(nread, buffer);
    if (result === 'queued') {
      this.#writing = true;
      this.#pause();
    } else this.#events.failed(result, this.#destination);
    return undefined;
  }

  /** A read that filled a small buffer moves to a large one; a small read back to a small one. */
  #resize(nread: number, buffer: Buffer): Buffer | undefined {
    const large = nread >= SMALL_READ_BYTES;
    if (large === (buffer.length === LARGE_READ_BYTES)) return undefined;
    giveReadBuffer(buffer);
    this.#buffer = takeReadBuffer(large ? 'large' : 'small');
    return this.#buffer;
  }

  readonly #written = (status: number): void => {
    this.#writing = false;
    if (this.#stopped) return;
    if (status < 0) return this.#events.failed(status, this.#destination);
    this.#resume();
  };

  #end(): void {
    if (!this.#events.ended(this)) return;
    const err = shutdown(this.#destination, (status) => {
      if (this.#stopped) return;
      if (status < 0) return this.#events.failed(status, this.#destination);
      this.finished = true;
      this.#events.finished(this);
    });
    if (err !== 0) this.#events.failed(err, this.#destination);
  }
}
