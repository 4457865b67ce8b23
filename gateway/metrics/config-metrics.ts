// Configuration reloads, counted where they are decided: by the one process that reads the file
// (the primary with workers, else the gateway process). Their own registry, because a cluster
// primary serves its workers' metrics aggregated and adds only these of its own.
import { Counter, Gauge, Registry } from 'prom-client';

export const configRegistry = new Registry();

export const configReloads = new Counter({
  name: 'gatehouse_config_reloads_total',
  help: 'Configuration reloads (SIGHUP, POST /reload) by result (success, failure); a failure leaves the running configuration in place',
  labelNames: ['result'] as const,
  registers: [configRegistry],
});

export const lastReloadSuccess = new Gauge({
  name: 'gatehouse_config_last_reload_success_timestamp_seconds',
  help: 'When the active configuration was loaded (start or the last successful reload), in Unix seconds',
  registers: [configRegistry],
});

export const configInfo = new Gauge({
  name: 'gatehouse_config_info',
  help: 'The active configuration: 1, labelled with its hash (as in /config_dump)',
  labelNames: ['hash'] as const,
  registers: [configRegistry],
});

/** Marks `hash` as the active configuration, loaded now. */
export function setActiveConfig(hash: string): void {
  configInfo.reset();
  configInfo.labels(hash).set(1);
  lastReloadSuccess.set(Date.now() / 1000);
}
