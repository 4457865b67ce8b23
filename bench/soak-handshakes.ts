// A bounded soak of full mTLS handshakes: does the gateway's memory level off? Starts the origin and
// one gatehouse process (the benchmark's configuration, one worker, pinned as the benchmark pins
// them), then runs h1load in its new-connection mode (a full handshake and one proxied request per
// connection) in rounds until N handshakes are done, sampling after each round the gateway's
// resident memory (/proc) and what it says of itself on /metrics (V8 heap, external, array
// buffers, identity cache entries); then samples it idle. Prints a table and writes it to
// bench/results/soak-<date>.md.
//
// usage: npm run soak -- [--handshakes 100000] [--connections 16] [--round-seconds 5]
//                        [--idle-seconds 30] [--env NAME=VALUE]... [--label TEXT]
// --env passes variables to the gateway (e.g. MALLOC_ARENA_MAX=2) to compare allocators' behaviour.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintBenchPki } from './certificates.js';
import { runH1load } from './load/h1load.js';
import { CORES, GATEHOUSE_CLI, HOST, RESULTS_DIR, WORK_DIR, type Ports } from './layout.js';
import { originKeeper } from './origin-process.js';
import { originRuntime } from './origin-runtime.js';
import { gatehouseConfig } from './peers/gatehouse.js';
import { DEFAULT_SETTINGS, writeConfig } from './peers/peer.js';
import { processTree, treeCpuSeconds } from './proc-stats.js';
import { installCleanup, spawnTracked, stop, waitForPorts } from './processes.js';
import { buildH1load, loadAverage } from './tools.js';

const USAGE = `usage: npm run soak -- [--handshakes N] [--connections C] [--round-seconds S] [--idle-seconds S] [--env NAME=VALUE]... [--label TEXT]

  --handshakes N      full mTLS handshakes (each with one proxied request) in all (default 100000)
  --connections C     h1load's parallel connections (default 16)
  --round-seconds S   seconds of load between two samples (default 5)
  --idle-seconds S    seconds of idle sampling after the load (default 30)
  --env NAME=VALUE    an environment variable for the gateway process (repeatable)
  --label TEXT        a name for this run in the report
`;

interface SoakOptions {
  readonly handshakes: number;
  readonly connections: number;
  readonly roundSeconds: number;
  readonly idleSeconds: number;
  readonly env: Readonly<Record<string, string>>;
  readonly label: string;
}

