// A passthrough connection: connect to a backend endpoint (failing over to the next one, each
// endpoint at most once), write the PROXY header and the peeked ClientHello bytes, then relay
// both ways with stream pipes, whose backpressure pauses the faster side instead of buffering
// (so a slow reader holds at most about a highWaterMark per direction in the gateway). Half-close
// is passed on (FIN one way, data the other), resets are passed on as resets, and the client
// socket's idle timeout covers both directions since every relayed byte is read from or written
// to it. Nothing runs per chunk besides the pipes themselves.
import net from 'node:net';
import type { Backend } from '../config/types.js';
import { log } from '../log.js';
import type { PassthroughOutcome } from '../reasons.js';
import type { Balancer } from './balancer.js';
import type { LogBudget } from './log-budget.js';
import { RelayByteCounter, type RouteMetrics } from './passthrough-metrics.js';
import { proxyHeader } from './proxy-protocol.js';
import { BufferPump } from './buffer-pump.js';

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
}

export interface RelayOptions {
  /** The ClientHello (and whatever followed it) already read from the client. */
  readonly peeked: Buffer;
  readonly idleMs: number;
  readonly sni?: string;
}

/**
 * Takes over `client` (paused, no 'data' listener, created with allowHalfOpen) and relays it to
 * the target's backend. The client is destroyed when no endpoint can be reached.
 */
export function relay(client: net.Socket, target: PassthroughTarget, options: RelayOptions): void {
  new Relay(client, target, options).start();
}

type AttemptFailure = 'upstream_unavailable' | 'upstream_connect_timeout';

class Relay {
  readonly #client: net.Socket;
  readonly #target: PassthroughTarget;
  #peeked: Buffer | undefined;
  readonly #idleMs: number;
  readonly #sni: string | undefined;
  #first = 0;
  #tries = 0;
  #endpoint = -1;
  #backend: net.Socket | undefined;
  #headerLength = 0;
  #established = false;
  #clientGone = false;
  #startedAt = 0;
  #bytes: RelayByteCounter | undefined;
  #closed = 0;

  constructor(client: net.Socket, target: PassthroughTarget, options: RelayOptions) {
    this.#client = client;
    this.#target = target;
    this.#peeked = options.peeked;
    this.#idleMs = options.idleMs;
    this.#sni = options.sni;
  }

  start(): void {
    this.#startedAt = Date.now();
    this.#client.on('error', this.#onClientError);
    this.#client.once('close', this.#onClientClose);
    this.#first = this.#target.balancer.first();
    this.#attempt(this.#first);
  }

  #attempt(endpoint: number): void {
    const { balancer, backend } = this.#target;
    const address = balancer.endpoints[endpoint]!;
    this.#endpoint = endpoint;
    balancer.acquire(endpoint);
    const toClient = new BufferPump(this.#client);
    const socket = net.connect({ host: address.host, port: address.port, allowHalfOpen: true, noDelay: true, onread: toClient.onread });
    toClient.readFrom(socket);
    this.#backend = socket;
    socket.setTimeout(backend.connectTimeoutMs);
    const onConnect = () => {
      socket.off('timeout', onTimeout).off('error', onError);
      socket.setTimeout(0);
      this.#establish(socket);
    };
    const onTimeout = () => {
      socket.off('connect', onConnect).off('error', onError);
      socket.destroy();
      this.#failed(endpoint, 'upstream_connect_timeout', 'ETIMEDOUT');
    };
    const onError = (err: NodeJS.ErrnoException) => {
      socket.off('connect', onConnect).off('timeout', onTimeout);
      this.#failed(endpoint, 'upstream_unavailable', err.code);
    };
    socket.once('connect', onConnect).once('timeout', onTimeout).once('error', onError);
  }

