// Configuration reload, as SIGHUP and `POST /reload` ask for it: read the file `gatehouse start`
// was given, validate it exactly as `gatehouse validate` does, refuse what needs a restart, and hand
// it to whatever serves (the gateway in this process, or every worker through the primary). Any
// problem leaves the running configuration in place; each is logged as FILE:LINE:COL: field:
// problem and the reload is counted as a failure. One reload at a time; the active configuration's
// hash (SHA-256 of its text, what `sha256sum FILE` prints) is in /config_dump and gatehouse_config_info.
import { createHash } from 'node:crypto';
import { formatProblem, parseConfig, type ConfigResult, type ConfigText } from '../config/load-config.js';
import type { GatewayConfig } from '../config/types.js';
import { log } from '../log.js';
import { configReloads, setActiveConfig } from '../metrics/config-metrics.js';
import { compareConfigs, type ConfigChanges } from './config-changes.js';

/** Where the configuration comes from: a file read anew on each reload, or the embedded default's text. */
export type ConfigSource = () => ConfigText | Extract<ConfigResult, { ok: false }>;

/** Applies a validated configuration where it serves; resolves with the problems that kept it out, per process. */
export type ApplyConfig = (config: GatewayConfig, text: ConfigText, changes: ConfigChanges) => Promise<readonly ProcessOutcome[]>;

/** One serving process's outcome: `slot` is a worker's, absent for the single-process gateway. */
export interface ProcessOutcome {
  readonly slot?: number;
  readonly pid: number | undefined;
  readonly problems: readonly string[];
}

export interface ReloadReport {
  readonly ok: boolean;
  /** Whether the text differs from the one active before (the embedded default never does). */
  readonly changed: boolean;
  /** The active configuration's hash after this reload (the old one if it failed). */
  readonly hash: string;
  readonly problems: readonly string[];
  /** Per serving process, when the configuration got that far. */
  readonly processes: readonly ProcessOutcome[];
}

interface Active {
  readonly text: ConfigText;
  readonly config: GatewayConfig;
  readonly hash: string;
  readonly loadedAt: Date;
}

export class ConfigReloader {
  #active: Active;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly source: ConfigSource,
    initial: { text: ConfigText; config: GatewayConfig },
    private readonly apply: ApplyConfig,
  ) {
    this.#active = { ...initial, hash: configHash(initial.text.text), loadedAt: new Date() };
    setActiveConfig(this.#active.hash);
  }

  get hash(): string {
    return this.#active.hash;
  }

  /** The active configuration (the one started with, or the last reload applied). */
  get config(): GatewayConfig {
    return this.#active.config;
  }

  /** Reloads, one at a time (a reload asked while one runs waits for it). `trigger` is logged. */
  reload(trigger: string): Promise<ReloadReport> {
    const run = this.#chain.then(() => this.#reload(trigger));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** The active configuration for /config_dump: its file, hash, when it was loaded, and the validated values (file paths, never key material). */
  dump(): unknown {
    const { text, config, hash, loadedAt } = this.#active;
    return { file: text.file, hash, loaded_at: loadedAt.toISOString(), config: JSON.parse(JSON.stringify(config, unlimited)) };
  }

  async #reload(trigger: string): Promise<ReloadReport> {
    const file = this.#active.text.file;
    log.info('config_reload_started', { trigger, file });
    const text = this.source();
    if (!text.ok) return this.#failed(trigger, text.problems.map(formatProblem), []);
    const result = parseConfig(text.text, text.file, text.baseDir);
    for (const warning of result.warnings) log.warn('config_warning', { problem: formatProblem(warning) });
    if (!result.ok) return this.#failed(trigger, result.problems.map(formatProblem), []);
    const changes = compareConfigs(this.#active.config, result.config);
    if (changes.needsRestart.length > 0) return this.#failed(trigger, changes.needsRestart.map((why) => `${text.file}: ${why}`), []);

    const processes = await this.apply(result.config, text, changes);
    const problems = processes.flatMap((p) => p.problems.map((problem) => (p.slot === undefined ? problem : `worker ${p.slot}: ${problem}`)));
    if (problems.length > 0) return this.#failed(trigger, problems, processes);

    const previous = this.#active.hash;
    this.#active = { text, config: result.config, hash: configHash(text.text), loadedAt: new Date() };
    setActiveConfig(this.#active.hash);
    configReloads.labels('success').inc();
    const changed = this.#active.hash !== previous;
    log.info('config_reloaded', { trigger, file: text.file, hash: this.#active.hash, changed, processes: processes.length });
    return { ok: true, changed, hash: this.#active.hash, problems: [], processes };
  }

  #failed(trigger: string, problems: readonly string[], processes: readonly ProcessOutcome[]): ReloadReport {
    configReloads.labels('failure').inc();
    for (const problem of problems) log.error('config_reload_failed', { trigger, problem, note: 'the running configuration stays' });
    return { ok: false, changed: false, hash: this.#active.hash, problems, processes };
  }
}

export function configHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON has no Infinity: an unlimited size says so instead of turning into null. */
function unlimited(_key: string, value: unknown): unknown {
  return value === Infinity ? 'unlimited' : value;
}
