// Every process the benchmark starts goes through here, so that all of them are stopped at the
// end, on an error and on SIGINT/SIGTERM. Each is spawned in its own process group (detached), so
// that stopping it also stops the workers it forked (NGINX's, gatehouse's).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set<ChildProcess>();
/** Output kept per process, to explain a start failure; bounded. */
const OUTPUT_TAIL_BYTES = 8192;

export interface Tracked {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last few KB of stdout+stderr. */
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  isRunning(): boolean;
}

export interface SpawnOptions {
  /** taskset CPU list, e.g. "0" or "0,1". */
  readonly cpus?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Called with each stdout chunk (e.g. to parse progress lines). */
  readonly onStdout?: (chunk: string) => void;
}

/** Spawns `cmd args` (under taskset when `cpus` is given) and tracks it until it exits. */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Tracked {
  const [file, argv] = opts.cpus ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, [...args]];
  const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    keep(chunk);
    opts.onStdout?.(chunk.toString('utf8'));
  });
  child.stderr!.on('data', keep);
  live.add(child);
  let running = true;
  const exited = new Promise<number | string>((resolve) => {
    child.on('error', (err) => {
      tail += `\nspawn ${file}: ${err.message}`;
      running = false;
      live.delete(child);
      resolve(`error: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      running = false;
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return { child, pid: child.pid ?? -1, output: () => tail, exited, isRunning: () => running };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal); // the whole group: the process and what it forked
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stop(proc: Tracked, graceMs = 3000): Promise<void> {
  if (!proc.isRunning()) {
    signalGroup(proc.child, 'SIGKILL'); // a leader that exited may have left workers behind
    return;
  }
  signalGroup(proc.child, 'SIGTERM');
  const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
  signalGroup(proc.child, 'SIGKILL');
  if (!done) await Promise.race([proc.exited, sleep(1000)]);
}

/** Kills everything still running, synchronously (for exit paths). */
export function killAllNow(): void {
  for (const child of live) signalGroup(child, 'SIGKILL');
  live.clear();
}

let installed = false;
/** Makes SIGINT/SIGTERM and process exit kill every tracked process. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping every process it started\n`);
      killAllNow();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** True when something accepts TCP connections on host:port. */
export function canConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Waits until every port accepts connections, the process exits, or `timeoutMs` passes. */
export async function waitForPorts(proc: Tracked, host: string, ports: readonly number[], timeoutMs = 15_000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (const port of ports) {
    for (;;) {
      if (!proc.isRunning()) return `exited (${await proc.exited}) before listening on ${host}:${port}`;
      if (await canConnect(host, port)) break;
      if (Date.now() > deadline) return `not listening on ${host}:${port} after ${timeoutMs} ms`;
      await sleep(100);
    }
  }
  return undefined;
}

export interface RunResult {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a command to completion (a load generator), killing it after `timeoutMs`. Output is bounded. */
export function runToEnd(cmd: string, args: readonly string[], opts: { cpus?: string; timeoutMs: number; maxOutput?: number }): Promise<RunResult> {
  const [file, argv] = opts.cpus ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, [...args]];
  const max = opts.maxOutput ?? 1 << 20;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => {
      if (stdout.length < max) stdout += c.toString('utf8');
    });
    child.stderr!.on('data', (c: Buffer) => {
      if (stderr.length < max) stderr += c.toString('utf8');
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${opts.timeoutMs} ms)`;
      signalGroup(child, 'SIGKILL');
    }, opts.timeoutMs);
    const finish = (code: number | string): void => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    };
    child.on('error', (err) => finish(`error: ${err.message}`));
    child.on('close', (code, signal) => finish(code ?? signal ?? 'unknown'));
  });
}
