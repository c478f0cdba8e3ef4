import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OutgoingQueue, type QueuedPacket } from '../../broker/outgoing-queue.ts'

const require = createRequire(import.meta.url)
// aedes-persistence's reference implementation: our queue must answer exactly as it does.
const Reference = require('aedes-persistence/asyncPersistence.js') as new () => {
  outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket): Promise<void>
  outgoingUpdate(client: { id: string }, packet: QueuedPacket): Promise<void>
  outgoingClearMessageId(client: { id: string }, packet: { messageId: number }): Promise<QueuedPacket | undefined>
  outgoingStream(client: { id: string }): Readable
}
const AedesPacket = require('aedes-packet') as new (original: QueuedPacket) => QueuedPacket

type Op =
  | { op: 'enqueue'; broker: string; counter: number }
  | { op: 'update'; broker: string; counter: number; messageId: number }
  | { op: 'clear'; messageId: number }

// Few brokers, counters and packet ids, so that collisions (the interesting cases) are common.
const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('enqueue' as const), broker: fc.constantFrom('b1', 'b2'), counter: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ op: fc.constant('update' as const), broker: fc.constantFrom('b1', 'b2'), counter: fc.integer({ min: 1, max: 6 }), messageId: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ op: fc.constant('clear' as const), messageId: fc.integer({ min: 1, max: 4 }) }),
  ),
  { maxLength: 60 },
)

const packet = (broker: string, counter: number, messageId?: number): QueuedPacket =>
  ({ cmd: 'publish', topic: 'cmd/d/x', payload: Buffer.from(`${broker}:${counter}`), qos: 1, retain: false, dup: false, brokerId: broker, brokerCounter: counter, messageId })

const view = (p: QueuedPacket | undefined) => p && { brokerId: p.brokerId, brokerCounter: p.brokerCounter, messageId: p.messageId, payload: String(p.payload) }

async function streamed(s: Readable): Promise<QueuedPacket[]> {
  const out: QueuedPacket[] = []
  for await (const p of s) out.push(p as QueuedPacket)
  return out
}

describe('OutgoingQueue', () => {
  it('answers every enqueue, update and clear exactly as the reference implementation does', async () => {
    await fc.assert(
      fc.asyncProperty(ops, async (sequence: Op[]) => {
        const reference = new Reference()
        const ours = new OutgoingQueue()
        const client = { id: 'c', clientId: 'c' }
        for (const o of sequence) {
          if (o.op === 'enqueue') {
            await reference.outgoingEnqueue(client, packet(o.broker, o.counter))
            ours.enqueue(new AedesPacket(packet(o.broker, o.counter)))
          } else if (o.op === 'update') {
            const theirs = await reference.outgoingUpdate(client, packet(o.broker, o.counter, o.messageId)).then(
              () => true,
              () => false,
            )
            expect(ours.update(packet(o.broker, o.counter, o.messageId))).toBe(theirs)
          } else {
            const theirs = await reference.outgoingClearMessageId(client, { messageId: o.messageId })
            expect(view(ours.clear(o.messageId))).toEqual(view(theirs))
          }
          const queued = await streamed(reference.outgoingStream(client))
          expect(ours.packets().map(view)).toEqual(queued.map(view))
          expect(ours.size).toBe(queued.length)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('lets each PUBREL replace its own message while others wait for their PUBCOMP (where the reference renumbers the first)', async () => {
    const pubrel = (messageId: number) => ({ cmd: 'pubrel', messageId }) as unknown as QueuedPacket
    const ours = new OutgoingQueue()
    const reference = new Reference()
    const client = { id: 'c', clientId: 'c' }
    for (const counter of [1, 2, 3]) {
      ours.enqueue(new AedesPacket(packet('b1', counter)))
      await reference.outgoingEnqueue(client, packet('b1', counter))
      ours.update(packet('b1', counter, counter + 10))
      await reference.outgoingUpdate(client, packet('b1', counter, counter + 10))
    }
    // PUBRECs for all three arrive before any PUBCOMP, as from a client acknowledging in a pipeline.
    for (const id of [11, 12, 13]) {
      expect(ours.update(pubrel(id))).toBe(true)
      await reference.outgoingUpdate(client, pubrel(id))
    }
    expect(ours.packets().map((p) => [p.cmd, p.messageId])).toEqual([['pubrel', 11], ['pubrel', 12], ['pubrel', 13]])
    // The reference renumbered the first PUBREL twice and left two messages unreleased.
    expect((await streamed(reference.outgoingStream(client))).map((p) => [p.cmd, p.messageId])).toEqual([['pubrel', 13], ['publish', 12], ['publish', 13]])
    for (const id of [11, 12, 13]) expect(ours.clear(id)?.messageId).toBe(id)
    expect(ours.size).toBe(0)
    // A PUBREC sent again (after a reconnect) finds its PUBREL; one for nothing queued is refused.
    ours.enqueue(new AedesPacket(packet('b1', 4)))
    ours.update(packet('b1', 4, 14))
    expect(ours.update(pubrel(14))).toBe(true)
    expect(ours.update(pubrel(14))).toBe(true)
    expect(ours.update(pubrel(99))).toBe(false)
  })

  it('keeps order and answers through a long backlog cleared out of order', () => {
    const q = new OutgoingQueue()
    for (let i = 1; i <= 5000; i++) q.enqueue(new AedesPacket(packet('b1', i)))
    for (let i = 1; i <= 5000; i++) expect(q.update(packet('b1', i, (i % 65535) + 1))).toBe(true)
    // Every other message acknowledged, from the back, then the rest from the front.
    for (let i = 5000; i >= 1; i -= 2) expect(q.clear((i % 65535) + 1)?.brokerCounter).toBe(i)
    expect(q.size).toBe(2500)
    expect(q.packets().map((p) => p.brokerCounter)).toEqual(Array.from({ length: 2500 }, (_, k) => 2 * k + 1))
    for (let i = 1; i <= 5000; i += 2) expect(q.clear((i % 65535) + 1)?.brokerCounter).toBe(i)
    expect(q.size).toBe(0)
    expect(q.packets()).toEqual([])
  })
})
