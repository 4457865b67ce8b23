// Multi-core `gatehouse start`: the primary forks one worker per core (node:cluster; the same CLI
// runs again and start.ts sends it here), each running the whole gateway on the shared listeners.
// The primary owns what must be one: the session ticket keys (sent to every worker, rotated), the
// admin server (/metrics aggregated from the workers, /readyz ready when all are, /workers), the
// restart of a worker that dies (bounded backoff), and a graceful stop on SIGTERM/SIGINT.
//
// Connections are spread by the kernel where Node has SO_REUSEPORT (each worker's own socket, no hop
// through the primary: ../net/shared-port.ts); elsewhere by cluster's round-robin, in which the
// primary accepts every connection and hands it to a worker.
//
// Connection limits (max_connections, max_connections_per_source) are counted by each worker for
// the connections it holds: a listener of N workers holds up to N x max_connections in all, and
// one client address, whose connections the kernel spreads over the workers by their ports, up to
// N x max_connections_per_source. A worker at its limit refuses even when another has room.
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { TLSSocket } from 'node:tls';
import { AggregatorRegistry } from 'prom-client';
import type { Drain, GatewayConfig, Listener } from '../config/types.js';
import { startAdminServer, type AdminServer, type AdminSources } from '../admin/admin-server.js';
import { log } from '../log.js';
import { registry } from '../metrics/registry.js';
import { reloadProblems, startGateway, type GatewayOptions, type RunningGateway } from './gateway.js';
import type { HealthResult, HealthShare } from '../upstream/health-share.js';
import { mergeUpstreamsPages, upstreamsPage, type UpstreamsPage } from './upstreams-page.js';
import { certsPage, type CertsPage } from '../lifecycle/lifecycle-metrics.js';
import { drainGateway, type DrainRequest } from './graceful-drain.js';
import { StopRequests } from './stop-requests.js';
import { draining } from '../metrics/drain-metrics.js';
import type { TicketKeySource } from './ticket-keys.js';
import { checkPortsFree } from '../net/shared-port.js';
import { HeldSockets, HOLDING_AVAILABLE } from '../net/held-sockets.js';
import { addressKey, INHERITED_ENV, servedBefore, settleInheritance } from '../net/inherited-sockets.js';
import type { ConfigText } from '../config/load-config.js';

/** Messages from a worker to the primary. */
type WorkerMessage =
  | { type: 'gatehouse:want-keys' }
  | { type: 'gatehouse:ready' }
  | { type: 'gatehouse:failed'; message: string }
  | { type: 'gatehouse:stats'; id: number; handshakes: number; resumed: number; upstreams: UpstreamsPage; certs: CertsPage }
  | { type: 'gatehouse:reloaded'; id: number; problems: string[] }
  | { type: 'gatehouse:health'; result: HealthResult };

/** Messages from the primary to a worker. Keys travel over the local IPC pipe only, as hex. */
type PrimaryMessage =
  | { type: 'gatehouse:ticket-keys'; keys: string }
  | { type: 'gatehouse:start'; keys: string; config: ConfigText }
  | { type: 'gatehouse:stats'; id: number }
  | { type: 'gatehouse:reload'; id: number; config: ConfigText }
  | { type: 'gatehouse:health'; result: HealthResult }
  | { type: 'gatehouse:drain'; delayMs: number; timeoutMs: number }
  | { type: 'gatehouse:stop' };

type WorkerStats = Extract<WorkerMessage, { type: 'gatehouse:stats' }>;

/** What one worker made of a configuration reload: no problems, or why it kept its configuration. */
export interface WorkerReload {
  readonly slot: number;
  readonly pid: number | undefined;
  readonly problems: readonly string[];
}

export interface WorkerStatus {
  readonly slot: number;
  readonly pid: number | undefined;
  readonly ready: boolean;
  readonly restarts: number;
  /** Handshakes this worker accepted since it started, and how many of them resumed a session. */
  readonly handshakes: number | null;
  readonly resumed: number | null;
}

