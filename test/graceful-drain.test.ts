// Graceful drain as an operator meets it, on the compiled CLI: SIGTERM with a 3 s request in flight
// lets it finish with 200 (told `connection: close`) while /readyz says 503, a quiet keep-alive
// connection is closed at once and one in use gets `connection: close` on its next response, then
// exits 0; drain.delay keeps accepting before it stops; a second
// signal ends at once; drain.timeout cuts a passthrough relay that stays open; POST /drain (under
// the admin token rule) does what SIGTERM does; with two workers the primary drains them both.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cliFixture, freePort, killByPidFile, startCli, writeTerminateConfig, type CliFixture, type CliGateway } from './support/gatehouse-cli.js';
import { openConversation, rawRequest, type RawConnectionOptions } from './support/raw-https.js';
import { id } from './support/test-pki.js';

const SLOW_MS = 3_000;
const children = new Set<ChildProcess>();
let fixture: CliFixture;
let running: CliGateway | undefined;
/** Where the serving process writes its pid: a relaunched one outlives a SIGKILL to the CLI process, so a failed test kills it there. */
let servingPidFile: string | undefined;

beforeAll(async () => {
  fixture = await cliFixture(children, { slowMs: SLOW_MS });
}, 30_000);
afterAll(() => fixture?.close());
afterEach(() => {
  if (running?.child.exitCode === null) running.child.kill('SIGKILL');
  if (servingPidFile !== undefined) killByPidFile(servingPidFile);
  running = undefined;
  servingPidFile = undefined;
});

/** A terminate config (one mTLS listener routing / to the origin); `head` goes before `admin:`, `admin` under it. */
function writeConfig(name: string, head: string, admin = '') {
  return writeTerminateConfig({
    file: path.join(fixture.pki.dir, `${name}.yaml`),
    head,
    admin,
    sessionTickets: '  enabled: true\n',
    server: fixture.server,
    caFile: fixture.pki.caFile,
    allowId: id('frontend'),
    originPort: fixture.originPort,
  });
}

async function start(ports: { file: string; port: number; adminPort: number }): Promise<CliGateway> {
  servingPidFile = `${ports.file}.pid`;
  running = await startCli(ports, ['--pid-file', servingPidFile], children, { GATEHOUSE_LOG: 'info' });
  return running;
}

