// The front door: one TCP server per listener that reads the first bytes of every connection
// and decides where it goes. A TLS ClientHello is routed by SNI and ALPN (passthrough/sni-router)
// to a passthrough relay, which writes the peeked bytes to the backend first, or to the
// terminate side, which gets a socket with the peeked bytes unshifted so that its TLS server
// still runs on the native handle. With the native pump, a hello that is all there when the
// connection is accepted is only peeked at and stays in the kernel for the relay or the TLS
// server to read (#routedOnPeek). Plain HTTP goes to the plaintext side on PERMISSIVE listeners
// only. Anything else is refused with a stable reason, counted and logged; an SNI no route
// claims gets the TLS alert unrecognized_name. Connections are taken as bare handles
// (../net/stream-handles.ts): a relayed connection never becomes a net.Socket.
import type { AccessLog } from '../access-log/access-log.js';
import net from 'node:net';
import type { Backend, Listener, PassthroughRoute } from '../config/types.js';
import { log } from '../log.js';
import type { FrontDoorReason } from '../reasons.js';
import { Balancer } from '../passthrough/balancer.js';
import { ClientHelloReader, DEFAULT_MAX_HELLO_BYTES, looksLikeHttp, type ClientHello } from '../passthrough/client-hello.js';
import { backendMetrics, listenerMetrics, routeMetrics, type ListenerMetrics } from '../passthrough/passthrough-metrics.js';
import { relay, type PassthroughTarget } from '../passthrough/relay.js';
import { nativePump } from '../passthrough/native-pump.js';
import { SniRouter, type SniLookup } from '../passthrough/sni-router.js';
import { DeadlineSweep, type Expirable } from './deadline-sweep.js';
import { ConnectionsPerSource } from './connections-per-source.js';
import { listenAt } from '../net/shared-port.js';
import { LogBudget, REFUSAL_LOG_LINES_PER_SECOND } from '../passthrough/log-budget.js';
import { acceptHandles, checkStreamHandles, errorName, lastReadBytes, lastReadResult, listeningFd, peerAddress, shutdown, socketFor, writeTo, type TcpHandle } from '../net/stream-handles.js';

export interface FrontDoorOptions {
  readonly listener: Listener;
  /** The gateway's access log now: each relayed connection gets a line. */
  readonly accessLog?: () => AccessLog | undefined;
  /** The backends passthrough routes name (others are ignored). */
  readonly backends: readonly Backend[];
  /**
   * Terminate routes: gets the socket paused, with the peeked bytes unshifted back, no 'data'
   * listener and no timeout, ready for `tlsServer.emit('connection', socket)`.
   */
  readonly terminate?: (socket: net.Socket, hello: ClientHello) => void;
  /**
   * PERMISSIVE listeners, plaintext HTTP: the socket as for `terminate`, for
   * `httpServer.emit('connection', socket)`. When the callback returns having attached a 'data'
   * listener to the still-paused socket (http.Server does, and reads later bytes from the handle
   * natively), the front door resumes it so that the bytes given back are read first.
   */
  readonly plaintext?: (socket: net.Socket) => void;
  /** Bound on the ClientHello, record headers included; default 16 KiB. */
  readonly maxHelloBytes?: number;
}

export interface FrontDoor {
  /** Connections accepted and not yet closed, whoever holds them now. */
  openConnections(): number;
  address(): { host: string; port: number };
  /**
   * Reload: new connections use the new routes, backends, mode and limits; open ones keep
   * theirs. The address is not rebound (a new address needs a new front door).
   */
  update(listener: Listener, backends: readonly Backend[]): void;
  /** The descriptor of its listening socket (for the next generation: runtime/handover.ts). */
  listeningFd(): number | undefined;
  /** Stops accepting; connections already accepted go on (graceful stop: drain). */
  stopAccepting(): void;
  /** Stops accepting and closes every connection the front door accepted. */
  close(): Promise<void>;
}

/** TLS alert record: fatal (2), unrecognized_name (112). */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
/** TLS alert record: fatal (2), decode_error (50). */
const ALERT_DECODE_ERROR = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
const NOTHING_READ = Buffer.alloc(0);
/**
 * TCP_DEFER_ACCEPT: the kernel holds a new connection until its first bytes arrive (the client
 * speaks first in TLS and HTTP), for up to about this long before handing it over anyway. A
 * connection that arrives with its hello is routed on a peek: no read, no buffer, no epoll change
 * in Node's loop (bench scenario 4, paired runs: ~9% less CPU per relayed connection).
 */
const DEFER_ACCEPT_SECONDS = 1;
/** How long a refused client gets to read the alert before the socket is destroyed. */
const REFUSAL_LINGER_MS = 1000;
/** Connect failure log lines per second and backend. */
const BACKEND_LOG_LINES_PER_SECOND = 10;
/** A client may offer thousands of ALPN names; a log line shows the first few. */
const MAX_LOGGED_ALPN = 8;

