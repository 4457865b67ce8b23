// The front door: one TCP server per listener that reads the first bytes of every connection
// and decides where it goes. A TLS ClientHello is routed by SNI and ALPN (passthrough/sni-router)
// to a passthrough relay, which writes the peeked bytes to the backend first, or to the
// terminate side, which gets the socket back with the peeked bytes unshifted so that its TLS
// server still runs on the native handle. Plain HTTP goes to the plaintext side on PERMISSIVE
// listeners only. Anything else is refused with a stable reason, counted and logged; an SNI no
// route claims gets the TLS alert unrecognized_name.
import net from 'node:net';
import type { Backend, Listener, PassthroughRoute } from '../config/types.js';
import { log } from '../log.js';
import type { FrontDoorReason } from '../reasons.js';
import { Balancer } from '../passthrough/balancer.js';
import { ClientHelloReader, DEFAULT_MAX_HELLO_BYTES, looksLikeHttp, type ClientHello } from '../passthrough/client-hello.js';
import { backendMetrics, listenerMetrics, routeMetrics, type ListenerMetrics } from '../passthrough/passthrough-metrics.js';
import { relay, type PassthroughTarget } from '../passthrough/relay.js';
import { SniRouter } from '../passthrough/sni-router.js';
import { HelloDeadlines } from './hello-deadlines.js';
import { LogBudget } from '../passthrough/log-budget.js';

export interface FrontDoorOptions {
  readonly listener: Listener;
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
  /** The listening server (its 'connection' sockets are the clients' raw sockets). */
  readonly server: net.Server;
  address(): { host: string; port: number };
  /**
   * Reload: new connections use the new routes, backends, mode and limits; open ones keep
   * theirs. The address is not rebound (a new address needs a new front door).
   */
  update(listener: Listener, backends: readonly Backend[]): void;
  /** Stops accepting and closes every connection the front door accepted. */
  close(): Promise<void>;
}

/** TLS alert record: fatal (2), unrecognized_name (112). */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
/** TLS alert record: fatal (2), decode_error (50). */
const ALERT_DECODE_ERROR = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
/** How long a refused client gets to read the alert before the socket is destroyed. */
const REFUSAL_LINGER_MS = 1000;
/** Refusal log lines per second and listener; the metrics count all refusals. */
const REFUSAL_LOG_LINES_PER_SECOND = 20;
/** Connect failure log lines per second and backend. */
const BACKEND_LOG_LINES_PER_SECOND = 10;
/** A client may offer thousands of ALPN names; a log line shows the first few. */
const MAX_LOGGED_ALPN = 8;

type BackendState = Pick<PassthroughTarget, 'balancer' | 'connectFailed' | 'logBudget'>;

/** One balancer (with its metric handles and log budget) per Backend object: listeners of one config snapshot share them. */
const backendStates = new WeakMap<Backend, BackendState>();

function backendState(backend: Backend): BackendState {
  let state = backendStates.get(backend);
  if (state === undefined) {
    state = { balancer: new Balancer(backend), connectFailed: backendMetrics(backend.name, backend.endpoints).connectFailed, logBudget: new LogBudget(BACKEND_LOG_LINES_PER_SECOND) };
    backendStates.set(backend, state);
  }
  return state;
}

/** What every connection of one front door shares. */
interface Door {
  readonly options: FrontDoorOptions;
  readonly metrics: ListenerMetrics;
  readonly maxHelloBytes: number;
  readonly deadlines: HelloDeadlines<FirstBytes>;
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
  let snapshot = compile(options.listener, options.backends, options);
  const name = options.listener.name;
  const metrics = listenerMetrics(name);
  const budget = new LogBudget(REFUSAL_LOG_LINES_PER_SECOND);
  const door: Door = {
    options,
    metrics,
    maxHelloBytes: options.maxHelloBytes ?? DEFAULT_MAX_HELLO_BYTES,
    deadlines: new HelloDeadlines<FirstBytes>(options.listener.timeouts.helloMs),
    logRefusal(fields) {
      const skipped = budget.take();
      if (skipped !== undefined) log.info('front_door_refused', { listener: name, ...fields, ...(skipped > 0 ? { skipped_lines: skipped } : {}) });
    },
  };
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    metrics.active.inc();
    socket.once('close', () => {
      sockets.delete(socket);
      metrics.active.dec();
    });
    new FirstBytes(socket, snapshot, door).start();
  });
  server.maxConnections = options.listener.maxConnections;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    metrics.refused.max_connections.inc();
    door.logRefusal({ reason: 'max_connections', max_connections: server.maxConnections, remote: data?.remoteAddress });
  });

  const { host, port } = options.listener.address;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error('front_door_error', { listener: name, error: err.message }));

  return {
    server,
    address() {
      const a = server.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    },
    update(listener, backends) {
      snapshot = compile(listener, backends, options);
      server.maxConnections = listener.maxConnections;
      door.deadlines.setLimit(listener.timeouts.helloMs);
    },
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      door.deadlines.close();
      for (const socket of sockets) socket.destroy();
      return closed;
    },
  };
}