const exitOf = (g: CliGateway) => new Promise<{ code: number | null; at: number }>((resolve) => g.child.once('exit', (code) => resolve({ code, at: Date.now() })));
const conn = (g: CliGateway): RawConnectionOptions => ({ port: g.port, ca: fixture.pki.ca.rootPem, cert: fixture.client, servername: 'localhost' });
const GET = (p: string) => `GET ${p} HTTP/1.1\r\nhost: localhost\r\n\r\n`;
const readyz = (g: CliGateway) => fetch(`http://127.0.0.1:${g.adminPort}/readyz`).then(async (r) => `${r.status} ${(await r.text()).trim()}`);
const metric = async (g: CliGateway, name: string) => {
  const text = await fetch(`http://127.0.0.1:${g.adminPort}/metrics`).then((r) => r.text());
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
};
/** The JSON log lines named `msg`. */
const logLines = (g: CliGateway, msg: string) =>
  g
    .output()
    .split('\n')
    .filter((line) => line.includes(`"${msg}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('SIGTERM (one process)', () => {
  it('lets a 3 s request in flight finish with 200 and connection: close, says 503 on /readyz meanwhile, closes a quiet keep-alive connection at once, answers the next request of a busy one with connection: close, and exits 0', async () => {
    const g = await start(await writeConfig('sigterm', 'workers: 1\n'));
    const exit = exitOf(g);
    // Keep-alive connections: one quiet since its first answer, one that carries the slow request, one in steady use.
    const quiet = await openConversation(conn(g));
    const busy = await openConversation(conn(g));
    const steady = await openConversation(conn(g));
    for (const c of [quiet, busy, steady]) {
      const first = await c.send(GET('/'));
      expect(first.status).toBe(200);
      expect(first.header('connection')).toBeUndefined();
    }
    expect(await metric(g, 'gatehouse_draining')).toBe(0);
    await sleep(1200); // longer than the grace a connection that just answered gets
    const slowStarted = Date.now();
    const slow = busy.send(GET('/slow'));
    expect((await steady.send(GET('/'))).header('connection')).toBeUndefined();
    const quietClosed = quiet.closed.then(() => Date.now());
    const signalledAt = Date.now();
    g.child.kill('SIGTERM');
    await sleep(300);
    // Closed at once; the connection in steady use is still open, and its next request is answered, as the last.
    expect((await Promise.race([quietClosed, sleep(SLOW_MS).then(() => Infinity)])) - signalledAt).toBeLessThan(500);
    const next = await steady.send(GET('/'));
    expect(next.status).toBe(200);
    expect(next.header('connection')).toBe('close');
    await steady.closed;
    expect(await readyz(g)).toBe('503 draining');
    expect(await metric(g, 'gatehouse_draining')).toBe(1);

    const response = await slow;
    expect(response.status).toBe(200);
    expect(response.body).toBe('slow\n');
    expect(response.header('connection')).toBe('close');
    await busy.closed;
    const { code, at } = await exit;
    expect(code).toBe(0);
    expect(at - slowStarted).toBeGreaterThanOrEqual(SLOW_MS);
    expect(at - slowStarted).toBeLessThan(SLOW_MS + 2000);
    const [started] = logLines(g, 'drain_started');
    expect(started).toMatchObject({ why: 'SIGTERM', connections: 3, http_sessions: 3 });
    expect(logLines(g, 'drain_finished')[0]).toMatchObject({ why: 'SIGTERM', closed_at_timeout: 0 });
  }, 20_000);

  it('keeps accepting for drain.delay with /readyz at 503, then refuses new connections', async () => {
    const g = await start(await writeConfig('delay', 'workers: 1\ndrain:\n  delay: 1500ms\n'));
    const exit = exitOf(g);
    const keepAlive = await openConversation(conn(g));
    expect((await keepAlive.send(GET('/'))).status).toBe(200);
    const signalledAt = Date.now();
    g.child.kill('SIGTERM');
    await sleep(200);
    expect(await readyz(g)).toBe('503 draining');
    // Within the delay: a new connection is served, and a keep-alive one goes on as before.
    expect((await rawRequest(conn(g), GET('/'))).status).toBe(200);
    const during = await keepAlive.send(GET('/'));
    expect(during.status).toBe(200);
    expect(during.header('connection')).toBeUndefined();
    expect(Date.now() - signalledAt).toBeLessThan(1500);
    // After it, the idle connection is closed and nothing new is accepted.
    await keepAlive.closed;
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(1400);
    await expect(rawRequest(conn(g), GET('/'))).rejects.toThrow(/ECONNREFUSED/);
    expect((await exit).code).toBe(0);
  }, 20_000);

  it('ends at once on a second signal, cutting what is in flight', async () => {
    const g = await start(await writeConfig('twice', 'workers: 1\n'));
    const exit = exitOf(g);
    const busy = await openConversation(conn(g));
    const slow = busy.send(GET('/slow'));
    const outcome = slow.then(
      (r) => `answered ${r.status}`,
      (err: Error) => `failed: ${err.message}`,
    );
    await sleep(300);
    g.child.kill('SIGTERM');
    await sleep(700);
    expect(g.child.exitCode).toBeNull(); // draining: the slow request holds it
    const secondAt = Date.now();
    g.child.kill('SIGTERM');
    const { code, at } = await exit;
    expect(at - secondAt).toBeLessThan(500);
    expect(code).toBe(1);
    expect(await outcome).toBe('failed: connection closed before the response');
    expect(logLines(g, 'stopped_at_once')).toHaveLength(1);
  }, 20_000);
});

describe('drain.timeout', () => {
  it('cuts a passthrough relay that stays open, at drain.timeout, and exits 0', async () => {
    const backend = tls.createServer({ cert: fixture.server.chainPem, key: fixture.server.keyPem }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    try {
      const port = await freePort();
      const adminPort = await freePort();
      const file = path.join(fixture.pki.dir, 'relay.yaml');
      fs.writeFileSync(
        file,
        `workers: 1
drain:
  timeout: 1500ms
admin:
  address: 127.0.0.1:${adminPort}
lifecycle:
  watch: false
listeners:
  - name: relay
    address: 127.0.0.1:${port}
    routes:
      - name: db
        passthrough: { sni: [db.test] }
        backend: db
backends:
  - name: db
    endpoints: [127.0.0.1:${(backend.address() as net.AddressInfo).port}]
`,
      );
      const g = await start({ file, port, adminPort });
      const exit = exitOf(g);
      const relayed = tls.connect({ host: '127.0.0.1', port, servername: 'db.test', ca: fixture.pki.ca.rootPem, checkServerIdentity: () => undefined });
      relayed.on('error', () => {});
      await new Promise<void>((resolve, reject) => relayed.once('secureConnect', resolve).once('error', reject));
      const echoed = new Promise<string>((resolve) => relayed.once('data', (d: Buffer) => resolve(d.toString())));
      relayed.write('ping');
      expect(await echoed).toBe('ping');
      const closed = new Promise<number>((resolve) => relayed.once('close', () => resolve(Date.now())));
      const signalledAt = Date.now();
      g.child.kill('SIGTERM');
      const closedAt = await Promise.race([closed, sleep(5000).then(() => Infinity)]);
      expect(closedAt - signalledAt).toBeGreaterThanOrEqual(1400);
      expect(closedAt - signalledAt).toBeLessThan(3000);
      expect((await exit).code).toBe(0);
      expect(logLines(g, 'drain_finished')[0]).toMatchObject({ closed_at_timeout: 1 });
    } finally {
      await new Promise((resolve) => backend.close(resolve));
    }
  }, 20_000);
});

describe('POST /drain', () => {
  it('needs the admin token when admin.token_file is set, and then drains as SIGTERM does', async () => {
    const tokenFile = path.join(fixture.pki.dir, 'admin-token');
    fs.writeFileSync(tokenFile, 'let-me-drain\n');
    const g = await start(await writeConfig('post-drain', 'workers: 1\n', `  token_file: ${tokenFile}\n`));
    const exit = exitOf(g);
    const drainUrl = `http://127.0.0.1:${g.adminPort}/drain`;
    expect((await fetch(drainUrl, { method: 'POST' })).status).toBe(401);
    expect((await fetch(drainUrl, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect(await readyz(g)).toBe('200 ready'); // refused: nothing changed
    const busy = await openConversation(conn(g));
    const slow = busy.send(GET('/slow'));
    await sleep(300);
    const answer = await fetch(drainUrl, { method: 'POST', headers: { authorization: 'Bearer let-me-drain' } });
    expect(answer.status).toBe(202);
    expect(await answer.json()).toMatchObject({ draining: true, already: false, timeout_ms: 30_000 });
    await sleep(200);
    expect(await readyz(g)).toBe('503 draining');
    const response = await slow;
    expect(response.status).toBe(200);
    expect(response.header('connection')).toBe('close');
    expect((await exit).code).toBe(0);
    expect(logLines(g, 'drain_started')[0]).toMatchObject({ why: 'admin' });
  }, 20_000);
});

describe('with two workers', () => {
  it('SIGTERM to the primary drains every worker: the request in flight finishes with 200, /readyz 503, new connections refused, exit 0', async () => {
    const g = await start(await writeConfig('workers', 'workers: 2\n'));
    const exit = exitOf(g);
    // Several slow requests on keep-alive connections of their own: the kernel spreads them over both workers.
    const conversations = await Promise.all(Array.from({ length: 4 }, () => openConversation(conn(g))));
    const slow = conversations.map((c) => c.send(GET('/slow')));
    await sleep(500);
    const signalledAt = Date.now();
    g.child.kill('SIGTERM');
    await sleep(200);
    expect(await readyz(g)).toBe('503 draining');
    expect(await metric(g, 'gatehouse_draining')).toBe(1);
    // The workers stopped accepting, and the primary let go of the sockets it held for them: refused, not queued.
    await expect(rawRequest(conn(g), GET('/'))).rejects.toThrow(/ECONNREFUSED/);
    const responses = await Promise.all(slow);
    expect(responses.map((r) => `${r.status} ${r.header('connection')}`)).toEqual(Array(4).fill('200 close'));
    const { code, at } = await exit;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeLessThan(SLOW_MS + 2000);
    expect(logLines(g, 'drain_started').map((l) => l.why).sort()).toEqual(['SIGTERM', 'primary', 'primary']);
  }, 30_000);
});
