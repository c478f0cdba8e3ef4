/**
 * Builds the Modbus RTU inputs the office config asks for: one Input per RS-485 bus
 * (`inputs.modbus`), all sharing the `gateway_modbus_*` metrics. docs/inputs/modbus.md.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Input, InputContext } from '../input.ts'
import { ModbusBus, type ModbusMetrics } from './bus.ts'
import { resolveBus } from './config.ts'

export function createModbusInputs(ctx: InputContext): Input[] {
  // The config, references to /devices included, was checked when it loaded (load.ts).
  const metrics = modbusMetrics(ctx.registry)
  return ctx.config.inputs.modbus.map((bus) => new ModbusBus(resolveBus(bus), ctx, metrics))
}

/** Registered once per registry: a gateway restarted in-process (tests) reuses them. */
function modbusMetrics(registry: Registry): ModbusMetrics {
  const errors =
    (registry.getSingleMetric('gateway_modbus_errors_total') as ModbusMetrics['errors'] | undefined) ??
    new Counter({
      name: 'gateway_modbus_errors_total',
      help: 'Modbus requests without a usable answer, per slave: timeout, crc, bad_frame, exception_<name>',
      labelNames: ['bus', 'slave', 'reason'] as const,
      registers: [registry],
    })
  const bits =
    (registry.getSingleMetric('gateway_modbus_status_bit') as ModbusMetrics['bits'] | undefined) ??
    new Gauge({
      name: 'gateway_modbus_status_bit',
      help: 'Status bits of Modbus slaves as last read (1 set, 0 clear)',
      labelNames: ['bus', 'slave', 'bit'] as const,
      registers: [registry],
    })
  return { errors, bits }
}
