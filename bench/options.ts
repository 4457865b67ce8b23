// Command-line options of `npm run bench`: full (default) or --quick, --only to select scenarios.

export interface BenchOptions {
  readonly quick: boolean;
  /** Scenario ids to run; empty: all. */
  readonly only: ReadonlySet<number>;
  /** Measured runs per cell; the report shows their median and min–max. */
  readonly runs: number;
  /** Seconds per measured run of a rate probe (ab, s_time). */
  readonly seconds: number;
  /** Seconds of keep-alive load before measuring, so that JITs and pools are warm. */
  readonly warmupSeconds: number;
  /** Idle mTLS connections opened for the memory scenario. */
  readonly idleConnections: number;
  /** Parallel `openssl s_time` processes (each runs one connection at a time). */
  readonly sTimeParallel: number;
  /** ab concurrency. */
  readonly concurrency: number;
  readonly portBase: number;
  /** Peers to run (gatehouse, haproxy, nginx); empty: all. */
  readonly peers: ReadonlySet<string>;
}

export const USAGE = `usage: npm run bench -- [--quick] [--only 1,4] [--runs N] [--seconds S] [--peers haproxy,nginx] [--port-base P]

  --quick          every scenario briefly (one run each), a smoke check: under 3 minutes
  --only 1,4       run only these scenarios (1-10; 8 is idle-connection memory, 9-10 HTTP/2 and gRPC)
  --runs N         measured runs per cell (default 5, quick 1)
  --seconds S      seconds per measured run (default 5, quick 1)
  --peers LIST     subset of gatehouse,haproxy,nginx (default all)
  --port-base P    first of five consecutive loopback ports (default 18443)
`;

export class UsageError extends Error {}

/** Scenario ids run from 1 to this (./scenarios.ts). */
export const SCENARIO_COUNT = 10;

function positiveInt(flag: string, value: string | undefined, max: number): number {
  const n = Number(value);
  if (!value || !Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} wants an integer from 1 to ${max}, got '${value ?? ''}'`);
  return n;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  let quick = false;
  let only = new Set<number>();
  let runs: number | undefined;
  let seconds: number | undefined;
  let portBase = 18443;
  let peers = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--quick':
        quick = true;
        break;
      case '--only':
        only = new Set((value() ?? '').split(',').filter(Boolean).map((s) => positiveInt('--only', s.trim(), SCENARIO_COUNT)));
        break;
      case '--runs':
        runs = positiveInt('--runs', value(), 50);
        break;
      case '--seconds':
        seconds = positiveInt('--seconds', value(), 300);
        break;
      case '--port-base':
        portBase = positiveInt('--port-base', value(), 65530);
        break;
      case '--peers': {
        peers = new Set((value() ?? '').split(',').map((s) => s.trim()).filter(Boolean));
        for (const p of peers) if (!['gatehouse', 'haproxy', 'nginx'].includes(p)) throw new UsageError(`unknown peer '${p}'`);
        break;
      }
      case '--help':
      case '-h':
        throw new UsageError('');
      default:
        throw new UsageError(`unknown option '${arg}'`);
    }
  }
  return {
    quick,
    only,
    runs: runs ?? (quick ? 1 : 5),
    seconds: seconds ?? (quick ? 1 : 5),
    warmupSeconds: quick ? 0.5 : 3,
    idleConnections: quick ? 1000 : 5000,
    sTimeParallel: 6,
    concurrency: 32,
    portBase,
    peers,
  };
}
