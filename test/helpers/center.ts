/**
 * A center for API tests: two districts, three offices, enterprises, one patrol route, gateways
 * and one user of every role (config-declared tokens), on the real SQLite event store, with a
 * clock the test moves.
 *
 *   district d-north: office o-a (enterprises e-a1, e-a2; route r-a: cp-1 → cp-2, 08:00 local,
 *                     60 min, 10 min grace, staff s-1), office o-b (enterprise e-b1)
 *   district d-south: office o-c (enterprise e-c1)
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../../cloud-api/app.ts'
import { loadCloudConfig, type CloudConfig } from '../../cloud-api/config.ts'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import type { EventStore } from '../../cloud-api/store/store.ts'
import { silentLogger, type Logger } from '../../common/logger.ts'
import { hashToken } from '../../common/secrets.ts'
import type { Envelope } from '../../contracts/envelope.ts'
import { EnvelopeFactory } from './envelopes.ts'

export const TOKENS = {
  admin: 'tok-admin-0123456789abcdefghij',
  centerNorth: 'tok-center-north-0123456789abcd',
  centerNorth2: 'tok-center-north2-0123456789abc',
  centerSouth: 'tok-center-south-0123456789abcd',
  inspector: 'tok-inspector-a1-0123456789abcd',
  supervisor: 'tok-supervisor-a-0123456789abcd',
  gwA: 'tok-gateway-a-0123456789abcdefg',
  gwC: 'tok-gateway-c-0123456789abcdefg',
} as const
export type Who = keyof typeof TOKENS | 'nobody'

export const organization = {
  districts: [
    {
      id: 'd-north',
      name: 'North',
      offices: [
        {
          id: 'o-a',
          name: 'Office A',
          utcOffsetMinutes: 480,
          enterprises: [
            { id: 'e-a1', name: 'Chemical plant A1' },
            { id: 'e-a2', name: 'Canteen A2' },
          ],
          routes: [
            {
              id: 'r-a',
              name: 'Round A',
              ordered: false,
              checkpoints: ['cp-1', 'cp-2'],
              schedules: [{ start: '08:00', durationMinutes: 60, graceMinutes: 10, staff: ['s-1'] }],
            },
          ],
        },
        { id: 'o-b', name: 'Office B', utcOffsetMinutes: 480, enterprises: [{ id: 'e-b1', name: 'Hotel B1' }], routes: [] },
      ],
    },
    { id: 'd-south', name: 'South', offices: [{ id: 'o-c', name: 'Office C', utcOffsetMinutes: 480, enterprises: [{ id: 'e-c1', name: 'Plant C1' }], routes: [] }] },
  ],
}

export function centerConfig(overrides: Record<string, unknown> = {}): CloudConfig {
  const user = (name: string, role: string, scope: object, token: string) => ({ name, role, scope, tokenHashes: [hashToken(token)] })
  return loadCloudConfig(undefined, {}, {
    center: { path: ':memory:' },
    organization,
    gateways: [
      { id: 'gw-a', office: 'o-a', tokenHash: hashToken(TOKENS.gwA) },
      { id: 'gw-c', office: 'o-c', tokenHash: hashToken(TOKENS.gwC) },
    ],
    users: [
      user('admin', 'admin', {}, TOKENS.admin),
      user('zhang', 'center', { district: 'd-north' }, TOKENS.centerNorth),
      user('wang', 'center', { district: 'd-north' }, TOKENS.centerNorth2),
      user('li', 'center', { district: 'd-south' }, TOKENS.centerSouth),
      user('inspector-a1', 'inspector', { enterprises: ['e-a1'] }, TOKENS.inspector),
      user('supervisor-a', 'supervisor', { offices: ['o-a'] }, TOKENS.supervisor),
    ],
    reads: { open: false },
    ...overrides,
  })
}

export interface TestCenter {
  app: FastifyInstance
  store: EventStore
  clock: { now: number }
  as(who: Who, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown): Promise<LightMyRequestResponse>
  ingest(who: 'gwA' | 'gwC', envelopes: Envelope[], headers?: Record<string, string>): Promise<LightMyRequestResponse>
  close(): Promise<void>
}

export async function startCenter(options: { overrides?: Record<string, unknown>; store?: EventStore; now?: number; logger?: Logger } = {}): Promise<TestCenter> {
  const store = options.store ?? new SqliteStore(':memory:')
  await store.open()
  const clock = { now: options.now ?? Date.now() }
  const app = await buildApp({ config: centerConfig(options.overrides), store, logger: options.logger ?? silentLogger(), now: () => clock.now })
  const auth = (who: Who) => (who === 'nobody' ? {} : { authorization: `Bearer ${TOKENS[who]}` })
  return {
    app,
    store,
    clock,
    as: (who, method, url, payload) => app.inject({ method, url, headers: auth(who), ...(payload !== undefined ? { payload: payload as object } : {}) }),
    ingest: (who, envelopes, headers = {}) => app.inject({ method: 'POST', url: '/v1/ingest', headers: { ...auth(who), ...headers }, payload: { envelopes } }),
    async close() {
      await app.close()
      await store.close()
    },
  }
}

/** Envelopes of one gateway, with the enterprise set where a device has one. */
export class FieldFactory extends EnvelopeFactory {
  alertOf(device: string, ts: number, opts: { type?: string; severity?: 'critical' | 'major' | 'minor'; enterprise?: string; state?: 'raised' | 'updated' | 'cleared'; alertId?: string; value?: number; quantity?: string }): Envelope {
    const e = this.alert(device, ts, {
      alertId: opts.alertId ?? '',
      state: opts.state ?? 'raised',
      type: opts.type ?? 'sensor.threshold',
      severity: opts.severity ?? 'major',
      ...(opts.value !== undefined ? { value: opts.value, quantity: opts.quantity ?? 'gas', unit: '%LEL', threshold: 25 } : {}),
    })
    if (e.kind === 'alert' && e.payload.alertId === '') e.payload.alertId = e.id
    return opts.enterprise ? { ...e, enterprise: opts.enterprise } : e
  }

  readingOf(device: string, ts: number, value: number, enterprise?: string): Envelope {
    return this.reading(device, ts, value, 'gas', '%LEL', enterprise)
  }
}
