// `npm run bench`: gatehouse side by side with HAProxy and NGINX on mTLS termination, handshakes,
// resumption, passthrough, workers and memory. Installs missing peers, mints certificates, starts
// the origin, runs the selected scenarios (each peer alone, in turn), writes
// bench/results/<date>.md, latest.md and latest.svg, and stops every process it started.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mintBenchPki, type BenchPki } from './certificates.js';
import { CORES, HOST, portsFrom, RESULTS_DIR, WORK_DIR, type Ports } from './layout.js';
import { parseOptions, USAGE, UsageError, type BenchOptions } from './options.js';
import { gatehouseConfig } from './peers/gatehouse.js';
import { haproxyConfig } from './peers/haproxy.js';
import { nginxConfig } from './peers/nginx.js';
import { DEFAULT_SETTINGS } from './peers/peer.js';
import { canConnect, installCleanup } from './processes.js';
import { originArgs, originKeeper } from './origin-process.js';
import { originH2Args, originH2Config, originH2Keeper } from './origin-h2.js';
import { markdownReport, type ReportInput } from './report-markdown.js';
import { svgChart } from './report-svg.js';
import { acquireRunLock } from './run-lock.js';
import { runScenario, type ScenarioResult } from './runner.js';
import { originRuntime } from './origin-runtime.js';
import { allScenarios, needsH2Origin } from './scenarios.js';
import { buildH1load, ensureTools, loadAverage, machineInfo } from './tools.js';

const log = (line: string): void => {
  process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
};

/** The configurations the report shows: default settings plus scenario 4's relay listener, and scenarios 9-10's HTTP/2. */
const WITH_RELAY = { ...DEFAULT_SETTINGS, relay: true };
const WITH_HTTP2 = { ...DEFAULT_SETTINGS, http2: true };
const ORIGIN_H2_DIR = path.join(WORK_DIR, 'origin-h2');

function configsForReport(pki: BenchPki, ports: Ports, http2: boolean): ReportInput['configs'] {
  const ctx = (name: string) => ({ pki, ports, dir: path.join(WORK_DIR, name) });
  const plain = [
    { label: 'gatehouse (bench/.work/gatehouse/gatehouse.yaml)', language: 'yaml', text: gatehouseConfig(ctx('gatehouse'), WITH_RELAY) },
    { label: 'HAProxy (bench/.work/haproxy/haproxy.cfg)', language: 'haproxy', text: haproxyConfig(ctx('haproxy'), WITH_RELAY) },
    { label: 'NGINX (bench/.work/nginx/nginx.conf)', language: 'nginx', text: nginxConfig(ctx('nginx'), WITH_RELAY) },
  ];
  if (!http2) return plain;
  return [
    ...plain,
    { label: 'gatehouse, HTTP/2 (scenarios 9-10)', language: 'yaml', text: gatehouseConfig(ctx('gatehouse'), WITH_HTTP2) },
    { label: 'HAProxy, HTTP/2 (scenarios 9-10)', language: 'haproxy', text: haproxyConfig(ctx('haproxy'), WITH_HTTP2) },
    { label: 'NGINX, HTTP/2 (scenarios 9-10)', language: 'nginx', text: nginxConfig(ctx('nginx'), WITH_HTTP2) },
    { label: 'the HTTP/2 origin, NGINX (bench/.work/origin-h2/nginx.conf)', language: 'nginx', text: originH2Config(pki, ports, ORIGIN_H2_DIR) },
  ];
}

function stamp(d: Date): string {
  return d.toISOString().slice(0, 16).replace(/[:T]/g, '-');
}

