// Zero-downtime restart as an operator does it, on the compiled CLI: SIGUSR2 starts the next
// generation on the listening sockets of the running one, which then drains and exits. Measured:
// continuous load (new connections, keep-alive connections, and /readyz polled as a load balancer
// would) through 20 configuration reloads and 5 restarts, with no failed request. A new generation
// that cannot start changes nothing. A worker restarted after a crash listens on the socket its
// primary holds for it. A second `gatehouse start` on the same ports without a handover is still
// refused (test/workers.test.ts). A TLS session ticket issued before a restart resumes after it
// (the keys go over the ready pipe), on one process and on workers, unless the new configuration
// names a key file; a pipe that gives no key leaves the new generation on fresh keys, serving.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { alive, CLI, cliFixture, freePort, killByPidFile, readPid, startCli, writeTerminateConfig, type CliFixture, type CliGateway } from './support/gatehouse-cli.js';
import { openConversation, rawRequest, type Conversation, type RawConnectionOptions } from './support/raw-https.js';
import { id } from './support/test-pki.js';
import { handshake } from './support/tls-session.js';

const SLOW_MS = 2_000;
const children = new Set<ChildProcess>();
let fixture: CliFixture;
/** Pid files of the gateways a test started: whatever generation they name is killed after it. */
const pidFiles = new Set<string>();

beforeAll(async () => {
  fixture = await cliFixture(children, { slowMs: SLOW_MS });
}, 30_000);
afterAll(() => fixture?.close());
afterEach(() => {
  for (const file of pidFiles) killByPidFile(file);
  pidFiles.clear();
});

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(25);
  }
}

async function start(name: string, workers: number): Promise<{ g: CliGateway; file: string; pidFile: string }> {
  const ports = await writeTerminateConfig({
    file: path.join(fixture.pki.dir, `${name}.yaml`),
    head: `workers: ${workers}\n`,
    sessionTickets: '  enabled: true\n',
    server: fixture.server,
    caFile: fixture.pki.caFile,
    allowId: id('frontend'),
    originPort: fixture.originPort,
  });
  const pidFile = path.join(fixture.pki.dir, `${name}.pid`);
  pidFiles.add(pidFile);
  const g = await startCli(ports, ['--pid-file', pidFile], children, { GATEHOUSE_LOG: 'info' });
  await until('the pid file', () => readPid(pidFile));
  return { g, file: ports.file, pidFile };
}

/** SIGUSR2 to the generation the pid file names; resolves with the next one's pid once the old one has exited. */
async function restart(pidFile: string): Promise<number> {
  const old = readPid(pidFile)!;
  process.kill(old, 'SIGUSR2');
  const next = await until('a new generation in the pid file', () => {
    const pid = readPid(pidFile);
    return pid !== undefined && pid !== old && pid;
  });
  await until(`generation ${old} to exit`, () => !alive(old));
  return next;
}

/** The kernel's listening TCP sockets on `ports` (127.0.0.1), as their inodes, sorted: the same string means the same sockets. */
function listeningSockets(ports: number[]): string {
  const wanted = new Set(ports.map((p) => p.toString(16).toUpperCase().padStart(4, '0')));
  const inodes: string[] = [];
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const port = fields[1]?.split(':')[1];
    if (port !== undefined && wanted.has(port) && fields[3] === '0A') inodes.push(fields[9]!);
  }
  return inodes.sort().join(' ');
}

const GET = (p: string) => `GET ${p} HTTP/1.1\r\nhost: localhost\r\n\r\n`;

/** /readyz on a connection of its own, as a load balancer's health check asks. */
function readyz(adminPort: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path: '/readyz', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('readyz timed out')));
    req.on('error', reject);
  });
}

interface Load {
  /** Requests answered 200 (and /readyz checks answered 200). */
  ok: number;
  readyzOk: number;
  failures: string[];
  /** Keep-alive connections the gateway told `connection: close` or closed. */
  reconnects: number;
  stop(): Promise<void>;
}