type BackendState = Pick<PassthroughTarget, 'balancer' | 'connectFailed' | 'logBudget' | 'connecting'>;

/** One balancer (with its metric handles and log budget) per Backend object: listeners of one config snapshot share them. */
const backendStates = new WeakMap<Backend, BackendState>();

function backendState(backend: Backend): BackendState {
  let state = backendStates.get(backend);
  if (state === undefined) {
    state = {
      balancer: new Balancer(backend),
      connectFailed: backendMetrics(backend.name, backend.endpoints).connectFailed,
      logBudget: new LogBudget(BACKEND_LOG_LINES_PER_SECOND),
      connecting: new DeadlineSweep<Expirable>(backend.connectTimeoutMs),
    };
    backendStates.set(backend, state);
  }
  return state;
}

/** Something the front door closes when it closes. */
interface Connection {
  destroy(): void;
}

/** What every connection of one front door shares. */
interface Door {
  readonly options: FrontDoorOptions;
  readonly metrics: ListenerMetrics;
  readonly maxHelloBytes: number;
  readonly deadlines: DeadlineSweep<FirstBytes>;
  /** Idle limits of this front door's relays. */
  readonly idle: DeadlineSweep<Expirable>;
  /** Open connections, in whatever hands they are now. */
  readonly connections: Set<Connection>;
  /** `from` (now closed, or gone on as `to`) no longer holds the connection. */
  handOver(from: Connection, to: Connection | undefined): void;
  /** Writes a refusal log line within the budget. */
  logRefusal(fields: Record<string, unknown>): void;
}

/** Everything a connection needs from the config, swapped by reference on update. */
interface Snapshot {
  readonly listener: Listener;
  readonly router: SniRouter<PassthroughTarget>;
  readonly permissive: boolean;
}

function compile(listener: Listener, backends: readonly Backend[], options: FrontDoorOptions): Snapshot {
  if (options.terminate === undefined && listener.routes.some((r) => r.kind === 'terminate')) {
    // Said once here; each connection it affects is refused as no_terminate_handler.
    log.error('front_door_misconfigured', { listener: listener.name, detail: 'terminate routes but no TLS server attached to the front door (options.terminate)' });
  }
  const byName = new Map(backends.map((b) => [b.name, b]));
  const router = new SniRouter(listener.routes, (route: PassthroughRoute): PassthroughTarget => {
    const backend = byName.get(route.backend);
    if (backend === undefined) throw new Error(`listener '${listener.name}': route '${route.name}' names backend '${route.backend}', which is not defined`);
    return { listener: listener.name, route: route.name, backend, ...backendState(backend), metrics: routeMetrics(listener.name, route.name) };
  });
  return { listener, router, permissive: listener.mode === 'PERMISSIVE' };
}

