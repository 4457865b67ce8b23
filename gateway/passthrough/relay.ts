// A passthrough connection on bare stream handles (../net/stream-handles.ts): connect to a
// backend endpoint (failing over to the next one, each endpoint at most once), write the PROXY
// header and the peeked ClientHello bytes, then relay both ways, each direction holding at most
// one read buffer while its reader is slow. With the native pump (native-pump.ts) the connect and
// the bytes are done in C and this class makes the decisions (which endpoint, when to give up);
// without it, through Node's TCP handles and in TypeScript (relay-direction.ts), with the same
// behaviour. Half-close is passed on (FIN one way, data the other), a reset is passed on as a
// reset. The connect time limit and the idle limit (no byte either way) are kept by deadline
// sweeps, not a timer per connection.
import dns from 'node:dns';
import net from 'node:net';
import type { Backend } from '../config/types.js';
import type { DeadlineSweep, Expirable } from '../listener/deadline-sweep.js';
import { log } from '../log.js';
import { connectTo, errorName, lastReadBytes, lastReadResult, localAddress, peerAddress, UV_ECONNRESET, UV_EOF, type TcpHandle } from '../net/stream-handles.js';
import type { PassthroughOutcome } from '../reasons.js';
import type { Balancer } from './balancer.js';
import type { LogBudget } from './log-budget.js';
import { RelayByteCounter, type RelayTotals, type RouteMetrics } from './passthrough-metrics.js';
import { proxyHeader } from './proxy-protocol.js';
import { DIAL_GONE, nativePump, type PumpOwner } from './native-pump.js';
import { LARGE_READ_BYTES } from './read-buffers.js';
import { RelayDirection, type DirectionEvents } from './relay-direction.js';
import { connectionFields } from '../access-log/access-line.js';
import { formatAddress } from '../config/config-values.js';
import type { AccessLog } from '../access-log/access-log.js';


/** A passthrough route compiled for one listener: what the SNI router hands the front door. */
export interface PassthroughTarget {
  readonly listener: string;
  readonly route: string;
  readonly backend: Backend;
  readonly balancer: Balancer;
  readonly metrics: RouteMetrics;
  readonly connectFailed: (endpoint: number, reason: 'upstream_unavailable' | 'upstream_connect_timeout') => void;
  /** Connect failure log lines of this backend (a down endpoint fails every connection). */
  readonly logBudget: LogBudget;
  /** Time limits of connection attempts to this backend. */
  readonly connecting: DeadlineSweep<Expirable>;
}

export interface RelayOptions {
  /** The ClientHello (and whatever followed it) already read from the client. */
  readonly peeked: Buffer;
  readonly idleMs: number;
  /** The listener's idle limits. */
  readonly idle: DeadlineSweep<Expirable>;
  readonly sni?: string;
  /** Called once, when the relay has closed both sides. */
  readonly closed: () => void;
  /** Where the relayed connection's line goes when it ends (undefined: no access log). */
  readonly accessLog?: AccessLog;
}

/**
 * Takes over `client` (being read, its onread the front door's) and relays it to the target's
 * backend. The client is closed when no endpoint can be reached.
 */
export function relay(client: TcpHandle, target: PassthroughTarget, options: RelayOptions): { destroy(): void } {
  const relay = new Relay(client, target, options);
  relay.start();
  return relay;
}

type AttemptFailure = 'upstream_unavailable' | 'upstream_connect_timeout';

class Relay implements Expirable, DirectionEvents, PumpOwner, RelayTotals {
  readonly #client: TcpHandle;
  readonly #target: PassthroughTarget;
  readonly #options: RelayOptions;
  #peeked: Buffer;
  #state: 'connecting' | 'relaying' | 'closed' = 'connecting';
  #clientEnded = false;
  /** The client is being read (stopped at its FIN or when it sent too much while connecting). */
  #clientReading = true;
  #first = 0;
  #tries = 0;
  #endpoint = -1;
  #backend: TcpHandle | undefined;
  #headerLength = 0;
  #startedAt = 0;
  #up: RelayDirection | undefined;
  #down: RelayDirection | undefined;
  /** The native pump's id for this relay (instead of #backend, #up and #down), or -1. */
  #pumped = -1;
  /** The pump's counts when last read: bytes to the backend, to the client, held. */
  #pumpedUp = 0;
  #pumpedDown = 0;
  #pumpedHeld = 0;
  #bytes: RelayByteCounter | undefined;
  /** Bytes relayed at the last idle check. */
  #idleMark = -1;

