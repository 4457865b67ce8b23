// `npm run bench:ab -- --base REV`: the paired A/B check of a hot-path change. The working tree's
// build (A) and the build of REV (B, checked out and built under bench/.work/ab-base) run at the
// same time on the same core, each with its own listeners and one shared origin; the load, on the
// other core, goes to one of them at a time, in the order A B, B A, A B, … so that the machine's
// drift and noise fall on both. Each pair gives A's rate per gateway CPU-second over B's; the
// report quotes every pair, their median and geometric mean. Run it against the same build
// (`--base HEAD` on a clean tree) to see the noise floor: same-build pairs here differ by ~2%.
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mintBenchPki } from './certificates.js';
import { CORES, DIST_BENCH, GATEHOUSE_CLI, HOST, portsFrom, REPO_ROOT, RESULTS_DIR, WORK_DIR, type Ports } from './layout.js';
import { runH1load, type H1Request } from './load/h1load.js';
import { parseOptions } from './options.js';
import { gatehouseConfig } from './peers/gatehouse.js';
import { DEFAULT_SETTINGS, writeConfig } from './peers/peer.js';
import { perCpuSecond, withCpu, type ProbeTarget } from './probe.js';
import { relayRequest, terminateRequest } from './probes.js';
import { canConnect, installCleanup, spawnTracked, stop, waitForPorts, type Tracked } from './processes.js';
import { originRuntime } from './origin-runtime.js';
import { acquireRunLock } from './run-lock.js';
import { buildH1load, ensureTools } from './tools.js';

const USAGE = `usage: npm run bench:ab -- --base REV [--pairs N] [--seconds S] [--probes keepalive,close,resume,relay] [--a-resilience] [--a-access-log]

  --base REV     the build to compare against (a commit, branch or tag); A is the working tree's dist/
  --pairs N      alternating pairs per probe (default 6)
  --seconds S    seconds of load per measurement (default 5)
  --probes LIST  which of scenarios 1-4's loads: keepalive (1), close (2), resume (3), relay (4: relayed connections)
  --a-resilience A's upstream also has health_check, outlier_detection and retries (with --base HEAD:
                 what configuring them costs, issue 19's benchmark)
  --a-access-log A writes an access log to a file (with --base HEAD: what it costs, issue 18)
`;

const log = (line: string): void => {
  process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
};

type ProbeName = 'keepalive' | 'close' | 'resume' | 'relay';
const PROBES: Readonly<Record<ProbeName, { label: string; request: (t: ProbeTarget) => H1Request }>> = {
  keepalive: { label: '1: keep-alive requests', request: (t) => terminateRequest(t, 'keepalive') },
  close: { label: '2: new connection per request', request: (t) => terminateRequest(t, 'close') },
  resume: { label: '3: resumed connection per request', request: (t) => terminateRequest(t, 'resume') },
  relay: { label: '4: relayed connections (passthrough)', request: (t) => relayRequest(t, 'handshake') },
};

interface AbOptions {
  readonly base: string;
  readonly pairs: number;
  readonly seconds: number;
  readonly probes: readonly ProbeName[];
  /** A's upstream has health_check, outlier_detection and retries. */
  readonly resilience: boolean;
  /** A writes an access log (to a file). */
  readonly accessLog: boolean;
}

function parseAbOptions(argv: readonly string[]): AbOptions {
  let base: string | undefined;
  let pairs = 6;
  let seconds = 5;
  let probes: ProbeName[] = ['keepalive', 'close', 'resume', 'relay'];
  let resilience = false;
  let accessLog = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i] ?? '';
    if (flag === '--base') base = value;
    else if (flag === '--pairs') pairs = Number(value);
    else if (flag === '--seconds') seconds = Number(value);
    else if (flag === '--probes') probes = value.split(',') as ProbeName[];
    else if (flag === '--a-resilience' || flag === '--a-access-log') {
      if (flag === '--a-resilience') resilience = true;
      else accessLog = true;
      i--; // a flag without a value
    }
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (!base) throw new Error(`--base is required\n${USAGE}`);
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > 50) throw new Error('--pairs wants an integer from 1 to 50');
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) throw new Error('--seconds wants an integer from 1 to 60');
  for (const p of probes) if (!(p in PROBES)) throw new Error(`unknown probe '${p}' (keepalive, close, resume, relay)`);
  return { base, pairs, seconds, probes, resilience, accessLog };
}

/** Checks REV out under bench/.work/ab-base and builds it there; returns its CLI. */
function buildBase(rev: string): string {
  const dir = path.join(WORK_DIR, 'ab-base');
  const commit = execFileSync('git', ['rev-parse', `${rev}^{commit}`], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  if (existsSync(dir)) execFileSync('git', ['-C', dir, 'checkout', '--quiet', '--detach', commit]);
  else execFileSync('git', ['worktree', 'add', '--quiet', '--detach', dir, commit], { cwd: REPO_ROOT });
  const modules = path.join(dir, 'node_modules');
  if (!existsSync(modules)) symlinkSync(path.join(REPO_ROOT, 'node_modules'), modules);
  log(`building B = ${rev} (${commit.slice(0, 10)}) in ${path.relative(REPO_ROOT, dir)}`);
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: dir, stdio: 'inherit' });
  return path.join(dir, 'dist', 'gateway', 'cli.js');
}

interface Build {
  readonly name: 'A' | 'B';
  readonly ports: Ports;
  proc?: Tracked;
}