export async function startFrontDoor(options: FrontDoorOptions): Promise<FrontDoor> {
  checkStreamHandles(); // a clear error at start, not a crash at the first connection
  let snapshot = compile(options.listener, options.backends, options);
  const name = options.listener.name;
  const metrics = listenerMetrics(name);
  const budget = new LogBudget(REFUSAL_LOG_LINES_PER_SECOND);
  const connections = new Set<Connection>();
  // With max_connections_per_source: each counted connection's address, moved along as the
  // connection changes hands and released when its last holder closes.
  const perSource = new ConnectionsPerSource();
  const sourceOf = new Map<Connection, string>();
  const door: Door = {
    options,
    metrics,
    maxHelloBytes: options.maxHelloBytes ?? DEFAULT_MAX_HELLO_BYTES,
    deadlines: new DeadlineSweep<FirstBytes>(options.listener.timeouts.helloMs),
    idle: new DeadlineSweep<Expirable>(options.listener.timeouts.idleMs),
    connections,
    handOver(from, to) {
      if (!connections.delete(from)) return;
      if (to !== undefined) connections.add(to);
      else metrics.active.dec();
      if (sourceOf.size === 0) return;
      const source = sourceOf.get(from);
      if (source === undefined) return;
      sourceOf.delete(from);
      if (to !== undefined) sourceOf.set(to, source);
      else perSource.release(source);
    },
    logRefusal(fields) {
      budget.write('info', 'front_door_refused', { listener: name, ...fields });
    },
  };
  let maxConnections = options.listener.maxConnections;
  let maxPerSource = options.listener.maxConnectionsPerSource;

  // A net.Server listens (its port shared by the cluster's workers: ../net/shared-port.ts); its
  // accepted connections come here as bare handles.
  const server = net.createServer();

  await listenAt(server, options.listener.address, 4096);
  server.on('error', (err) => log.error('front_door_error', { listener: name, error: err.message }));
  // Connections are handed over once their hello is there, so that most are routed on a peek,
  // and with TCP_NODELAY already set.
  const fd = listeningFd(server);
  const tuned = nativePump !== undefined && fd !== undefined && nativePump.tuneListener(fd, DEFER_ACCEPT_SECONDS) === 0;
  acceptHandles(
    server,
    (handle) => {
      if (connections.size >= maxConnections) {
        metrics.refused.max_connections.inc();
        door.logRefusal({ reason: 'max_connections', max_connections: maxConnections, remote: peerAddress(handle).address });
        handle.close();
        return;
      }
      let source: string | undefined;
      if (maxPerSource !== undefined) {
        source = peerAddress(handle).address;
        if (source !== undefined && !perSource.admit(source, maxPerSource)) {
          metrics.refused.max_connections_per_source.inc();
          door.logRefusal({ reason: 'max_connections_per_source', max_connections_per_source: maxPerSource, remote: source });
          handle.close();
          return;
        }
      }
      if (!tuned) handle.setNoDelay(true);
      metrics.active.inc();
      const first = new FirstBytes(handle, snapshot, door);
      connections.add(first);
      if (source !== undefined) sourceOf.set(first, source);
      first.start();
    },
    (status) => log.error('front_door_error', { listener: name, error: `accept failed: ${errorName(status)}` }),
  );

  return {
    openConnections: () => connections.size,
    address() {
      const a = server.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    },
    update(listener, backends) {
      snapshot = compile(listener, backends, options);
      maxConnections = listener.maxConnections;
      maxPerSource = listener.maxConnectionsPerSource;
      door.deadlines.setLimit(listener.timeouts.helloMs);
      door.idle.setLimit(listener.timeouts.idleMs);
    },
    listeningFd: () => (server.listening ? fd : undefined),
    stopAccepting() {
      if (server.listening) server.close();
    },
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      door.deadlines.close();
      for (const connection of [...connections]) connection.destroy();
      door.idle.close();
      return closed;
    },
  };
}

/** The first bytes of one connection, until it is handed on or refused. */
class FirstBytes implements Connection {
  readonly #handle: TcpHandle;
  readonly #snapshot: Snapshot;
  readonly #door: Door;
  readonly #metrics: ListenerMetrics;
  #reader: ClientHelloReader;
  readonly #chunks: Buffer[] = [];
  #plaintext = false;
  #decided = false;
  #closed = false;

  constructor(handle: TcpHandle, snapshot: Snapshot, door: Door) {
    this.#handle = handle;
    this.#snapshot = snapshot;
    this.#door = door;
    this.#metrics = door.metrics;
    this.#reader = new ClientHelloReader(door.maxHelloBytes);
  }

  start(): void {
    this.#handle.onread = this.#onRead;
    if (nativePump !== undefined && this.#routedOnPeek()) return;
    const err = this.#handle.readStart();
    if (err !== 0) return this.#closedEarly();
    this.#door.deadlines.add(this, this.#snapshot.listener.timeouts.helloMs);
  }

  destroy(): void {
    this.#decided = true;
    this.#door.deadlines.delete(this);
    this.#close();
  }

  readonly #onRead = (arrayBuffer: ArrayBuffer | undefined): undefined => {
    const nread = lastReadResult();
    if (nread > 0) this.#onData(lastReadBytes(arrayBuffer!, nread));
    else if (nread < 0) this.#closedEarly(); // FIN or reset before a complete hello: nothing to route
    return undefined;
  };

