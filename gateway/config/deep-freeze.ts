// The validated config is a snapshot: frozen all the way down, so nothing that holds it can change
// what the rest of the gateway sees. Optional fields that were not set are removed rather than
// kept as `undefined`, so the snapshot prints and compares like the YAML it came from.

export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (record[key] === undefined && !Array.isArray(value)) delete record[key];
    else deepFreeze(record[key]);
  }
  return Object.freeze(value);
}