/** Clients that keep asking until stopped: `fresh` on a new mTLS connection per request, `keepAlive` on long-lived ones, and a /readyz poller. */
function startLoad(options: RawConnectionOptions, adminPort: number, fresh: number, keepAlive: number): Load {
  let stopped = false;
  const load: Load = { ok: 0, readyzOk: 0, failures: [], reconnects: 0, stop: async () => {} };
  const freshClient = async () => {
    while (!stopped) {
      try {
        const r = await rawRequest(options, GET('/'));
        if (r.status === 200) load.ok++;
        else load.failures.push(`new connection: status ${r.status}`);
      } catch (err) {
        load.failures.push(`new connection: ${(err as Error).message}`);
      }
    }
  };
  // No retries: a request written on a keep-alive connection must be answered on it.
  const keepAliveClient = async () => {
    let c: Conversation | undefined;
    while (!stopped) {
      try {
        c ??= await openConversation(options);
        const r = await c.send(GET('/'));
        if (r.status === 200) load.ok++;
        else load.failures.push(`keep-alive: status ${r.status}`);
        if (r.header('connection') === 'close') {
          load.reconnects++;
          c.destroy();
          c = undefined;
        }
      } catch (err) {
        load.failures.push(`keep-alive: ${(err as Error).message}`);
        c?.destroy();
        c = undefined;
      }
    }
    c?.destroy();
  };
  const poller = async () => {
    while (!stopped) {
      try {
        const status = await readyz(adminPort);
        if (status === 200) load.readyzOk++;
        else load.failures.push(`/readyz: ${status}`);
      } catch (err) {
        load.failures.push(`/readyz: ${(err as Error).message}`);
      }
      await sleep(20);
    }
  };
  const clients = [...Array.from({ length: fresh }, freshClient), ...Array.from({ length: keepAlive }, keepAliveClient), poller()];
  load.stop = async () => {
    stopped = true;
    await Promise.all(clients);
  };
  return load;
}

describe('SIGUSR2: a new process takes over the listening sockets', () => {
  it('serves continuous load through 20 reloads and 5 restarts (two workers) with zero failed requests', async () => {
    const { g, file, pidFile } = await start('restarts', 2);
    const options: RawConnectionOptions = { port: g.port, ca: fixture.pki.ca.rootPem, cert: fixture.client, servername: 'localhost' };
    const load = startLoad(options, g.adminPort, 3, 3);
    const generations = [readPid(pidFile)!];
    const duringRestart: number[] = [];
    // The listening sockets themselves go from generation to generation: one per worker on the
    // listener's port, one for admin, the same sockets (kernel inodes) after every restart.
    const sockets = listeningSockets([g.port, g.adminPort]);
    expect(sockets.split(' ')).toHaveLength(3);
    try {
      await sleep(300);
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 4; i++) {
          // A real change each time: the upstream's pool size, so its cluster is rebuilt under load.
          const text = fs.readFileSync(file, 'utf8').replace(/\n {4}connections: \d+\n$|\n$/, `\n    connections: ${8 + ((round * 4 + i) % 2) * 8}\n`);
          fs.writeFileSync(file, text);
          const hash = createHash('sha256').update(text).digest('hex');
          process.kill(generations.at(-1)!, 'SIGHUP');
          await until(`reload ${round * 4 + i + 1} to apply`, async () => (await activeHash(g.adminPort)) === hash, 10_000);
        }
        const before = load.ok;
        generations.push(await restart(pidFile));
        duringRestart.push(load.ok - before);
        expect(listeningSockets([g.port, g.adminPort])).toBe(sockets);
      }
      await sleep(300);
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
    expect(new Set(generations).size).toBe(6);
    // The load went on through every handover, and the load balancer's view never left 200.
    for (const served of duringRestart) expect(served).toBeGreaterThan(0);
    expect(load.readyzOk).toBeGreaterThan(50);
    // Every keep-alive client was told connection: close by each old generation, and moved on.
    expect(load.reconnects).toBeGreaterThanOrEqual(3 * 5);
    const last = generations.at(-1)!;
    process.kill(last, 'SIGTERM');
    await until('the last generation to exit', () => !alive(last));
    expect(fs.existsSync(pidFile)).toBe(false); // removed by the process it named
  }, 120_000);
});

