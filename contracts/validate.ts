/**
 * Runtime checks of the contracts, shared by the gateway (before anything enters the outbox)
 * and the cloud API (on every ingest batch), so both ends reject exactly the same things.
 */
import { Compile } from 'typebox/compile'
import type { TSchema } from 'typebox'
import { EnvelopeBase, payloadSchemas, type Envelope, type EnvelopeKind } from './envelope.ts'

export interface SchemaProblem {
  /** JSON Pointer into the checked value, e.g. `/envelopes/3/payload/value`. */
  path: string
  message: string
}

export interface Checker<T> {
  check(value: unknown): value is T
  /** At most `limit` problems, each with the path of the offending value. */
  problems(value: unknown, prefix?: string, limit?: number): SchemaProblem[]
}

export function checker<T>(schema: TSchema): Checker<T> {
  const validator = Compile(schema)
  return {
    check: (value: unknown): value is T => validator.Check(value),
    problems(value, prefix = '', limit = 10) {
      const out: SchemaProblem[] = []
      for (const e of validator.Errors(value)) {
        // TypeBox reports `additionalProperties: false` twice: once as the boolean sub-schema on the
        // property itself and once on the parent. The parent form names the property; keep that one.
        if (e.keyword === 'boolean') continue
        let message = e.message
        if (e.keyword === 'additionalProperties') {
          const extra = (e.params as { additionalProperties?: string[] }).additionalProperties
          if (extra) message = `unknown field(s): ${extra.join(', ')}`
        }
        out.push({ path: prefix + e.instancePath, message })
        if (out.length >= limit) break
      }
      return out
    },
  }
}

const baseChecker = checker<Envelope>(EnvelopeBase)
const payloadCheckers = Object.fromEntries(
  Object.entries(payloadSchemas).map(([kind, schema]) => [kind, checker(schema)]),
) as Record<EnvelopeKind, Checker<unknown>>

/** Checks one envelope completely: its frame first, then its payload against its kind's schema. */
export function envelopeProblems(value: unknown, prefix = ''): SchemaProblem[] {
  const base = baseChecker.problems(value, prefix)
  if (base.length > 0) return base
  return payloadProblems(value as Envelope, prefix)
}

/** Checks the payload of an envelope whose frame is already known to be valid. */
export function payloadProblems(e: Envelope, prefix = ''): SchemaProblem[] {
  const check = payloadCheckers[e.kind]
  // The fast compiled check first; collecting errors walks the value again, slowly, and is only
  // needed when something is wrong.
  return check.check(e.payload) ? [] : check.problems(e.payload, `${prefix}/payload`)
}

/** Checks that `seq` and `id` agree: the id is the gateway plus the sequence, nothing else. */
export function idProblems(e: Envelope, prefix = ''): SchemaProblem[] {
  if (e.id !== `${e.gateway}:${e.seq}`) {
    return [{ path: `${prefix}/id`, message: `must be "${e.gateway}:${e.seq}" (gateway:seq)` }]
  }
  return []
}
