// A terminate listener: node:tls with client certificates required and verified by OpenSSL
// (STRICT), per-SNI certificates, and a downstream session (HTTP/2 or HTTP/1.1, by ALPN) serving each accepted socket.
// It can listen on its own address or take sockets handed over by the front door
// (passthrough/mixed/PERMISSIVE listeners). Its TLS state and routes are swapped by reference on
// reload; established connections keep theirs.
//
// Before a client has shown a certificate it holds a connection for at most timeouts.handshake:
// Node's handshake timer, armed when the TLS socket is made (at accept, or at the front door's
// handoff), is not pushed back by the peer's bytes (they stay in OpenSSL until the handshake is
// done), and a connection whose handshake failed or timed out is closed here. Listening on its own,
// it accepts on a net.Server that applies max_connections and max_connections_per_source before
// the TLS server sees the connection.
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Listener } from '../config/types.js';
import { identityOf, IdentityCache, type PeerIdentity } from '../identity/peer-identity.js';
import { ConnectionsPerSource } from '../listener/connections-per-source.js';
import { log } from '../log.js';
import { http2CloseCounts } from '../metrics/http2-metrics.js';
import { listenerRefusals } from '../metrics/proxy-metrics.js';
import type { Inc } from '../metrics/tallies.js';
import { handshakeCounter } from '../metrics/tls-metrics.js';
import { LogBudget, REFUSAL_LOG_LINES_PER_SECOND } from '../passthrough/log-budget.js';
import { acceptRefusals, type AcceptRefusal } from '../passthrough/passthrough-metrics.js';
import type { CertReason } from '../reasons.js';
import { clientRefusal, refusalDetail, verificationReason } from './client-admission.js';
import type { CompiledRoute } from './compiled-route.js';
import { PLAINTEXT_CONNECTION, type ConnectionContext } from '../session/connection-context.js';
import type { DownstreamSession } from '../session/downstream-session.js';
import { engineSettings, servedAlpn } from '../http2/session-options.js';
import { LISTENER_LIMITS_DEFAULT } from '../config/types.js';
import { serveDownstream, type DownstreamOptions } from './serve-downstream.js';
import { handshakeFailureReason, verificationCode } from './handshake-failure.js';
import { createRequestHandler } from './request-handler.js';
import type { AccessLog } from '../access-log/access-log.js';
import { setSniCallback, type SniCallback } from './sni-callback.js';
import type { ServerTlsState } from './server-tls-state.js';
import type { TerminateRouter } from './terminate-router.js';
import { listenAt } from '../net/shared-port.js';
import { checkStreamHandles, listeningFd } from '../net/stream-handles.js';

export interface TerminateListenerOptions {
  listener: Listener;
  tls: ServerTlsState;
  router: TerminateRouter<CompiledRoute>;
  identities: IdentityCache;
  /** The gateway's access log now (a reload may change it); undefined: none. */
  accessLog?: () => AccessLog | undefined;
}

export class TerminateListener {
  readonly server: tls.Server;
  /** Listening on its own address (listen()): accepts, admits, and hands connections to `server`. */
  #accepting: net.Server | undefined;
  readonly #perSource = new ConnectionsPerSource();
  readonly #refused: Record<AcceptRefusal, Inc>;
  readonly #refusalLog = new LogBudget(REFUSAL_LOG_LINES_PER_SECOND);
  /** Refused handshakes are logged within a budget too: a flood of clients without a certificate (or a port scan) is a few lines a second, every one still counted. */
  readonly #handshakeLog = new LogBudget(REFUSAL_LOG_LINES_PER_SECOND);
  #tls: ServerTlsState;
  #router: TerminateRouter<CompiledRoute>;
  /** Live mTLS client sockets. */
  readonly connections = new Set<TLSSocket>();
  /** Every HTTP connection being served (mTLS and PERMISSIVE plaintext), for shutdown and revocation. */
  readonly #http = new Set<DownstreamSession>();
  readonly #httpOptions: DownstreamOptions;
  readonly #handshakes: ReturnType<typeof handshakeCounter>;
  /** drain() was called: sessions that start from now on are drained as they start. */
  #draining = false;
  readonly #selectBySni: SniCallback = (servername, callback) => callback(null, this.#tls.select(servername).context);

