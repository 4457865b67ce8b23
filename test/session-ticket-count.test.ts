// `session_tickets.per_handshake` as an operator runs it: the compiled CLI forks its workers under
// a generated OpenSSL config (or, in-process, relaunches itself under it), and a real mTLS client
// then receives exactly that many TLS 1.3 tickets per full handshake (OpenSSL's default would be
// 2); none when tickets are disabled; one ticket resumes the next connections; SIGTERM to the CLI
// stops every process; a user's
// own OPENSSL_CONF wins with a warning; a bad value is reported once, with no relaunch.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliFixture, startCli, stopCli, writeTerminateConfig, type CliFixture, type CliGateway } from './support/gatehouse-cli.js';
import { TestPki, id, type WrittenCert } from './support/test-pki.js';

let pki: TestPki;
let server: WrittenCert;
let client: WrittenCert;
let originPort: number;
const children = new Set<ChildProcess>();

type Gateway = CliGateway;

function writeConfig(name: string, perHandshake: number | string): Promise<{ file: string; port: number; adminPort: number }> {
  return writeTerminateConfig({ file: path.join(pki.dir, `${name}.yaml`), sessionTickets: `  per_handshake: ${perHandshake}\n`, server, caFile: pki.caFile, allowId: id('frontend'), originPort });
}

async function startGatehouse(name: string, perHandshake: number, workers: number, env: NodeJS.ProcessEnv = {}): Promise<Gateway> {
  return startCli(await writeConfig(name, perHandshake), ['--workers', String(workers)], children, env);
}

const stop = (g: Gateway) => stopCli(g, children);

/** Live processes whose parent is `pid` (Linux /proc), with their command lines. */
function childProcesses(pid: number): { pid: number; cmdline: string[] }[] {
  const found: { pid: number; cmdline: string[] }[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push({ pid: Number(name), cmdline: fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean) });
    } catch {
      /* exited meanwhile */
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}

interface Exchange {
  status: string;
  sessions: number;
  session: Buffer | undefined;
  reused: boolean;
}

/** One mTLS connection with one HTTP request (Connection: close); counts the 'session' events (NewSessionTicket messages) until the server closes. */
function exchange(port: number, session?: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    let sessions = 0;
    let last: Buffer | undefined;
    let response = '';
    let reused = false;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.rootPem, cert: client.chainPem, key: client.keyPem, session, minVersion: 'TLSv1.3' });
    const timer = setTimeout(() => socket.destroy(new Error('exchange timed out after 10 s')), 10_000);
    socket.on('session', (s: Buffer) => {
      sessions++;
      last = s;
    });
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (c: Buffer) => (response += c.toString('latin1')));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ status: response.split('\r\n')[0] ?? '', sessions, session: last, reused });
    });
  });
}

let fixture: CliFixture | undefined;
beforeAll(async () => {
  fixture = await cliFixture(children);
  ({ pki, server, client, originPort } = fixture);
}, 30_000);

afterAll(() => fixture?.close());