export interface ClusterPrimary {
  readonly workers: number;
  readonly admin: AdminServer;
  status(): Promise<WorkerStatus[]>;
  /**
   * Sends a configuration (validated by the caller) to every worker, which parses it and applies it
   * to its gateway; later forks start on it. Resolves with each worker's outcome.
   */
  reload(config: ConfigText, listeners: readonly Listener[]): Promise<WorkerReload[]>;
  /** The listening sockets held for the workers, by address (undefined where Node cannot hold them: held-sockets.ts). */
  heldSockets(): Map<string, number[]> | undefined;
  /**
   * Graceful stop: /readyz 503 at once, every worker drains (graceful-drain.ts) and exits; resolves
   * once all have (one still there a little after drain.timeout is killed) and the admin server is closed.
   */
  drain(request: DrainRequest): Promise<void>;
  /** Ends every worker now (SIGKILL): the second stop signal. */
  kill(): void;
  /** Stops every worker gracefully (SIGKILL after stopTimeoutMs), then the admin server. */
  close(): Promise<void>;
}

export interface ClusterOptions {
  workers: number;
  /** The configuration's text: workers parse it themselves (a worker restarted later gets the active one). */
  config: ConfigText;
  keys: TicketKeySource;
  /** Restart delay after a worker dies: doubles while workers die young, up to maxMs. Defaults 100 ms .. 10 s. */
  restart?: { minMs: number; maxMs: number };
  /** A worker that does not start within this is a failed start. Default 30 s. */
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** Pages and actions the primary's admin server adds (/config_dump, POST /reload). */
  adminSources?: Pick<AdminSources, 'json' | 'actions'>;
}

/** `workers: 0` (the default) means one per core. */
export function resolveWorkerCount(configured: number): number {
  return configured === 0 ? os.availableParallelism() : configured;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  ready: boolean;
  startedAt: number;
  restarts: number;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
}

const LIVED_LONG_MS = 10_000;
/** A draining worker closes what is left at drain.timeout itself; past this margin it is killed. */
const DRAIN_KILL_MARGIN_MS = 5_000;

