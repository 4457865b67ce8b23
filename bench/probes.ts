// The measurements the scenarios are made of. Each drives one load generator on the load core
// against the peer's terminate or passthrough listener and divides by the peer's CPU time.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CORES, DIST_BENCH, GRPC_PATH, H2_LOAD, PASSTHROUGH_SNI, REPO_ROOT } from './layout.js';
import { abArgs, runAb } from './load/ab.js';
import { h1loadArgs, h1Problem, runH1load, type H1Mode, type H1Report, type H1Request } from './load/h1load.js';
import { h2loadArgs, h2Problem, runH2load, type H2Mode, type H2Report, type H2Request } from './load/h2load.js';
import { runSTime, sTimeArgs } from './load/s-time.js';
import { spawnTracked, stop } from './processes.js';
import { perCpuSecond, withCpu, type Measurement, type Metric, type Probe, type ProbeTarget } from './probe.js';
import { treeRssBytes } from './proc-stats.js';
import { buildH2load, H1LOAD, H2LOAD } from './tools.js';

/** A command line as a person would type it, with paths shown relative to the repository. */
export function shellLine(cmd: string, args: readonly string[]): string {
  const rel = (s: string): string => (s.startsWith(REPO_ROOT + path.sep) ? path.relative(REPO_ROOT, s) : s);
  return [`taskset -c ${CORES.load}`, rel(cmd), ...args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? rel(a) : `'${a}'`))].join(' ');
}

const MODE_TEXT: Record<Exclude<H1Mode, 'handshake'>, string> = {
  keepalive: 'keep-alive',
  close: 'new connection per request',
  resume: 'resumed connection per request',
};

/** The load client of the terminate listener: its port, SNI and client certificate. */
const terminateClient = (t: ProbeTarget) => ({ port: t.ports.terminate, sni: 'localhost', cert: t.pki.loadClient.cert, key: t.pki.loadClient.key });

export function terminateRequest(t: ProbeTarget, mode: H1Mode): H1Request {
  return {
    ...terminateClient(t),
    mode,
    connections: t.options.concurrency,
    seconds: t.options.seconds,
  };
}

/** How a probe drives one load generator: its command line, a run, and what its report says. */
export interface LoadTool<Req extends { readonly seconds: number }, Rep extends { readonly requests: number }> {
  readonly binary: string;
  args(r: Req): string[];
  run(r: Req): Promise<Rep>;
  problem(r: Rep): string | undefined;
  /** Work before the first run (building the tool); a failure fails the cell. */
  prepare?(): Promise<void>;
}

export const H1_TOOL: LoadTool<H1Request, H1Report> = { binary: H1LOAD, args: h1loadArgs, run: runH1load, problem: h1Problem };
export const H2_TOOL: LoadTool<H2Request, H2Report> = { binary: H2LOAD, args: h2loadArgs, run: runH2load, problem: h2Problem, prepare: buildH2load };

/** A probe that runs a load generator once and turns its report and the peer's CPU time into values. */
function loadProbe<Req extends { readonly seconds: number }, Rep extends { readonly requests: number }>(
  tool: LoadTool<Req, Rep>,
  id: string,
  metrics: Metric[],
  request: (t: ProbeTarget) => Req,
  values: (r: Rep, cpuSeconds: number) => Record<string, number>,
): Probe {
  return {
    id,
    metrics,
    command: (t) => shellLine(tool.binary, tool.args(request(t))),
    async run(t): Promise<Measurement> {
      await tool.prepare?.();
      // Its own load first, unmeasured: the runner's keep-alive warm-up leaves the code paths of
      // handshakes and relays cold, and a JIT compiling them is not what a running gateway costs.
      await tool.run({ ...request(t), seconds: t.options.warmupSeconds }).catch(() => undefined);
      const { result: r, cpuSeconds } = await withCpu(t.pid, () => tool.run(request(t)));
      return { values: r.requests > 0 ? values(r, cpuSeconds) : {}, problem: tool.problem(r) };
    },
  };
}

const h1Probe = (id: string, metrics: Metric[], request: (t: ProbeTarget) => H1Request, values: (r: H1Report, cpuSeconds: number) => Record<string, number>): Probe =>
  loadProbe(H1_TOOL, id, metrics, request, values);

/** Rate and per-CPU-second of the count a load generator reports (requests, or handshakes). */
const countRates = (r: { readonly requests: number; readonly seconds: number }, cpuSeconds: number): Record<string, number> => ({
  rate: r.requests / r.seconds,
  perCpu: perCpuSecond(r.requests, cpuSeconds),
});

