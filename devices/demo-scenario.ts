/**
 * The demo office's morning, in about ten seconds:
 *
 *   t=0.5s  patrol phone scans checkpoint cp-01
 *   t=1.5s  north-gate camera sees an intrusion (92%)            → camera alert
 *   t=2.0s  same camera, same event: inside the cooldown           → no second alert
 *   t=2.5s  patrol phone scans cp-02
 *   t=3.5s  patrol phone scans a tag no checkpoint owns            → patrol alert
 *   t≈3s    gas-001 at the chemical plant crosses 25 %LEL          → gas alarm raised (major)
 *   t≈5.5s  gas-001 crosses 50 %LEL                                → alarm updated (critical)
 *   t=4.5s  patrol staff raises SOS                                → critical alert
 *   t=6.0s  camera sees loitering at 40% confidence                → recorded, no alert
 *   t=7.0s  plant gate camera (ISAPI HTTP push, with a snapshot) sees a person crossing its
 *           line                                                   → camera alert
 *   t=8.0s  patrol staff reports rubbish dumped by the river      → incident for the grid
 *   t≈10s   gas-001 falls below 20 %LEL                            → gas alarm cleared
 *
 * Afterwards the detectors keep reporting and the patrol keeps walking its round.
 */
import { AiCamera } from './ai-camera.ts'
import { TINY_JPEG } from './camera/isapi-camera.ts'
import { demoDevicePassword } from './demo-credentials.ts'
import { GasDetector, demoLeak, steadyBackground } from './gas-detector.ts'
import { MqttDevice } from './mqtt-device.ts'
import { PatrolPhone } from './patrol-phone.ts'
import { demoIsapiCamera } from './scenarios/camera-scenarios.ts'

const ROUND = ['04A1B2C3D4E5F6', '04A1B2C3D4E5F7', '04A1B2C3D4E5F8', '04A1B2C3D4E5F9']
const OLD_STREET_EAST = { lat: 32.0432, lon: 118.6331 }

export interface RunningScenario {
  stop(): Promise<void>
}

/** `cameraUrl`: the gateway's camera listener, when it runs one (the ISAPI push is left out otherwise). */
export async function runDemoScenario(mqttUrl: string, onError: (err: Error) => void, cameraUrl?: string): Promise<RunningScenario> {
  const connect = (deviceId: string) => MqttDevice.connect({ url: mqttUrl, deviceId, password: demoDevicePassword(deviceId) })
  const [gas1, gas2, phone, cam] = await Promise.all([connect('gas-001'), connect('gas-002'), connect('phone-001'), connect('cam-001')])
  const leak = new GasDetector(gas1, demoLeak, 500)
  const kitchen = new GasDetector(gas2, steadyBackground, 2000)
  const patrol = new PatrolPhone(phone, 'staff-zhang-wei')
  const camera = new AiCamera(cam)

  const timers: NodeJS.Timeout[] = []
  const at = (seconds: number, action: () => Promise<void>) => timers.push(setTimeout(() => void action().catch(onError), seconds * 1000))

  leak.start(onError)
  kitchen.start(onError)
  at(0.5, () => patrol.scan(ROUND[0]))
  at(1.5, () => camera.detect('intrusion', 0.92, 'north gate, after hours'))
  at(2.0, () => camera.detect('intrusion', 0.88, 'north gate, after hours'))
  at(2.5, () => patrol.scan(ROUND[1]))
  at(3.5, () => patrol.scan('FFEE0000DEAD01'))
  at(6.0, () => camera.detect('loitering', 0.4, 'north gate'))
  if (cameraUrl) {
    const plantGate = demoIsapiCamera(cameraUrl)
    at(7.0, async () => {
      const pushed = await plantGate.alarm({ eventType: 'linedetection', target: 'human', regionId: '1', snapshot: TINY_JPEG })
      if (pushed.status !== 200) throw new Error(`camera push answered ${pushed.status}: ${pushed.body.slice(0, 200)}`)
    })
  }
  at(8.0, () => patrol.reportProblem('dumping', '河道桥头有建筑垃圾倾倒 (construction waste dumped at the river bridge)', { lat: 32.0445, lon: 118.6352 }))
  at(4.5, () => patrol.sos('请求支援：老街东口有老人晕倒 (elderly person collapsed at old street east gate)', OLD_STREET_EAST))
  let step = 2
  const round = setInterval(() => void patrol.scan(ROUND[step++ % ROUND.length]).catch(onError), 4000)

  return {
    async stop() {
      for (const t of timers) clearTimeout(t)
      clearInterval(round)
      leak.stop()
      kitchen.stop()
      await Promise.allSettled([gas1, gas2, phone, cam].map((d) => d.close()))
    },
  }
}
