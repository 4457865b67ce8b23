// deploy/kubernetes/ as a platform team applies it: the ConfigMap's gatehouse.yaml passes the loader
// `gatehouse validate` uses, with certificate, trust and token files minted here and laid out as
// kubelet mounts the Secrets and ConfigMaps the Deployment names; the rules between manifests and
// config hold (grace period above the drain, probes on the admin port, mounts where the config
// looks, container and Service ports on the listeners), and each rule fails when a copy breaks it;
// and gatehouse started on that layout answers the kubelet's probes, refuses POST without the
// Secret's token, applies a ConfigMap update (kubelet's `..data` swap), and drains within the
// grace period.
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRootCa, issueLeaf } from '../certs/dev-ca.js';
import { formatAddress } from '../gateway/config/config-values.js';
import { formatProblem, loadConfigFile } from '../gateway/config/load-config.js';
import { freePortRun, killByPidFile, startCli, stopCli } from './support/gatehouse-cli.js';
import {
  configPathOf,
  containerOf,
  dockerfileProblems,
  manifestProblems,
  mountVolumes,
  only,
  podConfigOf,
  podSpecOf,
  readManifests,
  rebasePaths,
  type Manifest,
  updateMountedVolume,
  type PodSpec,
} from './support/kubernetes-manifests.js';

const MANIFESTS = 'deploy/kubernetes';
const DOCKERFILE = 'deploy/docker/Dockerfile';
const manifests = readManifests(MANIFESTS);
const children = new Set<ChildProcess>();
let tmp: string;
/** What the platform team creates beside the manifests (deploy/kubernetes/README.md), minted here. */
let sources: Map<string, Record<string, string>>;
const adminToken = randomBytes(16).toString('hex');

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-k8s-'));
  const ca = await createRootCa({ commonName: 'example.org CA', trustDomain: 'example.org' });
  const svid = await issueLeaf(ca, { spiffeId: 'spiffe://example.org/ns/gateway/sa/gatehouse', dnsNames: ['gatehouse.example.org'], usage: 'both' });
  sources = new Map<string, Record<string, string>>([
    ['Secret/gatehouse-tls', { 'tls.crt': svid.chainPem, 'tls.key': svid.keyPem, 'ca.crt': ca.rootPem }],
    ['ConfigMap/gatehouse-trust', { 'ca.crt': ca.rootPem }],
    ['Secret/gatehouse-admin-token', { token: `${adminToken}\n` }],
  ]);
});
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

const copy = (): Manifest[] => structuredClone(manifests);
const podOf = (m: Manifest[]) => podSpecOf(m);
const containerIn = (m: Manifest[]) => containerOf(podOf(m));
const mountNamed = (m: Manifest[], name: string) => containerIn(m).volumeMounts!.find((v) => v.name === name)!;
const volumeNamed = (m: Manifest[], name: string) => podOf(m).volumes!.find((v) => v.name === name)!;
/** The copy's gatehouse.yaml, edited. */
function editConfig(m: Manifest[], from: string, to: string): void {
  const configMap = only(m, 'ConfigMap');
  const text = configMap.data!['gatehouse.yaml']!;
  if (!text.includes(from)) throw new Error(`gatehouse.yaml has no '${from}'`);
  configMap.data!['gatehouse.yaml'] = text.replace(from, to);
}

/** `m` mounted under a fresh directory standing in for the container's root, with the config's paths moved there; the config file's path. */
function mountUnder(m: Manifest[], name: string, edit: (text: string) => string = (t) => t): { root: string; configFile: string } {
  const root = path.join(tmp, name);
  const pod: PodSpec = podOf(m);
  const configFile = configPathOf(containerOf(pod))!;
  const configMap = only(m, 'ConfigMap');
  const all = new Map(sources);
  all.set(`ConfigMap/${configMap.metadata.name}`, { ...configMap.data, [path.basename(configFile)]: edit(rebasePaths(podConfigOf(m).text, pod, root)) });
  mountVolumes(root, pod, all);
  return { root, configFile: path.join(root, configFile) };
}