  #failed(endpoint: number, reason: AttemptFailure, code: string | undefined): void {
    if (this.#clientGone) return; // the attempt was abandoned (and released) when the client left
    const { balancer, backend } = this.#target;
    balancer.release(endpoint);
    this.#backend = undefined;
    this.#target.connectFailed(endpoint, reason);
    const address = balancer.endpoints[endpoint]!;
    this.#tries++;
    const left = balancer.endpoints.length - this.#tries;
    const skipped = this.#target.logBudget.take();
    if (skipped !== undefined) log.warn('backend_connect_failed', { backend: backend.name, endpoint: `${address.host}:${address.port}`, reason, code, failover: left > 0, ...(skipped > 0 ? { skipped_lines: skipped } : {}) });
    if (left > 0) {
      this.#attempt((this.#first + this.#tries) % balancer.endpoints.length);
      return;
    }
    this.#finishOutcome(reason);
    if (this.#target.logBudget.take() !== undefined) {
      log.warn('passthrough_unavailable', { listener: this.#target.listener, route: this.#target.route, backend: backend.name, reason, attempts: this.#tries, sni: this.#sni ?? null, remote: this.#client.remoteAddress });
    }
    this.#client.destroy();
  }

  #establish(backend: net.Socket): void {
    const client = this.#client;
    const target = this.#target;
    this.#established = true;
    target.metrics.outcome.relayed.inc();
    backend.cork();
    if (target.backend.proxyProtocol) {
      const header = proxyHeader(target.backend.proxyProtocol, {
        sourceAddress: client.remoteAddress,
        sourcePort: client.remotePort,
        destinationAddress: client.localAddress,
        destinationPort: client.localPort,
        authority: this.#sni,
      });
      this.#headerLength = header.length;
      backend.write(header);
    }
    backend.write(this.#peeked!);
    this.#peeked = undefined;
    backend.uncork();
    this.#bytes = new RelayByteCounter(
      target.metrics,
      () => backend.bytesWritten - this.#headerLength,
      () => client.bytesWritten,
    );
    backend.on('error', this.#onBackendError);
    backend.once('close', this.#onBackendClose);
    client.setTimeout(this.#idleMs, this.#onIdle);
    client.pipe(backend);
    backend.once('end', () => client.end());
  }

  readonly #onIdle = (): void => {
    log.debug('passthrough_idle_timeout', { listener: this.#target.listener, route: this.#target.route, idle_ms: this.#idleMs });
    this.#client.destroy();
    this.#backend?.destroy();
  };

  /** A reset on one side becomes a reset on the other; any other error just closes it. */
  readonly #onClientError = (err: NodeJS.ErrnoException): void => {
    const backend = this.#backend;
    if (backend && this.#established) closeLike(backend, err);
  };

  readonly #onBackendError = (err: NodeJS.ErrnoException): void => {
    closeLike(this.#client, err);
  };

  readonly #onClientClose = (): void => {
    this.#clientGone = true;
    const backend = this.#backend;
    if (!this.#established) {
      // The client left while we were still connecting: abandon the attempt.
      if (backend) {
        backend.destroy();
        this.#target.balancer.release(this.#endpoint);
        this.#backend = undefined;
      }
      this.#finishOutcome('client_closed');
      return;
    }
    // After a clean close (FIN both ways) the backend finishes on its own, flushing what is
    // still queued to it; after a reset, an error or the idle timeout it goes too.
    if (backend && !cleanlyClosed(this.#client)) backend.destroy();
    this.#closedOne();
  };

  readonly #onBackendClose = (): void => {
    this.#target.balancer.release(this.#endpoint);
    if (!cleanlyClosed(this.#backend!)) this.#client.destroy();
    this.#closedOne();
  };

  #closedOne(): void {
    if (++this.#closed < 2) return;
    this.#bytes?.close();
    log.debug('passthrough_closed', {
      listener: this.#target.listener,
      route: this.#target.route,
      endpoint: this.#endpoint,
      to_backend: this.#backend ? this.#backend.bytesWritten - this.#headerLength : 0,
      to_client: this.#client.bytesWritten,
      ms: Date.now() - this.#startedAt,
    });
  }

  #finishOutcome(outcome: Exclude<PassthroughOutcome, 'relayed'>): void {
    if (this.#established) return;
    this.#target.metrics.outcome[outcome].inc();
  }
}

function cleanlyClosed(socket: net.Socket): boolean {
  return socket.readableEnded && socket.writableFinished;
}

function closeLike(socket: net.Socket, err: NodeJS.ErrnoException): void {
  if (socket.destroyed) return;
  if (err.code === 'ECONNRESET') socket.resetAndDestroy();
  else socket.destroy();
}