/** Forks the workers and resolves once every one has started its gateway; rejects (after stopping them) if one cannot. */
export async function startClusterPrimary(config: GatewayConfig, options: ClusterOptions): Promise<ClusterPrimary> {
  const { keys } = options;
  const restart = options.restart ?? { minMs: 100, maxMs: 10_000 };
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const slots: Slot[] = Array.from({ length: options.workers }, (_, index) => ({ index, worker: undefined, ready: false, startedAt: 0, restarts: 0, backoffMs: restart.minMs, timer: undefined }));
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  let admin: AdminServer | undefined;
  let starting: { resolve(): void; reject(err: Error): void } | undefined;
  const statsWaiters = new Map<number, (m: WorkerStats | null) => void>();
  let statsId = 0;
  let activeConfig = options.config;
  const reloadWaiters = new Map<number, (problems: string[]) => void>();
  let reloadId = 0;
  const held = HOLDING_AVAILABLE ? new HeldSockets(options.workers) : undefined;

  const send = (worker: Worker, message: PrimaryMessage) => {
    if (worker.isConnected()) worker.send(message);
  };
  const keyMessage = (key: Buffer): PrimaryMessage => ({ type: 'gatehouse:ticket-keys', keys: key.toString('hex') });
  const allReady = () => slots.every((s) => s.ready);
  const updateReady = () => admin?.setReady(!stopping && allReady());

  const fork = (slot: Slot) => {
    slot.timer = undefined;
    slot.ready = false;
    slot.startedAt = Date.now();
    const env: NodeJS.ProcessEnv = { GATEHOUSE_WORKER_SLOT: String(slot.index), GATEHOUSE_WORKER_SLOTS: String(slots.length) };
    if (held) {
      // The slot's sockets, inherited (fork stdio) and listened on by the worker; the same ones after a restart.
      const given = held.forSlot(slot.index);
      cluster.setupPrimary({ stdio: [0, 1, 2, 'ipc', ...given.fds] });
      env[INHERITED_ENV] = JSON.stringify({ sockets: given.sockets });
    }
    const worker = cluster.fork(env);
    slot.worker = worker;
    worker.on('message', (message: WorkerMessage) => {
      switch (message.type) {
        case 'gatehouse:want-keys':
          send(worker, { type: 'gatehouse:start', keys: keys.current.toString('hex'), config: activeConfig });
          break;
        case 'gatehouse:reloaded':
          reloadWaiters.get(message.id)?.(message.problems);
          break;
        case 'gatehouse:ready':
          slot.ready = true;
          log.info('worker_ready', { slot: slot.index, pid: worker.process.pid });
          updateReady();
          if (starting && allReady()) starting.resolve();
          break;
        case 'gatehouse:failed':
          if (starting) starting.reject(new Error(message.message));
          else log.error('worker_start_failed', { slot: slot.index, pid: worker.process.pid, problem: message.message });
          break;
        case 'gatehouse:stats':
          statsWaiters.get(message.id)?.(message);
          break;
        case 'gatehouse:health':
          // One worker's check result, for every worker's thresholds (health-share.ts).
          for (const s of slots) if (s.worker && s.ready) send(s.worker, message);
          break;
      }
    });
    // A worker that has just died still looks connected until its pipe's EOF is read: a send then
    // fails with EPIPE as an 'error' event, which would end the primary if nobody listened. The
    // 'exit' handler deals with the worker.
    worker.on('error', (err: Error) => log.warn('worker_ipc_error', { slot: slot.index, pid: worker.process.pid, error: err.message }));
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      slot.ready = false;
      updateReady();
      if (stopping) return;
      if (starting) {
        starting.reject(new Error(`worker ${slot.index} exited during start-up (${signal ?? `code ${code}`})`));
        return;
      }
      // Back off while workers die young (a crash loop), start again from the minimum after a healthy run.
      if (Date.now() - slot.startedAt >= LIVED_LONG_MS) slot.backoffMs = restart.minMs;
      const delay = slot.backoffMs;
      slot.backoffMs = Math.min(restart.maxMs, delay * 2);
      slot.restarts++;
      log.warn('worker_exited', { slot: slot.index, pid: worker.process.pid, code, signal, restartInMs: delay, restarts: slot.restarts });
      slot.timer = setTimeout(() => fork(slot), delay);
    });
  };

  const removeKeyListener = keys.onChange((key) => {
    for (const slot of slots) if (slot.worker) send(slot.worker, keyMessage(key));
  });

  /** Sends `message` to every worker and resolves once all have exited (SIGKILL after `timeoutMs`). */
  const stopWorkers = async (message: PrimaryMessage = { type: 'gatehouse:stop' }, timeoutMs = stopTimeoutMs) => {
    stopping = true;
    updateReady();
    removeKeyListener();
    const exits = slots.map((slot) => {
      clearTimeout(slot.timer);
      const worker = slot.worker;
      if (!worker || worker.isDead()) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => {
          log.warn('worker_stop_timeout', { slot: slot.index, pid: worker.process.pid, afterMs: timeoutMs });
          worker.process.kill('SIGKILL');
        }, timeoutMs);
        worker.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        send(worker, message);
      });
    });
    await Promise.all(exits);
  };

  /** Each running worker's answer to a stats request (null: not running, or no answer within 2 s). */
  const workerStats = (): Promise<Array<WorkerStats | null>> =>
    Promise.all(
      slots.map(async (slot) => {
        const worker = slot.worker;
        if (!worker || !slot.ready || !worker.isConnected()) return null;
        const id = statsId++;
        const stats = await new Promise<WorkerStats | null>((resolve) => {
          const timer = setTimeout(() => resolve(null), 2000);
          statsWaiters.set(id, (m) => {
            clearTimeout(timer);
            resolve(m);
          });
          send(worker, { type: 'gatehouse:stats', id });
        });
        statsWaiters.delete(id);
        return stats;
      }),
    );
  const status = async (): Promise<WorkerStatus[]> => {
    const stats = await workerStats();
    return slots.map((slot, i) => ({ slot: slot.index, pid: slot.worker?.process.pid, ready: slot.ready, restarts: slot.restarts, handshakes: stats[i]?.handshakes ?? null, resumed: stats[i]?.resumed ?? null }));
  };
  const upstreams = async () => mergeUpstreamsPages((await workerStats()).flatMap((s) => (s === null ? [] : [s.upstreams])));
  // Every worker loads the same files: the first that answers speaks for all.
  const certs = async () => (await workerStats()).find((s) => s !== null)?.certs ?? { certificates: [], crls: [] };

  const reload = async (config: ConfigText, listeners: readonly Listener[]): Promise<WorkerReload[]> => {
    activeConfig = config;
    const outcomes = await Promise.all(
      slots.map(async (slot) => {
        const worker = slot.worker;
        const pid = worker?.process.pid;
        if (!worker || !slot.ready || !worker.isConnected()) return { slot: slot.index, pid, problems: ['worker not running (a restart starts it on the new configuration)'] };
        const id = reloadId++;
        const problems = await new Promise<string[]>((resolve) => {
          const timer = setTimeout(() => resolve(['no answer within 30 s']), 30_000);
          reloadWaiters.set(id, (answer) => {
            clearTimeout(timer);
            resolve(answer);
          });
          send(worker, { type: 'gatehouse:reload', id, config });
        });
        reloadWaiters.delete(id);
        return { slot: slot.index, pid, problems };
      }),
    );
    // Every worker closed the listeners the reload removed: the sockets held for them go too.
    if (outcomes.every((o) => o.problems.length === 0)) held?.keepOnly(new Set(listeners.map((l) => addressKey(l.address))));
    return outcomes;
  };

  try {
    // After a handover the generation before still serves its addresses, with the sockets it passed on.
    const before = servedBefore();
    await checkPortsFree(config.listeners.filter((l) => !before.has(addressKey(l.address))));
    for (const listener of held ? config.listeners : []) {
      const closed = await held!.hold(listener.address);
      if (closed > 0) log.warn('handover_sockets_closed', { listener: listener.name, closed, workers: options.workers, note: 'fewer workers than the generation before: connections queued on the sockets closed are reset' });
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers did not start within ${options.startTimeoutMs ?? 30_000} ms`)), options.startTimeoutMs ?? 30_000);
      starting = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      for (const slot of slots) fork(slot);
    });
    starting = undefined;
    admin = await startAdminServer(config.admin, () => {}, {
      metrics: async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() }),
      json: { ...options.adminSources?.json, '/workers': status, '/upstreams': upstreams, '/certs': certs },
      actions: options.adminSources?.actions,
    });
    updateReady();
  } catch (err) {
    starting = undefined;
    await stopWorkers();
    held?.close();
    throw err;
  }

  const running = admin;
  return {
    workers: options.workers,
    admin: running,
    status,
    reload,
    heldSockets: () => held?.all(),
    drain: async (request) => {
      const startedAt = Date.now();
      running.setDraining();
      draining.set(1);
      // The workers' own descriptors keep the sockets open while they accept; when they stop, the sockets close.
      held?.close();
      log.info('drain_started', { why: request.why, pid: process.pid, workers: options.workers, delay_ms: request.delayMs, timeout_ms: request.timeoutMs });
      await stopWorkers({ type: 'gatehouse:drain', delayMs: request.delayMs, timeoutMs: request.timeoutMs }, request.timeoutMs + DRAIN_KILL_MARGIN_MS);
      log.info('drain_finished', { why: request.why, pid: process.pid, duration_ms: Date.now() - startedAt });
      await running.close();
    },
    kill: () => {
      stopping = true;
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    },
    close: async () => {
      held?.close();
      await stopWorkers();
      await running.close();
    },
  };
}

/** Makes a configuration of the text the primary sent (parseConfig), or says what is wrong with it. */
export type ParseConfigText = (config: ConfigText) => { ok: true; config: GatewayConfig } | { ok: false; problems: string[] };

/** A worker process: waits for the primary's ticket keys and configuration, runs the gateway, answers the primary. Never returns normally. */
export async function runClusterWorker(parse: ParseConfigText, options: Omit<GatewayOptions, 'ticketKeys' | 'admin'> = {}): Promise<void> {
  const sendToPrimary = (message: WorkerMessage) => process.connected && process.send!(message);
  let gateway: RunningGateway | undefined;
  let closing = false;
  const stop = async (why: string) => {
    if (closing) return;
    closing = true;
    log.info('worker_stopping', { pid: process.pid, why });
    await gateway?.close();
    process.exit(0);
  };
  // Before the gateway runs there is nothing to drain: a stop request then stops at once.
  const drain = async (request: DrainRequest) => {
    if (closing) return;
    if (gateway === undefined) return stop(request.why);
    await drainGateway(gateway, request);
    process.exit(0);
  };
  /** The drain settings the primary sent (its active configuration's); a SIGTERM uses this worker's own. */
  let asked: Drain | undefined;
  const stops = new StopRequests({
    drain: (why) => void drain({ ...(asked ?? gateway?.config.drain ?? { delayMs: 0, timeoutMs: 0 }), why }),
    now: (why) => {
      log.warn('stopped_at_once', { why, pid: process.pid });
      process.exit(1);
    },
  });
  process.on('message', (message: PrimaryMessage | { type?: unknown }) => {
    if (message.type === 'gatehouse:stop') void stop('primary');
    // A SIGTERM to the whole group may have begun the drain already: then this changes nothing.
    else if (message.type === 'gatehouse:drain') {
      const { delayMs, timeoutMs } = message as Extract<PrimaryMessage, { type: 'gatehouse:drain' }>;
      asked ??= { delayMs, timeoutMs };
      stops.drain('primary');
    }
    // Ahead of prom-client's own listener (registered below, after this one): gauges read from live objects.
    else if (message.type === 'prom-client:getMetricsReq') gateway?.refreshGauges();
  });
  // Ctrl-C reaches the whole process group: the primary coordinates the stop. A lost primary stops us.
  process.on('SIGINT', () => {});
  // A SIGHUP to the group (a closed terminal) must not end workers: reloads come from the primary;
  // nor a SIGUSR2 (a handover is the primary's).
  process.on('SIGHUP', () => {});
  process.on('SIGUSR2', () => {});
  // A SIGTERM to the whole group (systemd's default) drains here too, as the primary would ask.
  process.on('SIGTERM', () => stops.signal('SIGTERM'));
  process.on('disconnect', () => void stop('primary_gone'));

  const firstKeys = new Promise<{ keys: Buffer; config: ConfigText }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ticket keys and configuration from the primary within 10 s')), 10_000);
    const onMessage = (message: PrimaryMessage) => {
      if (message.type !== 'gatehouse:start') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve({ keys: Buffer.from(message.keys, 'hex'), config: message.config });
    };
    process.on('message', onMessage);
  });
  sendToPrimary({ type: 'gatehouse:want-keys' });
  // The primary collects this worker's metrics over IPC (prom-client's cluster protocol).
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);

  let running: RunningGateway;
  try {
    const first = await firstKeys;
    const parsed = parse(first.config);
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    running = gateway = await startGateway(parsed.config, { ...options, ticketKeys: first.keys, admin: false, healthShare: workerHealthShare });
  } catch (err) {
    // Exit once the message is on its way, so the primary reports this reason rather than the exit.
    if (!process.connected) process.exit(1);
    process.send!({ type: 'gatehouse:failed', message: (err as Error).message } satisfies WorkerMessage, undefined, undefined, () => process.exit(1));
    return;
  }

  let handshakes = 0;
  let resumed = 0;
  const counted = new WeakSet<object>();
  // Every terminate listener, those a reload adds too (called again after each reload).
  const countHandshakes = () => {
    for (const { terminate } of running.listeners.values()) {
      if (!terminate || counted.has(terminate.server)) continue;
      counted.add(terminate.server);
      // After the listener's own handler, which destroys what it refuses.
      terminate.server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.destroyed) return;
        handshakes++;
        if (socket.isSessionReused()) resumed++;
      });
    }
  };
  countHandshakes();

  process.on('message', (message: PrimaryMessage) => {
    if (message.type === 'gatehouse:ticket-keys') running.setTicketKeys(Buffer.from(message.keys, 'hex'));
    else if (message.type === 'gatehouse:stats') sendToPrimary({ type: 'gatehouse:stats', id: message.id, handshakes, resumed, upstreams: upstreamsPage(running.clusters), certs: certsPage() });
    else if (message.type === 'gatehouse:reload')
      void workerReload(running, parse, message.config).then((problems) => {
        countHandshakes();
        sendToPrimary({ type: 'gatehouse:reloaded', id: message.id, problems });
      });
  });
  settleInheritance(); // a socket the primary held for a listener this worker does not have
  sendToPrimary({ type: 'gatehouse:ready' });
}

/** Health checks shared through the primary: this worker's slot of the rounds, every worker's results. */
function workerHealthShare(record: (result: HealthResult) => void): HealthShare {
  process.on('message', (message: PrimaryMessage) => {
    if (message.type === 'gatehouse:health') record(message.result);
  });
  return {
    slot: Number(process.env.GATEHOUSE_WORKER_SLOT ?? 0),
    slots: Math.max(1, Number(process.env.GATEHOUSE_WORKER_SLOTS ?? 1)),
    // A worker cut off from its primary is stopping: its results would reach nobody.
    publish: (result) => process.connected && process.send!({ type: 'gatehouse:health', result } satisfies WorkerMessage),
  };
}

/** A worker's part of a reload: the problems that kept its configuration, none if it applied. */
async function workerReload(gateway: RunningGateway, parse: ParseConfigText, text: ConfigText): Promise<string[]> {
  const parsed = parse(text);
  return parsed.ok ? reloadProblems(gateway, parsed.config) : parsed.problems;
}
