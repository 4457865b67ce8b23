// `gatehouse start [--config FILE]`: validate, start everything or nothing, print where things
// are. Without --config: the embedded default, with its dev PKI and in-process demo upstream.
import cluster from 'node:cluster';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_DEMO_PORTS, EMBEDDED_SOURCE, demoPortsFrom, embeddedDefaultYaml, MAX_PORT_BASE, type DemoPorts } from '../config/embedded-default.js';
import { formatProblem, parseConfig, readConfigText, type ConfigResult } from '../config/load-config.js';
import type { GatewayConfig } from '../config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../demo/demo-upstream.js';
import { DEV_DIR, DEV_PASSTHROUGH_SNI, ensureDevPki } from '../dev/dev-pki.js';
import { reloadDemoUpstreamTls, startDevPkiRenewer } from '../lifecycle/dev-pki-renewer.js';
import { FileWatcher } from '../lifecycle/file-watcher.js';
import { log } from '../log.js';
import { checkPortsFree } from '../net/shared-port.js';
import { pumpName } from '../passthrough/native-pump.js';
import { ConfigReloader, type ConfigSource } from '../runtime/config-reloader.js';
import { reloadProblems, startGateway, type RunningGateway } from '../runtime/gateway.js';
import { drainGateway } from '../runtime/graceful-drain.js';
import { receiveTicketKeys, ticketKeysLine } from '../runtime/handed-ticket-keys.js';
import { socketsToPass, startNextGeneration } from '../runtime/handover.js';
import { PidFile } from '../runtime/pid-file.js';
import { addressKey, settleInheritance } from '../net/inherited-sockets.js';
import { StopRequests } from '../runtime/stop-requests.js';
import { applyTicketCount } from '../runtime/openssl-tuning.js';
import { TicketKeySource } from '../runtime/ticket-keys.js';
import { resolveWorkerCount, runClusterWorker, startClusterPrimary, type ClusterPrimary } from '../runtime/worker-cluster.js';