describe('SIGUSR2 with one process', () => {
  it('keeps serving when the new generation cannot start (a broken file); once it can, a request in flight on the old one finishes with 200 while the new one serves, and the old one exits 0', async () => {
    const { g, file, pidFile } = await start('one-process', 1);
    const options: RawConnectionOptions = { port: g.port, ca: fixture.pki.ca.rootPem, cert: fixture.client, servername: 'localhost' };
    const first = readPid(pidFile)!;
    const sockets = listeningSockets([g.port, g.adminPort]);
    expect(sockets.split(' ')).toHaveLength(2);
    const good = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, good.replace('upstream: origin', 'upstream: nowhere'));
    process.kill(first, 'SIGUSR2');
    await until('the failed handover to be logged', () => g.output().includes('"handover_failed"'));
    expect(g.output()).toMatch(/routes\[0\]\.upstream: .*nowhere/); // the new generation said why
    expect(readPid(pidFile)).toBe(first);
    expect(alive(first)).toBe(true);
    expect((await rawRequest(options, GET('/'))).status).toBe(200);
    expect(await readyz(g.adminPort)).toBe(200);
    expect(listeningSockets([g.port, g.adminPort])).toBe(sockets);

    fs.writeFileSync(file, good);
    const busy = await openConversation(options);
    const slow = busy.send(GET('/slow'));
    await sleep(300);
    const exited = new Promise<number | null>((resolve) => g.child.once('exit', resolve));
    process.kill(first, 'SIGUSR2');
    const next = await until('the next generation', () => {
      const pid = readPid(pidFile);
      return pid !== first && pid;
    });
    // The old generation still answers what it has; the new one answers new connections.
    expect(alive(first)).toBe(true);
    expect((await rawRequest(options, GET('/'))).status).toBe(200);
    const response = await slow;
    expect(response.status).toBe(200);
    expect(response.header('connection')).toBe('close');
    expect(await exited).toBe(0);
    expect(alive(next)).toBe(true);
    expect(listeningSockets([g.port, g.adminPort])).toBe(sockets);
    expect(await readyz(g.adminPort)).toBe(200);
  }, 60_000);
});

