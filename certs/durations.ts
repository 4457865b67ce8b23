// Durations as users type them (`--ttl 1h30m`) and as explanations print them ("3 minutes ago").
import { UsageError } from './parse-args.js';

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Go-style durations (`90s`, `1h30m`, `8760h`, `7d`) in milliseconds; must be positive. */
export function parseDuration(flag: string, text: string): number {
  if (!DURATION.test(text)) throw new UsageError(`--${flag} '${text}' is not a duration (examples: 30m, 1h, 1h30m, 7d)`);
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) ms += Number(amount) * DURATION_UNITS[unit!]!;
  if (!(ms >= 1000)) throw new UsageError(`--${flag} '${text}' is shorter than one second`);
  return Math.round(ms);
}

/** "3 minutes", "2 hours": rounded to the largest unit that keeps two significant figures readable. */
export function humanDuration(ms: number): string {
  const abs = Math.abs(ms);
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (abs < 120_000) return unit(Math.round(abs / 1000), 'second');
  if (abs < 120 * 60_000) return unit(Math.round(abs / 60_000), 'minute');
  if (abs < 48 * 3_600_000) return unit(Math.round(abs / 3_600_000), 'hour');
  return unit(Math.round(abs / 86_400_000), 'day');
}
