// The compiled CLI as an operator runs it, for end-to-end tests: a terminate config on free
// loopback ports (one mTLS listener routing `/` to a plain HTTP origin), `gatehouse start` spawned
// and awaited until /readyz answers, and stopped with SIGTERM to the CLI process itself.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TestPki, id, type WrittenCert } from './test-pki.js';

export const CLI = path.resolve('dist/gateway/cli.js');

export interface CliGateway {
  child: ChildProcess;
  port: number;
  adminPort: number;
  output: () => string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

/**
 * The first of `count` consecutive loopback ports that are free now (for `gatehouse start
 * --port-base`), picked below Linux's ephemeral range so outgoing connections do not take them.
 */
export async function freePortRun(count: number): Promise<number> {
  const bindable = (port: number) =>
    new Promise<net.Server | undefined>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const servers = await Promise.all(Array.from({ length: count }, (_, i) => bindable(base + i)));
    await Promise.all(servers.map((s) => s && new Promise((resolve) => s.close(resolve))));
    if (servers.every((s) => s !== undefined)) return base;
  }
  throw new Error(`no ${count} consecutive free loopback ports found in 50 attempts`);
}

/** Runs a command to its end (20 s at most): its exit code (1 when killed or not started) and output. */
export function runCommand(argv: readonly string[], options: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { ...options, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

export interface EmbeddedDemo {
  /** The working directory it runs in (its dev PKI is under .gatehouse/dev). */
  readonly cwd: string;
  /** terminate, passthrough, admin and demo upstream are on portBase .. portBase + 3. */
  readonly portBase: number;
  /** What it printed to stdout so far. */
  banner(): string;
  /** SIGTERM, wait for the exit, remove the working directory. */
  stop(): Promise<void>;
}

/**
 * `gatehouse start --port-base P` with no config (the embedded demo, as a new user starts it) in a
 * fresh working directory on free ports; resolved once its banner contains `bannerUntil` (20 s at most).
 */
export async function startEmbeddedDemo(bannerUntil: string): Promise<EmbeddedDemo> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm test\` (it compiles first) or \`npm run build\``);
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-demo-'));
  const portBase = await freePortRun(4);
  const child = spawn(process.execPath, [CLI, 'start', '--port-base', String(portBase)], { cwd, env: { ...process.env, GATEHOUSE_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let banner = '';
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(cwd, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no '${bannerUntil}' in the banner within 20 s: ${banner}${stderr}`)), 20_000);
      child.stdout!.on('data', (c) => {
        banner += c;
        if (banner.includes(bannerUntil)) {
          clearTimeout(timer);
          setTimeout(resolve, 200);
        }
      });
      child.once('exit', (code) => reject(new Error(`gatehouse start exited with ${code}: ${stderr}`)));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { cwd, portBase, banner: () => banner, stop };
}

export interface TerminateConfig {
  /** Where the YAML file goes. */
  file: string;
  /** Top-level lines before `admin:` (e.g. `workers: 2\n`). */
  head?: string;
  /** Lines under `admin:` after its address, indented by two spaces (e.g. `  token_file: F\n`). */
  admin?: string;
  /** The lines under `session_tickets:`, indented by two spaces. */
  sessionTickets: string;
  server: { certFile: string; keyFile: string };
  caFile: string;
  allowId: string;
  originPort: number;
}

/** Writes a terminate config on two free ports; returns them. */
export async function writeTerminateConfig(c: TerminateConfig): Promise<{ file: string; port: number; adminPort: number }> {
  const port = await freePort();
  const adminPort = await freePort();
  fs.writeFileSync(
    c.file,
    `${c.head ?? ''}admin:
  address: 127.0.0.1:${adminPort}
${c.admin ?? ''}lifecycle:
  watch: false
session_tickets:
${c.sessionTickets}listeners:
  - name: public
    address: 127.0.0.1:${port}
    tls:
      min_version: TLSv1.3
      certificates:
        - cert: ${c.server.certFile}
          key: ${c.server.keyFile}
      client_auth:
        trust_bundle: ${c.caFile}
    routes:
      - name: all
        match:
          path_prefix: /
        upstream: origin
        authorize:
          allow: [${c.allowId}]
upstreams:
  - name: origin
    endpoints: [127.0.0.1:${c.originPort}]
`,
  );
  return { file: c.file, port, adminPort };
}

/** `gatehouse start --config FILE ...args`, resolved once /readyz answers 200 (30 s at most); `children` collects it for a cleanup. */
export async function startCli(ports: { file: string; port: number; adminPort: number }, args: string[], children: Set<ChildProcess>, env: NodeJS.ProcessEnv = {}): Promise<CliGateway> {
  const { file, port, adminPort } = ports;
  const child = spawn(process.execPath, [CLI, 'start', '--config', file, ...args], {
    env: { ...process.env, GATEHOUSE_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}: ${out}`);
    if (Date.now() > deadline) throw new Error(`gatehouse not ready within 30 s: ${out}`);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) return { child, port, adminPort, output: () => out };
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM to the CLI process (not its group); resolves with its exit code. */
export async function stopCli(g: CliGateway, children: Set<ChildProcess>): Promise<number | null> {
  if (g.child.exitCode !== null) return g.child.exitCode;
  const exited = new Promise<number | null>((resolve) => g.child.once('exit', (code) => resolve(code)));
  g.child.kill('SIGTERM');
  const code = await exited;
  children.delete(g.child);
  return code;
}

export interface CliFixture {
  pki: TestPki;
  server: WrittenCert;
  /** Identity `frontend`, the one the config allows. */
  client: WrittenCert;
  originPort: number;
  /** Kills what is left of `children`, stops the origin, removes the PKI. */
  close(): Promise<void>;
}

/** A test PKI (server `localhost`, client `frontend`) and a plain HTTP origin, for beforeAll; the origin answers /slow after `slowMs`. */
export async function cliFixture(children: Set<ChildProcess>, options: { slowMs?: number } = {}): Promise<CliFixture> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm test\` (it compiles first) or \`npm run build\``);
  const pki = await TestPki.create();
  const server = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  const client = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  const origin = http.createServer((req, res) => {
    if (req.url === '/slow' && options.slowMs !== undefined) setTimeout(() => res.end('slow\n'), options.slowMs);
    else res.end('origin\n');
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const originPort = (origin.address() as net.AddressInfo).port;
  const close = async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
    pki.cleanup();
  };
  return { pki, server, client, originPort, close };
}


/** The pid a `--pid-file` names, or undefined (not written yet, or removed at exit). */
export function readPid(file: string): number | undefined {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

/** Running (a zombie, which an orphan whose reaper is slow can be for a while, is not). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * SIGKILL to the process a pid file names: the serving process, which outlives a SIGKILL to the
 * CLI process when that one relaunched it (openssl-tuning.ts) or handed over to it; workers follow their primary.
 */
export function killByPidFile(file: string): void {
  const pid = readPid(file);
  if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
}
