// The external tools the benchmark drives: installs the peers when missing (install-peers.sh),
// builds h1load (our HTTP/1.1 mTLS load generator, C) into bench/.work/, and reads every version
// for the report.
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

const REQUIRED = ['haproxy', 'nginx', 'ab', 'openssl', 'taskset', 'gcc'];

/** Runs install-peers.sh when a tool is missing; returns what is still missing afterwards. */
export function ensureTools(log: (line: string) => void): string[] {
  const missing = (): string[] => REQUIRED.filter((t) => !which(t)).concat(existsSync('/usr/include/openssl/ssl.h') ? [] : ['libssl-dev']);
  if (missing().length === 0) return [];
  log(`installing missing tools (${missing().join(', ')}) with bench/install-peers.sh`);
  const r = spawnSync('sh', [INSTALL_SCRIPT], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 });
  if (r.status !== 0) log(`install-peers.sh failed (${r.status ?? r.signal}); peers that are missing will be reported as such`);
  return missing();
}

/** Compiles h1load when its binary is missing or older than its source. */
export async function buildH1load(): Promise<void> {
  await mkdir(WORK_DIR, { recursive: true });
  if (existsSync(H1LOAD) && statSync(H1LOAD).mtimeMs >= statSync(H1LOAD_SOURCE).mtimeMs) return;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', H1LOAD, H1LOAD_SOURCE, '-lssl', '-lcrypto'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`cannot build h1load (gcc ${r.status ?? r.signal}): ${r.stderr || r.error?.message || ''}`);
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
      'uwebsockets (origin)': `${uws} on Node ${originNode}`,
    },
  };
}
