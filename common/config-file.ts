/**
 * Loading a config file (YAML or JSON) and checking it against a schema, with errors that name
 * the path and the problem: `devices/2/secret: must be a scrypt hash`.
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import type { TSchema } from 'typebox'
import { checker, type SchemaProblem } from '../contracts/validate.ts'

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: SchemaProblem[],
  ) {
    super(`invalid config ${source}:\n` + problems.map((p) => `  ${p.path || '/'}: ${p.message}`).join('\n'))
    this.name = 'ConfigError'
  }
}

/** Reads a YAML or JSON file (YAML is a superset of JSON, so one parser reads both). */
export function readConfigFile(path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(path, [{ path: '', message: `cannot read file: ${(err as Error).message}` }])
  }
  try {
    return parseYaml(text) as unknown
  } catch (err) {
    throw new ConfigError(path, [{ path: '', message: `not valid YAML/JSON: ${(err as Error).message}` }])
  }
}

/** Throws a ConfigError listing every schema problem (up to 20), or returns the value typed. */
export function checkConfig<T>(schema: TSchema, value: unknown, source: string): T {
  const check = checker<T>(schema)
  if (!check.check(value)) throw new ConfigError(source, check.problems(value, '', 20))
  return value
}

/** Objects merge key by key; arrays and scalars from `over` replace those in `base`. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base
  if (!isPlainObject(base) || !isPlainObject(over)) return over
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) {
    // defineProperty, not assignment: a `__proto__` key in a config file must stay an own key
    // (which the schema then rejects) rather than replace the object's prototype.
    const merged = deepMerge(Object.hasOwn(base, key) ? base[key] : undefined, value)
    Object.defineProperty(out, key, { value: merged, enumerable: true, writable: true, configurable: true })
  }
  return out
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