  constructor(private readonly options: TerminateListenerOptions) {
    checkStreamHandles(); // connections are served on the TLS handles (SocketIo): a clear error at start
    const { listener } = options;
    this.#handshakes = handshakeCounter(listener.name);
    this.#tls = options.tls;
    this.#router = options.router;
    this.#refused = acceptRefusals(listener.name);
    const timeouts = listener.timeouts;
    const handler = createRequestHandler(listener.name, () => this.#router, options.accessLog);
    const onRefused = listenerRefusals(listener.name);
    const http2Closed = http2CloseCounts(listener.name);
    const limits = listener.limits ?? LISTENER_LIMITS_DEFAULT;
    this.#httpOptions = {
      handler,
      headersMs: timeouts.requestHeadersMs,
      idleMs: timeouts.idleMs,
      bodyMs: timeouts.requestBodyMs,
      onRefused,
      http2: {
        listener: listener.name,
        handler,
        headersMs: timeouts.requestHeadersMs,
        idleMs: timeouts.idleMs,
        bodyMs: timeouts.requestBodyMs,
        settings: engineSettings(limits),
        maxHeaderBytes: limits.maxHeaderBytes,
        onRefused,
        onClosed: (reason, fields) => {
          http2Closed[reason].inc();
          this.#refusalLog.write('warn', 'http2_connection_closed', { listener: listener.name, reason, ...fields });
        },
      },
    };
    this.server = tls.createServer({
      ...this.#tls.defaultOptions,
      requestCert: true,
      // With trust_domains, a chain OpenSSL refused is refused in 'secureConnection' below instead of
      // by Node, which would destroy the socket first: the log then names the certificate (subject,
      // SPIFFE ID) that crossed trust domains. OpenSSL verifies every chain all the same. The price:
      // without Node's rejectUnauthorized, OpenSSL does not require a certificate, so a client that
      // sends none sees its connection closed after the handshake instead of a certificate_required
      // alert. A single trust_bundle keeps Node's refusal and the alert.
      rejectUnauthorized: listener.tls?.clientAuth.trustDomains === undefined,
      SNICallback: this.#selectBySni,
      handshakeTimeout: timeouts.handshakeMs,
      ALPNProtocols: servedAlpn(listener.tls?.alpn ?? ['h2', 'http/1.1']),
    });
    this.#useSniWhereThereIsAChoice();
    this.server.on('secureConnection', (socket: TLSSocket) => {
      const state = this.#tls;
      const cert = socket.getPeerX509Certificate();
      if (!cert) {
        this.#refuse(socket, 'no_cert', undefined);
        return;
      }
      if (!socket.authorized) {
        // Only with trust_domains (elsewhere Node refused it already). Not cached: anyone can present a certificate OpenSSL refuses.
        const identity = identityOf(cert);
        this.#refuse(socket, verificationReason(socket.authorizationError as unknown as string | null, identity, state), identity);
        return;
      }
      const identity = options.identities.get(cert);
      const refused = clientRefusal(identity, state);
      if (refused !== undefined) {
        this.#refuse(socket, refused, identity);
        return;
      }
      this.#handshakes.accepted(identity.spiffeId === undefined ? 'no_spiffe_id' : 'ok');
      const sni = typeof socket.servername === 'string' ? socket.servername.toLowerCase() : undefined;
      const served = sni === undefined ? state.defaultCert : state.select(sni);
      const alpn = typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : undefined;
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
      this.#serveHttp(socket, { identity, by: served.uri, sni, alpn, mtls: true, tlsSocket: socket });
    });
    this.server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      const reason = handshakeFailureReason(err, socket);
      this.#handshakes.rejected(reason);
      // A certificate OpenSSL refused has been closed by Node before this event: its address and
      // certificate are gone with the handle (no public API reaches the socket earlier), so the
      // code is OpenSSL's verification result rather than the ECONNRESET of that close.
      this.#handshakeLog.write('info', 'handshake_rejected', { listener: listener.name, reason, code: verificationCode(socket) ?? err.code, remote: socket.remoteAddress ?? null, sni: socket.servername || null });
      // Node has destroyed it already, except after its handshake timeout, which closes nothing.
      socket.destroy();
    });
  }

  /** A handshake the listener does not let in: counted, logged with what the certificate says, closed before any byte is read. */
  #refuse(socket: TLSSocket, reason: CertReason, identity: PeerIdentity | undefined): void {
    this.#handshakes.rejected(reason);
    // OpenSSL's ordinary verdicts (an unknown CA, an expired certificate) are routine; what the gateway finds is not.
    const level = socket.authorized || reason === 'trust_domain_mismatch' ? 'warn' : 'info';
    this.#handshakeLog.write(level, 'handshake_rejected', {
      listener: this.options.listener.name,
      reason,
      code: verificationCode(socket) ?? null,
      detail: identity && refusalDetail(reason, identity, this.#tls),
      identity: identity?.spiffeId ?? null,
      subject: identity?.subject ?? null,
      serial: identity?.serialNumber ?? null,
      remote: socket.remoteAddress,
    });
    socket.destroy();
  }

  #serveHttp(socket: Socket, context: ConnectionContext): void {
    const connection = serveDownstream(socket, context, this.#httpOptions);
    this.#http.add(connection);
    socket.once('close', () => this.#http.delete(connection));
    // A handshake that began before the drain: its first request is served, and is the last.
    if (this.#draining) connection.drain();
  }

  get tlsState(): ServerTlsState {
    return this.#tls;
  }

  /** A complete new TLS state (rotation): new handshakes use it, established connections keep theirs. */
  replaceTls(state: ServerTlsState): void {
    this.server.setSecureContext({ ...state.defaultOptions });
    this.#tls = state;
    this.#useSniWhereThereIsAChoice();
  }

  /** One certificate: handshakes take the server's context (the default certificate's) without asking. */
  #useSniWhereThereIsAChoice(): void {
    setSniCallback(this.server, this.#tls.served.length > 1 ? this.#selectBySni : undefined);
  }

  replaceRouter(router: TerminateRouter<CompiledRoute>): void {
    this.#router = router;
  }

  /** Bare listener: accept on the listener's address, admit, and hand each connection to the TLS server. */
  listen(): Promise<void> {
    const { listener } = this.options;
    const accepting = net.createServer({ noDelay: true }, this.#admit);
    // Node closes connections over the limit before making a socket of them, and says so.
    accepting.maxConnections = listener.maxConnections;
    accepting.on('drop', (peer?: { remoteAddress?: string }) => this.#refuseAtAccept('max_connections', peer?.remoteAddress));
    this.#accepting = accepting;
    return listenAt(accepting, listener.address, 4096);
  }

  /** A connection this listener accepted itself: max_connections_per_source, then the TLS server. */
  readonly #admit = (socket: Socket): void => {
    const limit = this.options.listener.maxConnectionsPerSource;
    if (limit !== undefined) {
      const source = socket.remoteAddress;
      if (source !== undefined) {
        if (!this.#perSource.admit(source, limit)) {
          this.#refuseAtAccept('max_connections_per_source', source);
          socket.destroy();
          return;
        }
        socket.once('close', () => this.#perSource.release(source));
      }
    }
    this.server.emit('connection', socket);
  };

  /** Over max_connections or max_connections_per_source: counted, and logged within the refusal budget. */
  #refuseAtAccept(reason: AcceptRefusal, remote: string | undefined): void {
    this.#refused[reason].inc();
    const { listener } = this.options;
    const limit = reason === 'max_connections' ? listener.maxConnections : listener.maxConnectionsPerSource;
    this.#refusalLog.write('info', 'connection_refused', { listener: listener.name, reason, [reason]: limit, remote: remote ?? null });
  }

  /** Front door handoff of a socket whose peeked bytes were unshifted back. */
  acceptTls(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  /** PERMISSIVE: plaintext HTTP handed over by the front door (served with no identity). */
  acceptPlaintext(socket: Socket): void {
    this.#serveHttp(socket, PLAINTEXT_CONNECTION);
  }

  /** The HTTP connections being served, each with its context (revocation reads their identities). */
  get served(): Iterable<DownstreamSession> {
    return this.#http;
  }

  /** The descriptor of the socket it listens on itself (for the next generation: runtime/handover.ts); undefined behind a front door. */
  listeningFd(): number | undefined {
    return this.#accepting?.listening ? listeningFd(this.#accepting) : undefined;
  }

  address(): { host: string; port: number } | undefined {
    const a = this.#accepting?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  /**
   * Graceful stop: no new connections on its own address (behind a front door, the front door stops
   * accepting); every HTTP session finishes what it has begun and ends (DownstreamSession.drain).
   */
  drain(): void {
    this.#draining = true;
    if (this.#accepting?.listening) this.#accepting.close();
    for (const session of this.#http) session.drain();
  }

  /** Connections accepted on its own address and still open, whatever stage they are at (0 behind a front door, which counts its own). */
  openConnections(): Promise<number> {
    const accepting = this.#accepting;
    if (accepting === undefined) return Promise.resolve(0);
    return new Promise((resolve) => accepting.getConnections((err, count) => resolve(err ? 0 : count)));
  }

  /** HTTP sessions being served. */
  get sessions(): number {
    return this.#http.size;
  }

  /** Stops accepting and closes every connection (in-flight requests are cut). */
  async close(): Promise<void> {
    const accepting = this.#accepting;
    const closed = new Promise<void>((resolve) => (accepting?.listening ? accepting.close(() => resolve()) : resolve()));
    for (const connection of this.#http) connection.destroy();
    for (const socket of this.connections) socket.destroy();
    await closed;
  }
}
