/**
 * One RS-485 bus as an Input: a single master polling its slaves in turn. RS-485 is half-duplex
 * and Modbus RTU has one master, so there is never more than one request on the line (Modbus over
 * Serial Line §2.1, §2.4); each slave is polled on its own interval grid. The port going away is
 * retried with bounded backoff; a slave going quiet is reported offline once.
 */
import modbusSerial from 'modbus-serial'
import type { Counter, Gauge } from 'prom-client'
import type { DeviceReading, DeviceStatus } from '../../../contracts/device-messages.ts'
import { LogLimiter } from '../../../common/log-limiter.ts'
import type { DeviceMessage } from '../../pipeline.ts'
import { InputMetrics, type Input, type InputContext, type InputHealth } from '../input.ts'
import type { ResolvedBus, ResolvedSlave } from './config.ts'
import { classify, type RequestFailure } from './failures.ts'
import { SlavePresence } from './presence.ts'
import { bitValue, FUNCTION_CODE, planReads, pointValue, RegisterImage, type ReadBlock } from './registers.ts'
import { interFrameMs, nextDue, requestTimeoutMs } from './schedule.ts'
import { PortBackoff } from '../port-backoff.ts'

// modbus-serial is CommonJS; its typings declare the client class as `default` of the module.
const ModbusRTU = modbusSerial.default
type ModbusRTU = InstanceType<typeof ModbusRTU>

export interface ModbusMetrics {
  errors: Counter<'bus' | 'slave' | 'reason'>
  bits: Gauge<'bus' | 'slave' | 'bit'>
}

/** A read with the time its answer may take: `timeoutMs` plus the bytes on the wire. */
type TimedBlock = ReadBlock & { timeoutMs: number }

interface SlaveRuntime {
  config: ResolvedSlave
  blocks: TimedBlock[]
  presence: SlavePresence
  /** `InputMetrics` source label: `<bus>/<unit>`. */
  source: string
  due: number
}

export class ModbusBus implements Input {
  readonly name: string
  private readonly input: InputMetrics
  private readonly limiter = new LogLimiter()
  private readonly slaves: SlaveRuntime[]
  private readonly gapMs: number
  private client: ModbusRTU | undefined
  private stopping = false
  private loop: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private wake: (() => void) | undefined
  private lostAt: number | undefined
  private readonly reopening: PortBackoff

  constructor(
    private readonly bus: ResolvedBus,
    private readonly ctx: InputContext,
    private readonly metrics: ModbusMetrics,
  ) {
    this.name = `modbus:${bus.id}`
    this.input = new InputMetrics(ctx.metrics, 'modbus')
    this.gapMs = Math.ceil(interFrameMs(bus.baudRate))
    this.reopening = new PortBackoff(bus.reconnectMinMs, bus.reconnectMaxMs)
    this.slaves = bus.slaves.map((config) => ({
      config,
      blocks: planReads(config).map((b) => ({ ...b, timeoutMs: requestTimeoutMs(bus, b.count) })),
      presence: new SlavePresence(bus.offlineAfter),
      source: `${bus.id}/${config.unit}`,
      due: 0,
    }))
  }

  async start(): Promise<void> {
    this.stopping = false
    const now = Date.now()
    for (const s of this.slaves) s.due = now
    this.input.connected(this.bus.id, false)
    await this.connect()
    this.loop = this.run()
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.wake?.()
    // The request on the line, if any, ends within its timeout; the loop exits after it.
    await this.loop
    this.loop = undefined
    const client = this.client
    this.client = undefined
    if (client) await closeQuietly(client)
    this.input.connected(this.bus.id, false)
  }