  constructor(client: TcpHandle, target: PassthroughTarget, options: RelayOptions) {
    this.#client = client;
    this.#target = target;
    this.#options = options;
    this.#peeked = options.peeked;
  }

  start(): void {
    this.#startedAt = Date.now();
    // Still read while connecting (the native pump watches the client itself): a client that
    // leaves is noticed, an early FIN is kept.
    if (nativePump === undefined) this.#client.onread = this.#onClientWhileConnecting;
    else if (!this.#adopt()) return;
    this.#first = this.#target.balancer.first();
    this.#attempt(this.#first);
  }

  destroy(): void {
    this.#close(undefined);
  }

  readonly #onClientWhileConnecting = (arrayBuffer: ArrayBuffer | undefined): undefined => {
    const nread = lastReadResult();
    if (nread > 0) {
      this.#peeked = Buffer.concat([this.#peeked, lastReadBytes(arrayBuffer!, nread)]);
      // A TLS client waits for the server's answer; anything more waits in the kernel.
      if (this.#peeked.length >= LARGE_READ_BYTES) {
        this.#clientReading = false;
        this.#client.readStop();
      }
    } else if (nread === UV_EOF) {
      this.#clientEnded = true;
      this.#clientReading = false; // libuv stops reading at EOF
    } else if (nread < 0) {
      // The client left while we were still connecting: abandon the attempt.
      this.#outcome('client_closed');
      this.#close(undefined);
    }
    return undefined;
  };

  #attempt(endpoint: number): void {
    const { balancer, backend } = this.#target;
    const address = balancer.endpoints[endpoint]!;
    this.#endpoint = endpoint;
    balancer.acquire(endpoint);
    this.#target.connecting.add(this, backend.connectTimeoutMs);
    const family = net.isIP(address.host);
    if (family !== 0) {
      this.#connect(address.host, family, address.port);
      return;
    }
    const attempt = this.#tries;
    dns.lookup(address.host, (err, ip, resolvedFamily) => {
      if (this.#state !== 'connecting' || attempt !== this.#tries) return; // timed out or abandoned meanwhile
      if (err) this.#failed('upstream_unavailable', err.code);
      else this.#connect(ip, resolvedFamily, address.port);
    });
  }

  #connect(ip: string, family: number, port: number): void {
    if (nativePump !== undefined) return this.#dial(ip, family, port);
    const { handle, error } = connectTo(ip, family, port, (status) => {
      if (handle !== this.#backend || this.#state !== 'connecting') return; // timed out or abandoned: closed already
      this.#target.connecting.delete(this);
      if (status < 0) {
        this.#closeBackend();
        this.#failed('upstream_unavailable', errorName(status));
      } else this.#establish(handle);
    });
    this.#backend = handle;
    if (error !== 0) {
      this.#closeBackend();
      this.connectFailed(error);
    }
  }

