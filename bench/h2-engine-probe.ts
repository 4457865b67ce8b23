// Go/no-go measurement for the native HTTP/2 engine (gateway/http2/native/h2-engine.c): the same
// minimal mTLS HTTP/2 server two ways, node:http2 on the TLS socket (performServerHandshake, as
// gateway/http2/client-session.ts serves clients) and the engine on SocketIo, each answering
// every GET with 200, content-type text/plain and a 2-byte body. Each runs in a process of its own
// pinned to the proxy core; h2load (bench/load/h2load.c, with a client certificate) loads it from
// the load core; the figure is requests per server CPU-second. Modes alternate, round by round.
//
//   npm run build && flock /tmp/gatehouse-bench.lock node dist/bench/h2-engine-probe.js \
//     [--rounds 5] [--seconds 5] [--connections 8] [--streams 64] [--cpu-prof DIR]
//
// `serve MODE PORT CERT KEY CA [PROFILE_DIR]` is the server process itself.
import { Buffer } from 'node:buffer';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { h2Engine } from '../gateway/http2/native/h2-engine.js';
import { NativeH2ServerSession } from './h2-engine-server.js';
import { mintBenchPki } from './certificates.js';
import { CORES, HOST, WORK_DIR } from './layout.js';
import { runH2load, h2Problem, type H2Report } from './load/h2load.js';
import { treeCpuSeconds } from './proc-stats.js';
import { installCleanup, spawnTracked, stop, waitForPorts, type Tracked } from './processes.js';
import { buildH2load } from './tools.js';

const MODES = ['node-http2', 'native'] as const;
type Mode = (typeof MODES)[number];

const WARMUP_SECONDS = 2;

// ---- the server process ------------------------------------------------------------------------

const BODY = Buffer.from('ok');
const NATIVE_HEAD = [':status', '200', 'content-type', 'text/plain'] as const;
const NODE_HEAD = { ':status': 200, 'content-type': 'text/plain' } as const;

function serve(mode: Mode, port: number, cert: string, key: string, ca: string): void {
  const server = tls.createServer({ cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  if (mode === 'native') {
    const engine = h2Engine;
    if (engine === undefined) throw new Error('the native HTTP/2 engine was not built (npm run build; libnghttp2-dev)');
    const answer = (session: NativeH2ServerSession, streamId: number): void => session.respond(streamId, NATIVE_HEAD, BODY);
    server.on('secureConnection', (socket) => {
      socket.on('error', () => {});
      new NativeH2ServerSession(socket, engine, answer, { maxConcurrentStreams: 128, maxHeaderListBytes: 64 * 1024 });
    });
  } else {
    server.on('secureConnection', (socket) => {
      socket.on('error', () => {});
      const session = http2.performServerHandshake(socket, { settings: { maxConcurrentStreams: 128, enablePush: false } });
      session.on('error', () => {});
      session.on('stream', (stream) => {
        stream.on('error', () => {});
        stream.respond(NODE_HEAD);
        stream.end(BODY);
      });
    });
  }
  server.listen(port, HOST, () => process.stdout.write(`listening ${port}\n`));
  process.on('SIGTERM', () => process.exit(0)); // --cpu-prof writes its profile on a normal exit
}

// ---- the harness -------------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

interface Server {
  readonly mode: Mode;
  readonly port: number;
  readonly proc: Tracked;
}

interface Sample {
  readonly report: H2Report;
  readonly cpuSeconds: number;
  readonly perCpuSecond: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: string[]): Promise<void> {
  const rounds = Number(option(args, '--rounds') ?? 5);
  const seconds = Number(option(args, '--seconds') ?? 5);
  const connections = Number(option(args, '--connections') ?? 8);
  const streams = Number(option(args, '--streams') ?? 64);
  const profileDir = option(args, '--cpu-prof');
  installCleanup();
  await buildH2load();
  const pki = await mintBenchPki(path.join(WORK_DIR, 'h2-engine-probe'));
  const script = new URL(import.meta.url).pathname;
  const servers: Server[] = [];
  for (const mode of MODES) {
    const port = await freePort();
    const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(profileDir), '--cpu-prof-name', `${mode}.cpuprofile`] : [];
    const proc = spawnTracked(process.execPath, [...nodeArgs, script, 'serve', mode, String(port), pki.proxyServer.cert, pki.proxyServer.key, pki.caFile], { cpus: CORES.proxy });
    const problem = await waitForPorts(proc, HOST, [port]);
    if (problem) throw new Error(`${mode} server: ${problem}\n${proc.output()}`);
    servers.push({ mode, port, proc });
  }
  const load = (s: Server, secs: number): Promise<H2Report> =>
    runH2load({ port: s.port, sni: 'localhost', cert: pki.loadClient.cert, key: pki.loadClient.key, mode: 'get', connections, streams, seconds: secs });
  for (const s of servers) await load(s, WARMUP_SECONDS); // JIT warm, connections' memory in place

  const samples: Record<Mode, Sample[]> = { 'node-http2': [], native: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const s of servers) {
      const before = treeCpuSeconds(s.proc.pid);
      const report = await load(s, seconds);
      const cpuSeconds = treeCpuSeconds(s.proc.pid) - before;
      const problem = h2Problem(report);
      if (problem) throw new Error(`${s.mode}, round ${round}: ${problem}`);
      const sample = { report, cpuSeconds, perCpuSecond: report.requests / cpuSeconds };
      samples[s.mode].push(sample);
      console.log(`round ${round} ${s.mode.padEnd(10)} ${report.requests} requests in ${report.seconds.toFixed(2)} s, server CPU ${cpuSeconds.toFixed(2)} s: ${Math.round(sample.perCpuSecond)} req/CPU-s (${(1e6 / sample.perCpuSecond).toFixed(1)} µs/request), h2load CPU ${report.cpu_seconds.toFixed(2)} s`);
    }
  }
  for (const s of servers) await stop(s.proc);

  const med = (mode: Mode) => median(samples[mode].map((x) => x.perCpuSecond));
  console.log('');
  console.log(`| round | node-http2 req/CPU-s | native req/CPU-s | native / node-http2 |`);
  console.log(`|---|---|---|---|`);
  for (let r = 0; r < rounds; r++) {
    const n = samples['node-http2'][r]!.perCpuSecond;
    const v = samples.native[r]!.perCpuSecond;
    console.log(`| ${r + 1} | ${Math.round(n)} | ${Math.round(v)} | ${(v / n).toFixed(2)} |`);
  }
  const [n, v] = [med('node-http2'), med('native')];
  console.log(`| median | ${Math.round(n)} (${(1e6 / n).toFixed(1)} µs/req) | ${Math.round(v)} (${(1e6 / v).toFixed(1)} µs/req) | ${(v / n).toFixed(2)} |`);
  console.log(JSON.stringify({ connections, streams, seconds, rounds, medians: { 'node-http2': n, native: v }, ratio: v / n, samples }));
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'serve') serve(rest[0] as Mode, Number(rest[1]), rest[2]!, rest[3]!, rest[4]!);
else
  main(process.argv.slice(2)).catch((err: Error) => {
    console.error(`h2-engine-probe: ${err.message}`);
    process.exit(1);
  });
