// A peer under test (gatehouse, HAProxy, NGINX): each writes its own configuration from the same
// settings, and is started, pinned and stopped the same way, alone on the same ports.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BenchPki } from '../certificates.js';
import { HOST, type Ports } from '../layout.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { canConnect, spawnTracked, stop, waitForPorts, type Tracked } from '../processes.js';

const STARTUP_GRACE_MS = 300;

export type PeerName = 'gatehouse' | 'haproxy' | 'nginx';

/** What a scenario varies; the same meaning for every peer. */
export interface PeerSettings {
  /** Worker processes (gatehouse, NGINX) or threads (HAProxy). */
  readonly workers: number;
  /** TLS session tickets toward clients. */
  readonly tickets: boolean;
  /** gatehouse only: TLS 1.3 tickets per full handshake (`session_tickets.per_handshake`); HAProxy and NGINX send OpenSSL's 2. */
  readonly ticketsPerHandshake: number;
  /** gatehouse only: a passthrough route on the terminate listener, which forces its front door. */
  readonly frontDoor: boolean;
  /** Also run the SNI relay (passthrough) listener; only the scenarios that measure it ask. */
  readonly relay: boolean;
  /**
   * HTTP/2: the terminate listener offers ALPN h2 (and http/1.1), and requests go to the HTTP/2
   * origin (./origin-h2.ts) over HTTP/2 where the peer can (NGINX proxies HTTP/1.1 to it, and
   * gRPC over HTTP/2 with grpc_pass). Scenarios 9 and 10.
   */
  readonly http2: boolean;
  /** gatehouse only: the upstream has health_check, outlier_detection and retries (issue 19's benchmark: they must cost nothing per request). */
  readonly resilience?: boolean;
  /** gatehouse only: an access log to a file in the peer's directory (issue 18: it may cost at most 10% of scenario 1). */
  readonly accessLog?: boolean;
}

export const DEFAULT_SETTINGS: PeerSettings = { workers: 1, tickets: true, ticketsPerHandshake: 1, frontDoor: false, relay: false, http2: false };

export interface PeerContext {
  readonly pki: BenchPki;
  readonly ports: Ports;
  /** This peer's own directory under bench/.work/ (config, logs, pid and temp files). */
  readonly dir: string;
}

export interface PeerCommand {
  readonly cmd: string;
  readonly args: readonly string[];
  /** The configuration file, for the report. */
  readonly configFile: string;
}

export interface PeerDriver {
  readonly name: PeerName;
  readonly label: string;
  /** Why this peer cannot run here (binary missing, not built), or undefined. */
  unavailable(): string | undefined;
  /** Writes the configuration for `settings` and returns how to start the peer with it. */
  prepare(ctx: PeerContext, settings: PeerSettings): Promise<PeerCommand>;
}

export type PeerStart = { readonly ok: true; readonly proc: Tracked; readonly command: PeerCommand } | { readonly ok: false; readonly reason: string };

/** Writes a generated configuration file and returns its path. */
export async function writeConfig(dir: string, name: string, text: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

export function which(binary: string, candidates: readonly string[] = []): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const full = path.join(dir, binary);
    if (dir && existsSync(full)) return full;
  }
  return candidates.find((c) => existsSync(c));
}

/** The lines of a failed start that say why (errors, alerts), not stack frames; else the last lines. */
export function explainFailure(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('at '));
  const telling = lines.filter((l) => /error|alert|emerg|cannot|fail|invalid|not implemented|unknown/i.test(l));
  return (telling.length ? telling.slice(0, 2) : lines.slice(-2)).join(' | ').slice(0, 400);
}

/** Starts a peer pinned to `cpus` and waits for both its listeners; a failure is a value, not a throw. */
export async function startPeer(driver: PeerDriver, ctx: PeerContext, settings: PeerSettings, cpus: string): Promise<PeerStart> {
  const missing = driver.unavailable();
  if (missing) return { ok: false, reason: missing };
  let command: PeerCommand;
  try {
    command = await driver.prepare(ctx, settings);
  } catch (err) {
    return { ok: false, reason: `config: ${err instanceof Error ? err.message : String(err)}` };
  }
  // A listener left over from another process would be measured in this peer's place.
  const ports = settings.relay ? [ctx.ports.terminate, ctx.ports.passthrough] : [ctx.ports.terminate];
  for (const port of ports) {
    if (await canConnect(HOST, port)) return { ok: false, reason: `${HOST}:${port} is still in use by another process` };
  }
  const proc = spawnTracked(command.cmd, command.args, { cpus, cwd: ctx.dir });
  let failure = await waitForPorts(proc, HOST, ports);
  if (!failure) {
    await sleep(STARTUP_GRACE_MS); // a peer that fails after binding (a worker's error) exits now
    if (!proc.isRunning()) failure = `exited (${await proc.exited}) right after it started listening`;
  }
  if (failure) {
    await stop(proc);
    const why = explainFailure(proc.output());
    return { ok: false, reason: `${driver.label} ${failure}${why ? `: ${why}` : ''}` };
  }
  return { ok: true, proc, command };
}
