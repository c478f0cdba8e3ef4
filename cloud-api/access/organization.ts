/**
 * The organization as configured: districts → street offices → enterprises and patrol routes,
 * indexed for the lookups scoping and patrol compliance make on every request.
 */
import type { CloudConfig, LevelsConfig } from '../config.ts'

export type OfficeConfig = CloudConfig['organization']['districts'][number]['offices'][number]

export class Organization {
  private readonly offices = new Map<string, OfficeConfig & { district: string }>()
  private readonly districts = new Map<string, string[]>()
  private readonly enterpriseOffice = new Map<string, string>()

  constructor(config: CloudConfig['organization']) {
    for (const d of config.districts) {
      this.districts.set(d.id, d.offices.map((o) => o.id))
      for (const o of d.offices) {
        this.offices.set(o.id, { ...o, district: d.id })
        for (const e of o.enterprises) this.enterpriseOffice.set(e.id, o.id)
      }
    }
  }

  officesOfDistrict(district: string): string[] {
    return this.districts.get(district) ?? []
  }

  officeOfEnterprise(enterprise: string): string | undefined {
    return this.enterpriseOffice.get(enterprise)
  }

  office(id: string): (OfficeConfig & { district: string }) | undefined {
    return this.offices.get(id)
  }

  hasDistrict(id: string): boolean {
    return this.districts.has(id)
  }

  /** Chart levels of a device: its office's, with its enterprise's overrides quantity by quantity. */
  levelsFor(office: string, enterprise?: string): LevelsConfig {
    const o = this.offices.get(office)
    if (!o) return {}
    const own = enterprise === undefined ? undefined : o.enterprises.find((e) => e.id === enterprise)?.levels
    const merged: LevelsConfig = { ...o.levels }
    for (const [q, v] of Object.entries(own ?? {})) merged[q] = { ...merged[q], ...v }
    return merged
  }

  allOffices(): (OfficeConfig & { district: string })[] {
    return [...this.offices.values()]
  }
}
