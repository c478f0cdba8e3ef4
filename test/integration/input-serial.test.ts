/**
 * The serial input over real pseudo-terminals (socat pty pairs) into a real gateway: framing,
 * noise, bad checksums, split and merged writes, oversized frames, a 500-scan wand upload where
 * every GWACK comes after the scan is on disk, and a USB unplug and replug.
 */
import { mkdtempSync, readlinkSync, renameSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readConfigFile } from '../../common/config-file.ts'
import { encode, frame, type WandRecord } from '../../contracts/serial-sentences.ts'
import { CheckpointReader } from '../../devices/serial/checkpoint-reader.ts'
import { floodNoise, seeded } from '../../devices/serial/noise.ts'
import { startPtyPair, type PtyPair } from '../../devices/serial/pty-pair.ts'
import { awaitReply } from '../../devices/serial/replies.ts'
import { SerialEnd, type Reply } from '../../devices/serial/serial-end.ts'
import { dockUpload, PatrolWand } from '../../devices/serial/wand-dock.ts'
import { DEMO_CONFIG_PATH } from '../../gateway/config/load.ts'
import type { DeviceConfig } from '../../gateway/config/schema.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { InputMetrics } from '../../gateway/inputs/input.ts'
import { resolveLine } from '../../gateway/inputs/serial/config.ts'
import { SerialLineInput } from '../../gateway/inputs/serial/line-input.ts'
import { createSerialMetrics } from '../../gateway/inputs/serial/metrics.ts'
import { createGatewayMetrics } from '../../gateway/metrics.ts'
import type { AcceptCallback, Pipeline } from '../../gateway/pipeline.ts'
import { testOfficeConfig } from '../helpers/office.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'
import { removeTestDir } from '../helpers/temp.ts'

const TAGS = ['04A1B2C3D4E5F6', '04A1B2C3D4E5F7', '04A1B2C3D4E5F8', '04A1B2C3D4E5F9']
const CHECKPOINTS = ['cp-01', 'cp-02', 'cp-03', 'cp-04']

interface ScanRow {
  device: string
  ts: number
  payload: { tag: string; method: string; staff?: string; checkpoint?: string }
}