  /** Hands the client to the native pump, which watches it while connecting; false: closed. */
  #adopt(): boolean {
    this.#client.readStop();
    try {
      this.#pumped = nativePump!.adopt(this.#client, this.#firstBytes(), this.#clientEnded, this);
      return true;
    } catch (err) {
      // Out of descriptors or memory: nothing was sent anywhere yet.
      log.warn('native_pump_failed', { listener: this.#target.listener, route: this.#target.route, error: (err as Error).message });
      this.#outcome('upstream_unavailable');
      this.#close(undefined);
      return false;
    }
  }

  /** Connects the native pump's relay to one endpoint. */
  #dial(ip: string, family: number, port: number): void {
    const error = nativePump!.dial(this.#pumped, ip, family, port);
    if (error === DIAL_GONE) return; // the client left as the last attempt failed: clientLeft() follows
    if (error !== 0) this.connectFailed(error);
  }

  connected(): void {
    if (this.#state !== 'connecting') return;
    this.#target.connecting.delete(this);
    this.#client.close(); // the pump has its own descriptor
    this.#relaying();
  }

  connectFailed(status: number): void {
    if (this.#state !== 'connecting') return;
    this.#target.connecting.delete(this);
    this.#failed('upstream_unavailable', errorName(status));
  }

  clientLeft(): void {
    this.#pumped = -1; // closed by the pump
    this.#outcome('client_closed');
    this.#close(undefined);
  }

  closed(toBackend: number, toClient: number): void {
    this.#pumped = -1; // closed by the pump, its counts are these
    this.#pumpedUp = toBackend;
    this.#pumpedDown = toClient;
    this.#pumpedHeld = 0;
    this.#close(undefined);
  }

  /** The connect time limit (while connecting) or an idle check (while relaying). */
  expire(): void {
    if (this.#state === 'connecting') {
      this.#closeBackend();
      this.#failed('upstream_connect_timeout', 'ETIMEDOUT');
      return;
    }
    if (this.#state !== 'relaying') return;
    const relayed = this.#upBytes() + this.#downBytes();
    if (relayed !== this.#idleMark) {
      this.#idleMark = relayed;
      this.#options.idle.add(this, this.#options.idleMs);
      return;
    }
    if (log.enabled('debug')) log.debug('passthrough_idle_timeout', { listener: this.#target.listener, route: this.#target.route, idle_ms: this.#options.idleMs });
    this.#close(undefined);
  }

  #failed(reason: AttemptFailure, code: string | undefined): void {
    const { balancer, backend } = this.#target;
    const endpoint = this.#endpoint;
    balancer.release(endpoint);
    this.#endpoint = -1;
    this.#target.connectFailed(endpoint, reason);
    const address = balancer.endpoints[endpoint]!;
    this.#tries++;
    const left = balancer.endpoints.length - this.#tries;
    this.#target.logBudget.write('warn', 'backend_connect_failed', { backend: backend.name, endpoint: `${address.host}:${address.port}`, reason, code, failover: left > 0 });
    if (left > 0) {
      this.#attempt((this.#first + this.#tries) % balancer.endpoints.length);
      return;
    }
    this.#outcome(reason);
    if (this.#target.logBudget.take() !== undefined) {
      log.warn('passthrough_unavailable', { listener: this.#target.listener, route: this.#target.route, backend: backend.name, reason, attempts: this.#tries, sni: this.#options.sni ?? null, remote: peerAddress(this.#client).address });
    }
    this.#close(undefined);
  }

  /** What the backend gets before the client's next bytes: the PROXY header, the peeked bytes. */
  #firstBytes(): Buffer {
    const client = this.#client;
    const proxyProtocol = this.#target.backend.proxyProtocol;
    if (!proxyProtocol) return this.#peeked;
    const source = peerAddress(client);
    const destination = localAddress(client);
    const header = proxyHeader(proxyProtocol, {
      sourceAddress: source.address,
      sourcePort: source.port,
      destinationAddress: destination.address,
      destinationPort: destination.port,
      authority: this.#options.sni,
    });
    this.#headerLength = header.length;
    return Buffer.concat([header, this.#peeked]);
  }

  /** Connected: counted, and from now on under the idle limit. */
  #relaying(): void {
    this.#state = 'relaying';
    this.#target.metrics.outcome.relayed.inc();
    this.#bytes = new RelayByteCounter(this.#target.metrics, this);
    this.#options.idle.add(this, this.#options.idleMs);
  }

  /** The TypeScript pump's connect is done: relays both ways on the two handles. */
  #establish(backend: TcpHandle): void {
    this.#relaying();
    backend.setNoDelay(true);
    const client = this.#client;
    const up = (this.#up = new RelayDirection(client, backend, this));
    const down = (this.#down = new RelayDirection(backend, client, this));
    down.start(undefined, { reading: false, sourceEnded: false });
    up.start(this.#firstBytes(), { reading: this.#clientReading, sourceEnded: this.#clientEnded });
  }

  #upBytes(): number {
    if (this.#up !== undefined) return this.#up.bytes;
    this.#readPump();
    return this.#pumpedUp;
  }

  #downBytes(): number {
    if (this.#down !== undefined) return this.#down.bytes;
    this.#readPump();
    return this.#pumpedDown;
  }

  toBackendBytes(): number {
    return this.#upBytes() - this.#headerLength;
  }

  toClientBytes(): number {
    return this.#downBytes();
  }

  heldBytes(): number {
    if (this.#up !== undefined) return this.#up.held() + this.#down!.held();
    this.#readPump();
    return this.#pumpedHeld;
  }

  /** Refreshes the pump's counts while it runs; once closed, its last counts stay. */
  #readPump(): void {
    const counters = this.#pumped >= 0 ? nativePump!.counters(this.#pumped) : undefined;
    if (counters === undefined) return;
    this.#pumpedUp = counters[0]!;
    this.#pumpedDown = counters[1]!;
    this.#pumpedHeld = counters[2]!;
  }

  ended(direction: RelayDirection): boolean {
    const other = direction === this.#up ? this.#down! : this.#up!;
    if (!other.finished) return true;
    this.#close(undefined);
    return false;
  }

  finished(direction: RelayDirection): void {
    const other = direction === this.#up ? this.#down! : this.#up!;
    if (other.finished) this.#close(undefined);
  }

  failed(status: number, failing: TcpHandle): void {
    // A reset on one side becomes a reset on the other; any other error just closes both.
    this.#close(status === UV_ECONNRESET ? (failing === this.#client ? this.#backend : this.#client) : undefined);
  }

  /** Closes both sides; `reset` (the side the other one's reset is passed on to) with a RST. */
  #close(reset: TcpHandle | undefined): void {
    if (this.#state === 'closed') return;
    const wasConnecting = this.#state === 'connecting';
    this.#state = 'closed';
    if (wasConnecting) this.#target.connecting.delete(this);
    else this.#options.idle.delete(this);
    this.#up?.stop();
    this.#down?.stop();
    const client = this.#client;
    const backend = this.#backend;
    this.#backend = undefined;
    if (nativePump !== undefined) {
      // Still open in the pump unless it reported the relay closed (or the client gone).
      if (this.#pumped >= 0) {
        this.#readPump(); // its last counts, before it forgets them
        nativePump.close(this.#pumped, undefined);
      }
      if (wasConnecting) client.close(); // the pump's client handle is closed once connected
    } else {
      if (reset === client) client.reset();
      else client.close();
      if (backend !== undefined && reset === backend) backend.reset();
      else backend?.close();
    }
    if (this.#endpoint >= 0) this.#target.balancer.release(this.#endpoint);
    this.#bytes?.close();
    const accessLog = this.#options.accessLog;
    if (accessLog !== undefined) {
      accessLog.write({
        kind: 'relay',
        listener: this.#target.listener,
        route: this.#target.route,
        upstream: this.#target.backend.name,
        endpoint: this.#endpoint >= 0 ? formatAddress(this.#target.backend.endpoints[this.#endpoint]!) : undefined,
        reason: wasConnecting ? 'not_connected' : undefined,
        durationMs: Date.now() - this.#startedAt,
        bytesIn: this.toBackendBytes(),
        bytesOut: this.toClientBytes(),
        connection: connectionFields({ sni: this.#options.sni }),
      });
    }
    if (!wasConnecting && log.enabled('debug')) {
      log.debug('passthrough_closed', {
        listener: this.#target.listener,
        route: this.#target.route,
        endpoint: this.#endpoint,
        to_backend: this.toBackendBytes(),
        to_client: this.toClientBytes(),
        ms: Date.now() - this.#startedAt,
      });
    }
    this.#options.closed();
  }

  /** Drops the connect attempt (or connection) to the backend; the client stays. */
  #closeBackend(): void {
    if (this.#pumped >= 0) nativePump!.hangUp(this.#pumped);
    this.#backend?.close();
    this.#backend = undefined;
  }

  #outcome(outcome: Exclude<PassthroughOutcome, 'relayed'>): void {
    if (this.#state === 'connecting') this.#target.metrics.outcome[outcome].inc();
  }
}
