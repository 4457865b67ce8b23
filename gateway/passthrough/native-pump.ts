// The passthrough relay's backend connect and byte pump in C (fd-relay/fd-relay.c), and the front
// door's peek at a new connection's hello, when it was built: `npm install` compiles it where
// there is a C compiler (../native/build-addons.ts). Without it, or with GATEHOUSE_NATIVE_PUMP=off,
// the front door reads every hello, and relays connect through Node's TCP handles and pump bytes
// in TypeScript (relay-direction.ts), which behaves the same and costs more CPU per connection
// (README, Benchmarks).
import { Buffer } from 'node:buffer';
import { log } from '../log.js';
import { FD_RELAY_ADDON, loadAddon } from '../native/native-addons.js';
import type { TcpHandle } from '../net/stream-handles.js';

/** The addon's functions (fd-relay.c documents each). */
interface FdRelayAddon {
  init(onReports: (count: number) => void, counters: Float64Array, reports: Float64Array, peeked: Uint8Array): void;
  adopt(clientFd: number, first: Uint8Array, clientEnded: boolean): number;
  dial(id: number, ip: string, port: number, ipv6: boolean): number;
  hangUp(id: number): void;
  counters(id: number): boolean;
  close(id: number, resetSide: number): void;
  peek(fd: number): number;
  tuneListener(listeningFd: number, deferSeconds: number): number;
}


/** What peek() looks at: a ClientHello of the front door's default bound, record headers included, fits. */
const PEEK_BYTES = 17 * 1024;

/** fd-relay.c's REPORTS_PER_CALL and REPORT_FIELDS. */
const REPORTS_PER_CALL = 256;
const REPORT_FIELDS = 4;
/** fd-relay.c's enum report_kind. */
const REPORT_CLOSED = 0;
const REPORT_CONNECTED = 1;
const REPORT_CONNECT_FAILED = 2;
const REPORT_CLIENT_LEFT = 3;
/** fd-relay.c's DIAL_GONE. */
export const DIAL_GONE = 1;

/** A pumped relay's owner: told what the pump did by itself. */
export interface PumpOwner {
  /** The backend connection is up; the client's handle may be closed now. */
  connected(): void;
  /** The backend connect failed (a libuv status); the relay waits for dial() or close(). */
  connectFailed(status: number): void;
  /** The client left while the backend was connecting: both sides are closed. */
  clientLeft(): void;
  /** The relay ended by itself and both sides are closed. */
  closed(toBackend: number, toClient: number): void;
}

export class NativePump {
  readonly #addon: FdRelayAddon;
  /** What `counters` fills: bytes to the backend, bytes to the client, bytes held. */
  readonly #counters = new Float64Array(3);
  /** What the pump reports in, REPORT_FIELDS numbers each: id, kind, a, b. */
  readonly #reports = new Float64Array(REPORT_FIELDS * REPORTS_PER_CALL);
  readonly #open = new Map<number, PumpOwner>();
  /** What peek() fills, shared by every call. */
  readonly #peeked = Buffer.allocUnsafeSlow(PEEK_BYTES);

  constructor(addon: FdRelayAddon) {
    this.#addon = addon;
    addon.init((count) => this.#reported(count), this.#counters, this.#reports, this.#peeked);
  }

  #reported(count: number): void {
    const reports = this.#reports;
    for (let i = 0; i < REPORT_FIELDS * count; i += REPORT_FIELDS) {
      const id = reports[i]!;
      const owner = this.#open.get(id);
      if (owner === undefined) continue;
      switch (reports[i + 1]) {
        case REPORT_CONNECTED:
          owner.connected();
          break;
        case REPORT_CONNECT_FAILED:
          owner.connectFailed(reports[i + 2]!);
          break;
        case REPORT_CLIENT_LEFT:
          this.#open.delete(id);
          owner.clientLeft();
          break;
        case REPORT_CLOSED:
          this.#open.delete(id);
          owner.closed(reports[i + 2]!, reports[i + 3]!);
          break;
      }
    }
  }

  /**
   * Takes over the client: the pump works on a copy of its descriptor and watches it for leaving;
   * the caller stops reading the handle and closes it once connected. `first` goes to the backend
   * before the client's next bytes; with `clientEnded` the client's FIN follows it. The relay
   * waits for dial(). Throws (the handle untouched) when it cannot.
   */
  adopt(client: TcpHandle, first: Uint8Array, clientEnded: boolean, owner: PumpOwner): number {
    const id = this.#addon.adopt(client.fd, first, clientEnded);
    this.#open.set(id, owner);
    return id;
  }

  /**
   * Connects the relay's backend: 0 (the owner hears how it went), a libuv status at once, or
   * DIAL_GONE: the pump closed the relay meanwhile and its owner is about to hear so.
   */
  dial(id: number, ip: string, family: number, port: number): number {
    return this.#addon.dial(id, ip, port, family === 6);
  }

  /** Drops the backend connect still running (its time limit passed); the relay waits. */
  hangUp(id: number): void {
    this.#addon.hangUp(id);
  }

  /**
   * What the client has sent so far, left in the socket for whoever reads it (MSG_PEEK): a view
   * that the next peek() overwrites, or undefined when nothing is there yet.
   */
  peek(client: TcpHandle): Buffer | undefined {
    const n = this.#addon.peek(client.fd);
    return n > 0 ? this.#peeked.subarray(0, n) : undefined;
  }

  /**
   * Has the kernel hand over new connections of a listening socket only once their first bytes
   * are there (TCP_DEFER_ACCEPT), or after `deferSeconds`, with TCP_NODELAY set (inherited from
   * the listening socket). Returns 0 or a negative errno.
   */
  tuneListener(listeningFd: number, deferSeconds: number): number {
    return this.#addon.tuneListener(listeningFd, deferSeconds);
  }

  /** Relays being pumped. */
  get size(): number {
    return this.#open.size;
  }

  /** Bytes relayed so far (to the backend, to the client) and held, or undefined once closed. */
  counters(id: number): Float64Array | undefined {
    return this.#addon.counters(id) ? this.#counters : undefined;
  }

  /** Closes both sides, `reset` with a RST; the owner is not told. */
  close(id: number, reset: 'client' | 'backend' | undefined): void {
    this.#open.delete(id);
    this.#addon.close(id, reset === 'client' ? 0 : reset === 'backend' ? 1 : -1);
  }
}

function load(): NativePump | undefined {
  if (process.env.GATEHOUSE_NATIVE_PUMP === 'off') return undefined;
  try {
    const addon = loadAddon<FdRelayAddon>(FD_RELAY_ADDON);
    return addon === undefined ? undefined : new NativePump(addon);
  } catch (err) {
    log.warn('native_pump_unavailable', { error: (err as Error).message });
    return undefined;
  }
}

/** The pump, or undefined: relays pump bytes in TypeScript. */
export const nativePump = load();

/** For the start banner and /workers: which pump moves passthrough bytes. */
export function pumpName(): 'native' | 'typescript' {
  return nativePump === undefined ? 'typescript' : 'native';
}
