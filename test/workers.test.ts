// `gatehouse start --workers 2` as an operator runs it: one TLS session ticket resumes on every
// worker (keys shared by the primary), the primary's /metrics and /workers cover all workers, a
// worker killed with SIGKILL is replaced while traffic continues, `session_tickets.enabled: false`
// leaves nothing to resume, and a key file shared by two replicas lets a ticket from one resume
// on the other, following the file when it changes. Runs the compiled CLI (`npm test` builds it).
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REUSE_PORT_AVAILABLE } from '../gateway/net/shared-port.js';
import { CLI, cliFixture, freePort, startCli, stopCli, writeTerminateConfig, type CliFixture, type CliGateway } from './support/gatehouse-cli.js';
import { request } from './support/mtls-client.js';
import { TestPki, id, type WrittenCert } from './support/test-pki.js';
import { handshake } from './support/tls-session.js';

const RESUMES = 40;
let pki: TestPki;
let server: WrittenCert;
let client: WrittenCert;
let originPort: number;
const children = new Set<ChildProcess>();

type Gateway = CliGateway;

interface WorkerStatus {
  slot: number;
  pid: number;
  ready: boolean;
  restarts: number;
  handshakes: number;
  resumed: number;
}

async function writeConfig(name: string, tickets: { enabled: boolean; keyFile?: string }, workers?: number): Promise<{ file: string; port: number; adminPort: number }> {
  return writeTerminateConfig({
    file: path.join(pki.dir, `${name}.yaml`),
    head: workers === undefined ? '' : `workers: ${workers}\n`,
    sessionTickets: `  enabled: ${tickets.enabled}\n${tickets.keyFile ? `  key_file: ${tickets.keyFile}\n` : ''}`,
    server,
    caFile: pki.caFile,
    allowId: id('frontend'),
    originPort,
  });
}

/** `workers`: the --workers flag, or `{ config: n }` for the config's `workers` key. */
async function startGatehouse(name: string, workers: number | { config: number }, tickets: { enabled: boolean; keyFile?: string }): Promise<Gateway> {
  const config = await writeConfig(name, tickets, typeof workers === 'number' ? undefined : workers.config);
  return startCli(config, typeof workers === 'number' ? ['--workers', String(workers)] : [], children);
}

const stop = (g: Gateway) => stopCli(g, children);

/** Inodes of the IPv4 sockets listening on `port` (/proc/net/tcp: state 0A is LISTEN). */
function listeningSocketInodes(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A')
    .map((f) => f[9]!);
}

/** Inodes of the sockets process `pid` holds open. */
function socketInodesOf(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  return fs.readdirSync(dir).flatMap((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(path.join(dir, fd)))?.[1] ?? [];
    } catch {
      return []; // closed while we looked
    }
  });
}

/**
 * `gatehouse start --workers 2` on a config that must not start: how it ended (its exit code, or
 * 'started' once it printed its banner, after which it is stopped) and what it wrote to stderr.
 */