  health(): InputHealth {
    const offline = this.slaves.filter((s) => s.presence.offline).map((s) => `${s.config.device} (unit ${s.config.unit})`)
    const detail = offline.length > 0 ? `slaves offline: ${offline.join(', ')}` : `${this.slaves.length} slaves, none offline`
    if (!this.client?.isOpen) {
      const attempts = this.reopening.failures > 0 ? ` (${this.reopening.failures} attempts)` : ''
      return { ok: false, detail: `port ${this.bus.path} not open${attempts}; ${detail}` }
    }
    return { ok: true, detail }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        if (!this.client) {
          await this.sleep(this.reopening.next())
          if (this.stopping) break
          await this.connect()
          continue
        }
        const next = this.slaves.reduce((a, b) => (b.due < a.due ? b : a))
        const wait = next.due - Date.now()
        if (wait > 0) {
          await this.sleep(wait)
          continue
        }
        await this.poll(next)
        next.due = nextDue(next.due, next.config.intervalMs, Date.now())
      } catch (err) {
        // A bug here must not end polling for good; the sleep keeps it from spinning.
        this.ctx.logger.error({ err, bus: this.bus.id }, 'modbus poll loop failed')
        await this.sleep(this.bus.reconnectMinMs)
      }
    }
  }

  private async connect(): Promise<boolean> {
    const { path, baudRate, parity, dataBits, stopBits, timeoutMs } = this.bus
    const client = new ModbusRTU()
    try {
      await client.connectRTUBuffered(path, { baudRate, parity, dataBits, stopBits })
    } catch (err) {
      this.portLost(err, 'could not open')
      return false
    }
    client.setTimeout(timeoutMs)
    client.on('close', () => this.closed(client))
    client.on('error', (err: unknown) => this.closed(client, err))
    this.client = client
    this.reopening.opened()
    this.input.connected(this.bus.id, true)
    const down = this.lostAt === undefined ? undefined : Date.now() - this.lostAt
    this.lostAt = undefined
    if (down === undefined) {
      this.ctx.logger.info({ bus: this.bus.id, path, baudRate, slaves: this.slaves.length }, 'modbus bus open')
      return true
    }
    // Counted when the port is back, not per attempt: the metric says how often the bus came back.
    this.input.reconnect(this.bus.id)
    // An adapter that opens and fails at once comes back every few seconds: one line per interval.
    const held = this.limiter.take(`open:${this.bus.id}`)
    if (held >= 0) this.ctx.logger.info({ bus: this.bus.id, path, baudRate, downMs: down, attempts: this.reopening.failures, heldBack: held }, 'modbus bus open again')
    return true
  }

  private closed(client: ModbusRTU, err?: unknown): void {
    if (client !== this.client) return
    this.client = undefined
    this.reopening.closed()
    this.input.connected(this.bus.id, false)
    void closeQuietly(client)
    if (!this.stopping) this.portLost(err, 'closed')
    this.wake?.()
  }

  private portLost(err: unknown, what: string): void {
    this.lostAt ??= Date.now()
    const held = this.limiter.take(`port:${this.bus.id}`)
    if (held < 0) return
    this.ctx.logger.warn(
      { code: 'GW_SERIAL_PORT_LOST', bus: this.bus.id, path: this.bus.path, err: errorMessage(err), heldBack: held },
      `modbus bus port ${what}; retrying with backoff`,
    )
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(this.timer)
        this.wake = undefined
        resolve()
      }
      this.timer = setTimeout(done, ms)
      this.wake = done
    })
  }

  /** One poll of one slave: every block in turn, then what it means, committed in order. */
  private async poll(s: SlaveRuntime): Promise<void> {
    const image = new RegisterImage()
    let silent: RequestFailure | undefined
    for (const block of s.blocks) {
      await this.sleep(this.gapMs)
      const client = this.client
      if (!client || this.stopping) return
      discardReceived(client)
      try {
        client.setTimeout(block.timeoutMs)
        const res = await read(client, s.config.unit, block)
        image.set(block.function, block.start, res)
        this.input.frame(s.source)
        this.reopening.proven()
      } catch (err) {
        // The port went away under the request: the bus's trouble, not the slave's.
        if (client !== this.client || !client.isOpen) return
        const failure = classify(err)
        this.failed(s, block, failure)
        if (failure.silent) {
          // The rest would most likely time out too, each holding the line for timeoutMs.
          silent = failure
          break
        }
      }
    }

    const messages: { kind: 'reading' | 'status'; body: DeviceReading | DeviceStatus }[] = []
    let status: DeviceStatus | undefined
    if (silent) {
      status = s.presence.unanswered(silent.reason)
    } else {
      const faults: string[] = []
      let faultsKnown = true
      for (const bit of s.config.bits) {
        const set = bitValue(bit, image)
        if (set === undefined) {
          if (bit.fault) faultsKnown = false
          continue
        }
        this.metrics.bits.set({ bus: this.bus.id, slave: String(s.config.unit), bit: bit.name }, set ? 1 : 0)
        if (set && bit.fault) faults.push(bit.name)
      }
      // A fault bit whose register did not come back (an exception) leaves the fault state as it
      // was; the slave did answer, so it is not on its way offline either, and if it was reported
      // offline it is online again.
      status = faultsKnown ? s.presence.answered(faults) : s.presence.answeredFaultsUnknown()
      for (const p of s.config.points) {
        const value = pointValue(p, image)
        if (value !== undefined) messages.push({ kind: 'reading', body: p.unit ? { quantity: p.quantity, value, unit: p.unit } : { quantity: p.quantity, value } })
        else if (image.get(p.function, p.address) !== undefined) this.input.rejected(s.source, 'bad_value')
      }
    }
    if (status) messages.unshift({ kind: 'status', body: status })
    for (const m of messages) await this.deliver(s, m.kind, m.body)
  }

  private failed(s: SlaveRuntime, block: ReadBlock, f: RequestFailure): void {
    const slave = String(s.config.unit)
    this.metrics.errors.inc({ bus: this.bus.id, slave, reason: f.reason })
    this.input.rejected(s.source, f.reason)
    const held = this.limiter.take(`${s.source}:${f.reason}`)
    if (held < 0) return
    this.ctx.logger.warn(
      {
        code: f.code,
        bus: this.bus.id,
        slave: s.config.unit,
        device: s.config.device,
        functionCode: FUNCTION_CODE[block.function],
        address: block.start,
        count: block.count,
        ...(f.exception !== undefined ? { exception: f.exception } : {}),
        reason: f.reason,
        heldBack: held,
      },
      `modbus slave ${s.config.unit} on ${this.bus.id}: ${f.message}`,
    )
  }

  private async deliver(s: SlaveRuntime, kind: 'reading' | 'status', body: DeviceReading | DeviceStatus): Promise<void> {
    const msg: DeviceMessage = { input: 'modbus', deviceId: s.config.device, kind, raw: Buffer.from(JSON.stringify(body)), receivedAt: Date.now() }
    try {
      // Awaited: the next poll waits for the commit, so a slow disk slows polling instead of queueing.
      const outcome = await this.ctx.pipeline.acceptAsync(msg)
      if (kind !== 'status') return
      const status = body as DeviceStatus
      // A rejection can never be accepted; remembering it keeps it from being resent every poll.
      s.presence.committed(status)
      if (!outcome.ok) return
      if (status.state === 'offline') {
        this.ctx.logger.warn({ code: 'GW_MODBUS_SLAVE_OFFLINE', bus: this.bus.id, slave: s.config.unit, device: s.config.device, reason: status.reason }, 'modbus slave offline')
      } else {
        this.ctx.logger.info({ bus: this.bus.id, slave: s.config.unit, device: s.config.device, state: status.state, reason: status.reason }, `modbus slave ${status.state}`)
      }
    } catch (err) {
      // Not committed: a status stays unreported and is sent again after the next poll.
      this.ctx.logger.error({ err, code: 'GW_OUTBOX_COMMIT_FAILED', bus: this.bus.id, device: s.config.device, kind }, 'could not commit a modbus message')
    }
  }
}

