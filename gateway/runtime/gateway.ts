// Assembles a running gateway from a validated config: upstream clusters, terminate listeners
// (bare, or behind the front door when a listener mixes in passthrough or is PERMISSIVE), and the
// admin server. Start-up is all or nothing: on any failure everything started is closed again.
import { createHash, randomBytes } from 'node:crypto';
import type { GatewayConfig, Listener, TerminateRoute } from '../config/types.js';
import { startAdminServer, type AdminServer } from '../admin/admin-server.js';
import { IdentityCache } from '../identity/peer-identity.js';
import { buildPeerTrustStore } from '../identity/trust-domain-store.js';
import { startFrontDoor, type FrontDoor } from '../listener/front-door.js';
import { attachLifecycle, type GatewayLifecycle, type LifecycleOptions } from '../lifecycle/attach-lifecycle.js';
import { log } from '../log.js';
import { identityCacheEntries } from '../metrics/memory-metrics.js';
import { upstreamConnects, upstreamPool } from '../metrics/proxy-metrics.js';
import { CompiledRoute } from '../terminate/compiled-route.js';
import { buildServerTlsState, type TlsTuning } from '../terminate/server-tls-state.js';
import { TerminateListener } from '../terminate/terminate-listener.js';
import { TerminateRouter } from '../terminate/terminate-router.js';
import { UpstreamCluster } from '../upstream/upstream-cluster.js';
import { buildUpstreamTlsState } from '../upstream/upstream-tls-state.js';
import { readListenerTlsFiles, readUpstreamTlsFiles } from './read-tls-files.js';

export interface GatewayOptions {
  /** Session ticket keys shared by all workers (from the primary); default: fresh random keys. */
  ticketKeys?: Buffer;
  /** Start the admin server (workers other than the first may skip it). Default true. */
  admin?: boolean;
  /** Timings of certificate reload, stale-CRL and expiry checks (tests shorten them). */
  lifecycle?: LifecycleOptions;
}

export interface RunningListener {
  readonly config: Listener;
  readonly terminate: TerminateListener | undefined;
  /** Present when the listener has passthrough routes or is PERMISSIVE. */
  readonly frontDoor: FrontDoor | undefined;
  address(): { host: string; port: number };
}

export interface RunningGateway {
  readonly config: GatewayConfig;
  readonly listeners: ReadonlyMap<string, RunningListener>;
  readonly clusters: ReadonlyMap<string, UpstreamCluster>;
  readonly identities: IdentityCache;
  readonly admin: AdminServer | undefined;
  /** Certificate reload, revocation and expiry (gateway/lifecycle/). */
  readonly lifecycle: GatewayLifecycle;
  /** Sets the gauges read from live objects (upstream pools); the admin server calls it before a scrape, a cluster worker when the primary asks. */
  refreshGauges(): void;
  /** New session ticket keys (rotation, key file change) for every listener and later reloads; a no-op with tickets disabled. */
  setTicketKeys(keys: Buffer): void;
  close(): Promise<void>;
}

export function tlsTuning(config: GatewayConfig, listener: Listener, ticketKeys: Buffer | undefined): TlsTuning {
  return {
    ticketKeys: config.sessionTickets.enabled ? ticketKeys : undefined,
    // Same in every worker and replica of this listener, so sessions resume on any of them.
    sessionIdContext: createHash('sha256').update(`gatehouse:${listener.name}`).digest('hex').slice(0, 32),
    sessionTimeoutSec: 300,
  };
}

