// The certificate lifecycle of a running gateway: one reloader per listener and per upstream with
// TLS, file watchers that trigger them (lifecycle.watch), a periodic tick for stale CRLs and expiry
// warnings, and the scrape-time expiry/CRL gauges. Attached after the listeners start; its first
// load checks the material the gateway started with strictly (a truncated bundle, an expired
// certificate or a CRL the bundle did not sign fails the start), and takes over a stale CRL.
import type { GatewayConfig, Listener, Upstream } from '../config/types.js';
import type { TerminateListener } from '../terminate/terminate-listener.js';
import type { TlsTuning } from '../terminate/server-tls-state.js';
import type { UpstreamCluster } from '../upstream/upstream-cluster.js';
import { FileWatcher } from './file-watcher.js';
import { addMaterialSource } from './lifecycle-metrics.js';
import { TlsReloader, type ReloadOutcome } from './tls-reloader.js';
import { listenerTarget, upstreamTarget } from './tls-targets.js';

export interface LifecycleOptions {
  /** Quiet time after a file event before reading (a cert and key written one after the other). Default 150 ms. */
  debounceMs?: number;
  /** Safety-net stat poll of every watched file. Default 10 s. */
  pollMs?: number;
  /** Stale-CRL transitions and expiry warnings. Default 15 s. */
  tickMs?: number;
  /** The gateway takes over a CRL this long before its nextUpdate (must exceed tickMs). Default 60 s. */
  crlTakeoverMarginMs?: number;
  /** Repeat an expiry or stale-CRL warning this often while it lasts. Default 5 min. */
  warnIntervalMs?: number;
}

export interface LifecycleParts {
  readonly config: GatewayConfig;
  readonly listeners: ReadonlyMap<string, { readonly terminate: TerminateListener | undefined }>;
  readonly clusters: ReadonlyMap<string, UpstreamCluster>;
  /** Session ticket keys and id context of a listener, as the gateway currently uses them. */
  readonly tuning: (listener: Listener) => TlsTuning;
}

export interface GatewayLifecycle {
  /** By target name: `listener/<name>`, `upstream/<name>`. */
  readonly reloaders: ReadonlyMap<string, TlsReloader<unknown, unknown>>;
  /** Re-reads every target now (what a file change does), e.g. on SIGHUP. */
  reloadAll(): Promise<ReloadOutcome[]>;
  /** Runs the periodic checks now. */
  tick(): void;
  /**
   * For a configuration reload: reloaders for upstream clusters built anew, each loaded once (the
   * clusters are not serving yet). Rejects, having closed them, if any material fails.
   */
  prepareUpstreams(upstreams: readonly NewUpstream[]): Promise<PreparedReloaders>;
  /** The swap: the reloaders of `replaced` upstream names close, the prepared ones take over (and are watched). */
  commitUpstreams(replaced: readonly string[], prepared: PreparedReloaders): void;
  close(): void;
}

/** An upstream cluster a reload built, with the index of its upstream in the new config (for field names). */
export interface NewUpstream {
  readonly index: number;
  readonly upstream: Upstream;
  readonly cluster: UpstreamCluster;
}

/** Loaded reloaders not yet attached (see GatewayLifecycle.prepareUpstreams). */
export interface PreparedReloaders {
  readonly reloaders: readonly TlsReloader<unknown, unknown>[];
}

export async function attachLifecycle(parts: LifecycleParts, options: LifecycleOptions = {}): Promise<GatewayLifecycle> {
  const { config } = parts;
  const tickMs = options.tickMs ?? 15_000;
  const policy = {
    staleCrl: config.lifecycle.staleCrl,
    crlTakeoverMarginMs: Math.max(options.crlTakeoverMarginMs ?? 60_000, 2 * tickMs),
    expiryWarningFraction: config.lifecycle.expiryWarningFraction,
    warnIntervalMs: options.warnIntervalMs ?? 5 * 60_000,
  };
  const reloaders = new Map<string, TlsReloader<unknown, unknown>>();
  const add = <F, S>(reloader: TlsReloader<F, S>) => reloaders.set(reloader.name, reloader as unknown as TlsReloader<unknown, unknown>);

  config.listeners.forEach((listener, i) => {
    const terminate = parts.listeners.get(listener.name)?.terminate;
    const tls = listener.tls;
    if (!terminate || !tls) return;
    const target = listenerTarget(i, { ...listener, tls }, terminate, {
      tuning: () => parts.tuning(listener),
      closeRevokedConnections: config.lifecycle.closeRevokedConnections,
    });
    add(new TlsReloader(target, policy));
  });
  config.upstreams.forEach((upstream, i) => {
    const cluster = parts.clusters.get(upstream.name);
    const tls = upstream.tls;
    if (cluster && tls) add(new TlsReloader(upstreamTarget(i, { ...upstream, tls }, cluster), policy));
  });

  const initial = await Promise.all([...reloaders.values()].map((r) => r.reload({ initial: true })));
  throwIfFailed(initial, reloaders.values());

  const removeSource = addMaterialSource({
    *certificates() {
      for (const r of reloaders.values()) yield* r.expiryEntries();
    },
    *crls() {
      for (const r of reloaders.values()) yield* r.crlEntries();
    },
  });
  const watchers = new Map<string, FileWatcher>();
  const watch = (r: TlsReloader<unknown, unknown>) => {
    if (config.lifecycle.watch) watchers.set(r.name, new FileWatcher(r.target.paths, () => void r.reload(), { debounceMs: options.debounceMs ?? 150, pollMs: options.pollMs ?? 10_000 }));
  };
  for (const r of reloaders.values()) watch(r);
  const detach = (name: string) => {
    watchers.get(name)?.close();
    watchers.delete(name);
    reloaders.get(name)?.close();
    reloaders.delete(name);
  };
  const tick = () => {
    for (const r of reloaders.values()) r.tick();
  };
  const timer = setInterval(tick, tickMs);
  timer.unref();

  return {
    reloaders,
    reloadAll: () => Promise.all([...reloaders.values()].map((r) => r.reload())),
    tick,
    async prepareUpstreams(upstreams) {
      const prepared: TlsReloader<unknown, unknown>[] = [];
      for (const { index, upstream, cluster } of upstreams) {
        const tls = upstream.tls;
        if (tls) prepared.push(new TlsReloader(upstreamTarget(index, { ...upstream, tls }, cluster), policy) as unknown as TlsReloader<unknown, unknown>);
      }
      throwIfFailed(await Promise.all(prepared.map((r) => r.reload({ initial: true }))), prepared);
      return { reloaders: prepared };
    },
    commitUpstreams(replaced, prepared) {
      for (const name of replaced) detach(`upstream/${name}`);
      for (const r of prepared.reloaders) {
        reloaders.set(r.name, r);
        watch(r);
      }
    },
    close() {
      clearInterval(timer);
      for (const name of [...reloaders.keys()]) detach(name);
      removeSource();
    },
  };
}

/** A first load that failed fails the whole step: every reloader of it is closed, the first problem thrown. */
function throwIfFailed(outcomes: readonly ReloadOutcome[], loaded: Iterable<TlsReloader<unknown, unknown>>): void {
  const failed = outcomes.find((o) => o.kind === 'failed');
  if (failed?.kind !== 'failed') return;
  for (const r of loaded) r.close();
  throw new Error([failed.field, failed.file, failed.problem].filter(Boolean).join(': '));
}
