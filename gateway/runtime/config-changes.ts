// What a configuration reload would change, compared section by section with the running
// configuration. Terminate routes (with their authorization policies), passthrough routes of a
// listener with a front door, backends and upstreams change in place; listeners are added, removed,
// or moved to a new address (closed and bound anew). What a listener that stays on its address was
// built from (mode, tls, limits, timeouts, whether it has a front door) and the process-wide
// sections (admin, lifecycle, session_tickets, workers, watch_config) still need a restart: such a
// reload is refused as a whole, naming each of them.
import { isDeepStrictEqual } from 'node:util';
import type { GatewayConfig, Listener, Upstream } from '../config/types.js';

export interface ConfigChanges {
  /** One line per change a reload cannot apply, e.g. `listener public changed (address): needs a restart`. */
  readonly needsRestart: readonly string[];
  /** Upstreams in the new config that are new or whose settings changed: built anew. */
  readonly rebuiltUpstreams: readonly Upstream[];
  /** Names of running upstreams that are gone or changed: their clusters retire. */
  readonly retiredUpstreams: readonly string[];
  /** Listeners to bind: new names, and those whose address changed. */
  readonly addedListeners: readonly Listener[];
  /** Names of running listeners to close: gone, or moving to another address. */
  readonly removedListeners: readonly string[];
}

const PROCESS_WIDE = ['admin', 'lifecycle', 'sessionTickets', 'workers', 'watchConfig'] as const;
const CONFIG_KEY: Record<(typeof PROCESS_WIDE)[number], string> = {
  admin: 'admin',
  lifecycle: 'lifecycle',
  sessionTickets: 'session_tickets',
  workers: 'workers',
  watchConfig: 'watch_config',
};

export function compareConfigs(running: GatewayConfig, next: GatewayConfig): ConfigChanges {
  const needsRestart: string[] = [];
  for (const key of PROCESS_WIDE) {
    if (!isDeepStrictEqual(running[key], next[key])) needsRestart.push(`${CONFIG_KEY[key]} changed: needs a restart`);
  }
  // A listener on a new address is a new listening socket: the old one closes, the new one binds.
  // One that stays on its address but changes its TLS server, mode, limits or passthrough routes
  // cannot be rebuilt without closing the socket its connections came in on.
  const runningListeners = new Map(running.listeners.map((l) => [l.name, l]));
  const moved = (l: Listener) => {
    const before = runningListeners.get(l.name);
    return before === undefined || !isDeepStrictEqual(before.address, l.address);
  };
  const addedListeners = next.listeners.filter(moved);
  const stays = new Set(next.listeners.filter((l) => !moved(l)).map((l) => l.name));
  const removedListeners = running.listeners.map((l) => l.name).filter((name) => !stays.has(name));
  for (const listener of next.listeners) {
    if (!stays.has(listener.name)) continue;
    const changed = changedListenerFields(runningListeners.get(listener.name)!, listener);
    if (changed.length > 0) needsRestart.push(`listener ${listener.name} changed (${changed.join(', ')}) on the same address: needs a restart (or a new address)`);
  }

  const runningUpstreams = new Map(running.upstreams.map((u) => [u.name, u]));
  const rebuiltUpstreams = next.upstreams.filter((u) => !isDeepStrictEqual(runningUpstreams.get(u.name), u));
  const kept = new Set(next.upstreams.filter((u) => !rebuiltUpstreams.includes(u)).map((u) => u.name));
  const retiredUpstreams = running.upstreams.map((u) => u.name).filter((name) => !kept.has(name));
  return { needsRestart, rebuiltUpstreams, retiredUpstreams, addedListeners, removedListeners };
}

/** The listener-level fields that differ (terminate routes may change; passthrough routes live in the front door). */
function changedListenerFields(a: Listener, b: Listener): string[] {
  const changed: string[] = [];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof Listener)[]);
  for (const key of keys) {
    if (key === 'routes') continue;
    if (!isDeepStrictEqual(a[key], b[key])) changed.push(key);
  }
  // A front door takes new passthrough routes (FrontDoor.update); a listener gaining or losing its front door cannot.
  if (needsFrontDoor(a) !== needsFrontDoor(b)) changed.push('passthrough routes (whether it needs a front door)');
  return changed;
}

/**
 * The front door only when a listener needs to look at the hello first: a terminate-only STRICT
 * listener is a bare TLS server, with no JavaScript before the handshake.
 */
export function needsFrontDoor(listener: Listener): boolean {
  return listener.routes.some((r) => r.kind === 'passthrough') || listener.mode === 'PERMISSIVE';
}