  #onData(chunk: Buffer): void {
    this.#chunks.push(chunk);
    if (this.#plaintext) {
      this.#plaintextGuess();
      return;
    }
    const outcome = this.#reader.push(chunk);
    switch (outcome.kind) {
      case 'incomplete':
        return;
      case 'hello':
        this.#metrics.hello.hello.inc();
        this.#route(outcome, this.#snapshot.router.lookup(outcome.sni, outcome.alpn));
        return;
      case 'not_tls':
        this.#metrics.hello.not_tls.inc();
        if (this.#snapshot.permissive && this.#door.options.plaintext) {
          this.#plaintext = true;
          this.#plaintextGuess();
        } else this.#refuse('not_tls');
        return;
      case 'too_large':
        this.#metrics.hello.too_large.inc();
        this.#refuse('hello_too_large');
        return;
      case 'malformed':
        this.#metrics.hello.malformed.inc();
        this.#refuse('hello_malformed', ALERT_DECODE_ERROR, { detail: outcome.detail });
        return;
    }
  }

  /**
   * A hello that is all here already (TCP_DEFER_ACCEPT makes it so) is routed from a peek, its
   * bytes left in the socket: the relay or the TLS server reads them from the kernel, not from a
   * copy, and the front door never starts reading. Anything else (incomplete, not a hello, a
   * refusal) is read the usual way from the first byte. True: routed.
   */
  #routedOnPeek(): boolean {
    const peeked = nativePump!.peek(this.#handle);
    if (peeked === undefined) return false;
    const outcome = this.#reader.push(peeked);
    if (outcome.kind === 'hello') {
      const found = this.#snapshot.router.lookup(outcome.sni, outcome.alpn);
      if (found.kind === 'passthrough' || (found.kind === 'terminate' && this.#door.options.terminate !== undefined)) {
        this.#metrics.hello.hello.inc();
        this.#route(outcome, found);
        return true;
      }
    }
    this.#reader = new ClientHelloReader(this.#door.maxHelloBytes);
    return false;
  }

  #plaintextGuess(): void {
    const guess = looksLikeHttp(this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks));
    if (guess === 'incomplete') return;
    if (guess === 'not_http') {
      this.#refuse('not_tls');
      return;
    }
    this.#metrics.plaintext.inc();
    const socket = this.#toSocket(true);
    this.#door.options.plaintext!(socket);
    // Without this an http.Server would never see the request line we read: it parses new bytes
    // straight from the handle and the unshifted ones wait in a paused stream.
    if (socket.isPaused() && socket.listenerCount('data') > 0) socket.resume();
  }

  #route(hello: ClientHello, found: SniLookup<PassthroughTarget>): void {
    if (found.kind === 'passthrough') {
      const peeked = this.#stop();
      const door = this.#door;
      let relayed: Connection | undefined;
      relayed = relay(this.#handle, found.route, {
        peeked,
        idleMs: this.#snapshot.listener.timeouts.idleMs,
        idle: door.idle,
        sni: hello.sni,
        closed: () => door.handOver(relayed ?? this, undefined),
        accessLog: door.options.accessLog?.(),
      });
      door.handOver(this, relayed);
      return;
    }
    if (found.kind === 'none') {
      this.#refuse('unrecognized_name', ALERT_UNRECOGNIZED_NAME, { sni: hello.sni ?? null, alpn: hello.alpn.slice(0, MAX_LOGGED_ALPN) });
      return;
    }
    const terminate = this.#door.options.terminate;
    if (terminate === undefined) {
      this.#refuse('no_terminate_handler', undefined, { sni: hello.sni ?? null });
      return;
    }
    // What a bare TLS listener's sockets have: the TLS socket inherits it.
    terminate(this.#toSocket(false), hello);
  }

  /** Detaches the front door from the connection and returns what it read (none: only peeked). */
  #stop(): Buffer {
    this.#decided = true;
    this.#door.deadlines.delete(this);
    const peeked = this.#chunks.length === 1 ? this.#chunks[0]! : this.#chunks.length === 0 ? NOTHING_READ : Buffer.concat(this.#chunks);
    this.#chunks.length = 0;
    return peeked;
  }

  /** For the terminate and plaintext sides: a paused socket, the peeked bytes in front of its buffer. */
  #toSocket(allowHalfOpen: boolean): net.Socket {
    const peeked = this.#stop();
    this.#handle.readStop();
    const socket = socketFor(this.#handle, allowHalfOpen);
    socket.on('error', ignore); // until the TLS or HTTP side, which reports errors, takes it
    if (peeked.length > 0) socket.unshift(peeked);
    const door = this.#door;
    door.handOver(this, socket);
    socket.once('close', () => door.handOver(socket, undefined));
    return socket;
  }

  #refuse(reason: FrontDoorReason, alert?: Buffer, fields?: Record<string, unknown>): void {
    this.#stop();
    const handle = this.#handle;
    this.#metrics.refused[reason].inc();
    this.#door.logRefusal({ reason, remote: peerAddress(handle).address, ...fields });
    if (alert === undefined) {
      this.#close();
      return;
    }
    // Send the alert and FIN, read and drop whatever the client still sends until it closes,
    // and do not wait for it longer than a moment.
    handle.onread = this.#drain;
    const sent = writeTo(handle, alert, ignore);
    if (typeof sent === 'number' || shutdown(handle, ignore) !== 0) {
      this.#close();
      return;
    }
    setTimeout(() => this.#close(), REFUSAL_LINGER_MS).unref();
  }

  readonly #drain = (): undefined => {
    if (lastReadResult() < 0) this.#close();
    return undefined;
  };

  #closedEarly(): void {
    if (this.#decided) return this.#close();
    this.#decided = true;
    this.#door.deadlines.delete(this);
    this.#metrics.hello.closed.inc();
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
    this.#door.handOver(this, undefined);
  }

  /** The hello time limit passed (called by the deadlines sweep). */
  expire(): void {
    if (this.#decided) return;
    this.#metrics.hello.timeout.inc();
    this.#refuse('hello_timeout', undefined, { received: this.#chunks.reduce((n, c) => n + c.length, 0) });
  }
}

function ignore(): void {}
