// The external tools the benchmark drives: installs the peers when missing (install-peers.sh),
// builds h1load and h2load (our HTTP/1.1 and HTTP/2 mTLS load generators, C) into bench/.work/,
// and reads every version for the report.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, WORK_DIR } from './layout.js';
import { which } from './peers/peer.js';
import { pumpName } from '../gateway/passthrough/native-pump.js';

const INSTALL_SCRIPT = path.join(REPO_ROOT, 'bench', 'install-peers.sh');
const H1LOAD_SOURCE = path.join(REPO_ROOT, 'bench', 'load', 'h1load.c');
export const H1LOAD = path.join(WORK_DIR, 'h1load');
export const H2LOAD_SOURCE = path.join(REPO_ROOT, 'bench', 'load', 'h2load.c');
export const H2LOAD = path.join(WORK_DIR, 'h2load');
/** libnghttp2-dev's header: h2load needs it, and only the HTTP/2 scenarios need h2load. */
const NGHTTP2_HEADER = '/usr/include/nghttp2/nghttp2.h';

const REQUIRED = ['haproxy', 'nginx', 'ab', 'openssl', 'taskset', 'gcc'];

/** Runs install-peers.sh when a tool is missing; returns what is still missing afterwards. */
export function ensureTools(log: (line: string) => void): string[] {
  const headers = (): string[] => [['/usr/include/openssl/ssl.h', 'libssl-dev'], [NGHTTP2_HEADER, 'libnghttp2-dev']].filter(([file]) => !existsSync(file!)).map(([, pkg]) => pkg!);
  const missing = (): string[] => REQUIRED.filter((t) => !which(t)).concat(headers());
  if (missing().length === 0) return [];
  log(`installing missing tools (${missing().join(', ')}) with bench/install-peers.sh`);
  const r = spawnSync('sh', [INSTALL_SCRIPT], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 });
  if (r.status !== 0) log(`install-peers.sh failed (${r.status ?? r.signal}); peers that are missing will be reported as such`);
  return missing();
}

/** Compiles a load generator when its binary is missing or older than its source or the header the tools share. */
export async function buildLoadTool(source: string, binary: string, libraries: readonly string[]): Promise<void> {
  await mkdir(path.dirname(binary), { recursive: true });
  const sourceTime = Math.max(statSync(source).mtimeMs, statSync(path.join(path.dirname(source), 'load-common.h')).mtimeMs);
  if (existsSync(binary) && statSync(binary).mtimeMs >= sourceTime) return;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', binary, source, ...libraries.map((l) => `-l${l}`)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`cannot build ${path.basename(binary)} (gcc ${r.status ?? r.signal}): ${r.stderr || r.error?.message || ''}`);
}

export const buildH1load = (): Promise<void> => buildLoadTool(H1LOAD_SOURCE, H1LOAD, ['ssl', 'crypto']);

export const H2LOAD_LIBRARIES = ['nghttp2', 'ssl', 'crypto'] as const;

let h2loadBuilt: Promise<void> | undefined;
/** Builds h2load once per run; a failure (no libnghttp2-dev) fails the HTTP/2 cells, not the run. */
export function buildH2load(): Promise<void> {
  h2loadBuilt ??= existsSync(NGHTTP2_HEADER)
    ? buildLoadTool(H2LOAD_SOURCE, H2LOAD, H2LOAD_LIBRARIES)
    : Promise.reject(new Error(`h2load needs ${NGHTTP2_HEADER} (libnghttp2-dev; bench/install-peers.sh installs it)`));
  return h2loadBuilt;
}

function firstLine(cmd: string, args: readonly string[]): string {
  try {
    // Some tools (nginx -v) print their version on stderr.
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
    return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean) ?? 'unknown';
  } catch {
    return 'unavailable';
  }
}

/** The 1, 5 and 15 minute load averages: other work on a shared machine shows here. */
export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}

/** The commit measured, and whether gateway/ had uncommitted changes (then those were measured). */
function gatehouseRevision(): string {
  const git = (args: string[]): string | undefined => {
    const r = spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  const head = git(['log', '-1', '--format=%h %s']);
  if (!head) return 'unknown (not a git checkout)';
  const dirty = git(['status', '--porcelain', '--', 'gateway', 'certs']);
  return `${head.slice(0, 90)}${dirty ? ' — plus uncommitted changes in gateway/ or certs/' : ''}`;
}

export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly kernel: string;
  readonly versions: Readonly<Record<string, string>>;
}

/** `originNode`: the version of the Node that runs the origin (./origin-runtime.ts). */
export function machineInfo(originNode: string): MachineInfo {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    /* not Linux */
  }
  let uws = 'unknown';
  try {
    uws = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', 'uwebsockets', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    /* not installed */
  }
  return {
    cpus: Number(firstLine('nproc', [])) || 0,
    cpuModel,
    kernel: firstLine('uname', ['-sr']),
    versions: {
      gatehouse: gatehouseRevision(),
      node: process.version,
      'OpenSSL (node)': process.versions.openssl ?? 'unknown',
      'passthrough pump (gatehouse)': pumpName(),
      'OpenSSL (system)': firstLine('openssl', ['version']),
      haproxy: firstLine('haproxy', ['-v']),
      nginx: firstLine('nginx', ['-v']),
      ab: firstLine('ab', ['-V']),
      ...(existsSync(H2LOAD) ? { 'h2load (HTTP/2 load)': firstLine(H2LOAD, ['--version']) } : {}),
      'uwebsockets (origin)': `${uws} on Node ${originNode}`,
    },
  };
}
