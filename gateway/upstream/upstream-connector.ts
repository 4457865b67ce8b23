// The connector for one upstream endpoint: opens TCP (+ mTLS with our client certificate),
// verifies the upstream's chain and identity before the pool writes a single request byte, and
// resumes TLS sessions from a cache keyed by endpoint, server name and our identity. ALPN offers
// what the upstream's `protocol` allows; which one was agreed decides the session kind
// (open-upstream-session.ts).
import net from 'node:net';
import tls from 'node:tls';
import type { Address, UpstreamProtocol } from '../config/types.js';
import { TlsSessionCache } from './tls-session-cache.js';
import { UpstreamProtocolError } from './upstream-exchange.js';
import type { Connect } from './upstream-pool.js';
import type { UpstreamTlsState } from './upstream-tls-state.js';

export class UpstreamConnectTimeoutError extends Error {
  readonly code = 'GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT';
}

/** The endpoint closed or reset the connection before it was up (before TLS completed): nothing was sent. */
export class UpstreamConnectResetError extends Error {
  readonly code = 'GATEHOUSE_UPSTREAM_CONNECT_RESET';
}

export interface ConnectorOptions {
  endpoint: Address;
  /** Read at every connect, so a reload takes effect for new connections only. */
  tlsState: () => UpstreamTlsState | undefined;
  sessions: TlsSessionCache;
  connectTimeoutMs: number;
  /** What ALPN offers. Absent: http1. */
  protocol?: UpstreamProtocol;
  /** Counts new connections and resumed sessions (for metrics and tests). */
  onConnected?: (resumed: boolean) => void;
  /** A connection could not be made (for outlier detection). */
  onConnectFailed?: () => void;
  /** A host-name endpoint's address for this connection (endpoint-addresses.ts); undefined: the name. */
  address?: () => string | undefined;
}

/** ALPN offers by protocol, h2 first where both are offered. */
const ALPN: Readonly<Record<UpstreamProtocol, string[]>> = { http1: ['http/1.1'], h2: ['h2'], auto: ['h2', 'http/1.1'] };

export function createUpstreamConnector(opts: ConnectorOptions): Connect {
  const { endpoint, sessions, connectTimeoutMs } = opts;
  const protocol = opts.protocol ?? 'http1';
  const alpn = ALPN[protocol];
  return (callback): void => {
    const state = opts.tlsState();
    const host = opts.address?.() ?? endpoint.host;
    let socket: net.Socket;
    let sessionKey: string | undefined;
    if (state) {
      sessionKey = TlsSessionCache.key(endpoint.host, endpoint.port, `${state.servername ?? ''}|${state.expected}`, state.clientCertFingerprint);
      const tlsSocket = tls.connect({
        host,
        port: endpoint.port,
        servername: state.servername,
        secureContext: state.secureContext,
        rejectUnauthorized: true,
        checkServerIdentity: state.checkIdentity,
        session: sessions.get(sessionKey),
        ALPNProtocols: alpn,
      });
      const key = sessionKey;
      tlsSocket.on('session', (session: Buffer) => sessions.set(key, session));
      socket = tlsSocket;
    } else {
      socket = net.connect({ host, port: endpoint.port });
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);

    let settled = false;
    const timer = setTimeout(() => {
      if (!settled) socket.destroy(new UpstreamConnectTimeoutError(`connect to ${endpoint.host}:${endpoint.port} timed out after ${connectTimeoutMs}ms`));
    }, connectTimeoutMs);
    timer.unref();

    const onReady = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('error', onError);
      const resumed = socket instanceof tls.TLSSocket && socket.isSessionReused();
      opts.onConnected?.(resumed);
      callback(null, socket);
    };
    const onError = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A session the upstream no longer accepts must not be offered again.
      if (sessionKey) sessions.delete(sessionKey);
      opts.onConnectFailed?.();
      const code = (err as { code?: unknown }).code;
      const failure =
        code === 'ECONNRESET' || code === 'EPIPE'
          ? new UpstreamConnectResetError(`connection to ${endpoint.host}:${endpoint.port} closed before it was up: ${err.message}`)
          : code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'
            ? new UpstreamProtocolError('GATEHOUSE_UPSTREAM_PROTOCOL_MISMATCH', `upstream ${endpoint.host}:${endpoint.port} speaks none of ${alpn.join(', ')} (ALPN refused; protocol: ${protocol})`)
            : err;
      callback(state ? state.connectError(failure) : failure, null);
    };
    socket.once(state ? 'secureConnect' : 'connect', onReady);
    socket.once('error', onError);
  };
}
