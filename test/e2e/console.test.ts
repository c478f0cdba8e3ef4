/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The web console in a real browser (Debian's chromium through playwright-core), against a real
 * cloud API and a real gateway: a device's alarm reaches the alert queue, center staff work it
 * through its lifecycle, a sensor chart draws data, and the patrol board shows a missed
 * checkpoint. Screenshots go to artifacts/console/ (named in the README).
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeWith } from '../helpers/binaries.ts'
import { connectDevice, startCloud, startGateway, TEST_GATEWAY_TOKEN, type RunningCloud } from '../helpers/stack.ts'
import type { Gateway } from '../../gateway/gateway.ts'
import { hashToken } from '../../common/secrets.ts'

export const CHROMIUM = { name: 'chromium', debianPackage: 'chromium' }
const ARTIFACTS = join(process.cwd(), 'artifacts', 'console')
const OFFSET_MIN = 480 // the demo office's local time, UTC+8
const MINUTE = 60_000

/** A tour that ended (with its grace) half an hour ago, in office-local clock terms. */
function pastTour(now: number) {
  const start = now - 90 * MINUTE
  const local = new Date(start + OFFSET_MIN * MINUTE)
  const hhmm = `${String(local.getUTCHours()).padStart(2, '0')}:${String(local.getUTCMinutes()).padStart(2, '0')}`
  const startExact = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate(), local.getUTCHours(), local.getUTCMinutes()) - OFFSET_MIN * MINUTE
  return { day: local.toISOString().slice(0, 10), hhmm, start: startExact }
}