async function writeReports(input: Omit<ReportInput, 'chartFile'>): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const o = input.options;
  const base = `${stamp(input.started)}${o.quick ? '-quick' : ''}${o.only.size ? `-only-${[...o.only].sort((a, b) => a - b).join('-')}` : ''}`;
  const svg = svgChart({ ...input, chartFile: '' });
  await writeFile(path.join(RESULTS_DIR, `${base}.svg`), svg);
  await writeFile(path.join(RESULTS_DIR, 'latest.svg'), svg);
  await writeFile(path.join(RESULTS_DIR, `${base}.md`), markdownReport({ ...input, chartFile: `${base}.svg` }));
  await writeFile(path.join(RESULTS_DIR, 'latest.md'), markdownReport({ ...input, chartFile: 'latest.svg' }));
  return path.join(RESULTS_DIR, `${base}.md`);
}

async function main(options: BenchOptions): Promise<number> {
  installCleanup();
  acquireRunLock();
  const started = new Date();
  const loadBefore = loadAverage();
  const ports = portsFrom(options.portBase);
  const scenarios = allScenarios(options).filter((s) => options.only.size === 0 || options.only.has(s.id));
  log(`bench: ${options.quick ? 'quick' : 'full'} run of scenario(s) ${scenarios.map((s) => s.id).join(',')}, ${options.runs} run(s) x ${options.seconds} s`);

  const stillMissing = ensureTools(log);
  if (stillMissing.length) log(`still missing: ${stillMissing.join(', ')}`);
  await buildH1load();
  for (const port of Object.values(ports)) {
    if (await canConnect(HOST, port)) throw new Error(`${HOST}:${port} is already in use: stop what listens there or pass --port-base`);
  }
  const pki = await mintBenchPki(WORK_DIR);
  const runtime = originRuntime();
  const origin = originKeeper(pki, ports, runtime, log);
  // The HTTP/2 origin starts with the first cell that needs it (scenarios 9 and 10).
  const originH2 = originH2Keeper(pki, ports, ORIGIN_H2_DIR, log);
  const results: ScenarioResult[] = [];
  try {
    await origin.ensure();
    for (const scenario of scenarios) {
      log(`scenario ${scenario.id}: ${scenario.title}`);
      results.push(await runScenario(scenario, { pki, ports, options, log, ensureOrigin: origin.ensure, ensureH2Origin: originH2.ensure }));
    }
  } finally {
    await origin.stop();
    await originH2.stop();
  }
  const setupCommands = [
    `# origin (uWebSockets.js SSLApp, mTLS), on the load core`,
    `taskset -c ${CORES.origin} ${runtime.execPath === process.execPath ? 'node' : runtime.execPath} ${originArgs(pki, ports).join(' ')}`,
    ...(scenarios.some(needsH2Origin) ? ['# the HTTP/2 and gRPC origin of scenarios 9-10 (NGINX, mTLS), on the load core', `taskset -c ${CORES.origin} nginx ${originH2Args(ORIGIN_H2_DIR).join(' ')}`] : []),
    `# each peer, alone in turn, on the proxy core (scenario 7: -c ${CORES.proxyTwoWorkers}); node is ${process.version} (${process.execPath})`,
    `taskset -c ${CORES.proxy} node dist/gateway/cli.js start --config bench/.work/gatehouse/gatehouse.yaml`,
    `taskset -c ${CORES.proxy} haproxy -db -f bench/.work/haproxy/haproxy.cfg`,
    `taskset -c ${CORES.proxy} nginx -p bench/.work/nginx -e bench/.work/nginx/error.log -c bench/.work/nginx/nginx.conf`,
  ];
  const file = await writeReports({
    started,
    seconds: (Date.now() - started.getTime()) / 1000,
    options,
    machine: machineInfo(runtime.version),
    load: { before: loadBefore, after: loadAverage() },
    results,
    configs: configsForReport(pki, ports, scenarios.some(needsH2Origin)),
    setupCommands,
  });
  log(`report: ${path.relative(process.cwd(), file)} (also bench/results/latest.md, latest.svg)`);
  return 0;
}

let options: BenchOptions;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`${err.message ? `bench: ${err.message}\n` : ''}${USAGE}`);
  process.exit(err.message ? 2 : 0);
}
main(options).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
