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
   * For a configuration reload: reloaders for the upstream clusters and listeners it built anew,
   * each loaded once (nothing serves from them yet). Rejects, having closed them, if any material fails.
   */
  prepare(built: { upstreams: readonly NewUpstream[]; listeners: readonly NewListener[] }): Promise<PreparedReloaders>;
  /** The swap: the reloaders named in `replaced` (`upstream/<name>`, `listener/<name>`) close, the prepared ones take over (and are watched). */
  commit(replaced: readonly string[], prepared: PreparedReloaders): void;
  close(): void;
}

/** An upstream cluster a reload built, with the index of its upstream in the new config (for field names). */
export interface NewUpstream {
  readonly index: number;
  readonly upstream: Upstream;
  readonly cluster: UpstreamCluster;
}

/** A listener a reload bound, with its index in the new config. */
export interface NewListener {
  readonly index: number;
  readonly listener: Listener;
  readonly terminate: TerminateListener | undefined;
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

  const listenerReloader = ({ index, listener, terminate }: NewListener) => {
    const tls = listener.tls;
    if (!terminate || !tls) return undefined;
    const target = listenerTarget(index, { ...listener, tls }, terminate, {
      tuning: () => parts.tuning(listener),
      closeRevokedConnections: config.lifecycle.closeRevokedConnections,
    });
    return new TlsReloader(target, policy) as unknown as TlsReloader<unknown, unknown>;
  };
  const upstreamReloader = ({ index, upstream, cluster }: NewUpstream) => {
    const tls = upstream.tls;
    return tls ? (new TlsReloader(upstreamTarget(index, { ...upstream, tls }, cluster), policy) as unknown as TlsReloader<unknown, unknown>) : undefined;
  };
  config.listeners.forEach((listener, index) => {
    const reloader = listenerReloader({ index, listener, terminate: parts.listeners.get(listener.name)?.terminate });
    if (reloader) add(reloader);
  });
  config.upstreams.forEach((upstream, index) => {
    const cluster = parts.clusters.get(upstream.name);
    const reloader = cluster && upstreamReloader({ index, upstream, cluster });
    if (reloader) add(reloader);
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
    async prepare(built) {
      const prepared = [...built.listeners.map(listenerReloader), ...built.upstreams.map(upstreamReloader)].filter((r) => r !== undefined);
      throwIfFailed(await Promise.all(prepared.map((r) => r.reload({ initial: true }))), prepared);
      return { reloaders: prepared };
    },
    commit(replaced, prepared) {
      for (const name of replaced) detach(name);
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
