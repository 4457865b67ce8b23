// The Kubernetes manifests of deploy/kubernetes/ as a kubelet would use them: read as kubectl reads
// them (YAML 1.1), the rules that must hold between them and the gatehouse.yaml their ConfigMap
// carries (grace period and drain, probes and the admin address, mounts and the files the config
// names, ports), and the pod's mounted Secrets and ConfigMaps written out in kubelet's own layout
// (`..data` symlink and all) under a directory that stands in for the container's root.
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { isLoopback } from '../../gateway/admin/admin-server.js';
import { formatAddress } from '../../gateway/config/config-values.js';
import { formatProblem, parseConfig } from '../../gateway/config/load-config.js';
import { trustFiles } from '../../gateway/config/peer-trust.js';
import { crlFiles, type GatewayConfig } from '../../gateway/config/types.js';
import * as addons from '../../gateway/native/native-addons.js';
import type { AddonSpec } from '../../gateway/native/native-addons.js';

/** The fields the rules read; Kubernetes has many more. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: unknown;
}

interface KeyToPath {
  key: string;
  path: string;
}
interface Volume {
  name: string;
  secret?: { secretName: string; items?: KeyToPath[] };
  configMap?: { name: string; items?: KeyToPath[] };
  emptyDir?: Record<string, unknown>;
}
interface VolumeMount {
  name: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}
interface HttpProbe {
  httpGet?: { path?: string; port?: number | string };
}
interface Container {
  name: string;
  args?: string[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  readinessProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  volumeMounts?: VolumeMount[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; allowPrivilegeEscalation?: boolean; privileged?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
}
export interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  volumes?: Volume[];
}
interface DeploymentSpec {
  selector: { matchLabels: Record<string, string> };
  template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
}
interface ServiceSpec {
  selector: Record<string, string>;
  ports: { name?: string; port: number; targetPort?: number | string }[];
}
interface PdbSpec {
  selector: { matchLabels: Record<string, string> };
}

/** Kubernetes' own default when a pod does not say. */
const DEFAULT_GRACE_SECONDS = 30;

/** Every object of the files kustomization.yaml lists, parsed as kubectl does (YAML 1.1: `0440` is octal). */
export function readManifests(dir: string): Manifest[] {
  const parse = (file: string) =>
    parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'), { version: '1.1' }).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      return doc.toJS() as Manifest;
    });
  const [kustomization] = parse('kustomization.yaml') as unknown as [{ resources: string[] }];
  return kustomization.resources.flatMap(parse);
}