/** HTTP/1.1 GET / (1 KB) through the terminate listener with h1load. */
export function httpProbe(mode: Exclude<H1Mode, 'handshake'>): Probe {
  const what = MODE_TEXT[mode];
  const metrics: Metric[] = [
    { key: 'rate', label: `${what}: requests/s`, unit: 'req/s' },
    { key: 'perCpu', label: `${what}: requests per gateway CPU-second`, unit: 'req/CPU-s' },
  ];
  if (mode === 'resume') metrics.push({ key: 'resumed', label: `${what}: connections resumed (%)`, unit: '%', digits: 1, chart: false });
  return h1Probe(`h1-${mode}`, metrics, (t) => terminateRequest(t, mode), (r, cpu) => ({
    ...countRates(r, cpu),
    resumed: r.connections ? (100 * r.resumed) / r.connections : 0,
  }));
}

/** What an HTTP/2 load is, as the rows of its probe (and the targets) name it. */
export const H2_MODE_TEXT: Readonly<Record<H2Mode, string>> = {
  get: `HTTP/2, ${H2_LOAD.connections} connections × ${H2_LOAD.streams} streams`,
  grpc: `gRPC unary, ${H2_LOAD.connections} connections × ${H2_LOAD.streams} streams`,
};

export function h2Request(t: ProbeTarget, mode: H2Mode): H2Request {
  return {
    ...terminateClient(t),
    mode,
    connections: H2_LOAD.connections,
    streams: H2_LOAD.streams,
    seconds: t.options.seconds,
    path: mode === 'grpc' ? GRPC_PATH : '/',
  };
}

/**
 * HTTP/2 through the terminate listener with h2load: GET / (1 KB), or gRPC unary calls that count
 * only with the trailer grpc-status: 0. The last row is h2load's own CPU time over the run's
 * wall time: with the origin on the same core, near 100% (with the origin's share) means the load
 * core, not the peer, set the rate.
 */
export function h2Probe(mode: H2Mode): Probe {
  const what = H2_MODE_TEXT[mode];
  return loadProbe(
    H2_TOOL,
    `h2-${mode}`,
    [
      { key: 'rate', label: `${what}: requests/s`, unit: 'req/s' },
      { key: 'perCpu', label: `${what}: requests per gateway CPU-second`, unit: 'req/CPU-s' },
      { key: 'loadCpu', label: `${what}: h2load's own CPU (% of the load core)`, unit: '%', digits: 0, chart: false },
    ],
    (t) => h2Request(t, mode),
    (r, cpu) => ({ ...countRates(r, cpu), loadCpu: (100 * r.cpu_seconds) / r.seconds }),
  );
}

/** ab -k: the same keep-alive load over HTTP/1.0, as a cross-check of h1load. */
export function abKeepAliveProbe(): Probe {
  const req = (t: ProbeTarget) => ({ port: t.ports.terminate, pem: t.pki.loadClient.pem, keepAlive: true, concurrency: t.options.concurrency, seconds: t.options.seconds });
  return {
    id: 'ab-keepalive',
    metrics: [
      { key: 'rate', label: 'ab -k (HTTP/1.0), cross-check: requests/s', unit: 'req/s', chart: false },
      { key: 'perCpu', label: 'ab -k (HTTP/1.0), cross-check: requests per gateway CPU-second', unit: 'req/CPU-s', chart: false },
    ],
    command: (t) => shellLine('ab', abArgs(req(t))),
    async run(t): Promise<Measurement> {
      const { result: r, cpuSeconds } = await withCpu(t.pid, () => runAb(req(t)));
      const problems: string[] = [];
      if (r.complete === 0) problems.push('no completed request');
      if (r.failed > r.complete / 100) problems.push(`${r.failed} failed`);
      if (r.non2xx > r.complete / 100) problems.push(`${r.non2xx} non-2xx (HTTP/1.0 forwarded as is; the origin answers 505)`);
      return { values: problems.length ? {} : { rate: r.complete / r.seconds, perCpu: perCpuSecond(r.complete, cpuSeconds) }, problem: problems.join(', ') || undefined };
    },
  };
}

/** Full mTLS handshakes, no request: connect, handshake, close, 32 at a time, with h1load. */
export function handshakeProbe(): Probe {
  return h1Probe(
    'h1-handshake',
    [
      { key: 'rate', label: 'full handshakes, no request: handshakes/s', unit: 'hs/s' },
      { key: 'perCpu', label: 'full handshakes, no request: handshakes per gateway CPU-second', unit: 'hs/CPU-s' },
    ],
    (t) => terminateRequest(t, 'handshake'),
    countRates,
  );
}

/**
 * The same with several `openssl s_time -new` in parallel, as a cross-check. Measured here,
 * HAProxy spends about half the CPU per s_time handshake that it spends per h1load handshake
 * (it counts both as completed SSL connections), while NGINX spends the same on both; h1load's
 * cost matches a handshake followed by a request, so it is the reference.
 */