async function startExpectingFailure(file: string): Promise<{ outcome: number | null | 'started'; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'start', '--config', file, '--workers', '2'], { env: { ...process.env, GATEHOUSE_LOG: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const outcome = await new Promise<number | null | 'started'>((resolve) => {
    child.once('exit', resolve);
    child.stdout!.on('data', (c) => String(c).includes('gatehouse is running') && resolve('started'));
  });
  if (outcome === 'started') child.kill('SIGTERM');
  return { outcome, stderr };
}

async function workersOf(g: Gateway): Promise<WorkerStatus[]> {
  return (await fetch(`http://127.0.0.1:${g.adminPort}/workers`)).json() as Promise<WorkerStatus[]>;
}

/** Resumes `count` new connections with one session; returns how many resumed. */
async function resumeMany(port: number, session: Buffer, count: number): Promise<number> {
  let reused = 0;
  for (let i = 0; i < count; i++) {
    const r = await handshake({ port, ca: pki.ca.rootPem, cert: client, session, ticketWaitMs: 5 });
    if (r.reused) reused++;
  }
  return reused;
}

async function firstTicket(port: number): Promise<Buffer> {
  const first = await handshake({ port, ca: pki.ca.rootPem, cert: client });
  expect(first.reused).toBe(false);
  expect(first.session, 'the server sent a session ticket').toBeDefined();
  return first.session!;
}

let fixture: CliFixture | undefined;
beforeAll(async () => {
  fixture = await cliFixture(children);
  ({ pki, server, client, originPort } = fixture);
}, 30_000);

afterAll(() => fixture?.close());

describe('gatehouse start --workers 2', () => {
  let g: Gateway;
  beforeAll(async () => {
    g = await startGatehouse('cluster', 2, { enabled: true });
  }, 40_000);
  afterAll(async () => {
    if (g) expect(await stop(g)).toBe(0);
  }, 20_000);

  it('resumes one session ticket on both workers (keys from the primary)', async () => {
    const ticket = await firstTicket(g.port);
    const before = await workersOf(g);
    const reused = await resumeMany(g.port, ticket, RESUMES);
    const after = await workersOf(g);
    console.log(`[workers] ticket resumption across 2 workers: ${reused}/${RESUMES} = ${((100 * reused) / RESUMES).toFixed(1)}%`);
    expect(after).toHaveLength(2);
    const resumedPerWorker = after.map((w, i) => w.resumed - before[i]!.resumed);
    console.log(`[workers] resumed per worker: ${resumedPerWorker.join(', ')} (pids ${after.map((w) => w.pid).join(', ')})`);
    expect(new Set(after.map((w) => w.pid)).size).toBe(2);
    for (const n of resumedPerWorker) expect(n).toBeGreaterThan(0);
    expect(reused).toBe(RESUMES);
  }, 60_000);

  it('gives each worker its own listening socket (SO_REUSEPORT) where Node has it, so no connection passes through the primary', async () => {
    const listening = listeningSocketInodes(g.port);
    const owners = (await workersOf(g)).map((w) => socketInodesOf(w.pid).filter((inode) => listening.includes(inode)).length);
    if (REUSE_PORT_AVAILABLE) {
      expect(listening).toHaveLength(2);
      expect(owners).toEqual([1, 1]);
    } else {
      expect(listening).toHaveLength(1); // the primary's, shared by round-robin
      expect(owners).toEqual([0, 0]);
    }
  });

  it('serves Prometheus metrics aggregated over the workers and readiness on the primary', async () => {
    const res = await request({ port: g.port, ca: pki.ca.rootPem, cert: client });
    expect(res.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
    const accepted = Number(/gatehouse_tls_handshakes_total\{listener="public",result="accepted",reason="ok"\} (\d+)/.exec(metrics)?.[1]);
    const perWorker = (await workersOf(g)).reduce((sum, w) => sum + w.handshakes, 0);
    expect(perWorker).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThanOrEqual(perWorker);
    // Both workers report the one-hour server certificate: the primary shows it once, not the sum.
    const expiry = Number(/gatehouse_certificate_expiry_seconds\{target="listener\/public\/server",[^}]*\} ([\d.e+-]+)/.exec(metrics)?.[1]);
    expect(expiry).toBeGreaterThan(3000);
    expect(expiry).toBeLessThanOrEqual(3600);
  }, 30_000);

  it('serves /certs (each loaded certificate with its expiry, from a worker) and process metrics over the workers: CPU, descriptors, event-loop delay, build_info', async () => {
    const certs = (await (await fetch(`http://127.0.0.1:${g.adminPort}/certs`)).json()) as { certificates: Array<{ target: string; not_after: string; expires_in_seconds: number }> };
    const served = certs.certificates.find((c) => c.target === 'listener/public/server');
    expect(served?.expires_in_seconds).toBeGreaterThan(3000);
    expect(served?.expires_in_seconds).toBeLessThanOrEqual(3600);
    expect(Date.parse(served!.not_after)).toBeGreaterThan(Date.now());
    const metrics = await (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
    const value = (pattern: RegExp) => Number(pattern.exec(metrics)?.[1]);
    expect(metrics).toMatch(new RegExp(`gatehouse_build_info\\{version="0\\.1\\.0",node="${process.version.replace(/\./g, '\\.')}",openssl="[^"]+"\\} 1`));
    // Two workers' user CPU added up: more than either has used alone, and each has used some.
    expect(value(/gatehouse_process_cpu_seconds_total\{mode="user"\} ([\d.e+-]+)/)).toBeGreaterThan(0.2);
    // Two workers, each with its listening socket, IPC pipe and stdio: well over one process's few.
    expect(value(/gatehouse_process_open_fds ([\d.]+)/)).toBeGreaterThan(20);
    expect(value(/gatehouse_event_loop_delay_seconds\{quantile="0\.99"\} ([\d.e+-]+)/)).toBeGreaterThan(0);
    expect(value(/gatehouse_process_start_time_seconds ([\d.e+]+)/)).toBeLessThanOrEqual(Date.now() / 1000);
  }, 30_000);

  it('restarts a worker killed with SIGKILL while requests keep being served', async () => {
    const [victim, survivor] = await workersOf(g);
    process.kill(victim!.pid, 'SIGKILL');
    const killedAt = Date.now();
    const deadline = killedAt + 15_000;
    // Requests go one at a time until the replacement is ready, watched beside them: /workers can
    // take a while (a dead worker still looks connected until its pipe's EOF is read).
    let replaced: WorkerStatus[] | undefined;
    const watching = (async () => {
      while (replaced === undefined && Date.now() < deadline) {
        const now = await workersOf(g);
        if (now.every((w) => w.ready) && now[0]!.pid !== victim!.pid) replaced = now;
        else await sleep(20);
      }
    })();
    let ok = 0;
    let failed = 0;
    while (replaced === undefined && Date.now() < deadline) {
      const served = await request({ port: g.port, ca: pki.ca.rootPem, cert: client }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (served) ok++;
      else failed++;
    }
    await watching;
    console.log(`[workers] during the restart: ${ok} requests ok, ${failed} failed; replaced after ${Date.now() - killedAt} ms`);
    expect(replaced, `no replacement within 15 s: ${g.output()}`).toBeDefined();
    // The survivor kept serving. Requests go one at a time, so at most one connection can have been
    // handed to the victim as it died (reset with it); none after it, and none by its replacement.
    expect(ok).toBeGreaterThan(0);
    expect(failed).toBeLessThanOrEqual(1);
    expect(replaced![0]!.restarts).toBe(1);
    expect(replaced![1]!.pid).toBe(survivor!.pid);
    expect(g.output()).toContain('worker_exited');
    // Every request after the replacement succeeds, on both workers, and the ticket still resumes everywhere.
    for (let i = 0; i < 10; i++) expect((await request({ port: g.port, ca: pki.ca.rootPem, cert: client })).status).toBe(200);
    const ticket = await firstTicket(g.port);
    expect(await resumeMany(g.port, ticket, 10)).toBe(10);
    expect((await fetch(`http://127.0.0.1:${g.adminPort}/readyz`)).status).toBe(200);
  }, 60_000);
});

describe('a worker that dies while the primary talks to it', () => {
  it('does not take the primary down: /workers, asked while a worker is SIGKILLed, still answers', async () => {
    const g = await startGatehouse('ipc-race', 2, { enabled: true });
    const primary = g.child.pid!;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (urlPath: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: g.adminPort, path: urlPath, agent }, (res) => res.resume().on('end', () => resolve(res.statusCode!))).on('error', reject);
      });
    try {
      const [victim] = await workersOf(g);
      expect(await get('/healthz')).toBe(200); // opens the connection the next request reuses
      // With the primary stopped, the request waits on its open connection and the victim's end of
      // the IPC pipe closes; woken, the primary reads the request before the pipe's EOF, and
      // /workers asks a worker that still looks connected for its stats.
      process.kill(primary, 'SIGSTOP');
      const answered = get('/workers');
      await sleep(100);
      process.kill(victim!.pid, 'SIGKILL');
      await sleep(200);
      process.kill(primary, 'SIGCONT');
      expect(await answered).toBe(200);
      await sleep(300);
      expect(g.child.exitCode, g.output()).toBeNull();
    } finally {
      process.kill(primary, 'SIGCONT');
      agent.destroy();
      expect(await stop(g)).toBe(0);
    }
  }, 40_000);
});