const USAGE = `usage: gatehouse start [--config FILE] [--workers N] [--pid-file FILE] [--port-base P] [--print-default]

  --config FILE     YAML configuration (see routes/reference.yaml); without it, the embedded demo
  --workers N       worker processes (overrides the config's \`workers\`); 0 = one per core, 1 = no cluster
  --pid-file FILE   write the serving process's pid there (kill -HUP reloads, -TERM drains, -USR2 restarts
                    with no connection lost: the new process writes its own pid there)
  --port-base P     the embedded demo on four consecutive loopback ports instead of 8443, 9443, 9901, 9444:
                    terminate P, passthrough P+1, admin P+2, demo upstream P+3
  --print-default   print the embedded default configuration (with --port-base: on those ports) and exit
`;

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: argv, options: { config: { type: 'string' }, workers: { type: 'string' }, 'pid-file': { type: 'string' }, 'port-base': { type: 'string' }, 'print-default': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values;
  } catch (err) {
    process.stderr.write(`gatehouse start: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.workers !== undefined && !/^\d{1,4}$/.test(args.workers)) {
    process.stderr.write(`gatehouse start: --workers: expected a whole number (0 = one per core), got '${args.workers}'\n`);
    return 2;
  }
  const portBase = args['port-base'];
  if (portBase !== undefined && (!/^\d{1,5}$/.test(portBase) || Number(portBase) < 1 || Number(portBase) > MAX_PORT_BASE)) {
    process.stderr.write(`gatehouse start: --port-base: expected a port from 1 to ${MAX_PORT_BASE} (four consecutive ports from it), got '${portBase}'\n`);
    return 2;
  }
  if (portBase !== undefined && args.config !== undefined) {
    process.stderr.write('gatehouse start: --port-base moves the embedded demo; a --config file names its own addresses\n');
    return 2;
  }
  const demoPorts = portBase === undefined ? DEFAULT_DEMO_PORTS : demoPortsFrom(Number(portBase));
  const embeddedYaml = embeddedDefaultYaml(demoPorts);
  // A cluster worker: the primary (this same command) has validated the config and made the dev PKI.
  // It parses the configuration text the primary sends (at start and on every reload).
  if (cluster.isWorker) {
    await runClusterWorker((text) => {
      const result = parseConfig(text.text, text.file, text.baseDir);
      return result.ok ? result : { ok: false, problems: result.problems.map(formatProblem) };
    });
    return -1;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args['print-default']) {
    process.stdout.write(embeddedYaml);
    return 0;
  }

  let demo: DemoUpstream | undefined;
  const pki = args.config ? undefined : await ensureDevPki(DEV_DIR);
  // A reload reads the same source again. Without --config that is the embedded default, unchanged
  // while the process runs: a reload then applies nothing new and says so, rather than failing.
  const configFile = args.config === undefined ? undefined : path.resolve(args.config);
  const source: ConfigSource = configFile ? () => readConfigText(configFile) : () => ({ ok: true, text: embeddedYaml, file: EMBEDDED_SOURCE, baseDir: DEV_DIR });
  const text = source();
  const result: ConfigResult = text.ok ? parseConfig(text.text, text.file, text.baseDir) : text;
  if (!result.ok || !text.ok) {
    for (const problem of result.ok ? [] : result.problems) process.stderr.write(formatProblem(problem) + '\n');
    return 1;
  }
  // Before anything binds a port: the tickets-per-handshake setting needs an OpenSSL config file
  // given at process start: cluster workers are forked with it; in-process, this command runs
  // again under it (the relaunched process validates again and goes on here). With tickets
  // disabled, OpenSSL 3.0 would still build TLS 1.3 (stateful) tickets at full cost and Node
  // never resumes them: issue none.
  const tickets = result.config.sessionTickets;
  const workers = resolveWorkerCount(args.workers !== undefined ? Number(args.workers) : result.config.workers);
  const relaunched = await applyTicketCount(tickets.enabled ? tickets.perHandshake : 0, workers === 1 ? 'here' : 'workers');
  if (relaunched !== undefined) return relaunched;
  if (pki) {
    const read = (name: string) => import('node:fs').then((fs) => fs.readFileSync(pki.file(name), 'utf8'));
    demo = await startDemoUpstream({ certPem: await read('upstream.crt'), keyPem: await read('upstream.key'), caPem: await read('ca.crt'), port: demoPorts.upstream });
  }

  let keys: TicketKeySource | undefined;
  let running: RunningGateway | ClusterPrimary;
  let reloader: ConfigReloader;
  const reloadOn = async (trigger: string) => {
    const report = await reloader.reload(trigger);
    return { status: report.ok ? 200 : 422, body: report };
  };
  let stops: StopRequests;
  // The answer leaves before the drain begins (it may end with the admin server closing).
  const drainOn = async () => {
    const begun = !stops.draining;
    if (begun) setImmediate(() => stops.drain('admin'));
    const { delayMs, timeoutMs } = reloader.config.drain;
    return { status: 202, body: { draining: true, already: !begun, pid: process.pid, delay_ms: delayMs, timeout_ms: timeoutMs } };
  };
  // Bound late: the admin server starts with the gateway, the reloader needs the running gateway.
  const adminSources = { json: { '/config_dump': async () => reloader.dump() }, actions: { '/reload': () => reloadOn('admin'), '/drain': drainOn } };
  try {
    // The next generation of a handover goes on with the keys of the one before (workers included).
    keys = new TicketKeySource(result.config.sessionTickets, { handed: await receiveTicketKeys(result.config.sessionTickets) });
    if (workers === 1) {
      const startedWith = keys.current;
      const gateway = await startGateway(result.config, { ticketKeys: startedWith, adminSources });
      keys.onChange((key) => gateway.setTicketKeys(key));
      if (keys.current !== startedWith) gateway.setTicketKeys(keys.current); // rotated while the gateway started (a handed key past its time)
      running = gateway;
      reloader = new ConfigReloader(source, { text, config: result.config }, async (config) => [{ pid: process.pid, problems: await reloadProblems(gateway, config) }]);
    } else {
      const primary = await startClusterPrimary(result.config, { workers, keys, config: text, adminSources });
      running = primary;
      reloader = new ConfigReloader(source, { text, config: result.config }, async (config, next, changes) => {
        // As at start: an address another process holds would otherwise be shared silently (SO_REUSEPORT).
        try {
          await checkPortsFree(changes.addedListeners);
        } catch (err) {
          return [{ pid: process.pid, problems: [(err as Error).message] }];
        }
        return primary.reload(next, config.listeners);
      });
    }
  } catch (err) {
    keys?.close();
    await demo?.close();
    process.stderr.write(`gatehouse start: ${(err as Error).message}\n`);
    return 1;
  }
  const gateway = running;
  printBanner(result.config, demo !== undefined ? demoPorts : undefined, workers);
  // The embedded default renews its one-hour certificates itself, as SPIRE would; the gateway's file
  // watchers pick them up (live rotation), the demo upstream is handed its own.
  const demoServer = demo?.server;
  const renewer = demoServer ? startDevPkiRenewer(DEV_DIR, { onRenewed: (pki) => reloadDemoUpstreamTls(demoServer, pki) }) : undefined;
  // Opt-in: the same on every change of the file (debounced: an editor's write and rename are one change).
  const configWatcher = configFile && result.config.watchConfig ? new FileWatcher([configFile], () => void reloadOn('watch_config'), { debounceMs: 150, pollMs: 10_000 }) : undefined;
  const pidFile = args['pid-file'] === undefined ? undefined : new PidFile(path.resolve(args['pid-file']));
  const drain = async (why: string) => {
    renewer?.close();
    configWatcher?.close();
    // After a handover the address never stopped being served: no load balancer needs time to look away.
    const request = { ...reloader.config.drain, why, ...(why === 'handover' ? { delayMs: 0 } : {}) };
    if ('drain' in gateway) await gateway.drain(request);
    else await drainGateway(gateway, request);
    keys.close();
    await demo?.close();
    pidFile?.remove();
    process.exit(0);
  };
  stops = new StopRequests({
    drain: (why) => void drain(why),
    now: (why) => {
      log.warn('stopped_at_once', { why, pid: process.pid, note: 'a second stop signal: connections still open are cut' });
      if ('kill' in gateway) gateway.kill();
      pidFile?.remove();
      process.exit(1);
    },
  });
  let handingOver = false;
  const handOver = async () => {
    const sockets = stops.draining ? 'it is draining' : handingOver ? 'a handover is in progress' : socketsToPass(gateway, reloader.config, demo ? [{ address: { host: '127.0.0.1', port: demo.port }, server: demo.server }] : []);
    if (typeof sockets === 'string') {
      log.warn('handover_refused', { pid: process.pid, reason: sockets });
      return;
    }
    handingOver = true;
    const served = [...sockets.keys(), ...reloader.config.listeners.map((l) => addressKey(l.address))];
    log.info('handover_started', { pid: process.pid, addresses: sockets.size, sockets: [...sockets.values()].flat().length });
    const outcome = await startNextGeneration(sockets, [...new Set(served)], ticketKeysLine(keys.handOver()));
    handingOver = false;
    if (!outcome.ok) {
      log.error('handover_failed', { pid: process.pid, problem: outcome.problem, note: 'this gatehouse goes on serving' });
      return;
    }
    log.info('handover_ready', { pid: process.pid, next_pid: outcome.pid });
    // The next generation answers on the admin address now; this one drains out of sight (its log says how).
    gateway.admin?.stopAccepting();
    stops.drain('handover');
  };
  process.on('SIGINT', () => stops.signal('SIGINT'));
  process.on('SIGTERM', () => stops.signal('SIGTERM'));
  // NGINX's and HAProxy's reload signal: re-read the configuration (the outcome is logged and counted).
  process.on('SIGHUP', () => void reloadOn('SIGHUP'));
  // NGINX's binary-upgrade signal: a new process takes over the listening sockets, this one drains.
  process.on('SIGUSR2', () => void handOver());
  pidFile?.write();
  // Serving: the generation before (a handover) may drain now; unclaimed sockets it passed are closed.
  settleInheritance();
  return -1; // keep running
}

function printBanner(config: GatewayConfig, embedded: DemoPorts | undefined, workers: number): void {
  const runtime = `Node ${process.version}, OpenSSL ${process.versions.openssl}, passthrough pump: ${pumpName()}`;
  const lines = [`gatehouse is running (${config.source}), ${workers === 1 ? 'one process' : `${workers} workers`}, ${runtime}`];
  for (const l of config.listeners) {
    const kinds = [...new Set(l.routes.map((r) => r.kind))].join('+');
    lines.push(`  listener ${l.name.padEnd(12)} ${l.address.host}:${l.address.port}  ${kinds}  ${l.tls ? l.mode : ''}`);
  }
  lines.push(`  admin                 http://${config.admin.address.host}:${config.admin.address.port}/metrics  /healthz  /readyz  /config_dump${workers === 1 ? '' : '  /workers'}  (reload: kill -HUP ${process.pid} or POST /reload; graceful stop: kill -TERM ${process.pid} or POST /drain; restart: kill -USR2 ${process.pid})`);
  if (embedded !== undefined) {
    const rel = path.relative(process.cwd(), DEV_DIR) || '.';
    const tlsArgs = `--cacert ${rel}/ca.crt --cert ${rel}/client.crt --key ${rel}/client.key`;
    lines.push(
      '',
      'Try it (mTLS in, verified identity forwarded as x-forwarded-client-cert, mTLS out):',
      `  curl ${tlsArgs} https://localhost:${embedded.terminate}/hello`,
      'SNI passthrough (the demo upstream terminates TLS itself and sees your certificate):',
      `  curl ${tlsArgs} --resolve ${DEV_PASSTHROUGH_SNI}:${embedded.passthrough}:127.0.0.1 https://${DEV_PASSTHROUGH_SNI}:${embedded.passthrough}/`,
      // --http1.1: curl over HTTP/2 reports the closed connection (getpeername), not the TLS alert.
      'Without a client certificate the handshake is refused (curl shows the TLS alert):',
      `  curl --http1.1 --cacert ${rel}/ca.crt https://localhost:${embedded.terminate}/`,
    );
    if (config.listeners.some((l) => l.tls?.alpn.includes('h2'))) {
      const cli = path.relative(process.cwd(), fileURLToPath(new URL('../cli.js', import.meta.url)));
      lines.push(
        'HTTP/2 (the JSON names the protocol the upstream spoke) and gRPC (grpc.health.v1.Health/Check, answered by the demo upstream):',
        `  curl --http2 ${tlsArgs} https://localhost:${embedded.terminate}/hello`,
        `  node ${cli} grpc-health --address localhost:${embedded.terminate}`,
      );
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
}