/** The first bytes of one connection, until it is handed on or refused. */
class FirstBytes {
  readonly #socket: net.Socket;
  readonly #snapshot: Snapshot;
  readonly #door: Door;
  readonly #metrics: ListenerMetrics;
  readonly #reader: ClientHelloReader;
  readonly #chunks: Buffer[] = [];
  #plaintext = false;
  #decided = false;

  constructor(socket: net.Socket, snapshot: Snapshot, door: Door) {
    this.#socket = socket;
    this.#snapshot = snapshot;
    this.#door = door;
    this.#metrics = door.metrics;
    this.#reader = new ClientHelloReader(door.maxHelloBytes);
  }

  start(): void {
    const socket = this.#socket;
    // Errors are reported by whoever owns the socket at the time (this class through 'close',
    // then the relay or the TLS/HTTP server); this keeps an early reset from being uncaught.
    socket.on('error', ignore);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.once('close', this.#onClose);
    this.#door.deadlines.add(this, this.#snapshot.listener.timeouts.helloMs);
  }

  readonly #onData = (chunk: Buffer): void => {
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
        this.#route(outcome);
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
  };

  #plaintextGuess(): void {
    const guess = looksLikeHttp(this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks));
    if (guess === 'incomplete') return;
    if (guess === 'not_http') {
      this.#refuse('not_tls');
      return;
    }
    this.#metrics.plaintext.inc();
    this.#handOff();
    const socket = this.#socket;
    this.#door.options.plaintext!(socket);
    // Without this an http.Server would never see the request line we read: it parses new bytes
    // straight from the handle and the unshifted ones wait in a paused stream.
    if (socket.isPaused() && socket.listenerCount('data') > 0) socket.resume();
  }

  #route(hello: ClientHello): void {
    const found = this.#snapshot.router.lookup(hello.sni, hello.alpn);
    if (found.kind === 'passthrough') {
      const peeked = this.#stop();
      relay(this.#socket, found.route, { peeked, idleMs: this.#snapshot.listener.timeouts.idleMs, sni: hello.sni });
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
    this.#socket.allowHalfOpen = false;
    this.#handOff();
    terminate(this.#socket, hello);
  }

  /** Detaches the front door from the socket and returns what it read, the socket paused. */
  #stop(): Buffer {
    this.#decided = true;
    this.#door.deadlines.delete(this);
    const socket = this.#socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    socket.pause();
    const peeked = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks.length = 0;
    return peeked;
  }

  /** For the terminate and plaintext sides: the peeked bytes go back in front of the socket's buffer. */
  #handOff(): void {
    const peeked = this.#stop();
    this.#socket.setTimeout(0);
    this.#socket.unshift(peeked);
  }

  #refuse(reason: FrontDoorReason, alert?: Buffer, fields?: Record<string, unknown>): void {
    this.#stop();
    const socket = this.#socket;
    this.#metrics.refused[reason].inc();
    this.#door.logRefusal({ reason, remote: socket.remoteAddress, ...fields });
    if (alert === undefined) {
      socket.destroy();
      return;
    }
    // Send the alert and FIN, read and drop whatever the client still sends until it closes,
    // and do not wait for it longer than a moment.
    socket.allowHalfOpen = false;
    socket.end(alert);
    socket.resume();
    socket.setTimeout(REFUSAL_LINGER_MS, () => socket.destroy());
  }

  readonly #onEnd = (): void => {
    // FIN before a complete hello: nothing to route.
    this.#socket.destroy();
  };

  readonly #onClose = (): void => {
    if (this.#decided) return;
    this.#decided = true;
    this.#door.deadlines.delete(this);
    this.#metrics.hello.closed.inc();
  };

  /** The hello time limit passed (called by the deadlines sweep). */
  expire(): void {
    if (this.#decided) return;
    this.#metrics.hello.timeout.inc();
    this.#refuse('hello_timeout', undefined, { received: this.#chunks.reduce((n, c) => n + c.length, 0) });
  }
}

function ignore(): void {}