describe('a cluster that cannot start', () => {
  it('refuses to start beside another multi-worker gatehouse on the same address, which SO_REUSEPORT would let it share', async () => {
    const first = await startGatehouse('occupant', 2, { enabled: true });
    try {
      // Same listener address, its own admin port: only the listener can collide.
      const text = fs.readFileSync(path.join(pki.dir, 'occupant.yaml'), 'utf8');
      const file = path.join(pki.dir, 'intruder.yaml');
      fs.writeFileSync(file, text.replace(`address: 127.0.0.1:${first.adminPort}`, `address: 127.0.0.1:${await freePort()}`));
      // 'started' would mean it serves beside the first one.
      const { outcome, stderr } = await startExpectingFailure(file);
      expect(outcome).toBe(1);
      expect(stderr).toMatch(/gatehouse start: listener 'public': .*EADDRINUSE/);
      // The occupant still holds the port alone and serves.
      expect(listeningSocketInodes(first.port)).toHaveLength(REUSE_PORT_AVAILABLE ? 2 : 1);
      expect((await request({ port: first.port, ca: pki.ca.rootPem, cert: client })).status).toBe(200);
    } finally {
      expect(await stop(first)).toBe(0);
    }
  }, 40_000);

  it('exits 1 with the worker\'s reason when the listener address is taken, leaving no worker behind', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { file } = await writeConfig('taken', { enabled: true });
    const port = (taken.address() as net.AddressInfo).port;
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/address: 127\.0\.0\.1:\d+\n    tls:/, `address: 127.0.0.1:${port}\n    tls:`));
    try {
      const started = Date.now();
      const { outcome, stderr } = await startExpectingFailure(file);
      expect(outcome).toBe(1);
      expect(stderr).toMatch(/gatehouse start: .*EADDRINUSE/);
      expect(Date.now() - started).toBeLessThan(8000); // the other worker stopped when asked, not killed after the stop timeout
    } finally {
      taken.close();
    }
  }, 30_000);
});