export function only(manifests: readonly Manifest[], kind: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in the manifests, found ${found.length}`);
  return found[0]!;
}

export function podSpecOf(manifests: readonly Manifest[]): PodSpec {
  return (only(manifests, 'Deployment').spec as DeploymentSpec).template.spec;
}

/** The one container (gatehouse). */
export function containerOf(pod: PodSpec): Container {
  if (pod.containers.length !== 1) throw new Error(`expected one container, found ${pod.containers.length}`);
  return pod.containers[0]!;
}

/** The path the container's `--config` names, in the pod. */
export function configPathOf(container: Container): string | undefined {
  const args = container.args ?? [];
  const at = args.indexOf('--config');
  return at === -1 ? args.find((a) => a.startsWith('--config='))?.slice('--config='.length) : args[at + 1];
}

/** What a mounted directory holds: the volume's source (`Secret/name`, `ConfigMap/name` or `emptyDir`) and the files it puts there. */
interface MountedDirectory {
  readonly mount: VolumeMount;
  readonly source: string;
  /** File name in the directory -> key of the source; undefined: every key of the source, under its own name. */
  readonly items: ReadonlyMap<string, string> | undefined;
}

function mountedDirectories(pod: PodSpec, container: Container): MountedDirectory[] {
  return (container.volumeMounts ?? []).map((mount) => {
    const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
    if (volume === undefined) throw new Error(`volumeMount ${mount.name}: no volume of that name`);
    const source = volume.secret ? `Secret/${volume.secret.secretName}` : volume.configMap ? `ConfigMap/${volume.configMap.name}` : 'emptyDir';
    const items = volume.secret?.items ?? volume.configMap?.items;
    return { mount, source, items: items && new Map(items.map((i) => [i.path, i.key])) };
  });
}

/** The files the config names, with the field each comes from and whether it is secret. */
function filesNamed(config: GatewayConfig): { field: string; file: string; secret: boolean }[] {
  const files: { field: string; file: string; secret: boolean }[] = [];
  config.listeners.forEach((l, i) => {
    if (!l.tls) return;
    const at = `listeners[${i}].tls`;
    l.tls.certificates.forEach((c, j) => files.push({ field: `${at}.certificates[${j}].cert`, file: c.cert, secret: false }, { field: `${at}.certificates[${j}].key`, file: c.key, secret: true }));
    for (const t of trustFiles(l.tls.clientAuth)) files.push({ field: `${at}.client_auth.${t.field}`, file: t.file, secret: false });
    for (const crl of crlFiles(l.tls.clientAuth.crl)) files.push({ field: `${at}.client_auth.crl`, file: crl, secret: false });
  });
  config.upstreams.forEach((u, i) => {
    if (!u.tls) return;
    const at = `upstreams[${i}].tls`;
    files.push({ field: `${at}.cert`, file: u.tls.cert, secret: false }, { field: `${at}.key`, file: u.tls.key, secret: true });
    for (const t of trustFiles(u.tls)) files.push({ field: `${at}.${t.field}`, file: t.file, secret: false });
    for (const crl of crlFiles(u.tls.crl)) files.push({ field: `${at}.crl`, file: crl, secret: false });
  });
  if (config.admin.tokenFile !== undefined) files.push({ field: 'admin.token_file', file: config.admin.tokenFile, secret: true });
  if (config.sessionTickets.keyFile !== undefined) files.push({ field: 'session_tickets.key_file', file: config.sessionTickets.keyFile, secret: true });
  return files;
}

/** The ConfigMap's gatehouse.yaml, read as gatehouse reads it in the pod (paths resolved there), without the files. */
export function podConfigOf(manifests: readonly Manifest[]): { text: string; file: string; config: GatewayConfig } {
  const pod = podSpecOf(manifests);
  const container = containerOf(pod);
  const file = configPathOf(container);
  if (file === undefined) throw new Error('the container does not name --config');
  const dir = mountedDirectories(pod, container).find((d) => d.mount.mountPath === path.dirname(file));
  const configMap = dir && manifests.find((m) => `${m.kind}/${m.metadata.name}` === dir.source);
  const text = configMap?.data?.[dir!.items?.get(path.basename(file)) ?? path.basename(file)];
  if (text === undefined) throw new Error(`--config ${file} is not a key of a ConfigMap in the manifests mounted at ${path.dirname(file)}`);
  const result = parseConfig(text, file, path.dirname(file), { checkFiles: false });
  if (!result.ok) throw new Error(`the ConfigMap's ${path.basename(file)} is not valid:\n${result.problems.map(formatProblem).join('\n')}`);
  return { text, file, config: result.config };
}