function parse(argv: readonly string[]): SoakOptions {
  const o = { handshakes: 100_000, connections: 16, roundSeconds: 5, idleSeconds: 30, env: {} as Record<string, string>, label: '' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    const int = (max: number): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag} wants an integer from 1 to ${max}, got '${value ?? ''}'`);
      return n;
    };
    if (flag === '--handshakes') o.handshakes = int(10_000_000);
    else if (flag === '--connections') o.connections = int(1024);
    else if (flag === '--round-seconds') o.roundSeconds = int(600);
    else if (flag === '--idle-seconds') o.idleSeconds = int(3600);
    else if (flag === '--label') o.label = value ?? '';
    else if (flag === '--env' && value?.includes('=')) o.env[value.slice(0, value.indexOf('='))] = value.slice(value.indexOf('=') + 1);
    else throw new Error(`unknown or incomplete option '${flag}'`);
  }
  return o;
}

/** A loopback port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Sample {
  readonly label: string;
  readonly handshakes: number;
  readonly seconds: number;
  readonly rssKb: number;
  /** Anonymous resident memory (heap, mmap): what the process allocated, without mapped files. */
  readonly anonKb: number;
  readonly memory: Readonly<Record<string, number>>;
  readonly identities: number;
}

async function statusKb(pid: number, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN);
}

/** Sums a metric's samples whose labels include `labels`, from a Prometheus text page. */
function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ') || !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const MB = (bytes: number): string => (bytes / 1048576).toFixed(1);

async function main(o: SoakOptions): Promise<void> {
  installCleanup();
  const log = (line: string): void => void process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  await buildH1load();
  const dir = path.join(WORK_DIR, 'soak');
  const pki = await mintBenchPki(dir);
  const ports: Ports = { terminate: await freePort(), passthrough: await freePort(), origin: await freePort(), admin: await freePort(), originH2: await freePort() };
  const runtime = originRuntime();
  const origin = originKeeper(pki, ports, runtime, log);
  await origin.ensure();
  const configFile = await writeConfig(dir, 'gatehouse.yaml', gatehouseConfig({ pki, ports, dir }, DEFAULT_SETTINGS));
  const env = { ...process.env, GATEHOUSE_LOG: 'warn', ...o.env };
  const gateway = spawnTracked(process.execPath, [GATEHOUSE_CLI, 'start', '--config', configFile], { cpus: CORES.proxy, cwd: dir, env });
  const started = new Date();
  const loadBefore = loadAverage();
  try {
    const failure = await waitForPorts(gateway, HOST, [ports.terminate, ports.admin]);
    if (failure) throw new Error(`gatehouse ${failure}: ${gateway.output().trim().slice(-300)}`);
    // `gatehouse start` may relaunch itself once (session_tickets.per_handshake): the gateway is the leaf.
    const tree = processTree(gateway.pid);
    const pid = tree[tree.length - 1]!;
    const t0 = Date.now();
    const samples: Sample[] = [];
    let handshakes = 0;
    let errors = 0;
    const sample = async (label: string): Promise<Sample> => {
      const text = await (await fetch(`http://${HOST}:${ports.admin}/metrics`)).text();
      const memory: Record<string, number> = {};
      for (const kind of ['rss', 'heap_total', 'heap_used', 'v8_new_space', 'v8_old_space', 'external', 'array_buffers']) memory[kind] = metric(text, 'gatehouse_process_memory_bytes', `kind="${kind}"`);
      const s: Sample = {
        label,
        handshakes,
        seconds: (Date.now() - t0) / 1000,
        rssKb: await statusKb(pid, 'VmRSS'),
        anonKb: await statusKb(pid, 'RssAnon'),
        memory,
        identities: metric(text, 'gatehouse_identity_cache_entries'),
      };
      samples.push(s);
      log(`${label.padEnd(10)} ${String(handshakes).padStart(8)} handshakes  rss ${(s.rssKb / 1024).toFixed(1)} MB  heap ${MB(memory.heap_used!)}/${MB(memory.heap_total!)} MB (new ${MB(memory.v8_new_space!)}, old ${MB(memory.v8_old_space!)})  external ${MB(memory.external!)} MB  arrays ${MB(memory.array_buffers!)} MB`);
      return s;
    };
    log(`gatehouse pid ${pid} on core ${CORES.proxy}, h1load --mode close --connections ${o.connections} on core ${CORES.load}, until ${o.handshakes} handshakes`);
    await sample('start');
    const load = { port: ports.terminate, sni: 'localhost', cert: pki.loadClient.cert, key: pki.loadClient.key, mode: 'close' as const, connections: o.connections };
    // Bounded: at most one round per 50 handshakes asked for (a gateway doing < 10/s is broken).
    const maxRounds = Math.ceil(o.handshakes / 50);
    let loadSeconds = 0;
    for (let round = 0; handshakes < o.handshakes && round < maxRounds; round++) {
      await origin.ensure();
      // The last round only as long as the rate so far says the rest takes.
      const rate = loadSeconds > 0 ? handshakes / loadSeconds : 0;
      const seconds = rate > 0 ? Math.max(1, Math.min(o.roundSeconds, Math.ceil((o.handshakes - handshakes) / rate))) : o.roundSeconds;
      const report = await runH1load({ ...load, seconds });
      loadSeconds += report.seconds;
      handshakes += report.requests;
      errors += report.errors + report.non2xx;
      await sample(`load`);
      if (!gateway.isRunning()) throw new Error(`gatehouse exited (${await gateway.exited}): ${gateway.output().trim().slice(-300)}`);
    }
    const idleStart = Date.now();
    for (const at of new Set([1, 5, 10, 30, 60, 120, o.idleSeconds].filter((s) => s <= o.idleSeconds).sort((a, b) => a - b))) {
      const wait = idleStart + at * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      await sample(`idle ${at}s`);
    }
    const peakKb = await statusKb(pid, 'VmHWM');
    const cpu = treeCpuSeconds(pid);
    const report = markdown(o, samples, { started, loadBefore, loadAfter: loadAverage(), peakKb, cpu, errors, env: o.env, node: process.version, origin: runtime.version });
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `soak-${started.toISOString().slice(0, 16).replace(/[:T]/g, '-')}${o.label ? `-${o.label.replace(/[^a-z0-9]+/gi, '-')}` : ''}.md`);
    await writeFile(file, report);
    process.stdout.write(`\n${report}\nreport: ${path.relative(process.cwd(), file)}\n`);
  } finally {
    await stop(gateway);
    await origin.stop();
  }
}

