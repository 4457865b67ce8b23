// Zero-downtime restart (SIGUSR2, NGINX's binary-upgrade signal): the running gatehouse starts the
// next generation, the same command line (so the code now on disk and the configuration file as it
// is now), and gives it its listening sockets by inheritance (../net/inherited-sockets.ts). Both
// accept from the same sockets until the new one says it is ready; then the old one drains and
// exits. No socket is closed and none is bound twice, so no connection is refused or reset on the
// way. If the new generation does not get ready (bad configuration, a crash, READY_TIMEOUT_MS), it is
// killed and the old one goes on serving as before. What it hands over besides sockets (the
// session ticket keys: handed-ticket-keys.ts) is one line on the ready pipe, never the environment.
import { spawn, type StdioOptions } from 'node:child_process';
import type net from 'node:net';
import type { GatewayConfig } from '../config/types.js';
import { addressKey, INHERITED_ENV, type Inheritance } from '../net/inherited-sockets.js';
import { listeningFd } from '../net/stream-handles.js';
import type { RunningGateway } from './gateway.js';
import { commandAsGiven } from './openssl-tuning.js';
import type { ClusterPrimary } from './worker-cluster.js';

const READY_TIMEOUT_MS = 60_000;
/** stdin, stdout, stderr, then the pipe the new generation says "ready" on (and reads `handed` from). */
const READY_FD = 3;

export type HandoverOutcome = { readonly ok: true; readonly pid: number } | { readonly ok: false; readonly problem: string };

/**
 * Starts the next generation with `sockets` (address → descriptors open here) and resolves once it
 * serves, or with why it does not. `served`: every address this generation serves, passed or not.
 * `handed`: one line (no line end) for the new generation to read on the ready pipe.
 */
export function startNextGeneration(sockets: ReadonlyMap<string, readonly number[]>, served: readonly string[], handed?: string): Promise<HandoverOutcome> {
  const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'pipe'];
  const given: Record<string, number[]> = {};
  for (const [address, fds] of sockets) given[address] = fds.map((fd) => stdio.push(fd) - 1);
  const inheritance: Inheritance = { sockets: given, ready: READY_FD, served, ...(handed !== undefined && { handed: true }) };
  const command = commandAsGiven(); // so that it applies its own session_tickets.per_handshake
  const child = spawn(process.execPath, [...command.execArgv, ...process.argv.slice(1)], { stdio, env: { ...command.env, [INHERITED_ENV]: JSON.stringify(inheritance) } });
  const ready = child.stdio[READY_FD] as net.Socket; // a socketpair: read and written
  // A write to a child that died at once fails here; its 'exit' (or the timeout) tells what happened.
  ready.on('error', () => {});
  // At once, before the child can read: it waits for the line, bounded (inherited-sockets.ts readHanded).
  if (handed !== undefined) ready.write(`${handed}\n`);
  return new Promise((resolve) => {
    let said = '';
    const settle = (outcome: HandoverOutcome) => {
      clearTimeout(timer);
      child.removeAllListeners().on('error', () => {}); // a failed kill below, say
      ready.removeAllListeners().on('error', () => {}).destroy();
      if (!outcome.ok && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      child.unref();
      resolve(outcome);
    };
    const timer = setTimeout(() => settle({ ok: false, problem: `not ready within ${READY_TIMEOUT_MS / 1000} s` }), READY_TIMEOUT_MS);
    ready.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes('ready\n')) settle({ ok: true, pid: child.pid! });
    });
    child.once('error', (err) => settle({ ok: false, problem: err.message }));
    child.once('exit', (code, signal) => settle({ ok: false, problem: `it exited (${signal ?? `code ${code}`}) before it was ready` }));
  });
}

/** A listening server of the process beside the gateway's own (the embedded demo upstream). */
export interface OtherServer {
  readonly address: { readonly host: string; readonly port: number };
  readonly server: net.Server;
}

/**
 * Every listening socket of a serving process by configured address, to pass on: its listeners'
 * (one process) or those held for its workers, its admin server's, and `others`; or why it cannot.
 */
export function socketsToPass(serving: RunningGateway | ClusterPrimary, config: GatewayConfig, others: readonly OtherServer[]): Map<string, number[]> | string {
  const sockets = new Map<string, number[]>();
  const add = (address: { host: string; port: number }, fd: number | undefined) => {
    if (fd !== undefined) sockets.set(addressKey(address), [fd]);
  };
  if ('heldSockets' in serving) {
    const held = serving.heldSockets();
    if (held === undefined) return 'this Node cannot hold listening sockets for workers (net.BoundSocket, Node 24.21): restart it instead, or run one process (workers: 1)';
    for (const [address, fds] of held) sockets.set(address, fds);
  } else {
    for (const listener of serving.listeners.values()) add(listener.config.address, listener.listeningFd());
  }
  add(config.admin.address, serving.admin?.listeningFd());
  for (const other of others) add(other.address, other.server.listening ? listeningFd(other.server) : undefined);
  return sockets;
}