/** Every rule between the manifests and their gatehouse.yaml that does not hold, one line each. */
export function manifestProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const deployment = only(manifests, 'Deployment').spec as DeploymentSpec;
  const pod = deployment.template.spec;
  const container = containerOf(pod);
  const { file: configFile, config } = podConfigOf(manifests);
  const ports = container.ports ?? [];
  const resolvePort = (port: number | string | undefined) => (typeof port === 'string' ? ports.find((p) => p.name === port)?.containerPort : port);
  const adminPort = config.admin.address.port;
  const listenerPorts = new Set(config.listeners.map((l) => l.address.port));
  const admin = formatAddress(config.admin.address);

  // SIGTERM to SIGKILL: the whole drain must fit.
  const graceMs = (pod.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000;
  const drainMs = config.drain.delayMs + config.drain.timeoutMs;
  if (graceMs <= drainMs) problems.push(`grace: terminationGracePeriodSeconds (${graceMs / 1000} s) must be above drain.delay + drain.timeout (${drainMs / 1000} s), or the kubelet kills gatehouse mid-drain`);

  // Probes: the kubelet comes to the pod IP, on the admin address's port.
  const probes = [
    { name: 'readinessProbe', probe: container.readinessProbe, path: '/readyz' },
    { name: 'livenessProbe', probe: container.livenessProbe, path: '/healthz' },
  ];
  for (const { name, probe, path: expected } of probes) {
    const get = probe?.httpGet;
    if (get?.path !== expected) problems.push(`probes: ${name} must GET ${expected}, not ${get?.path ?? '(no httpGet)'}`);
    const port = resolvePort(get?.port);
    if (port !== adminPort) problems.push(`probes: ${name} goes to port ${String(get?.port)} (${port ?? 'no such container port'}), the admin address is ${admin}`);
  }
  if (isLoopback(config.admin.address.host)) problems.push(`probes: the admin address ${admin} is loopback: the kubelet's probes, which come to the pod IP, never reach it`);
  const scrapePort = deployment.template.metadata.annotations?.['prometheus.io/port'];
  if (scrapePort !== undefined && Number(scrapePort) !== adminPort) problems.push(`probes: prometheus.io/port ${scrapePort} is not the admin port ${adminPort}`);

  // Files: each in a directory mount (no subPath, so kubelet's `..data` swap reaches it) whose volume provides it.
  const dirs = mountedDirectories(pod, container);
  for (const { field, file, secret } of [...filesNamed(config), { field: '--config', file: configFile, secret: false }]) {
    const dir = dirs.find((d) => d.mount.mountPath === path.dirname(file) && d.mount.subPath === undefined);
    if (dir === undefined || dir.source === 'emptyDir') {
      problems.push(`mounts: ${field} ${file}: no Secret or ConfigMap is mounted (as a directory) at ${path.dirname(file)}`);
    } else if (dir.items !== undefined && !dir.items.has(path.basename(file))) {
      problems.push(`mounts: ${field} ${file}: volume ${dir.mount.name} (${dir.source}) puts only ${[...dir.items.keys()].join(', ')} in ${dir.mount.mountPath}`);
    } else if (secret && !dir.source.startsWith('Secret/')) {
      problems.push(`mounts: ${field} ${file} is key material, but comes from ${dir.source}: keep it in a Secret`);
    }
  }
  for (const { mount } of dirs) if (mount.subPath !== undefined) problems.push(`mounts: volumeMount ${mount.name} uses subPath ${mount.subPath}: kubelet never updates it, so neither reloads nor renewals reach gatehouse`);

  // Ports: the container declares what gatehouse listens on, and nothing else.
  for (const port of [...listenerPorts, adminPort]) if (!ports.some((p) => p.containerPort === port)) problems.push(`ports: gatehouse listens on ${port}, which is not a containerPort`);
  for (const p of ports) if (!listenerPorts.has(p.containerPort) && p.containerPort !== adminPort) problems.push(`ports: containerPort ${p.containerPort} (${p.name ?? 'unnamed'}) is neither a listener's port nor the admin port`);

  // The Service: the pods' labels, and listener ports only (the admin port stays in the pod).
  const podLabels = deployment.template.metadata.labels;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  const service = only(manifests, 'Service').spec as ServiceSpec;
  if (!selects(service.selector)) problems.push('service: its selector does not match the pod labels');
  for (const p of service.ports) {
    const target = resolvePort(p.targetPort ?? p.port);
    if (target === undefined || !listenerPorts.has(target)) problems.push(`service: port ${p.port} targets ${String(p.targetPort)} (${target ?? 'no such container port'}), not a listener's port${target === adminPort ? ': the admin port must not be exposed' : ''}`);
  }
  if (!selects((only(manifests, 'PodDisruptionBudget').spec as PdbSpec).selector.matchLabels)) problems.push('pdb: its selector does not match the pod labels');
  if (!selects(deployment.selector.matchLabels)) problems.push("deployment: its selector does not match its pod template's labels");

  // Security: non-root, nothing to escalate to, nothing to write but /tmp.
  const sc = container.securityContext ?? {};
  if ((sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot) !== true) problems.push('security: runAsNonRoot is not true');
  if ((sc.runAsUser ?? pod.securityContext?.runAsUser) === 0) problems.push('security: runAsUser is 0 (root)');
  if (sc.allowPrivilegeEscalation !== false) problems.push('security: allowPrivilegeEscalation is not false');
  if (sc.privileged === true) problems.push('security: the container is privileged');
  if (sc.readOnlyRootFilesystem !== true) problems.push('security: readOnlyRootFilesystem is not true');
  if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push('security: capabilities do not drop ALL');
  // gatehouse writes the OpenSSL configuration for session_tickets.per_handshake to the OS temp directory.
  if (sc.readOnlyRootFilesystem === true && !dirs.some((d) => d.mount.mountPath === '/tmp' && d.source === 'emptyDir' && d.mount.readOnly !== true)) {
    problems.push('security: the root filesystem is read-only and no writable emptyDir is mounted at /tmp');
  }
  return problems;
}