function markdown(o: SoakOptions, samples: readonly Sample[], run: { started: Date; loadBefore: string; loadAfter: string; peakKb: number; cpu: number; errors: number; env: Readonly<Record<string, string>>; node: string; origin: string }): string {
  const rows = samples.map((s) =>
    `| ${s.label} | ${s.handshakes} | ${s.seconds.toFixed(0)} | ${(s.rssKb / 1024).toFixed(1)} | ${(s.anonKb / 1024).toFixed(1)} | ${MB(s.memory.heap_used!)} / ${MB(s.memory.heap_total!)} | ${MB(s.memory.v8_new_space!)} | ${MB(s.memory.v8_old_space!)} | ${MB(s.memory.external!)} | ${MB(s.memory.array_buffers!)} | ${s.identities} |`,
  );
  // Levelling off: what the second half of the load added beside what the first half did.
  const loaded = samples.filter((s) => s.label === 'load');
  const last = loaded[loaded.length - 1];
  const half = last && loaded.find((s) => s.handshakes >= last.handshakes / 2);
  const first = samples[0]!;
  const growth = last && half ? `RSS ${(first.rssKb / 1024).toFixed(1)} MB at start, ${(half.rssKb / 1024).toFixed(1)} MB after ${half.handshakes} handshakes, ${(last.rssKb / 1024).toFixed(1)} MB after ${last.handshakes}: the second half added ${((last.rssKb - half.rssKb) / 1024).toFixed(1)} MB, the first ${((half.rssKb - first.rssKb) / 1024).toFixed(1)} MB.` : '';
  const env = Object.entries(run.env).map(([k, v]) => `${k}=${v}`).join(' ');
  return `# Handshake soak${o.label ? `: ${o.label}` : ''} (${run.started.toISOString().slice(0, 16).replace('T', ' ')})

${o.handshakes} full mTLS handshakes asked for, each with one proxied 1 KB request (h1load --mode close,
${o.connections} connections, on core ${CORES.load} with the origin), against one gatehouse process (bench
configuration, one worker, core ${CORES.proxy})${env ? ` with ${env}` : ''}; ${run.errors} errors or non-2xx. Node ${run.node}
(origin on ${run.origin}). Load average ${run.loadBefore} before, ${run.loadAfter} after. Gateway CPU ${run.cpu.toFixed(0)} s (${last ? ((run.cpu * 1000) / last.handshakes).toFixed(2) : '?'} ms per handshake).
Peak RSS (VmHWM) ${(run.peakKb / 1024).toFixed(1)} MB.

${growth}

| sample | handshakes | s | RSS MB | anon MB | V8 heap used / total MB | V8 new space MB | V8 old space MB | external MB | array buffers MB | identities |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}

Command: \`npm run soak -- --handshakes ${o.handshakes} --connections ${o.connections} --round-seconds ${o.roundSeconds} --idle-seconds ${o.idleSeconds}${Object.entries(run.env).map(([k, v]) => ` --env ${k}=${v}`).join('')}\`
`;
}

let options: SoakOptions;
try {
  options = parse(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
main(options).catch((err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