export function sTimeHandshakeProbe(): Probe {
  const req = (t: ProbeTarget) => ({ port: t.ports.terminate, cert: t.pki.loadClient.cert, key: t.pki.loadClient.key, mode: 'new' as const, seconds: t.options.seconds, parallel: t.options.sTimeParallel });
  return {
    id: 's_time-new',
    metrics: [
      { key: 'rate', label: 's_time -new (cross-check): handshakes/s', unit: 'hs/s', chart: false },
      { key: 'perCpu', label: 's_time -new (cross-check): handshakes per gateway CPU-second', unit: 'hs/CPU-s', chart: false },
    ],
    command: (t) => `${t.options.sTimeParallel} in parallel: ${shellLine('openssl', sTimeArgs(req(t)))}`,
    async run(t): Promise<Measurement> {
      const { result: r, cpuSeconds } = await withCpu(t.pid, () => runSTime(req(t)));
      const problem = r.failedProcesses > 0 ? `${r.failedProcesses}/${t.options.sTimeParallel} s_time failed: ${r.firstError ?? ''}` : undefined;
      return { values: r.connections > 0 ? { rate: r.connections / r.seconds, perCpu: perCpuSecond(r.connections, cpuSeconds) } : {}, problem };
    },
  };
}

export function relayRequest(t: ProbeTarget, mode: 'keepalive' | 'handshake'): H1Request {
  return {
    port: t.ports.passthrough,
    sni: PASSTHROUGH_SNI,
    cert: t.pki.loadClient.cert,
    key: t.pki.loadClient.key,
    mode,
    connections: mode === 'keepalive' ? 1 : 8,
    seconds: t.options.seconds,
    ...(mode === 'keepalive' ? { path: '/big' } : {}),
  };
}

/** 10 MB downloads, back to back on one connection, relayed by SNI without terminating. */
export function relayBulkProbe(): Probe {
  return h1Probe(
    'relay-bulk',
    [
      { key: 'rate', label: 'relay, 10 MB bodies on one connection: MB/s', unit: 'MB/s', digits: 0 },
      { key: 'perCpu', label: 'relay, 10 MB bodies: MB per gateway CPU-second', unit: 'MB/CPU-s', digits: 0 },
    ],
    (t) => relayRequest(t, 'keepalive'),
    (r, cpu) => ({ rate: r.bytes / 1e6 / r.seconds, perCpu: perCpuSecond(r.bytes / 1e6, cpu) }),
  );
}

/** New TLS connections through the relay (the origin does the handshake). */
export function relayConnectionsProbe(): Probe {
  return h1Probe(
    'relay-connections',
    [
      { key: 'rate', label: 'relay, new connections (handshake with the origin): connections/s', unit: 'conn/s' },
      { key: 'perCpu', label: 'relay, new connections: connections per gateway CPU-second', unit: 'conn/CPU-s' },
    ],
    (t) => relayRequest(t, 'handshake'),
    countRates,
  );
}

const IDLE_CLIENT = path.join(DIST_BENCH, 'load', 'idle-client.js');

/** Resident memory that N idle, handshaken mTLS client connections add to the peer. */
export function idleMemoryProbe(): Probe {
  const args = (t: ProbeTarget): string[] => [
    IDLE_CLIENT, '--port', String(t.ports.terminate), '--cert', t.pki.loadClient.cert, '--key', t.pki.loadClient.key, '--count', String(t.options.idleConnections),
  ];
  return {
    id: 'idle-memory',
    metrics: [
      { key: 'perThousand', label: 'resident memory added per 1,000 idle mTLS connections (MB, lower is better)', unit: 'MB', lowerIsBetter: true, digits: 1 },
      { key: 'baseline', label: 'resident memory before the connections (MB, lower is better)', unit: 'MB', lowerIsBetter: true, digits: 1, chart: false },
    ],
    command: (t) => shellLine('node', args(t)),
    async run(t): Promise<Measurement> {
      const baseline = treeRssBytes(t.pid);
      let ready: string | undefined;
      const client = spawnTracked(process.execPath, args(t), {
        cpus: CORES.load,
        onStdout: (chunk) => {
          ready ??= /^ready \d+ \d+$/m.exec(chunk)?.[0];
        },
      });
      try {
        const deadline = Date.now() + 30_000 + t.options.idleConnections * 20;
        while (!ready && client.isRunning() && Date.now() < deadline) await sleep(100);
        if (!ready) return { values: {}, problem: `idle client did not finish: ${client.output().trim().slice(-200)}` };
        const [, openText, failedText] = ready.split(' ');
        const open = Number(openText);
        const after = treeRssBytes(t.pid);
        const problem = Number(failedText) > 0 ? `${failedText} of ${t.options.idleConnections} connections failed or were closed` : undefined;
        if (open === 0) return { values: {}, problem };
        return { values: { perThousand: ((after - baseline) / 1e6) * (1000 / open), baseline: baseline / 1e6 }, problem };
      } finally {
        await stop(client);
      }
    },
  };
}
