// The benchmark's own analysis: samples of a real `perf report` (gatehouse under the keep-alive
// load, captured on the bench machine) put in buckets, the targets' verdicts, and how a scenario
// whose HTTP/2 origin cannot run is reported.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUCKETS, bucketOf, bucketShares } from '../bench/cpu-profile.js';
import type { BenchPki } from '../bench/certificates.js';
import { portsFrom } from '../bench/layout.js';
import { parseOptions } from '../bench/options.js';
import { runScenario, type RowResult, type ScenarioResult } from '../bench/runner.js';
import { allScenarios, type Scenario } from '../bench/scenarios.js';
import { TARGETS, targetsSection, verdicts } from '../bench/targets.js';

const report = fs.readFileSync(new URL('./fixtures/perf/gatehouse-keepalive.txt', import.meta.url), 'utf8');

/** perf's own share of one binary in the same report, for comparison with the buckets. */
function dsoShare(prefix: string): number {
  let dso = 0;
  let all = 0;
  for (const line of report.split('\n')) {
    const m = /^\s*([\d.]+)%\s+(\[JIT\] tid \d+|\S+)/.exec(line);
    if (!m) continue;
    all += Number(m[1]);
    if (m[2]!.startsWith(prefix)) dso += Number(m[1]);
  }
  return dso / all;
}

describe('CPU profile buckets', () => {
  it('puts symbols of the node binary where they belong: OpenSSL, V8, JavaScript, Node', () => {
    expect(bucketOf('node', '_aesni_ctr32_ghash_6x')).toBe('openssl');
    expect(bucketOf('node', 'tls_get_more_records')).toBe('openssl');
    expect(bucketOf('node', 'EVP_CIPHER_CTX_get_iv_length')).toBe('openssl');
    expect(bucketOf('node', 'ossl_gcm_dinit')).toBe('openssl');
    expect(bucketOf('node', 'node::crypto::TLSWrap::ClearOut')).toBe('node');
    expect(bucketOf('node', 'llhttp__internal__run')).toBe('node');
    expect(bucketOf('node', 'uv__io_poll')).toBe('node');
    expect(bucketOf('node', 'v8::internal::(anonymous namespace)::Invoke')).toBe('v8');
    expect(bucketOf('node', 'Builtins_StringAdd_CheckNone')).toBe('js');
    expect(bucketOf('[JIT] tid 19475', "JS:*'handleRequest file:///x.js:16:34")).toBe('js');
    expect(bucketOf('[kernel.kallsyms]', 'tcp_sendmsg_locked')).toBe('kernel');
    expect(bucketOf('libc.so.6', '_int_malloc')).toBe('libc');
    expect(bucketOf('libcrypto.so.3', 'aesni_encrypt')).toBe('openssl');
    expect(bucketOf('haproxy', 'h1_headers_to_hdr_list')).toBe('native');
  });

  it('splits a real gatehouse report into shares that add up, and agree with perf per binary', () => {
    const shares = bucketShares(report);
    const sum = BUCKETS.reduce((s, [b]) => s + shares[b], 0);
    expect(sum).toBeCloseTo(1, 6);
    expect(shares.kernel).toBeCloseTo(dsoShare('[kernel'), 6);
    // JavaScript is the JIT's code plus V8's builtins, which live in the node binary.
    expect(shares.js).toBeGreaterThan(dsoShare('[JIT]') + 0.01);
    expect(shares.openssl).toBeGreaterThan(0.05);
    expect(shares.openssl + shares.v8 + shares.node + shares.js - dsoShare('[JIT]')).toBeCloseTo(dsoShare('node'), 6);
    expect(shares.native).toBe(0);
  });
});

function scenarioWith(id: number, label: string, gatehouse: number[], haproxy: number[], profiled = false): ScenarioResult {
  const row = (key: string, rowLabel: string, unit: string): RowResult => ({
    metric: { key, label: rowLabel, unit },
    label: rowLabel,
    cells: { gatehouse: { samples: gatehouse, problems: [] }, haproxy: { samples: haproxy, problems: [] } },
  });
  const rows = [row('perCpu', label, 'req/CPU-s'), ...(profiled ? [row('kernel', 'keep-alive, CPU µs per request: kernel', 'µs')] : [])];
  return { scenario: { id } as Scenario, columns: [], rows, commands: [], seconds: 1 };
}

describe('targets', () => {
  it('says a target is met, or by how much it is missed, from the medians of the run', () => {
    const keepAlive = TARGETS.find((t) => t.scenario === 1)!;
    const newConnection = TARGETS.find((t) => t.scenario === 2)!;
    const results = [scenarioWith(1, keepAlive.row, [4500, 9000, 4400], [10000, 10000, 9000], true), scenarioWith(2, newConnection.row, [510, 500], [480, 500])];
    const [first, second] = verdicts(results);
    expect(first!.ratio).toBeCloseTo(0.45, 6);
    expect(first!.met).toBe(false);
    expect(second!.ratio).toBeCloseTo(505 / 490, 6);
    expect(second!.met).toBe(true);
    const text = targetsSection(results).join('\n');
    expect(text).toContain('| 1. keep-alive, proxied mTLS → mTLS | ≥ 0.60× | 0.45× | **missed** by 0.15×: gatehouse needs 33% more per CPU-second; see the CPU µs per request rows of scenario 1 |');
    expect(text).toContain('| 2. a new client connection per request | ≥ 1.00× | 1.03× | **met** |');
    expect(text).not.toContain('resumed');
    expect(text).not.toContain('smoke check');
    // Without the profile rows (a quick run) there is nothing to point at, and the verdicts say what they are.
    const quick = targetsSection([scenarioWith(1, keepAlive.row, [4500], [10000])], true).join('\n');
    expect(quick).toContain('needs 33% more per CPU-second |');
    expect(quick).toContain('smoke check');
  });
});

describe('scenarios', () => {
  it('every target names a row that its scenario produces', () => {
    const scenarios = allScenarios(parseOptions([]));
    for (const target of TARGETS) {
      const scenario = scenarios.find((s) => s.id === target.scenario)!;
      const rows = scenario.variants.flatMap((v) => v.probes.flatMap((p) => p.metrics.map((m) => (v.label ? `${m.label} — ${v.label}` : m.label))));
      expect(rows, `scenario ${target.scenario}`).toContain(target.row);
    }
    expect(TARGETS.filter((t) => t.scenario === 9 || t.scenario === 10).map((t) => t.atLeast)).toEqual([0.5, 0.5]);
  });

  it('marks every cell of a column as not started, with the reason, when the HTTP/2 origin cannot run, and goes on', async () => {
    const scenario = allScenarios(parseOptions([])).find((s) => s.id === 10)!;
    const reason = 'the HTTP/2 origin (NGINX) did not start: exited (1) before listening';
    const lines: string[] = [];
    const result = await runScenario(scenario, {
      pki: {} as BenchPki,
      ports: portsFrom(1),
      options: parseOptions(['--quick', '--peers', 'haproxy,nginx']),
      log: (line) => lines.push(line),
      ensureOrigin: async () => undefined,
      ensureH2Origin: async () => reason,
    });
    expect(result.columns.map((c) => c.key)).toEqual(['haproxy', 'nginx']);
    for (const row of result.rows) {
      for (const key of ['haproxy', 'nginx']) expect(row.cells[key]).toEqual({ samples: [], problems: [`did not start: ${reason}`] });
    }
    expect(lines).toEqual([`[10] HAProxy, run 1/1: did not start: ${reason}`, `[10] NGINX, run 1/1: did not start: ${reason}`]);
  });
});