describe('session_tickets.per_handshake', () => {
  it.each([
    { perHandshake: 1, workers: 1 },
    { perHandshake: 3, workers: 1 },
    { perHandshake: 3, workers: 2 },
  ])('sends exactly $perHandshake ticket(s) per full handshake with --workers $workers, and SIGTERM to the CLI stops every process', async ({ perHandshake, workers }) => {
    const g = await startGatehouse(`tickets-${perHandshake}-${workers}`, perHandshake, workers);
    // In-process: the CLI relaunches itself under the flag. With workers: the CLI is their primary
    // and forks them with the flag; it does not relaunch.
    const underCli = childProcesses(g.child.pid!);
    const serving = workers === 1 ? underCli : underCli.filter((p) => p.cmdline.some((a) => a.startsWith('--openssl-config=')));
    expect(serving, underCli.map((p) => p.cmdline.join(' ')).join('\n')).toHaveLength(workers);
    if (workers > 1) expect(underCli).toHaveLength(workers); // no relaunched primary in between
    const flag = serving[0]!.cmdline.find((a) => a.startsWith('--openssl-config='));
    expect(flag, serving[0]!.cmdline.join(' ')).toBeDefined();
    expect(fs.readFileSync(flag!.slice('--openssl-config='.length), 'utf8')).toContain(`NumTickets = ${perHandshake}`);
    for (const w of serving) expect(w.cmdline, 'every serving process has the flag').toContain(flag);
    if (workers === 1) expect(childProcesses(serving[0]!.pid), 'in-process: no workers').toHaveLength(0);

    // Several connections: with two workers they land on both (round-robin).
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await exchange(g.port);
      expect(r.status).toBe('HTTP/1.1 200 OK');
      expect(r.reused).toBe(false);
      counts.push(r.sessions);
    }
    console.log(`[session-ticket-count] per_handshake ${perHandshake}, --workers ${workers}: tickets per connection ${counts.join(', ')}`);
    expect(counts).toEqual([perHandshake, perHandshake, perHandshake, perHandshake]);

    const pids = [g.child.pid!, ...serving.map((p) => p.pid)];
    expect(await stop(g)).toBe(0);
    expect(await waitGone(pids, 5000), 'processes left after SIGTERM to the CLI').toEqual([]);
  }, 60_000);

  it('sends no ticket at all when session tickets are disabled', async () => {
    const config = await writeTerminateConfig({ file: path.join(pki.dir, 'tickets-off.yaml'), sessionTickets: '  enabled: false\n', server, caFile: pki.caFile, allowId: id('frontend'), originPort });
    const g = await startCli(config, ['--workers', '1'], children);
    try {
      for (let i = 0; i < 2; i++) {
        const r = await exchange(g.port);
        expect(r.status).toBe('HTTP/1.1 200 OK');
        expect(r.sessions).toBe(0);
      }
    } finally {
      expect(await stop(g)).toBe(0);
    }
  }, 60_000);

  it('with one ticket per handshake, the next connections resume with it', async () => {
    const g = await startGatehouse('tickets-resume', 1, 1);
    try {
      const first = await exchange(g.port);
      expect(first.sessions).toBe(1);
      const second = await exchange(g.port, first.session);
      expect(second.status).toBe('HTTP/1.1 200 OK');
      expect(second.reused).toBe(true);
      // OpenSSL 3.0 issues no ticket on a resumed connection (whatever NumTickets says); the one
      // ticket stays valid (not single-use on the server) and resumes again.
      expect(second.sessions).toBe(0);
      const third = await exchange(g.port, first.session);
      expect(third.status).toBe('HTTP/1.1 200 OK');
      expect(third.reused).toBe(true);
    } finally {
      expect(await stop(g)).toBe(0);
    }
  }, 60_000);

  it("leaves a user's own OPENSSL_CONF in charge: one warning, no relaunch, OpenSSL's default of 2", async () => {
    const conf = path.join(pki.dir, 'user-openssl.cnf');
    fs.writeFileSync(conf, '# an operator-supplied OpenSSL configuration\n');
    const g = await startGatehouse('tickets-user-conf', 1, 1, { OPENSSL_CONF: conf });
    try {
      expect(childProcesses(g.child.pid!)).toEqual([]);
      expect(g.output().match(/session_tickets_per_handshake_not_applied/g)).toHaveLength(1);
      expect((await exchange(g.port)).sessions).toBe(2);
    } finally {
      expect(await stop(g)).toBe(0);
    }
  }, 60_000);

  it('reports a bad value once and exits 1 without relaunching', async () => {
    const { file } = await writeConfig('tickets-bad', 9);
    const child = spawn(process.execPath, [CLI, 'start', '--config', file], { env: { ...process.env, GATEHOUSE_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr!.on('data', (c) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([`${file}:6:18: session_tickets.per_handshake: 9 is out of range (1 to 8)`]);
  }, 30_000);
});
