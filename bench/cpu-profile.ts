// Where a peer's CPU goes per request (or relayed connection): `perf record` samples the peer
// (cpu-clock, so it works on VMs without hardware counters) while h1load or h2load runs the load, and each
// sample is put in one bucket by the binary and symbol it landed in. Multiplied by the peer's CPU
// time per request, the buckets say how many microseconds of each are the kernel, OpenSSL, the C
// library, and the proxy itself (for gatehouse split into JavaScript, V8 and Node's C++). That is
// what a missed target's row is explained by, measured in the same run as the target.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { WORK_DIR } from './layout.js';
import { perCpuSecond, withCpu, type Measurement, type Metric, type Probe, type ProbeTarget } from './probe.js';
import { processTree } from './proc-stats.js';
import { runToEnd } from './processes.js';
import { shellLine, type LoadTool } from './probes.js';
import { which } from './peers/peer.js';

/** The buckets, in report order. */
export const BUCKETS = [
  ['kernel', 'kernel (TCP, syscalls, wake-ups)'],
  ['openssl', 'OpenSSL (record crypto, TLS state)'],
  ['libc', 'C library (malloc, memcpy)'],
  ['native', 'the proxy’s own native code'],
  ['js', 'JavaScript (JIT-compiled and V8 builtins)'],
  ['v8', 'V8 runtime, API and GC'],
  ['node', 'Node C++, libuv, llhttp'],
] as const;
export type Bucket = (typeof BUCKETS)[number][0];

/** OpenSSL's symbols, also where it is linked into the node binary (as in Node's official builds). */
const OPENSSL_SYMBOL =
  /^(_?aesni|_?gcm|_?ghash|_?sha\d|_?x25519|_?ecp_|_?bn_|ssl|tls|dtls|SSL|TLS|EVP|evp|ossl|OSSL|BIO|bio_|CRYPTO|ERR_|OPENSSL|WPACKET|PACKET|X509|x509|ASN1|asn1|EC_|ec_|ECDSA|BN_|RAND|rand_|drbg|OBJ_|HMAC|SHA\d|AES_|RSA|PEM|bread_|bwrite_)/;

/** The bucket of one sample, from `perf report --sort dso,sym`'s binary and symbol columns. */
export function bucketOf(dso: string, symbol: string): Bucket {
  if (dso.startsWith('[kernel')) return 'kernel';
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-')) return 'js';
  if (/^lib(crypto|ssl)\.so/.test(dso)) return 'openssl';
  if (/^lib(c|m|pthread|stdc\+\+|gcc_s)[.-]/.test(dso) || dso === '[vdso]' || dso.startsWith('ld-linux')) return 'libc';
  if (dso !== 'node') return 'native';
  if (OPENSSL_SYMBOL.test(symbol)) return 'openssl';
  if (symbol.startsWith('Builtins_')) return 'js';
  if (/^(v8::|cppgc::|absl::)/.test(symbol)) return 'v8';
  return 'node';
}

/** Shares (0..1) per bucket from `perf report --stdio --no-children --sort dso,sym -g none` output. */
export function bucketShares(report: string): Record<Bucket, number> {
  const shares = Object.fromEntries(BUCKETS.map(([b]) => [b, 0])) as Record<Bucket, number>;
  let total = 0;
  for (const line of report.split('\n')) {
    // "     5.94%  [kernel.kallsyms]    [k] _raw_spin_unlock_irqrestore": dso may hold one space ("[JIT] tid 42").
    const m = /^\s*([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const share = Number(m[1]) / 100;
    shares[bucketOf(m[2]!, m[3]!.trim())] += share;
    total += share;
  }
  if (total > 0) for (const [b] of BUCKETS) shares[b] /= total;
  return shares;
}

/** The load a profile is taken under, and what its count is of. */
export interface ProfiledLoad<Req extends { readonly seconds: number }, Rep extends { readonly requests: number }> {
  readonly id: string;
  /** Prefix of the rows' labels, e.g. 'keep-alive'. */
  readonly what: string;
  /** What the load generator's count is: 'request' or 'connection'. */
  readonly per: string;
  readonly tool: LoadTool<Req, Rep>;
  readonly request: (t: ProbeTarget) => Req;
}

const PERF_DATA = path.join(WORK_DIR, 'profile.perf.data');

/** `load` under `perf record`: CPU microseconds per request (or connection) by bucket, and in all. */
export function cpuProfileProbe<Req extends { readonly seconds: number }, Rep extends { readonly requests: number }>(load: ProfiledLoad<Req, Rep>): Probe {
  const { tool } = load;
  const label = (bucket: string): string => `${load.what}, CPU µs per ${load.per}, lower is better (perf): ${bucket}`;
  const metrics: Metric[] = [
    ...BUCKETS.map(([key, name]): Metric => ({ key, label: label(name), unit: 'µs', lowerIsBetter: true, digits: 1, chart: false })),
    { key: 'total', label: label('all'), unit: 'µs', lowerIsBetter: true, digits: 1, chart: false },
  ];
  return {
    id: `cpu-profile-${load.id}`,
    metrics,
    command: (t) => `perf record -e cpu-clock -F 999 -p <peer's processes> -- sleep ${t.options.seconds}, beside ${shellLine(tool.binary, tool.args(load.request(t)))}`,
    async run(t): Promise<Measurement> {
      if (!which('perf')) return { values: {}, problem: 'perf is not installed (bench/install-peers.sh installs linux-perf where Debian has it)' };
      await tool.prepare?.();
      await tool.run({ ...load.request(t), seconds: t.options.warmupSeconds }).catch(() => undefined);
      const pids = processTree(t.pid).join(',');
      const seconds = t.options.seconds;
      const { result, cpuSeconds } = await withCpu(t.pid, () =>
        Promise.all([
          tool.run(load.request(t)),
          runToEnd('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '999', '-p', pids, '-o', PERF_DATA, '--', 'sleep', String(seconds)], { timeoutMs: (seconds + 30) * 1000 }),
        ]),
      );
      const [report, recorded] = result;
      try {
        if (recorded.code !== 0 || !existsSync(PERF_DATA)) return { values: {}, problem: `perf record failed (${recorded.code}): ${recorded.stderr.trim().slice(0, 200)}` };
        const samples = await runToEnd('perf', ['report', '-i', PERF_DATA, '--stdio', '--no-children', '--sort', 'dso,sym', '-g', 'none'], { timeoutMs: 120_000, maxOutput: 64 << 20 });
        const shares = bucketShares(samples.stdout);
        const perRequest = perCpuSecond(report.requests, cpuSeconds);
        if (!Number.isFinite(perRequest) || report.requests === 0) return { values: {}, problem: tool.problem(report) ?? 'too little CPU measured' };
        const totalUs = 1e6 / perRequest;
        const values: Record<string, number> = { total: totalUs };
        for (const [b] of BUCKETS) values[b] = shares[b] * totalUs;
        return { values, problem: tool.problem(report) };
      } finally {
        await rm(PERF_DATA, { force: true });
      }
    },
  };
}
