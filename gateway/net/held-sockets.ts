// A cluster primary's listening sockets, where Node can bind a socket without listening on it
// (net.BoundSocket, Node 24.21) and share a port (SO_REUSEPORT): per listener address, one socket
// per worker slot, bound here and never polled here, inherited by the slot's worker (fork stdio),
// which listens on it (inherited-sockets.ts). The kernel still spreads connections over the
// workers' sockets (shared-port.ts); what holding them adds: a restarted worker listens on the same
// socket and takes the connections queued on it, and a handover passes every socket to the next
// generation (runtime/handover.ts) instead of closing it, which would reset what is queued there.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { addressKey, closeQuietly, takeAllInherited } from './inherited-sockets.js';
import { REUSE_PORT_AVAILABLE } from './shared-port.js';

/** The part of net.BoundSocket (Node 24.21) used here; older type definitions do not know it. */
interface BoundSocket {
  address(): { port: number };
  fd(): number;
  close(): void;
}
type BoundSocketClass = new (options: { host: string; port: number; reusePort: boolean }) => BoundSocket;
const BoundSocketClass = (net as unknown as { BoundSocket?: BoundSocketClass }).BoundSocket;

export const HOLDING_AVAILABLE = REUSE_PORT_AVAILABLE && BoundSocketClass !== undefined;

interface Held {
  readonly fd: number;
  close(): void;
}

/** What one worker slot inherits: descriptors for its fork's stdio (after 'ipc'), and which address each is. */
export interface SlotSockets {
  readonly fds: readonly number[];
  /** Address → the descriptor's number in the worker (its stdio index). */
  readonly sockets: Readonly<Record<string, readonly number[]>>;
}

/** The first stdio index after stdin, stdout, stderr and the cluster's IPC channel. */
const FIRST_FD = 4;

export class HeldSockets {
  readonly #byAddress = new Map<string, Held[]>();

  constructor(private readonly slots: number) {}

  /**
   * Holds a socket per slot for `address`: those the generation before passed on (a handover), and
   * new ones bound beside them. Given fewer than slots and unable to bind beside them (they were
   * bound without SO_REUSEPORT, by a gateway without workers), slots share them in turns; given
   * more, the rest are closed (resolves with how many).
   */
  async hold(address: { readonly host: string; readonly port: number }): Promise<number> {
    const key = addressKey(address);
    const held: Held[] = takeAllInherited(address).map((fd) => ({ fd, close: () => closeQuietly(fd) }));
    const extras = held.splice(this.slots);
    for (const extra of extras) extra.close();
    const given = held.length;
    const host = net.isIP(address.host) ? address.host : (await lookup(address.host)).address;
    let port = address.port;
    try {
      while (held.length < this.slots) {
        let bound: BoundSocket;
        try {
          bound = new BoundSocketClass!({ host, port, reusePort: true });
        } catch (err) {
          if (given > 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') break;
          throw err;
        }
        if (port === 0) port = bound.address().port;
        held.push({ fd: bound.fd(), close: () => bound.close() });
      }
    } catch (err) {
      for (const h of held) h.close();
      throw new Error(`listen ${key}: ${(err as Error).message}`);
    }
    this.#byAddress.set(key, held);
    return extras.length;
  }

  /** The sockets slot `slot`'s worker inherits. */
  forSlot(slot: number): SlotSockets {
    const fds: number[] = [];
    const sockets: Record<string, number[]> = {};
    for (const [key, held] of this.#byAddress) {
      sockets[key] = [FIRST_FD + fds.length];
      fds.push(held[slot % held.length]!.fd);
    }
    return { fds, sockets };
  }

  /** Every held socket by address, for the next generation. */
  all(): Map<string, number[]> {
    return new Map([...this.#byAddress].map(([key, held]) => [key, held.map((h) => h.fd)]));
  }

  /** Stops holding the addresses not in `keep` (a reload removed their listeners; the workers closed theirs). */
  keepOnly(keep: ReadonlySet<string>): void {
    for (const [key, held] of this.#byAddress) {
      if (keep.has(key)) continue;
      for (const h of held) h.close();
      this.#byAddress.delete(key);
    }
  }

  close(): void {
    this.keepOnly(new Set());
  }
}
