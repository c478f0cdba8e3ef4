/** Builders for canonical envelopes, for store and API tests. Each call gets the next sequence. */
import type { AlertPayload, Envelope, EnvelopeDraft } from '../../contracts/envelope.ts'

export class EnvelopeFactory {
  private seq = 0

  constructor(
    readonly gateway = 'gw-test-01',
    readonly office = 'office-test',
  ) {}

  stamp<D extends EnvelopeDraft>(draft: D): D & { id: string; seq: number } {
    const seq = ++this.seq
    return { ...draft, id: `${draft.gateway}:${seq}`, seq }
  }

  reading(device: string, ts: number, value: number, quantity = 'gas', unit = '%LEL', enterprise?: string): Envelope {
    return this.stamp({
      gateway: this.gateway,
      office: this.office,
      device,
      ...(enterprise ? { enterprise } : {}),
      ts,
      kind: 'reading',
      payload: { quantity, value, unit },
    })
  }

  alert(device: string, ts: number, payload: Partial<AlertPayload> & Pick<AlertPayload, 'alertId' | 'state'>): Envelope {
    return this.stamp({
      gateway: this.gateway,
      office: this.office,
      device,
      ts,
      kind: 'alert',
      payload: { type: 'sensor.threshold', severity: 'major', message: 'test alert', ...payload },
    })
  }

  scan(device: string, ts: number, tag: string, checkpoint?: string): Envelope {
    return this.stamp({
      gateway: this.gateway,
      office: this.office,
      device,
      ts,
      kind: 'scan',
      payload: { tag, method: 'nfc', staff: 'staff-1', ...(checkpoint ? { checkpoint } : {}) },
    })
  }

  camera(device: string, ts: number, event = 'intrusion', confidence = 0.9): Envelope {
    return this.stamp({ gateway: this.gateway, office: this.office, device, ts, kind: 'camera', payload: { event, confidence, channel: 1, region: 'gate' } })
  }

  report(device: string, ts: number, text: string): Envelope {
    return this.stamp({
      gateway: this.gateway,
      office: this.office,
      device,
      ts,
      kind: 'report',
      payload: { type: 'sos', text, staff: 'staff-1', location: { lat: 32.04, lon: 118.63 } },
    })
  }

  aggregate(device: string, from: number, mean: number): Envelope {
    return this.stamp({
      gateway: this.gateway,
      office: this.office,
      device,
      ts: from,
      kind: 'aggregate',
      payload: { quantity: 'gas', unit: '%LEL', from, to: from + 60_000, min: mean - 1, max: mean + 1, mean, count: 12 },
    })
  }

  incident(device: string, ts: number, description: string): Envelope {
    const e = this.stamp({
      gateway: this.gateway,
      office: this.office,
      device,
      grid: 'g-1',
      ts,
      kind: 'incident',
      payload: { incidentId: '', category: 'dumping', description, reporter: 'staff-1', level: 'grid', location: { lat: 32.04, lon: 118.63 }, photo: 'p/1.jpg' },
    })
    if (e.kind === 'incident') e.payload.incidentId = e.id
    return e
  }

  /** A data-gap record as the gateway's eviction makes it: stamped when it was made, no enterprise. */
  gap(device: string, ts: number): Envelope {
    return this.stamp({ gateway: this.gateway, office: this.office, device, ts, kind: 'gap', payload: { class: 'telemetry', reason: 'quota', from: ts - 3_600_000, to: ts - 60_000, count: 100, kinds: ['reading'] } })
  }

  status(device: string, ts: number, state: 'online' | 'offline' | 'fault', enterprise?: string): Envelope {
    return this.stamp({ gateway: this.gateway, office: this.office, device, ts, kind: 'status', payload: { state }, ...(enterprise ? { enterprise } : {}) })
  }
}
