// grpc-timeout, a gRPC request's deadline (gRPC over HTTP/2, "Requests"): at most eight ASCII
// digits and a unit: H hours, M minutes, S seconds, m milliseconds, u microseconds, n nanoseconds.

/** Node's timers wait at most 2^31-1 ms (24.8 days); a longer deadline waits that long. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const MS_PER_UNIT: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** The deadline in milliseconds (fractions below one kept), or undefined when `value` is not a grpc-timeout. */
export function parseGrpcTimeout(value: string): number | undefined {
  const n = value.length;
  if (n < 2 || n > 9) return undefined;
  const perUnit = MS_PER_UNIT[value[n - 1]!];
  if (perUnit === undefined) return undefined;
  let amount = 0;
  for (let i = 0; i < n - 1; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    amount = amount * 10 + digit;
  }
  return Math.min(amount * perUnit, MAX_TIMER_MS);
}
