/**
 * Scripted camera pushes over HTTP in the style of Hikvision ISAPI (docs/inputs/camera.md), from
 * the demo office's cam-002 with its demo password. They need a gateway whose camera listener is
 * on (`inputs.camera`, or GRIDWATCH_CAMERA_PORT) and its URL in --camera-url.
 */
import { IsapiCamera, TINY_JPEG, intrusionAtNight } from '../camera/isapi-camera.ts'
import { demoDevicePassword } from '../demo-credentials.ts'
import type { Scenario } from './mqtt-scenarios.ts'

export const ISAPI_CAMERA_ID = 'cam-002'
export const DEFAULT_CAMERA_URL = 'http://127.0.0.1:8082/ISAPI/Event/notification/alert'

export function demoIsapiCamera(url: string): IsapiCamera {
  return new IsapiCamera({ url, deviceId: ISAPI_CAMERA_ID, password: demoDevicePassword(ISAPI_CAMERA_ID), channelName: 'Chemical plant gate' })
}

export const cameraScenarios: Scenario[] = [
  {
    name: 'isapi-intrusion',
    expect: `${ISAPI_CAMERA_ID} posts a heartbeat, then intrusion (fielddetection) at 02:14 three times, the first with a snapshot, then its end: one intrusion alert, the snapshot kept on the gateway (needs --camera-url, default ${DEFAULT_CAMERA_URL})`,
    async run(ctx) {
      const camera = demoIsapiCamera(ctx.cameraUrl ?? DEFAULT_CAMERA_URL)
      const done = intrusionAtNight(camera, TINY_JPEG).then((results) => {
        ctx.say(`camera pushes answered: ${results.map((r) => r.status).join(', ')}`)
        if (results.some((r) => r.status !== 200)) ctx.onError(new Error(`a push was refused: ${results.find((r) => r.status !== 200)?.body.slice(0, 200)}`))
      })
      return { done, stop: async () => {} }
    },
  },
]