async function startBuild(build: Build, cli: string, config: string): Promise<Tracked> {
  for (const port of [build.ports.terminate, build.ports.passthrough, build.ports.admin]) {
    if (await canConnect(HOST, port)) throw new Error(`${HOST}:${port} is in use`);
  }
  const proc = spawnTracked(process.execPath, [cli, 'start', '--config', config], { cpus: CORES.proxy });
  const failure = await waitForPorts(proc, HOST, [build.ports.terminate, build.ports.passthrough]);
  if (failure) throw new Error(`build ${build.name} did not start: ${failure}: ${proc.output().trim().slice(-300)}`);
  return proc;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const geomean = (xs: readonly number[]): number => Math.exp(xs.reduce((sum, x) => sum + Math.log(x), 0) / xs.length);

async function main(opts: AbOptions): Promise<void> {
  installCleanup();
  acquireRunLock();
  const missing = ensureTools(log);
  if (missing.length) log(`still missing: ${missing.join(', ')}`);
  await buildH1load();
  const baseCli = buildBase(opts.base);
  const benchOptions = { ...parseOptions([]), seconds: opts.seconds, warmupSeconds: 2 };
  const pki = await mintBenchPki(path.join(WORK_DIR, 'ab'));
  const shared = portsFrom(benchOptions.portBase);
  const builds: Build[] = [
    { name: 'A', ports: shared },
    { name: 'B', ports: { ...portsFrom(benchOptions.portBase + 10), origin: shared.origin } },
  ];
  const runtime = originRuntime();
  const origin = spawnTracked(runtime.execPath, [path.join(DIST_BENCH, 'origin.js'), '--port', String(shared.origin), '--cert', pki.origin.cert, '--key', pki.origin.key, '--ca', pki.caFile], { cpus: CORES.origin });
  const rows: string[] = [];
  try {
    const originFailure = await waitForPorts(origin, HOST, [shared.origin]);
    if (originFailure) throw new Error(`the origin did not start: ${originFailure}`);
    for (const build of builds) {
      const dir = path.join(WORK_DIR, 'ab', build.name);
      await rm(path.join(dir, 'access.log'), { force: true }); // each run's log starts empty, not appended to the last run's
      const config = await writeConfig(dir, 'gatehouse.yaml', gatehouseConfig({ pki, ports: build.ports, dir }, { ...DEFAULT_SETTINGS, relay: true, resilience: opts.resilience && build.name === 'A', accessLog: opts.accessLog && build.name === 'A' }));
      build.proc = await startBuild(build, build.name === 'A' ? GATEHOUSE_CLI : baseCli, config);
    }
    const target = (b: Build): ProbeTarget => ({ pid: b.proc!.pid, ports: b.ports, pki, options: benchOptions });
    for (const b of builds) await runH1load({ ...terminateRequest(target(b), 'keepalive'), seconds: 3 });
    for (const name of opts.probes) {
      const probe = PROBES[name];
      const measure = async (b: Build): Promise<number> => {
        await runH1load({ ...probe.request(target(b)), seconds: 1 }); // this load's code paths warm
        const { result, cpuSeconds } = await withCpu(b.proc!.pid, () => runH1load(probe.request(target(b))));
        if (result.errors > result.requests / 100) throw new Error(`${probe.label}, build ${b.name}: ${result.errors} errors`);
        return perCpuSecond(result.requests, cpuSeconds);
      };
      const ratios: number[] = [];
      for (let pair = 0; pair < opts.pairs; pair++) {
        const [first, second] = pair % 2 === 0 ? [builds[0]!, builds[1]!] : [builds[1]!, builds[0]!];
        const rates = { [first.name]: await measure(first), [second.name]: await measure(second) } as Record<'A' | 'B', number>;
        ratios.push(rates.A / rates.B);
        log(`${probe.label}, pair ${pair + 1}/${opts.pairs}: A ${Math.round(rates.A)}, B ${Math.round(rates.B)} per CPU-s, A/B ${(rates.A / rates.B).toFixed(3)}`);
      }
      rows.push(`| ${probe.label} | ${ratios.map((r) => r.toFixed(3)).join(', ')} | **${median(ratios).toFixed(3)}** | ${geomean(ratios).toFixed(3)} |`);
    }
  } finally {
    for (const b of builds) if (b.proc) await stop(b.proc);
    await stop(origin);
  }
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim() ? ' + uncommitted changes' : '';
  const report = [
    `# Paired A/B: A = ${head}${dirty}${opts.resilience ? ' with health_check, outlier_detection and retries' : ''}${opts.accessLog ? ' with access_log' : ''}, B = ${opts.base}`,
    '',
    `${new Date().toISOString()}; ${opts.pairs} pairs × ${opts.seconds} s per probe; both builds on core ${CORES.proxy}, load and origin on core ${CORES.load}.`,
    'Each value is A÷B in requests (or relayed connections) per gateway CPU-second, one per alternating pair; above 1 favours A.',
    '',
    '| load | A÷B per pair | median | geometric mean |',
    '| --- | --- | ---: | ---: |',
    ...rows,
    '',
  ].join('\n');
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `ab-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-')}.md`);
  await writeFile(file, report);
  process.stdout.write(`\n${report}\nreport: ${path.relative(process.cwd(), file)}\n`);
}

let options: AbOptions;
try {
  options = parseAbOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench:ab: ${(err as Error).message}\n`);
  process.exit(2);
}
main(options).catch((err: unknown) => {
  process.stderr.write(`bench:ab: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
