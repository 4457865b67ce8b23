// Watches a group of files for changes and calls back once per burst. It watches the DIRECTORIES:
// editors and cert-manager replace files by rename, and Kubernetes swaps the `..data` symlink of a
// mounted Secret, neither of which a watch on the file itself survives. Events are debounced so a
// certificate and key written one after the other are read together; a slow stat poll catches what
// inotify cannot see (a symlink into another directory, a directory recreated, network filesystems).
import fs from 'node:fs';
import path from 'node:path';
import { log } from '../log.js';

export interface FileWatcherOptions {
  /** Quiet time after the last event before calling back. */
  debounceMs: number;
  /** Stat every file this often; 0 disables the poll. */
  pollMs: number;
}

export class FileWatcher {
  readonly #files: readonly string[];
  readonly #names: ReadonlySet<string>;
  readonly #watchers = new Map<string, fs.FSWatcher>();
  readonly #signatures = new Map<string, string>();
  #debounce: NodeJS.Timeout | undefined;
  #firstEventAt = 0;
  #poll: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    files: readonly string[],
    private readonly onChange: () => void,
    private readonly options: FileWatcherOptions,
  ) {
    this.#files = [...new Set(files.map((f) => path.resolve(f)))];
    this.#names = new Set(this.#files.map((f) => path.basename(f)));
    for (const file of this.#files) this.#signatures.set(file, signature(file));
    this.#arm();
    if (options.pollMs > 0) {
      this.#poll = setInterval(() => this.#checkStats(), options.pollMs);
      this.#poll.unref();
    }
  }

  /** Watches every directory holding a file; re-run by the poll to recover a watch that was lost. */
  #arm(): void {
    for (const dir of new Set(this.#files.map((f) => path.dirname(f)))) {
      if (this.#watchers.has(dir)) continue;
      try {
        const watcher = fs.watch(dir, { persistent: false }, (_event, name) => this.#onEvent(name));
        watcher.on('error', (err) => {
          log.warn('file_watch_lost', { dir, problem: err.message, note: 'falling back to the stat poll until the watch is re-armed' });
          watcher.close();
          this.#watchers.delete(dir);
        });
        this.#watchers.set(dir, watcher);
      } catch (err) {
        log.warn('file_watch_failed', { dir, problem: (err as Error).message, note: 'changes are seen by the stat poll only' });
      }
    }
  }

  #onEvent(name: string | Buffer | null): void {
    const base = name === null ? null : name.toString();
    // Our files, or Kubernetes' `..data` / `..2024_…` swap; other files of a shared directory are noise.
    if (base !== null && !this.#names.has(base) && !base.startsWith('..')) return;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#debounce === undefined) this.#firstEventAt = now;
    else clearTimeout(this.#debounce);
    // Trailing debounce, but a file rewritten without pause still reloads within ten quiet periods.
    const wait = Math.max(0, Math.min(this.options.debounceMs, this.#firstEventAt + 10 * this.options.debounceMs - now));
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      for (const file of this.#files) this.#signatures.set(file, signature(file));
      if (!this.#closed) this.onChange();
    }, wait);
    this.#debounce.unref();
  }

  #checkStats(): void {
    this.#arm();
    for (const file of this.#files) {
      if (signature(file) !== this.#signatures.get(file)) {
        this.#schedule();
        return;
      }
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }
}

/** Identity and version of what the path resolves to now (following symlinks). */
function signature(file: string): string {
  try {
    const s = fs.statSync(file);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}