describe('deploy/kubernetes', () => {
  it("the ConfigMap's gatehouse.yaml passes `gatehouse validate`'s loader with the files its Secrets and ConfigMaps mount, without a warning", () => {
    const { configFile } = mountUnder(copy(), 'valid');
    expect(fs.readlinkSync(path.join(path.dirname(configFile), '..data'))).toMatch(/^\.\.2026_/);
    const result = loadConfigFile(configFile);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([]);
    expect(result.warnings.map(formatProblem)).toEqual([]);
    const { config } = podConfigOf(manifests);
    // What the issue asked of it: STRICT mTLS, a SPIFFE allow-list, drain.delay 5s.
    expect(config.listeners.map((l) => l.mode)).toEqual(['STRICT']);
    expect(config.listeners[0]!.routes.flatMap((r) => (r.kind === 'terminate' ? r.authorization.allow : []))).not.toEqual([]);
    expect(config.drain.delayMs).toBe(5_000);
  });

  it('the manifests agree with their gatehouse.yaml: grace period, probes, mounts, ports, Service, PDB, security context; the Dockerfile with both', () => {
    expect(manifestProblems(manifests)).toEqual([]);
    expect(dockerfileProblems(fs.readFileSync(DOCKERFILE, 'utf8'), podOf(manifests))).toEqual([]);
    // The defaults a reader might assume are not the ones relied on: each value is stated.
    expect(podOf(manifests).terminationGracePeriodSeconds).toBeGreaterThan(35);
  });

  // Each rule broken once in a copy: the problem names it.
  const breakages: [string, (m: Manifest[]) => void, string][] = [
    ['a grace period equal to drain.delay + drain.timeout', (m) => (podOf(m).terminationGracePeriodSeconds = 35), 'grace: terminationGracePeriodSeconds (35 s) must be above drain.delay + drain.timeout (35 s)'],
    ['a drain.timeout raised past the grace period', (m) => editConfig(m, 'timeout: 30s', 'timeout: 60s'), 'grace: terminationGracePeriodSeconds (45 s) must be above drain.delay + drain.timeout (65 s)'],
    ['no grace period (the 30 s default)', (m) => delete podOf(m).terminationGracePeriodSeconds, 'grace: terminationGracePeriodSeconds (30 s)'],
    ['readiness on /healthz', (m) => (containerIn(m).readinessProbe!.httpGet!.path = '/healthz'), 'probes: readinessProbe must GET /readyz, not /healthz'],
    ['readiness on the listener port', (m) => (containerIn(m).readinessProbe!.httpGet!.port = 'https'), 'probes: readinessProbe goes to port https (8443), the admin address is 0.0.0.0:9901'],
    ['liveness on a port no container declares', (m) => (containerIn(m).livenessProbe!.httpGet!.port = 'metrics'), 'probes: livenessProbe goes to port metrics (no such container port)'],
    ['the admin port moved in gatehouse.yaml only', (m) => editConfig(m, 'address: 0.0.0.0:9901', 'address: 0.0.0.0:9902'), 'probes: readinessProbe goes to port admin (9901), the admin address is 0.0.0.0:9902'],
    ['the admin address on loopback', (m) => editConfig(m, 'address: 0.0.0.0:9901', 'address: 127.0.0.1:9901'), 'probes: the admin address 127.0.0.1:9901 is loopback'],
    ['the scrape annotation on another port', (m) => ((only(m, 'Deployment').spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations['prometheus.io/port'] = '8443'), 'probes: prometheus.io/port 8443 is not the admin port 9901'],
    ['the certificate Secret mounted elsewhere', (m) => (mountNamed(m, 'tls').mountPath = '/etc/gatehouse/certs'), 'mounts: listeners[0].tls.certificates[0].cert /etc/gatehouse/tls/tls.crt: no Secret or ConfigMap is mounted (as a directory) at /etc/gatehouse/tls'],
    ['the trust ConfigMap mounted with subPath', (m) => Object.assign(mountNamed(m, 'trust'), { mountPath: '/etc/gatehouse/trust/ca.crt', subPath: 'ca.crt' }), 'mounts: volumeMount trust uses subPath ca.crt'],
    ['the key under another name in the Secret volume', (m) => (volumeNamed(m, 'tls').secret!.items![1]!.path = 'key.pem'), 'mounts: listeners[0].tls.certificates[0].key /etc/gatehouse/tls/tls.key: volume tls (Secret/gatehouse-tls) puts only tls.crt, key.pem in /etc/gatehouse/tls'],
    ['the admin token from a ConfigMap', (m) => Object.assign(volumeNamed(m, 'admin-token'), { secret: undefined, configMap: { name: 'gatehouse-admin-token' } }), 'mounts: admin.token_file /etc/gatehouse/admin/token is key material, but comes from ConfigMap/gatehouse-admin-token: keep it in a Secret'],
    ['--config naming a file the ConfigMap volume does not hold', (m) => (containerIn(m).args = ['start', '--config', '/etc/gatehouse/gatehouse.yaml']), 'is not a key of a ConfigMap in the manifests mounted at /etc/gatehouse'],
    ['the listener moved to 8444 in gatehouse.yaml only', (m) => editConfig(m, 'address: 0.0.0.0:8443', 'address: 0.0.0.0:8444'), 'ports: gatehouse listens on 8444, which is not a containerPort'],
    ['the container port moved to 8444', (m) => (containerIn(m).ports![0]!.containerPort = 8444), 'ports: containerPort 8444 (https) is neither a listener\'s port nor the admin port'],
    ['the Service exposing the admin port', (m) => (only(m, 'Service').spec as { ports: { targetPort: string }[] }).ports.push({ targetPort: 'admin', port: 9901 } as never), "service: port 9901 targets admin (9901), not a listener's port: the admin port must not be exposed"],
    ['a Service selecting other pods', (m) => ((only(m, 'Service').spec as { selector: Record<string, string> }).selector['app.kubernetes.io/name'] = 'gatekeeper'), 'service: its selector does not match the pod labels'],
    ['a PDB selecting other pods', (m) => ((only(m, 'PodDisruptionBudget').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels['app.kubernetes.io/component'] = 'web'), 'pdb: its selector does not match the pod labels'],
    ['runAsNonRoot dropped', (m) => delete podOf(m).securityContext!.runAsNonRoot, 'security: runAsNonRoot is not true'],
    ['a writable root filesystem', (m) => (containerIn(m).securityContext!.readOnlyRootFilesystem = false), 'security: readOnlyRootFilesystem is not true'],
    ['privilege escalation allowed', (m) => (containerIn(m).securityContext!.allowPrivilegeEscalation = true), 'security: allowPrivilegeEscalation is not false'],
    ['capabilities kept', (m) => (containerIn(m).securityContext!.capabilities = { drop: ['NET_RAW'] }), 'security: capabilities do not drop ALL'],
    ['no /tmp under a read-only root', (m) => (containerIn(m).volumeMounts = containerIn(m).volumeMounts!.filter((v) => v.mountPath !== '/tmp')), 'security: the root filesystem is read-only and no writable emptyDir is mounted at /tmp'],
  ];
  it.each(breakages)('a copy with %s fails with the problem that names it', (_, breakIt, problem) => {
    const broken = copy();
    breakIt(broken);
    const problems = (() => {
      try {
        return manifestProblems(broken);
      } catch (err) {
        return [(err as Error).message];
      }
    })();
    expect(problems.some((p) => p.includes(problem)), `${problem}\nnot in:\n${problems.join('\n')}`).toBe(true);
  });

  it('the loader itself refuses the config when the certificate Secret is mounted elsewhere', () => {
    const broken = copy();
    mountNamed(broken, 'tls').mountPath = '/etc/gatehouse/certs';
    const { configFile } = mountUnder(broken, 'moved-secret');
    const result = loadConfigFile(configFile);
    expect(result.ok).toBe(false);
    const problems = result.ok ? [] : result.problems.map(formatProblem);
    // Nothing is mounted at the path the config names any more.
    expect(problems.some((p) => p.endsWith(': listeners[0].tls.certificates[0].cert: file not found: /etc/gatehouse/tls/tls.crt')), problems.join('\n')).toBe(true);
  });

  it('the Dockerfile rules fail: an addon left out of the image, a USER other than runAsUser', () => {
    const dockerfile = fs.readFileSync(DOCKERFILE, 'utf8');
    const withoutEngine = dockerfile.replace(/^COPY --from=build .*h2_engine\.node.*\n/m, '');
    expect(withoutEngine).not.toBe(dockerfile);
    expect(dockerfileProblems(withoutEngine, podOf(manifests))).toEqual(['dockerfile: no COPY --from brings gateway/http2/native/build/h2_engine.node (the native HTTP/2 engine) into the image']);
    expect(dockerfileProblems(dockerfile.replace(/^USER \d+/m, 'USER 1000'), podOf(manifests))).toEqual(["dockerfile: USER 1000 is not the pod's runAsUser 10001"]);
  });

  it("gatehouse on the mounted layout answers the kubelet's probes, refuses POST /reload without the Secret's token, applies a ConfigMap update, and drains within the grace period", async () => {
    const { config } = podConfigOf(manifests);
    const container = containerIn(manifests);
    // The pod's ports, moved to free ones (the suite runs beside a demo on 8443 and 9901), below the
    // ephemeral range: 0.0.0.0 cannot bind a port that an outgoing connection holds on any address.
    const podPorts = [...new Set([config.admin.address.port, ...config.listeners.map((l) => l.address.port)])];
    const base = await freePortRun(podPorts.length);
    const moved = new Map(podPorts.map((port, i) => [port, base + i]));
    const movePorts = (text: string) =>
      [config.admin.address, ...config.listeners.map((l) => l.address)].reduce((t, a) => t.replaceAll(formatAddress(a), formatAddress({ ...a, port: moved.get(a.port)! })), text);
    const { configFile } = mountUnder(copy(), 'serving', movePorts);
    const adminPort = moved.get(config.admin.address.port)!;
    const pidFile = path.join(tmp, 'serving.pid');
    const portOf = (port: number | string | undefined) => moved.get(typeof port === 'string' ? container.ports!.find((p) => p.name === port)!.containerPort : port!)!;
    try {
      const gateway = await startCli({ file: configFile, port: moved.get(config.listeners[0]!.address.port)!, adminPort }, ['--pid-file', pidFile], children);
      const probe = (p: { httpGet?: { path?: string; port?: number | string } } | undefined) => fetch(`http://127.0.0.1:${portOf(p!.httpGet!.port)}${p!.httpGet!.path}`).then((r) => r.status);
      expect(await probe(container.readinessProbe)).toBe(200);
      expect(await probe(container.livenessProbe)).toBe(200);
      const reload = (authorization?: string) => fetch(`http://127.0.0.1:${adminPort}/reload`, { method: 'POST', headers: authorization ? { authorization } : {} }).then((r) => r.status);
      expect(await reload()).toBe(401);
      expect(await reload('Bearer not-the-token')).toBe(401);
      expect(await reload(`Bearer ${adminToken}`)).toBe(200);

      // A ConfigMap update, as kubelet writes it: watch_config applies it without a signal.
      const text = fs.readFileSync(configFile, 'utf8');
      const edited = text.replace(/^( *)- spiffe:\/\/example\.org\/ns\/web\/sa\/frontend$/m, '$&\n$1- spiffe://example.org/ns/web/sa/admin');
      expect(edited).not.toBe(text);
      updateMountedVolume(path.dirname(configFile), new Map([[path.basename(configFile), edited]]));
      const wanted = createHash('sha256').update(edited).digest('hex');
      const activeHash = () => fetch(`http://127.0.0.1:${adminPort}/config_dump`).then(async (r) => ((await r.json()) as { hash: string }).hash);
      let hash = await activeHash();
      // Within the watcher's 10 s stat poll, should inotify miss the swap.
      for (let i = 0; i < 120 && hash !== wanted; i++) {
        await sleep(100);
        hash = await activeHash();
      }
      expect(hash).toBe(wanted);

      // The kubelet's SIGTERM: not ready at once, alive throughout, gone before the grace period ends.
      const graceMs = podOf(manifests).terminationGracePeriodSeconds! * 1000;
      const began = Date.now();
      const exited = stopCli(gateway, children);
      let readiness = 200;
      for (let i = 0; i < 40 && readiness === 200; i++) {
        await sleep(50);
        readiness = await probe(container.readinessProbe);
      }
      expect(readiness).toBe(503);
      expect(await probe(container.livenessProbe)).toBe(200);
      expect(await exited).toBe(0);
      const tookMs = Date.now() - began;
      expect(tookMs).toBeGreaterThanOrEqual(config.drain.delayMs - 100);
      expect(tookMs).toBeLessThan(graceMs);
    } finally {
      killByPidFile(pidFile);
    }
  }, 60_000);
});