/**
 * Writes what the container would see of its Secret and ConfigMap volumes under `root`, as kubelet
 * does: the files in a timestamped directory, `..data` pointing at it, each file a symlink through
 * `..data`. `sources` holds each source's data by `Secret/name` or `ConfigMap/name`; a key a
 * volume's items name but the source lacks fails, as the pod would.
 */
export function mountVolumes(root: string, pod: PodSpec, sources: ReadonlyMap<string, Readonly<Record<string, string>>>): void {
  const container = containerOf(pod);
  for (const dir of mountedDirectories(pod, container)) {
    const target = path.join(root, dir.mount.mountPath);
    fs.mkdirSync(target, { recursive: true });
    if (dir.source === 'emptyDir') continue;
    const data = sources.get(dir.source);
    if (data === undefined) throw new Error(`${dir.source} (volume ${dir.mount.name}) is not among the sources the test provides`);
    const files = dir.items ?? new Map(Object.keys(data).map((k) => [k, k]));
    const contents = new Map([...files].map(([file, key]) => {
      if (data[key] === undefined) throw new Error(`${dir.source} has no key ${key} (volume ${dir.mount.name})`);
      return [file, data[key]!];
    }));
    fs.symlinkSync(writeStamped(target, contents), path.join(target, '..data'));
    for (const file of files.keys()) fs.symlinkSync(path.join('..data', file), path.join(target, file));
  }
}

/** Kubelet's update of a mounted Secret or ConfigMap: the new files in a new timestamped directory, `..data` swapped to it by rename, the old one removed. */
export function updateMountedVolume(directory: string, contents: ReadonlyMap<string, string>): void {
  const old = fs.readlinkSync(path.join(directory, '..data'));
  fs.symlinkSync(writeStamped(directory, contents), path.join(directory, '..data_tmp'));
  fs.renameSync(path.join(directory, '..data_tmp'), path.join(directory, '..data'));
  fs.rmSync(path.join(directory, old), { recursive: true });
}

let stamps = 0;
/** A `..<timestamp>` directory holding `contents`; its name. */
function writeStamped(directory: string, contents: ReadonlyMap<string, string>): string {
  const stamp = `..2026_01_01_00_00_00.${String(++stamps).padStart(9, '0')}`;
  fs.mkdirSync(path.join(directory, stamp));
  for (const [file, text] of contents) fs.writeFileSync(path.join(directory, stamp, file), text, { mode: 0o440 });
  return stamp;
}

/** `text` with every absolute path under one of the container's mounts moved under `root` (the one liberty the test takes). */
export function rebasePaths(text: string, pod: PodSpec, root: string): string {
  const mounts = mountedDirectories(pod, containerOf(pod)).map((d) => d.mount.mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  // One pass: a path moved under root (itself under /tmp, perhaps a mount) is not moved again.
  return text.replace(new RegExp(`(?<![\\w/.-])(${mounts.join('|')})/`, 'g'), (_, mountPath: string) => `${path.join(root, mountPath)}/`);
}

/** The Dockerfile's rules: the runtime stage gets every C addon native-addons.ts lists, and runs as the pod's user. */
export function dockerfileProblems(dockerfile: string, pod: PodSpec): string[] {
  const problems: string[] = [];
  const copies = dockerfile.split('\n').filter((line) => /^COPY --from=/.test(line));
  const specs = Object.values(addons).filter((v): v is AddonSpec => typeof v === 'object' && v !== null && 'output' in v);
  for (const spec of specs) if (!copies.some((line) => line.includes(spec.output))) problems.push(`dockerfile: no COPY --from brings ${spec.output} (${spec.title}) into the image`);
  const user = /^USER (\d+)/m.exec(dockerfile)?.[1];
  const runAs = containerOf(pod).securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
  if (user === undefined || Number(user) !== runAs) problems.push(`dockerfile: USER ${user ?? '(none, or not numeric)'} is not the pod's runAsUser ${String(runAs)}`);
  return problems;
}
