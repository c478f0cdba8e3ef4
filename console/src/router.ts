/** Hash routes: #/alerts, #/alerts/<id>, #/sensors[/<office>/<device>?quantity=&range=], #/patrol?day=, #/gateways. */
import { createStore } from './store.ts'

export const RANGES = ['1h', '6h', '24h', '7d', '30d'] as const
export type Range = (typeof RANGES)[number]

export type Route =
  | { name: 'alerts' }
  | { name: 'alert'; id: string }
  | { name: 'sensors'; office?: string; device?: string; quantity?: string; range?: Range }
  | { name: 'patrol'; day?: string }
  | { name: 'gateways' }
  | { name: 'unknown' }

export type Section = 'alerts' | 'sensors' | 'patrol' | 'gateways'

export function sectionOf(r: Route): Section | undefined {
  switch (r.name) {
    case 'alerts':
    case 'alert':
      return 'alerts'
    case 'sensors':
      return 'sensors'
    case 'patrol':
      return 'patrol'
    case 'gateways':
      return 'gateways'
    default:
      return undefined
  }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

export function parse(hash: string): Route {
  const raw = hash.replace(/^#/, '')
  const [pathPart, query = ''] = raw.split('?', 2) as [string, string?]
  const parts = pathPart.split('/').filter((p) => p !== '').map(decode)
  const params = new URLSearchParams(query)
  switch (parts[0]) {
    case undefined:
      return { name: 'unknown' }
    case 'alerts':
      return parts[1] !== undefined ? { name: 'alert', id: parts.slice(1).join('/') } : { name: 'alerts' }
    case 'sensors': {
      const range = params.get('range')
      return {
        name: 'sensors',
        ...(parts[1] !== undefined && parts[2] !== undefined ? { office: parts[1], device: parts[2] } : {}),
        ...(params.get('quantity') ? { quantity: params.get('quantity')! } : {}),
        ...(range && (RANGES as readonly string[]).includes(range) ? { range: range as Range } : {}),
      }
    }
    case 'patrol': {
      const day = params.get('day')
      return { name: 'patrol', ...(day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? { day } : {}) }
    }
    case 'gateways':
      return { name: 'gateways' }
    default:
      return { name: 'unknown' }
  }
}

const enc = encodeURIComponent

export const href = {
  alerts: () => '#/alerts',
  alert: (id: string) => `#/alerts/${enc(id)}`,
  sensors: () => '#/sensors',
  sensor: (office: string, device: string, quantity?: string, range?: Range) => {
    const q = new URLSearchParams()
    if (quantity) q.set('quantity', quantity)
    if (range) q.set('range', range)
    const s = q.toString()
    return `#/sensors/${enc(office)}/${enc(device)}${s ? `?${s}` : ''}`
  },
  patrol: (day?: string) => (day ? `#/patrol?day=${day}` : '#/patrol'),
  gateways: () => '#/gateways',
}

export const route = createStore<Route>(parse(location.hash))
window.addEventListener('hashchange', () => route.set(parse(location.hash)))

export function navigate(to: string, replace = false): void {
  if (location.hash === to) return
  if (replace) {
    history.replaceState(null, '', to)
    route.set(parse(to))
  } else location.hash = to
}