describe('serial input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-serial-'))
  const { logger, lines } = capturingLogger('gateway')
  let gateway: Gateway
  let pairA: PtyPair
  let pairB: PtyPair
  const spares: PtyPair[] = []
  let endA: SerialEnd
  let endB: SerialEnd | undefined
  let reader: CheckpointReader
  let db: Database.Database

  const metric = async (pattern: RegExp) => {
    const m = pattern.exec(await gateway.metrics.registry.metrics())
    return m ? Number(m[1]) : 0
  }
  const rejected = (line: string, reason: string) =>
    metric(new RegExp(`gateway_input_rejected_total\\{input="serial",source="${line}",reason="${reason}"\\} (\\d+)`))
  const health = async () => {
    const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)
    return ((await res.json()) as { inputs: Record<string, { ok: boolean; detail?: string }> }).inputs
  }
  /** Rows on disk, read through a separate connection: what the gateway has committed, not what it holds in memory. */
  const scans = (device: string): ScanRow[] =>
    (db.prepare("SELECT body FROM outbox WHERE kind = 'scan' AND device = ? ORDER BY seq").all(device) as { body: string }[]).map(
      (r) => JSON.parse(r.body) as ScanRow,
    )
  const scanOnDisk = (device: string, ts: number) =>
    (db.prepare("SELECT count(*) AS n FROM outbox WHERE kind = 'scan' AND device = ? AND ts = ?").get(device, ts) as { n: number }).n
  /** All replies one end heard, in order. */
  const heard = (end: SerialEnd) => {
    const replies: Reply[] = []
    const off = end.onReply((r) => replies.push(r))
    return { replies, off }
  }

  beforeAll(async () => {
    pairA = await startPtyPair(join(dir, 'gw-a'), join(dir, 'dev-a'))
    pairB = await startPtyPair(join(dir, 'gw-b'), join(dir, 'dev-b'))
    const demo = readConfigFile(DEMO_CONFIG_PATH) as { devices: unknown[] }
    const config = testOfficeConfig({
      devices: [
        ...demo.devices,
        { id: 'reader-01', type: 'checkpoint-reader', via: 'serial', grid: 'g-laojie-1' },
        { id: 'reader-02', type: 'checkpoint-reader', via: 'serial', grid: 'g-laojie-2' },
        { id: 'reader-03', type: 'checkpoint-reader', via: 'serial', grid: 'g-laojie-1' },
        // wand-01 (via serial) is one of the demo office's devices.
      ],
      inputs: {
        serial: [
          { id: 'gate', path: pairA.gateway, baudRate: 115200, devices: ['reader-01', 'wand-01'] },
          { id: 'dock', path: pairB.gateway, baudRate: 9600, parity: 'even', dataBits: 7, stopBits: 2, devices: ['reader-02', 'wand-01'], reconnectMinMs: 50, reconnectMaxMs: 400 },
          // Its port does not exist when the gateway starts.
          { id: 'spare', path: join(dir, 'gw-c'), devices: ['reader-03'], reconnectMinMs: 50, reconnectMaxMs: 400 },
        ],
      },
    })
    gateway = await Gateway.start(config, { logger, processMetrics: false })
    db = new Database(gateway.outbox.path, { readonly: true })
    endA = await SerialEnd.open(pairA.device)
    reader = new CheckpointReader(endA, 'reader-01', { timeoutMs: 3000 })
  })

  afterAll(async () => {
    db?.close()
    await endA?.close()
    await endB?.close()
    await gateway?.stop()
    await pairA?.close()
    await pairB?.close()
    for (const p of spares) await p.close()
    removeTestDir(dir)
  })

  it('opens both lines: health is ok per line', async () => {
    const inputs = await health()
    expect(inputs['serial:gate']).toEqual({ ok: true })
    expect(inputs['serial:dock']).toEqual({ ok: true })
    expect(await metric(/gateway_input_connected\{input="serial",source="gate"\} (\d+)/)).toBe(1)
  })

  it('a reader scan is on disk before its GWACK, with the reader time as ts', async () => {
    const at = Date.now() - 5_000
    const { seq, frame: text } = reader.nextFrame(TAGS[0], at)
    let onDiskAtAck = -1
    const off = endA.onReply((r) => {
      if (r.device === 'reader-01' && r.seq === seq) onDiskAtAck = scanOnDisk('reader-01', at)
    })
    const reply = awaitReply(endA, 'reader-01', seq, 5000)
    await endA.write(text)
    expect(await reply).toEqual({ type: 'GWACK', device: 'reader-01', seq })
    off()
    expect(onDiskAtAck).toBe(1)
    expect(scans('reader-01').find((s) => s.ts === at)).toMatchObject({ payload: { tag: TAGS[0], method: 'reader', checkpoint: 'cp-01' } })
  })

  it('a reader without a clock gets the receive time', async () => {
    const clockless = new CheckpointReader(endA, 'reader-01', { clock: false, timeoutMs: 3000 })
    const before = Date.now()
    expect(await clockless.scan(TAGS[1])).toMatchObject({ type: 'GWACK' })
    const row = scans('reader-01').find((s) => s.payload.tag === TAGS[1])
    expect(row?.ts).toBeGreaterThanOrEqual(before)
    expect(row?.ts).toBeLessThanOrEqual(Date.now())
  })

  it('sentences split across writes and merged into one write are all taken', async () => {
    const base = Date.now() - 600_000
    const frames = [0, 1, 2, 3, 4].map((i) => reader.nextFrame(TAGS[i % 4], base + i * 61_000))
    const waits = frames.map((f) => awaitReply(endA, 'reader-01', f.seq, 5000))
    // The first byte by byte, each its own write(2); the other four in a single write.
    for (const ch of frames[0].frame) await endA.write(ch)
    await endA.write(frames.slice(1).map((f) => f.frame).join(''))
    const replies = await Promise.all(waits)
    expect(replies.map((r) => r?.type)).toEqual(['GWACK', 'GWACK', 'GWACK', 'GWACK', 'GWACK'])
    for (let i = 0; i < 5; i++) expect(scanOnDisk('reader-01', base + i * 61_000)).toBe(1)
  })

  it('a bad checksum is dropped unanswered and counted; the next sentence is taken', async () => {
    const before = await rejected('gate', 'bad_checksum')
    const at = Date.now() - 700_000
    const bad = reader.nextFrame(TAGS[2], at)
    const good = reader.nextFrame(TAGS[3], at + 1)
    const { replies, off } = heard(endA)
    const acked = awaitReply(endA, 'reader-01', good.seq, 5000)
    await endA.write(bad.frame.replace(/\*([0-9A-F]{2})/, (_m, hh: string) => `*${((parseInt(hh, 16) ^ 1) & 0xff).toString(16).toUpperCase().padStart(2, '0')}`))
    await endA.write(good.frame)
    expect(await acked).toMatchObject({ type: 'GWACK' })
    off()
    // Replies go out in the order the sentences arrived: had the bad one been answered, it would be here.
    expect(replies.filter((r) => r.seq === bad.seq)).toEqual([])
    expect(scanOnDisk('reader-01', at)).toBe(0)
    expect(await rejected('gate', 'bad_checksum')).toBe(before + 1)
    expect(lines.some((l) => l.includes('"code":"GW_SERIAL_BAD_CHECKSUM"') && l.includes('"line":"gate"'))).toBe(true)
  })

  it('an oversized sentence is dropped with everything up to the next $', async () => {
    const before = await rejected('gate', 'oversized')
    const good = reader.nextFrame(TAGS[0], Date.now() - 800_000)
    const acked = awaitReply(endA, 'reader-01', good.seq, 5000)
    await endA.write(`$GWSCN,reader-01,77,${'F'.repeat(2000)}\r\nstill the same junk\r\n${good.frame}`)
    expect(await acked).toMatchObject({ type: 'GWACK' })
    expect(await rejected('gate', 'oversized')).toBe(before + 1)
    expect(lines.some((l) => l.includes('"code":"GW_SERIAL_FRAME_TOO_LONG"'))).toBe(true)
  })

  it('fields that do not parse get a GWNAK with the code; nothing is stored', async () => {
    const body = 'GWWSC,wand-01,900001,staff-li-na,04A1B2C3D4E5F8,20261131T201502Z'
    const nak = awaitReply(endA, 'wand-01', 900001, 5000)
    await endA.write(frame(body))
    expect(await nak).toEqual({ type: 'GWNAK', device: 'wand-01', seq: 900001, code: 'GW_SERIAL_FRAME_INVALID' })
    expect(await rejected('gate', 'bad_field')).toBeGreaterThanOrEqual(1)
  })

  it('a sentence from a device not on this line is refused and not answered', async () => {
    const before = await rejected('gate', 'device_not_on_line')
    const stranger = encode({ type: 'GWSCN', device: 'reader-02', seq: 5, tag: TAGS[0], time: Date.now() - 900_000 })
    const good = reader.nextFrame(TAGS[1], Date.now() - 900_000)
    const { replies, off } = heard(endA)
    const acked = awaitReply(endA, 'reader-01', good.seq, 5000)
    await endA.write(stranger + good.frame)
    expect(await acked).toMatchObject({ type: 'GWACK' })
    off()
    expect(replies.filter((r) => r.device === 'reader-02')).toEqual([])
    expect(scans('reader-02')).toEqual([])
    expect(await rejected('gate', 'device_not_on_line')).toBe(before + 1)
    expect(lines.some((l) => l.includes('"code":"GW_DEVICE_UNKNOWN"') && l.includes('"device":"reader-02"'))).toBe(true)
  })

  it('a line full of noise: counted, logged, and the sentences through it are all taken', async () => {
    const before = await rejected('gate', 'noise')
    const random = seeded(20261126)
    await floodNoise(endA, 64 * 1024, random)
    const wand = new PatrolWand('wand-01', 'staff-li-na')
    const base = Date.now() - 3_600_000
    for (let i = 0; i < 40; i++) wand.store(TAGS[i % 4], base + i * 61_000)
    const result = await dockUpload(endA, wand, { window: 8, timeoutMs: 500, noise: { random, gapBytes: 40, corruptOneIn: 5 } })
    expect(result).toMatchObject({ acked: 40, naked: [], left: 0 })
    // About one in five was corrupted on the way and had to be sent again.
    expect(result.resent).toBeGreaterThan(0)
    for (let i = 0; i < 40; i++) expect(scanOnDisk('wand-01', base + i * 61_000), `record ${i}`).toBe(1)
    expect(await rejected('gate', 'noise')).toBeGreaterThan(before)
    expect(lines.some((l) => l.includes('"code":"GW_SERIAL_NOISE"'))).toBe(true)
    expect((await health())['serial:gate']).toEqual({ ok: true })
  })

  it('a wand upload of 500 stored scans: each keeps its own time, and each GWACK comes after its commit', async () => {
    const wand = new PatrolWand('wand-01', 'staff-zhang-wei')
    // Another day's round: 500 scans 20 s apart, a tag coming round every 80 s (no double scans).
    const base = Date.now() - 86_400_000
    for (let i = 0; i < 500; i++) wand.store(TAGS[i % 4], base + i * 20_000)
    const times = new Map([...wand.records.values()].map((r) => [r.seq, r.time]))
    const notOnDiskAtAck: number[] = []
    const result = await dockUpload(endA, wand, {
      window: 32,
      timeoutMs: 5000,
      onReply: (reply, scan) => {
        // The wand is about to delete the record: it must already be in the outbox file.
        if (reply.type !== 'GWACK' || scanOnDisk('wand-01', scan.time) !== 1) notOnDiskAtAck.push(scan.seq)
      },
    })
    expect(result).toMatchObject({ acked: 500, naked: [], left: 0, resent: 0 })
    expect(notOnDiskAtAck).toEqual([])
    expect(wand.records.size).toBe(0)
    const stored = scans('wand-01').filter((s) => s.payload.staff === 'staff-zhang-wei')
    expect(stored).toHaveLength(500)
    expect(stored.map((s) => s.ts).sort((a, b) => a - b)).toEqual([...times.values()].sort((a, b) => a - b))
    expect(stored.every((s, i) => s.payload.method === 'wand' && s.payload.checkpoint === CHECKPOINTS[TAGS.indexOf(s.payload.tag)] && i >= 0)).toBe(true)
  })

  it('a frame resent after a lost GWACK is acknowledged again and stored once', async () => {
    const time = Date.now() - 2 * 86_400_000
    const record: WandRecord = { type: 'GWWSC', device: 'wand-01', seq: 2_000_001, staff: 'staff-li-na', tag: TAGS[3], time }
    for (let i = 0; i < 2; i++) {
      const acked = awaitReply(endA, 'wand-01', record.seq, 5000)
      await endA.write(encode(record))
      expect(await acked).toMatchObject({ type: 'GWACK' })
    }
    expect(scanOnDisk('wand-01', time)).toBe(1)
  })

  it('unplug and replug: the line reports the loss, reconnects with backoff, and reading resumes', async () => {
    endB = await SerialEnd.open(pairB.device, { baudRate: 9600 })
    const readerB = new CheckpointReader(endB, 'reader-02', { timeoutMs: 3000 })
    expect(await readerB.scan(TAGS[2], Date.now() - 10_000)).toMatchObject({ type: 'GWACK' })
    const reconnectsBefore = await metric(/gateway_input_reconnects_total\{input="serial",source="dock"\} (\d+)/)

    // Pull the plug: the pty the gateway holds goes away.
    await pairB.close()
    await endB.close()
    await waitFor(async () => ((await health())['serial:dock']?.ok === false ? true : undefined), { what: 'dock line down', timeoutMs: 5000 })
    expect(await metric(/gateway_input_connected\{input="serial",source="dock"\} (\d+)/)).toBe(0)
    // A line away degrades the gateway without making it unready: MQTT devices still get through.
    const ready = await fetch(`http://127.0.0.1:${gateway.httpPort}/readyz`)
    const degraded = ((await ready.json()) as { degraded: string[] }).degraded
    expect(degraded).toContain('serial:dock')
    expect(degraded).not.toContain('serial:gate')
    await waitFor(() => (lines.some((l) => l.includes('"code":"GW_SERIAL_PORT_LOST"') && l.includes('"line":"dock"')) ? true : undefined), {
      what: 'port lost log line',
    })

    // Plug it back in at the same path.
    pairB = await startPtyPair(join(dir, 'gw-b'), join(dir, 'dev-b'))
    await waitFor(async () => ((await health())['serial:dock']?.ok === true ? true : undefined), { what: 'dock line back', timeoutMs: 5000 })
    expect(await metric(/gateway_input_reconnects_total\{input="serial",source="dock"\} (\d+)/)).toBe(reconnectsBefore + 1)
    expect(lines.some((l) => l.includes('serial port reopened') && l.includes('"line":"dock"'))).toBe(true)

    endB = await SerialEnd.open(pairB.device, { baudRate: 9600 })
    const again = new CheckpointReader(endB, 'reader-02', { timeoutMs: 3000 })
    const at = Date.now() - 1000
    expect(await again.scan(TAGS[3], at)).toMatchObject({ type: 'GWACK' })
    expect(scanOnDisk('reader-02', at)).toBe(1)
  })

  it('a line whose port is missing at start: the gateway runs, and the line opens when the port appears', async () => {
    expect((await health())['serial:spare']).toMatchObject({ ok: false })
    const pairC = await startPtyPair(join(dir, 'gw-c'), join(dir, 'dev-c'))
    spares.push(pairC)
    await waitFor(async () => ((await health())['serial:spare']?.ok === true ? true : undefined), { what: 'spare line open', timeoutMs: 5000 })
    const end = await SerialEnd.open(pairC.device)
    try {
      expect(await new CheckpointReader(end, 'reader-03', { timeoutMs: 3000 }).scan(TAGS[0])).toMatchObject({ type: 'GWACK' })
    } finally {
      await end.close()
    }
  })

  it('another device appearing at the path (a re-enumerated adapter) is noticed without any read error', async () => {
    const before = await metric(/gateway_input_reconnects_total\{input="serial",source="spare"\} (\d+)/)
    const pairD = await startPtyPair(join(dir, 'gw-d'), join(dir, 'dev-d'))
    spares.push(pairD)
    // Re-point the line's path at the new pty in one rename; the old pty stays alive, so no read fails.
    symlinkSync(readlinkSync(pairD.gateway), join(dir, 'gw-c.new'))
    renameSync(join(dir, 'gw-c.new'), join(dir, 'gw-c'))
    await waitFor(async () => ((await metric(/gateway_input_reconnects_total\{input="serial",source="spare"\} (\d+)/)) === before + 1 ? true : undefined), {
      what: 'spare line reopened on the new device',
      timeoutMs: 5000,
    })
    expect(lines.some((l) => l.includes('device node gone') && l.includes('"line":"spare"'))).toBe(true)
    const end = await SerialEnd.open(pairD.device)
    try {
      const at = Date.now() - 2000
      expect(await new CheckpointReader(end, 'reader-03', { timeoutMs: 3000 }).scan(TAGS[1], at)).toMatchObject({ type: 'GWACK' })
      expect(scanOnDisk('reader-03', at)).toBe(1)
    } finally {
      await end.close()
    }
  })

  it('stop takes no more sentences, and every ACK of those in the pipeline reaches the device before the port closes', async () => {
    const pair = await startPtyPair(join(dir, 'gw-e'), join(dir, 'dev-e'))
    spares.push(pair)
    // The line alone, with a pipeline whose commits the test holds and releases.
    const held: AcceptCallback[] = []
    let accepted = 0
    const pipeline = {
      accept: (_msg: unknown, done: AcceptCallback) => {
        accepted++
        held.push(done)
      },
    } as unknown as Pipeline
    const metrics = createGatewayMetrics()
    const reader09: DeviceConfig = { id: 'reader-09', type: 'checkpoint-reader', via: 'serial' }
    const input = new SerialLineInput(resolveLine({ id: 'stopping', path: pair.gateway, baudRate: 115200, devices: ['reader-09'] }), {
      pipeline,
      logger,
      metrics: new InputMetrics(metrics, 'serial'),
      own: createSerialMetrics(metrics.registry),
      devices: new Map([['reader-09', reader09]]),
    })
    await input.start()
    const end = await SerialEnd.open(pair.device)
    try {
      const r = new CheckpointReader(end, 'reader-09')
      const base = Date.now() - 3 * 86_400_000
      const inPipeline = Array.from({ length: 20 }, (_, i) => r.nextFrame(TAGS[i % 4], base + i * 61_000))
      const { replies, off } = heard(end)
      await end.write(inPipeline.map((f) => f.frame).join(''))
      await waitFor(() => (held.length === 20 ? true : undefined), { what: '20 sentences in the pipeline' })

      const stopped = input.stop()
      // Sent while the line is stopping: not taken (the reader resends them to the next gateway run).
      await end.write(Array.from({ length: 5 }, (_, i) => r.nextFrame(TAGS[i % 4], base + (20 + i) * 61_000).frame).join(''))
      for (const done of held.splice(0)) done(null)
      await stopped
      await waitFor(() => (replies.length >= 20 ? true : undefined), { what: 'the 20 ACKs' })
      off()
      expect(replies).toEqual(inPipeline.map((f) => ({ type: 'GWACK', device: 'reader-09', seq: f.seq })))
      expect(accepted).toBe(20)
    } finally {
      await end.close()
    }
  })
})