describe('session_tickets.enabled: false', () => {
  it('issues no ticket that resumes, on any worker', async () => {
    const g = await startGatehouse('no-tickets', 2, { enabled: false });
    try {
      const first = await handshake({ port: g.port, ca: pki.ca.rootPem, cert: client });
      let reused = 0;
      let sessions = first.sessions;
      for (let i = 0; i < 10 && first.session; i++) {
        const r = await handshake({ port: g.port, ca: pki.ca.rootPem, cert: client, session: first.session, ticketWaitMs: 50 });
        sessions += r.sessions;
        if (r.reused) reused++;
      }
      console.log(`[workers] tickets disabled: ${sessions} sessions offered over 11 handshakes, ${reused}/10 resumed`);
      expect(reused).toBe(0);
    } finally {
      expect(await stop(g)).toBe(0);
    }
  }, 60_000);
});

describe('session_tickets.key_file shared by two replicas', () => {
  it('resumes a ticket from replica A on replica B, and follows the file when it changes', async () => {
    const keyFile = path.join(pki.dir, 'ticket.key');
    fs.writeFileSync(keyFile, randomBytes(48).toString('hex') + '\n', { mode: 0o600 });
    const a = await startGatehouse('replica-a', { config: 2 }, { enabled: true, keyFile });
    const b = await startGatehouse('replica-b', 1, { enabled: true, keyFile });
    try {
      expect((await workersOf(a)).map((w) => w.ready)).toEqual([true, true]); // `workers: 2` from the config
      const ticketA = await firstTicket(a.port);
      const onB = await resumeMany(b.port, ticketA, 10);
      const onA = await resumeMany(a.port, ticketA, 10);
      console.log(`[workers] key file: ticket from A resumed ${onB}/10 on B, ${onA}/10 on A`);
      expect(onB).toBe(10);
      expect(onA).toBe(10);

      // A new key (base64 this time): both replicas follow, the old ticket falls back to a full handshake.
      fs.writeFileSync(keyFile + '.tmp', randomBytes(48).toString('base64') + '\n', { mode: 0o600 });
      fs.renameSync(keyFile + '.tmp', keyFile);
      const deadline = Date.now() + 15_000;
      let stale = { a: 1, b: 1 };
      while (Date.now() < deadline && (stale.a > 0 || stale.b > 0)) {
        await new Promise((r) => setTimeout(r, 200));
        stale = { a: await resumeMany(a.port, ticketA, 2), b: await resumeMany(b.port, ticketA, 2) };
      }
      expect(stale).toEqual({ a: 0, b: 0 });
      const ticketB = await firstTicket(b.port);
      expect(await resumeMany(a.port, ticketB, 10)).toBe(10);
      expect(a.output() + b.output()).not.toContain(fs.readFileSync(keyFile, 'utf8').trim());
    } finally {
      expect(await stop(a)).toBe(0);
      expect(await stop(b)).toBe(0);
    }
  }, 90_000);
});