describeWith([CHROMIUM])('console in a browser, against the real stack', () => {
  let cloud: RunningCloud
  let gateway: Gateway
  let browser: Browser
  let page: Page
  const devices: MqttClient[] = []
  const tour = pastTour(Date.now())

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true })
    cloud = await startCloud({
      overrides: {
        organization: {
          districts: [
            {
              id: 'pukou',
              name: '浦口区',
              offices: [
                {
                  id: 'tangquan',
                  name: '汤泉街道',
                  utcOffsetMinutes: OFFSET_MIN,
                  enterprises: [{ id: 'ent-quanyuan-chem', name: '泉源精细化工' }],
                  levels: { gas: { unit: '%LEL', warning: 25, alarm: 50 } },
                  checkpoints: [
                    { id: 'cp-01', name: '老街东口' },
                    { id: 'cp-02', name: '泉源化工大门' },
                    { id: 'cp-03', name: '社区广场' },
                    { id: 'cp-04', name: '河道桥头' },
                  ],
                  routes: [
                    {
                      id: 'r-e2e',
                      name: '老街巡逻',
                      ordered: false,
                      checkpoints: ['cp-01', 'cp-02', 'cp-03', 'cp-04'],
                      schedules: [{ start: tour.hhmm, durationMinutes: 45, graceMinutes: 10, staff: ['staff-zhang-wei'] }],
                    },
                  ],
                },
              ],
            },
          ],
        },
        gateways: [{ id: 'gw-tangquan-01', office: 'tangquan', tokenHash: hashToken(TEST_GATEWAY_TOKEN) }],
        users: [],
      },
    })
    await cloud.app.center.directory.addUser('wang-center', 'center', { district: 'pukou' }, 'center password 123')
    gateway = await startGateway({ uplinkUrl: cloud.url })
    // The patrol phone scanned two of the four checkpoints during the tour: cp-03 and cp-04 are missed.
    const phone = await connectDevice(gateway.mqtt.port!, 'phone-001')
    devices.push(phone)
    for (const [i, tag] of ['04A1B2C3D4E5F6', '04A1B2C3D4E5F7'].entries()) {
      await phone.publishAsync('dev/phone-001/scan', JSON.stringify({ ts: tour.start + (5 + i * 5) * MINUTE, tag, staff: 'staff-zhang-wei' }), { qos: 1 })
    }
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] })
    // zh-CN, but a browser clock far from the office's (UTC+8): every time shown must still be
    // on the office's clock.
    page = await browser.newPage({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN', timezoneId: 'America/New_York' })
    page.setDefaultTimeout(10_000)
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    for (const d of devices) await d.endAsync(true)
    await gateway?.stop()
    await cloud?.close()
  })

  it('sign in, an alarm appears within 2 s, acknowledge → assign → resolve, and the history shows all three', async () => {
    await page.goto(`${cloud.url}/console/`)
    await page.fill('[data-testid="sign-in"] input[name="name"]', 'wang-center')
    await page.fill('[data-testid="sign-in"] input[name="password"]', 'center password 123')
    await page.click('[data-testid="sign-in-submit"]')
    await page.waitForSelector('[data-testid="alert-queue"]')
    await page.waitForSelector('[data-testid="live-status"][data-state="open"]')

    const gas = await connectDevice(gateway.mqtt.port!, 'gas-001')
    devices.push(gas)
    await gas.publishAsync('dev/gas-001/reading', JSON.stringify({ quantity: 'gas', value: 12 }), { qos: 1 })
    const published = Date.now()
    await gas.publishAsync('dev/gas-001/reading', JSON.stringify({ quantity: 'gas', value: 31 }), { qos: 1 })
    const row = page.locator('[data-testid="alert-row"][data-device="gas-001"]')
    await row.waitFor({ state: 'visible', timeout: 2000 })
    const appearedMs = Date.now() - published
    expect(appearedMs).toBeLessThanOrEqual(2000)
    const alertId = (await row.getAttribute('data-alert-id'))!
    expect(await row.getAttribute('data-state')).toBe('raised')
    await page.screenshot({ path: join(ARTIFACTS, 'alert-queue.png'), fullPage: true })

    await row.locator('[data-testid="ack"]').click()
    await page.waitForSelector(`[data-testid="alert-row"][data-alert-id="${alertId}"][data-state="acknowledged"]`)
    await row.locator('[data-testid="assign"]').click()
    const assign = page.locator('[data-testid="assign-dialog"]')
    await assign.locator('select[name="department"]').selectOption('work-safety')
    await assign.locator('textarea[name="note"]').fill('请安监人员到场检查')
    await assign.locator('[data-testid="assign-confirm"]').click()
    await page.waitForSelector(`[data-testid="alert-row"][data-alert-id="${alertId}"][data-state="assigned"]`)
    await row.locator('[data-testid="resolve"]').click()
    const resolve = page.locator('[data-testid="resolve-dialog"]')
    await resolve.locator('textarea[name="note"]').fill('阀门已更换，浓度恢复正常')
    await resolve.locator('[data-testid="resolve-confirm"]').click()

    await page.goto(`${cloud.url}/console/#/alerts/${encodeURIComponent(alertId)}`)
    const detail = page.locator(`[data-testid="alert-detail"][data-alert-id="${alertId}"]`)
    await detail.waitFor()
    await page.waitForSelector(`[data-testid="alert-detail"][data-state="resolved"]`)
    const actions = await page.locator('[data-testid="history-item"]').evaluateAll((items) => items.map((i) => i.getAttribute('data-action')))
    expect(actions).toEqual(expect.arrayContaining(['raised', 'acknowledged', 'assigned', 'resolved']))
    expect(actions.indexOf('acknowledged')).toBeLessThan(actions.indexOf('assigned'))
    expect(actions.indexOf('assigned')).toBeLessThan(actions.indexOf('resolved'))
    await page.screenshot({ path: join(ARTIFACTS, 'alert-detail.png'), fullPage: true })
  })

  it('a sensor chart renders with data', async () => {
    await page.goto(`${cloud.url}/console/#/sensors/tangquan/gas-001?quantity=gas&range=1h`)
    const chart = page.locator('[data-testid="sensor-chart"]')
    await chart.waitFor()
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="sensor-chart"]')?.getAttribute('data-points') ?? 0) >= 1)
    expect(await chart.locator('canvas').count()).toBeGreaterThanOrEqual(1)
    await page.screenshot({ path: join(ARTIFACTS, 'sensor-view.png'), fullPage: true })
  })

  it('the patrol board shows a missed checkpoint', async () => {
    await page.goto(`${cloud.url}/console/#/patrol?day=${tour.day}`)
    const board = page.locator('[data-testid="patrol-board"]')
    await board.waitFor()
    const tourRow = page.locator('[data-testid="tour"][data-route="r-e2e"]')
    await tourRow.waitFor()
    expect(await tourRow.getAttribute('data-status')).toBe('incomplete')
    // The tour's start on the office's clock, as the route schedules it.
    expect(await tourRow.innerText()).toContain(tour.hhmm)
    const states = await tourRow.locator('[data-testid="checkpoint"]').evaluateAll((cps) => cps.map((c) => [c.getAttribute('data-checkpoint'), c.getAttribute('data-state')]))
    expect(states).toEqual([
      ['cp-01', 'scanned'],
      ['cp-02', 'scanned'],
      ['cp-03', 'missed'],
      ['cp-04', 'missed'],
    ])
    await page.screenshot({ path: join(ARTIFACTS, 'patrol-board.png'), fullPage: true })
  })

  it('is usable by keyboard, labels every control, and speaks English on request', async () => {
    const keyboard = await browser.newPage({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' })
    try {
      await keyboard.goto(`${cloud.url}/console/`)
      await keyboard.waitForSelector('[data-testid="sign-in"]')
      // Tab to the name field, type, tab to the password, type, Enter submits.
      for (let i = 0; i < 10 && (await keyboard.evaluate(() => document.activeElement?.getAttribute('name'))) !== 'name'; i++) await keyboard.keyboard.press('Tab')
      await keyboard.keyboard.type('wang-center')
      await keyboard.keyboard.press('Tab')
      expect(await keyboard.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('password')
      await keyboard.keyboard.type('center password 123')
      await keyboard.keyboard.press('Enter')
      await keyboard.waitForSelector('[data-testid="alert-queue"]')
      expect(await keyboard.evaluate(() => document.documentElement.lang)).toBe('zh-CN')
      // Every form control has an accessible name (a <label>, aria-label or aria-labelledby).
      const unlabelled = await keyboard.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea, button')]
          .filter((el) => {
            const e = el as HTMLInputElement
            const named = (e.labels?.length ?? 0) > 0 || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent?.trim())
            return !named && e.type !== 'hidden'
          })
          .map((el) => el.outerHTML.slice(0, 80)),
      )
      expect(unlabelled).toEqual([])
      await keyboard.click('[data-testid="lang-toggle"]')
      await keyboard.waitForFunction(() => document.documentElement.lang === 'en')
      expect(await keyboard.locator('[data-testid="nav-alerts"]').innerText()).toMatch(/Alerts/i)
    } finally {
      await keyboard.close()
    }
  })

  it('works at phone width without sideways scrolling', async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    await page.goto(`${cloud.url}/console/#/alerts`)
    await page.waitForSelector('[data-testid="alert-queue"]')
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    expect(overflow).toBeLessThanOrEqual(0)
    await page.screenshot({ path: join(ARTIFACTS, 'alert-queue-phone.png'), fullPage: true })
    await page.setViewportSize({ width: 1366, height: 768 })
  })
})