export async function startGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<RunningGateway> {
  let ticketKeys = options.ticketKeys ?? randomBytes(48);
  const identities = new IdentityCache();
  const clusters = new Map<string, UpstreamCluster>();
  const listeners = new Map<string, RunningListener>();
  let admin: AdminServer | undefined;
  let lifecycle: GatewayLifecycle | undefined;

  const refreshGauges = () => {
    for (const cluster of clusters.values()) {
      cluster.expireEjections();
      const s = cluster.stats();
      upstreamPool.labels(cluster.name, 'connected').set(s.connected);
      upstreamPool.labels(cluster.name, 'free').set(s.free);
      upstreamPool.labels(cluster.name, 'pending').set(s.pending);
      upstreamPool.labels(cluster.name, 'running').set(s.running);
    }
    identityCacheEntries.set(identities.size);
  };

  const close = async () => {
    admin?.setReady(false);
    lifecycle?.close();
    await Promise.all([...listeners.values()].map((l) => l.frontDoor?.close()));
    await Promise.all([...listeners.values()].map((l) => l.terminate?.close()));
    await Promise.all([...clusters.values()].map((c) => c.close()));
    await admin?.close();
  };

  try {
    for (const [i, upstream] of config.upstreams.entries()) {
      const tls = upstream.tls;
      const tlsState = tls
        ? await named(`upstreams[${i}].tls`, async () => {
            const files = readUpstreamTlsFiles(`upstreams[${i}].tls`, tls);
            return buildUpstreamTlsState(tls, files, await buildPeerTrustStore(files.trust), upstream.endpoints[0]!.host);
          })
        : undefined;
      if (!upstream.tls) log.warn('upstream_plaintext', { upstream: upstream.name, note: 'traffic to this upstream is not encrypted' });
      clusters.set(
        upstream.name,
        new UpstreamCluster(upstream, tlsState, {
          onConnected: (name, resumed) => upstreamConnects.labels(name, String(resumed)).inc(),
        }),
      );
    }

    for (const [i, listener] of config.listeners.entries()) {
      const terminateRoutes = listener.routes.filter((r): r is TerminateRoute => r.kind === 'terminate');
      let terminate: TerminateListener | undefined;
      if (listener.tls) {
        const files = readListenerTlsFiles(`listeners[${i}].tls`, listener.tls);
        const tls = await named(`listeners[${i}].tls`, async () => buildServerTlsState(listener.tls!, files, await buildPeerTrustStore(files.trust), tlsTuning(config, listener, ticketKeys)));
        const routes = terminateRoutes.map((route) => new CompiledRoute(listener.name, route, clusters.get(route.upstream)!, listener.maxRequestBodyBytes));
        terminate = new TerminateListener({ listener, tls, router: new TerminateRouter(routes), identities });
      } else if (terminateRoutes.length > 0) {
        throw new Error(`listeners[${i}].tls: a listener with terminate routes needs tls`);
      }
      // The front door only when a listener needs to look at the hello first: a terminate-only
      // STRICT listener is a bare TLS server, with no JavaScript before the handshake.
      const needsFrontDoor = listener.routes.some((r) => r.kind === 'passthrough') || listener.mode === 'PERMISSIVE';
      if (needsFrontDoor) {
        const t = terminate;
        const frontDoor = await startFrontDoor({
          listener,
          backends: config.backends,
          terminate: t && ((socket) => t.acceptTls(socket)),
          plaintext: t && listener.mode === 'PERMISSIVE' ? (socket) => t.acceptPlaintext(socket) : undefined,
        });
        listeners.set(listener.name, { config: listener, terminate, frontDoor, address: () => frontDoor.address() });
      } else {
        const t = terminate!;
        await t.listen();
        listeners.set(listener.name, { config: listener, terminate: t, frontDoor: undefined, address: () => t.address()! });
      }
    }

    lifecycle = await attachLifecycle({ config, listeners, clusters, tuning: (l) => tlsTuning(config, l, ticketKeys) }, options.lifecycle);

    if (options.admin !== false) {
      admin = await startAdminServer(config.admin.address, refreshGauges);
      admin.setReady(true);
    }
  } catch (err) {
    await close();
    throw err;
  }

  const setTicketKeys = (keys: Buffer) => {
    ticketKeys = keys; // reloads build their contexts from the current keys (the tuning closure reads this)
    if (!config.sessionTickets.enabled) return;
    for (const { terminate } of listeners.values()) {
      if (!terminate) continue;
      // Tickets are sealed with the keys of the context the connection started on (the server's), but
      // set them on every SNI context too so no context is left with stale keys.
      terminate.server.setTicketKeys(keys);
      for (const served of terminate.tlsState.served) served.context.context.setTicketKeys(keys);
    }
  };

  return { config, listeners, clusters, identities, admin, lifecycle: lifecycle!, refreshGauges, setTicketKeys, close };
}

/** Runs a build step so that its error names the config field it came from (e.g. a key that does not match its certificate). */
async function named<T>(field: string, build: () => Promise<T>): Promise<T> {
  try {
    return await build();
  } catch (err) {
    if (err instanceof Error && err.message.startsWith(field)) throw err;
    throw new Error(`${field}: ${(err as Error).message}`);
  }
}
