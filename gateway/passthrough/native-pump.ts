// The passthrough relay's byte pump in C (fd-relay/fd-relay.c), when it was built: `npm install`
// compiles it where there is a C compiler (fd-relay/build-addon.ts). Without it, or with
// GATEHOUSE_NATIVE_PUMP=off, relays pump bytes in TypeScript (relay-direction.ts), which behaves
// the same and costs more CPU per connection (README, Benchmarks).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { log } from '../log.js';
import type { TcpHandle } from '../net/stream-handles.js';

/** The addon's functions (fd-relay.c documents each). */
interface FdRelayAddon {
  init(onClosed: (count: number) => void, counters: Float64Array, reports: Float64Array): void;
  start(clientFd: number, backendFd: number, first: Uint8Array, clientEnded: boolean): number;
  counters(id: number): boolean;
  close(id: number, resetSide: number): void;
}

/** Where `build-addon` puts the compiled addon, from the repository's root. */
export const ADDON_PATH = 'gateway/passthrough/fd-relay/build/fd_relay.node';
/** The repository's root, from this file in gateway/passthrough/ or in dist/gateway/passthrough/. */
const ROOTS = ['../../', '../../../'];

/** fd-relay.c's REPORTS_PER_CALL. */
const REPORTS_PER_CALL = 256;

/** A pumped relay's owner: told once, when the pump closed both sides by itself. */
export type PumpClosed = (toBackend: number, toClient: number) => void;

export class NativePump {
  readonly #addon: FdRelayAddon;
  /** What `counters` fills: bytes to the backend, bytes to the client, bytes held. */
  readonly #counters = new Float64Array(3);
  /** What the pump reports closed relays in, three numbers each: id, bytes to the backend, to the client. */
  readonly #reports = new Float64Array(3 * REPORTS_PER_CALL);
  readonly #open = new Map<number, PumpClosed>();

  constructor(addon: FdRelayAddon) {
    this.#addon = addon;
    addon.init((count) => this.#closed(count), this.#counters, this.#reports);
  }

  #closed(count: number): void {
    const reports = this.#reports;
    for (let i = 0; i < 3 * count; i += 3) {
      const closed = this.#open.get(reports[i]!);
      if (closed === undefined) continue;
      this.#open.delete(reports[i]!);
      closed(reports[i + 1]!, reports[i + 2]!);
    }
  }

  /**
   * Takes over two connected sockets: the pump works on copies of their descriptors, and the
   * handles are closed here. `first` goes to the backend before the client's next bytes; with
   * `clientEnded` the client's FIN follows it. Throws (handles untouched) when it cannot start.
   */
  start(client: TcpHandle, backend: TcpHandle, first: Uint8Array, clientEnded: boolean, closed: PumpClosed): number {
    const id = this.#addon.start(client.fd, backend.fd, first, clientEnded);
    this.#open.set(id, closed);
    client.close();
    backend.close();
    return id;
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
    const file = ROOTS.map((root) => fileURLToPath(new URL(root + ADDON_PATH, import.meta.url))).find((f) => existsSync(f));
    if (file === undefined) return undefined;
    return new NativePump(createRequire(import.meta.url)(file) as FdRelayAddon);
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
