// Assembles a running gateway from a validated config: upstream clusters, terminate listeners
// (bare, or behind the front door when a listener mixes in passthrough or is PERMISSIVE), and the
// admin server. Start-up is all or nothing: on any failure everything started is closed again.
import { createHash, randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { GatewayConfig, Listener, TerminateRoute, Upstream } from '../config/types.js';
import { startAdminServer, type AdminServer, type AdminSources } from '../admin/admin-server.js';
import { IdentityCache } from '../identity/peer-identity.js';
import { buildPeerTrustStore } from '../identity/trust-domain-store.js';
import { startFrontDoor, type FrontDoor } from '../listener/front-door.js';
import { attachLifecycle, type GatewayLifecycle, type LifecycleOptions, type PreparedReloaders } from '../lifecycle/attach-lifecycle.js';
import { log } from '../log.js';
import { identityCacheEntries } from '../metrics/memory-metrics.js';
import '../metrics/process-metrics.js'; // registers its scrape-time gauges
import { certsPage } from '../lifecycle/lifecycle-metrics.js';
import { upstreamConnects, upstreamPool } from '../metrics/proxy-metrics.js';
import { CompiledRoute } from '../terminate/compiled-route.js';
import { buildServerTlsState, type TlsTuning } from '../terminate/server-tls-state.js';
import { TerminateListener } from '../terminate/terminate-listener.js';
import { TerminateRouter } from '../terminate/terminate-router.js';
import { UpstreamCluster } from '../upstream/upstream-cluster.js';
import { upstreamsPage } from './upstreams-page.js';
import { AccessLog } from '../access-log/access-log.js';
import { buildUpstreamTlsState } from '../upstream/upstream-tls-state.js';
import { soloHealthShare, type HealthResult, type HealthShare } from '../upstream/health-share.js';
import { compareConfigs, needsFrontDoor } from './config-changes.js';
import { readListenerTlsFiles, readUpstreamTlsFiles } from './read-tls-files.js';

export interface GatewayOptions {
  /** Session ticket keys shared by all workers (from the primary); default: fresh random keys. */
  ticketKeys?: Buffer;
  /** Start the admin server (workers other than the first may skip it). Default true. */
  admin?: boolean;
  /** Pages and actions the admin server adds (/config_dump, POST /reload from the command that started it). */
  adminSources?: Pick<AdminSources, 'json' | 'actions'>;
  /** Timings of certificate reload, stale-CRL and expiry checks (tests shorten them). */
  lifecycle?: LifecycleOptions;
  /** How active health checks are shared with other workers, given how to record a result here; default: this process alone. */
  healthShare?: (record: (result: HealthResult) => void) => HealthShare;
}

export interface RunningListener {
  readonly config: Listener;
  readonly terminate: TerminateListener | undefined;
  /** Present when the listener has passthrough routes or is PERMISSIVE. */
  readonly frontDoor: FrontDoor | undefined;
  address(): { host: string; port: number };
  /** The descriptor of its listening socket, for the next generation (handover.ts). */
  listeningFd(): number | undefined;
}

export interface RunningGateway {
  /** The active configuration: the one started with, or the last reload applied. */
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
  /**
   * Applies a validated configuration in place: new terminate routes and policies on every
   * listener (requests on open connections see them at once), upstreams whose settings changed
   * rebuilt, unchanged ones kept with their pools. All built first, then swapped; on any problem
   * nothing changes and it rejects (ReloadRefused for changes that need a restart).
   */
  reload(next: GatewayConfig): Promise<void>;
  close(): Promise<void>;
}

/** Applies `next` to `gateway`: the problems that kept it out, none if it applied. */
export async function reloadProblems(gateway: RunningGateway, next: GatewayConfig): Promise<string[]> {
  try {
    await gateway.reload(next);
    return [];
  } catch (err) {
    return err instanceof ReloadRefused ? [...err.problems] : [(err as Error).message];
  }
}

/** A reload that cannot be applied in place; `problems` name each reason. */
export class ReloadRefused extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
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
  let accessLog = config.accessLog && new AccessLog(config.accessLog);
  // A result is recorded by the cluster of that name now (after a reload, the one that replaced it).
  const recordHealth = (result: HealthResult) => clusters.get(result.upstream)?.recordHealth(result);
  const healthShare = (options.healthShare ?? soloHealthShare)(recordHealth);
  const buildCluster = (upstream: Upstream, index: number) => buildUpstreamCluster(upstream, index, healthShare);

  const refreshGauges = () => {
    for (const cluster of clusters.values()) {
      cluster.expireEjections();
      const s = cluster.stats();
      upstreamPool.labels(cluster.name, 'connected').set(s.connected);
      upstreamPool.labels(cluster.name, 'free').set(s.free);
      upstreamPool.labels(cluster.name, 'pending').set(s.pending);
      upstreamPool.labels(cluster.name, 'running').set(s.running);
      upstreamPool.labels(cluster.name, 'h2_sessions').set(s.h2Sessions);
      upstreamPool.labels(cluster.name, 'h2_streams').set(s.h2Streams);
    }
    identityCacheEntries.set(identities.size);
  };

  /** Builds one listener's TLS state and router and binds it (behind a front door where it needs one). */
  const startListener = async (listener: Listener, i: number, routeClusters: ReadonlyMap<string, UpstreamCluster>): Promise<RunningListener> => {
    const terminateRoutes = listener.routes.filter((r): r is TerminateRoute => r.kind === 'terminate');
    let terminate: TerminateListener | undefined;
    if (listener.tls) {
      const files = readListenerTlsFiles(`listeners[${i}].tls`, listener.tls);
      const tls = await named(`listeners[${i}].tls`, async () => buildServerTlsState(listener.tls!, files, await buildPeerTrustStore(files.trust), tlsTuning(config, listener, ticketKeys)));
      terminate = new TerminateListener({ listener, tls, router: compileRouter(listener, routeClusters), identities, accessLog: () => accessLog });
    } else if (terminateRoutes.length > 0) {
      throw new Error(`listeners[${i}].tls: a listener with terminate routes needs tls`);
    }
    if (needsFrontDoor(listener)) {
      const t = terminate;
      const frontDoor = await startFrontDoor({
        listener,
        backends: config.backends,
        terminate: t && ((socket) => t.acceptTls(socket)),
        plaintext: t && listener.mode === 'PERMISSIVE' ? (socket) => t.acceptPlaintext(socket) : undefined,
        accessLog: () => accessLog,
      });
      return { config: listener, terminate, frontDoor, address: () => frontDoor.address(), listeningFd: () => frontDoor.listeningFd() };
    }
    const t = terminate!;
    await t.listen();
    return { config: listener, terminate: t, frontDoor: undefined, address: () => t.address()!, listeningFd: () => t.listeningFd() };
  };
  const closeListener = async (l: RunningListener) => {
    await l.frontDoor?.close();
    await l.terminate?.close();
  };

  const close = async () => {
    admin?.setReady(false);
    lifecycle?.close();
    await Promise.all([...listeners.values()].map((l) => l.frontDoor?.close()));
    await Promise.all([...listeners.values()].map((l) => l.terminate?.close()));
    await Promise.all([...clusters.values()].map((c) => c.close()));
    await accessLog?.close();
    await admin?.close();
  };

  try {
    for (const [i, upstream] of config.upstreams.entries()) clusters.set(upstream.name, await buildCluster(upstream, i));
    for (const cluster of clusters.values()) cluster.start();

    for (const [i, listener] of config.listeners.entries()) listeners.set(listener.name, await startListener(listener, i, clusters));

    lifecycle = await attachLifecycle({ config, listeners, clusters, tuning: (l) => tlsTuning(config, l, ticketKeys) }, options.lifecycle);

    if (options.admin !== false) {
      const sources = options.adminSources;
      admin = await startAdminServer(config.admin, refreshGauges, { ...sources, json: { '/upstreams': async () => upstreamsPage(clusters), '/certs': async () => certsPage(), ...sources?.json } });
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

  let active = config;
  const running = lifecycle!;
  const reload = async (next: GatewayConfig) => {
    const changes = compareConfigs(active, next);
    if (changes.needsRestart.length > 0) throw new ReloadRefused(changes.needsRestart);
    // Build everything first; nothing serves from it until the swap below.
    const built = new Map<string, UpstreamCluster>();
    const bound = new Map<string, RunningListener>();
    let prepared: PreparedReloaders;
    const routers = new Map<string, TerminateRouter<CompiledRoute>>();
    try {
      for (const upstream of changes.rebuiltUpstreams) built.set(upstream.name, await buildCluster(upstream, next.upstreams.indexOf(upstream)));
      const nextClusters = new Map(next.upstreams.map((u) => [u.name, built.get(u.name) ?? clusters.get(u.name)!]));
      // Added listeners are bound now: a connection accepted before the swap is served by the new configuration.
      for (const listener of changes.addedListeners) bound.set(listener.name, await startListener(listener, next.listeners.indexOf(listener), nextClusters));
      prepared = await running.prepare({
        upstreams: [...built.values()].map((cluster) => ({ index: next.upstreams.indexOf(cluster.config), upstream: cluster.config, cluster })),
        listeners: [...bound.values()].map((l) => ({ index: next.listeners.indexOf(l.config), listener: l.config, terminate: l.terminate })),
      });
      for (const listener of next.listeners) if (listener.tls && !bound.has(listener.name)) routers.set(listener.name, compileRouter(listener, nextClusters));
    } catch (err) {
      await Promise.all([...bound.values()].map(closeListener));
      await Promise.all([...built.values()].map((c) => c.close()));
      throw err;
    }
    // The swap: synchronous, so no request sees half of it.
    const removed = changes.removedListeners.map((name) => listeners.get(name)!);
    for (const name of changes.removedListeners) listeners.delete(name);
    for (const listener of next.listeners) {
      const runningListener = bound.get(listener.name) ?? listeners.get(listener.name)!;
      const router = routers.get(listener.name);
      if (router) runningListener.terminate?.replaceRouter(router);
      if (!bound.has(listener.name)) runningListener.frontDoor?.update(listener, next.backends);
      listeners.set(listener.name, { ...runningListener, config: listener });
    }
    const retired = changes.retiredUpstreams.map((name) => clusters.get(name)!);
    for (const name of changes.retiredUpstreams) clusters.delete(name);
    for (const [name, cluster] of built) clusters.set(name, cluster);
    for (const cluster of built.values()) cluster.start();
    running.commit([...changes.retiredUpstreams.map((name) => `upstream/${name}`), ...changes.removedListeners.map((name) => `listener/${name}`)], prepared);
    active = next;
    // A changed access_log (or a new file path) takes effect for the next request.
    const previousLog = accessLog;
    if (!isDeepStrictEqual(previousLog?.config, next.accessLog)) {
      accessLog = next.accessLog && new AccessLog(next.accessLog);
      void previousLog?.close();
    }
    for (const cluster of retired) retireCluster(cluster);
    for (const name of changes.retiredUpstreams) if (!clusters.has(name)) forgetPoolGauges(name);
    await Promise.all(removed.map(closeListener));
  };

  return {
    get config() {
      return active;
    },
    listeners,
    clusters,
    identities,
    admin,
    lifecycle: running,
    refreshGauges,
    setTicketKeys,
    reload,
    close,
  };
}

async function buildUpstreamCluster(upstream: Upstream, index: number, healthShare: HealthShare): Promise<UpstreamCluster> {
  const tls = upstream.tls;
  const field = `upstreams[${index}].tls`;
  const tlsState = tls
    ? await named(field, async () => {
        const files = readUpstreamTlsFiles(field, tls);
        return buildUpstreamTlsState(tls, files, await buildPeerTrustStore(files.trust), upstream.endpoints[0]!.host);
      })
    : undefined;
  if (!tls) log.warn('upstream_plaintext', { upstream: upstream.name, note: 'traffic to this upstream is not encrypted' });
  return new UpstreamCluster(upstream, tlsState, {
    onConnected: (name, resumed) => upstreamConnects.labels(name, String(resumed)).inc(),
    healthShare,
  });
}

/** The listener's terminate routes (policies, header rules, metric handles) bound to their clusters. */
function compileRouter(listener: Listener, clusters: ReadonlyMap<string, UpstreamCluster>): TerminateRouter<CompiledRoute> {
  const routes = listener.routes
    .filter((r): r is TerminateRoute => r.kind === 'terminate')
    .map((route) => new CompiledRoute(listener.name, route, clusters.get(route.upstream)!, listener.maxRequestBodyBytes));
  return new TerminateRouter(routes);
}

/**
 * A cluster no route uses any more: requests in flight finish on its connections, which close as
 * they free up. Replacing its TLS state retires the pools gracefully (what a certificate rotation
 * does); closing then ends the fresh, empty pools, so a late retry fails instead of reconnecting.
 */
function retireCluster(cluster: UpstreamCluster): void {
  cluster.replaceTlsState(cluster.tlsState);
  void cluster.close();
}

/** An upstream no longer configured leaves no gauges behind at their last values. */
function forgetPoolGauges(upstream: string): void {
  for (const state of ['connected', 'free', 'pending', 'running', 'h2_sessions', 'h2_streams']) upstreamPool.remove(upstream, state);
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