describe('sockets held by the primary', () => {
  it('a worker killed with SIGKILL is restarted on the same listening socket', async () => {
    const { g } = await start('held', 2);
    const sockets = listeningSockets([g.port]);
    expect(sockets.split(' ')).toHaveLength(2);
    const workers = async () => (await fetch(`http://127.0.0.1:${g.adminPort}/workers`).then((r) => r.json())) as { pid: number; ready: boolean }[];
    const victim = (await workers())[0]!.pid;
    process.kill(victim, 'SIGKILL');
    await until('the worker to be replaced', async () => {
      const now = await workers();
      return now.every((w) => w.ready && w.pid !== victim);
    });
    expect(listeningSockets([g.port])).toBe(sockets);
    expect((await rawRequest({ port: g.port, ca: fixture.pki.ca.rootPem, cert: fixture.client, servername: 'localhost' }, GET('/'))).status).toBe(200);
  }, 30_000);

  it('a listener a reload moves to another port is closed on the old one: refused there, not held open with nobody accepting', async () => {
    const { g, file } = await start('moved', 2);
    const movedTo = await freePort();
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.replace(`127.0.0.1:${g.port}`, `127.0.0.1:${movedTo}`));
    const reload = await fetch(`http://127.0.0.1:${g.adminPort}/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);
    const options = (port: number): RawConnectionOptions => ({ port, ca: fixture.pki.ca.rootPem, cert: fixture.client, servername: 'localhost' });
    expect((await rawRequest(options(movedTo), GET('/'))).status).toBe(200);
    expect(listeningSockets([g.port])).toBe('');
    await expect(rawRequest(options(g.port), GET('/'))).rejects.toThrow(/ECONNREFUSED/);
  }, 30_000);
});

describe('SIGUSR2 hands the session ticket keys over', () => {
  /** A full handshake on the gateway at `port`: the ticket it issues. */
  const ticket = async (port: number) => (await handshake({ port, ca: fixture.pki.ca.rootPem, cert: fixture.client })).session!;
  const resumes = async (port: number, session: Buffer) => (await handshake({ port, ca: fixture.pki.ca.rootPem, cert: fixture.client, session, ticketWaitMs: 20 })).reused;
  /** What other local processes can read of a process: its command line and environment. */
  const visible = (pid: number) => ['cmdline', 'environ'].map((f) => fs.readFileSync(`/proc/${pid}/${f}`, 'latin1')).join('\n');

  it('one process: a ticket issued before the restart resumes on the next generation; no key on its command line or in its environment', async () => {
    const { g, pidFile } = await start('tickets-one', 1);
    const session = await ticket(g.port);
    expect(await resumes(g.port, session)).toBe(true);
    const next = await restart(pidFile);
    expect(await resumes(g.port, session)).toBe(true);
    expect(g.output()).toContain('"ticket_keys_handed_over"');
    expect(g.output()).not.toContain('"ticket_keys_not_handed_over"');
    // The serving process and the one that started it (which relaunched it under its OpenSSL configuration).
    const starter = Number(fs.readFileSync(`/proc/${next}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    expect(visible(starter)).toContain('GATEHOUSE_INHERITED');
    for (const pid of [next, starter]) expect(visible(pid)).not.toMatch(/ticket_key|[0-9a-f]{96}/i);
  }, 60_000);

  it('two workers: the ticket resumes on both workers of the next generation', async () => {
    const { g, pidFile } = await start('tickets-workers', 2);
    const session = await ticket(g.port);
    await restart(pidFile);
    // The kernel spreads connections over the workers by source port: 16 reach both but for 2 in 65,536.
    const reused: boolean[] = [];
    for (let i = 0; i < 16; i++) reused.push(await resumes(g.port, session));
    expect(reused).toEqual(Array(16).fill(true));
    const workers = (await fetch(`http://127.0.0.1:${g.adminPort}/workers`).then((r) => r.json())) as { resumed: number }[];
    expect(workers).toHaveLength(2);
    for (const w of workers) expect(w.resumed).toBeGreaterThan(0);
  }, 60_000);

  it('a key_file in the new configuration wins: the old ticket gets a full handshake, the file key\'s tickets resume', async () => {
    const { g, file, pidFile } = await start('tickets-key-file', 1);
    const session = await ticket(g.port);
    const keyFile = path.join(fixture.pki.dir, 'tickets-key-file.key');
    fs.writeFileSync(keyFile, randomBytes(48).toString('hex'), { mode: 0o600 });
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.replace('session_tickets:\n', `session_tickets:\n  key_file: ${keyFile}\n`));
    await restart(pidFile);
    expect(await resumes(g.port, session)).toBe(false);
    expect(await resumes(g.port, await ticket(g.port))).toBe(true);
    expect(g.output()).not.toMatch(/"ticket_keys_(not_)?handed_over"/); // not even read
  }, 60_000);

  it.each([
    ['a line that is no key', (pipe: net.Socket) => pipe.write(`{"ticket_key":"${'ab'.repeat(47)}","age_ms":5}\n`), /"problem":"ticket_key: hex key has 94 digits, expected 96"/, true],
    ['a pipe closed with no line', (pipe: net.Socket) => pipe.end(), /"problem":"the ready pipe closed after 0 bytes, before a line end"/, false],
    ['a pipe nobody writes on', () => {}, /"problem":"nothing on the ready pipe within 5000 ms"/, true],
  ])('a next generation that cannot read the keys (%s) starts on fresh keys and says so', async (_name, send, problem, saysReady) => {
    const ports = await writeTerminateConfig({ file: path.join(fixture.pki.dir, 'tickets-broken.yaml'), sessionTickets: '  enabled: true\n', server: fixture.server, caFile: fixture.pki.caFile, allowId: id('frontend'), originPort: fixture.originPort });
    const pidFile = path.join(fixture.pki.dir, 'tickets-broken.pid');
    fs.rmSync(pidFile, { force: true }); // the case before's, its process killed
    pidFiles.add(pidFile);
    // As a generation before would start it, with the ready pipe on descriptor 3 saying keys follow there.
    const child = spawn(process.execPath, [CLI, 'start', '--config', ports.file, '--pid-file', pidFile], {
      env: { ...process.env, GATEHOUSE_LOG: 'info', GATEHOUSE_INHERITED: JSON.stringify({ sockets: {}, ready: 3, served: [], handed: true }) },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    child.stderr!.on('data', (c) => (out += c));
    const pipe = child.stdio[3] as net.Socket;
    let said = '';
    pipe.on('data', (c) => (said += c)).on('error', () => {});
    send(pipe);
    await until('the gateway to serve', () => {
      if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}: ${out}`);
      return readPid(pidFile);
    });
    expect(await readyz(ports.adminPort)).toBe(200);
    expect(out).toMatch(/"event":"ticket_keys_not_handed_over"/);
    expect(out).toMatch(problem);
    expect(out).not.toContain('ab'.repeat(47));
    // Fresh keys work: a ticket of this generation resumes on it.
    expect(await resumes(ports.port, await ticket(ports.port))).toBe(true);
    if (saysReady) await until('"ready" on the pipe', () => said === 'ready\n');
  }, 60_000);
});

/** The active configuration's hash as /config_dump says it (undefined while the admin address changes hands). */
async function activeHash(adminPort: number): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/config_dump`, { headers: { connection: 'close' } });
    return ((await res.json()) as { hash: string }).hash;
  } catch {
    return undefined;
  }
}