function read(client: ModbusRTU, unit: number, block: ReadBlock): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, res?: { data: number[] }) => (err || !res ? reject(err ?? new Error('no data')) : resolve(res.data))
    if (block.function === 'holding') client.writeFC3(unit, block.start, block.count, done)
    else client.writeFC4(unit, block.start, block.count, done)
  })
}

/**
 * Drops whatever the port received before this request. An RTU answer carries no transaction id
 * (Modbus over Serial Line §2.5.1: address, PDU, CRC), so only timing ties it to its request: the
 * master waits for a reply after sending (§2.4.1), and nothing that arrived before can be it.
 * modbus-serial's buffered port (ports/rtubufferedport.js, `_buffer`) keeps bytes that matched no
 * request and takes the first [unit, function] header in them: a slave's late answer to a request
 * that already timed out would be read, CRC and all, as its answer to the next one (stale values
 * committed as current), and noise left there could be counted as a CRC or frame error.
 */
function discardReceived(client: ModbusRTU): void {
  const port = (client as unknown as { _port?: { _buffer?: unknown } })._port
  if (port && Buffer.isBuffer(port._buffer)) port._buffer = Buffer.alloc(0)
}

/** modbus-serial's SerialPortError is not an Error instance; its message is what is worth logging. */
function errorMessage(err: unknown): string | undefined {
  if (err === undefined) return undefined
  const message = (err as { message?: unknown }).message
  return typeof message === 'string' ? message : JSON.stringify(err)
}

function closeQuietly(client: ModbusRTU): Promise<void> {
  // close() unhooks the client's error listener from its port, and the port re-emits errors from
  // the serial device (a write failing after an unplug); an 'error' with no listener would throw.
  const port = (client as unknown as { _port?: { on?(event: 'error', listener: () => void): unknown } })._port
  port?.on?.('error', () => undefined)
  return new Promise((resolve) => {
    try {
      client.close(() => resolve())
    } catch {
      resolve()
    }
  })
}
