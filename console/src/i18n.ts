/**
 * Every string the console shows, in Simplified Chinese (the default) and English. The choice is
 * remembered in localStorage and sets <html lang>. Dates are shown in local time, 24-hour clock.
 */
import { createStore, useStore } from './store.ts'

const en = {
  appName: 'GridWatch',
  appSubtitle: 'Grid governance console',
  skipToContent: 'Skip to content',
  langToggle: '中文',
  langToggleLabel: 'Switch to Chinese',
  signInTitle: 'Sign in',
  signInIntro: 'Street-office linked-service center',
  name: 'Name',
  password: 'Password',
  signIn: 'Sign in',
  signingIn: 'Signing in…',
  signInFailed: 'Sign-in failed: {message}',
  sessionExpired: 'Your session has ended. Please sign in again.',
  signOut: 'Sign out',
  signedInAs: '{name} ({role})',
  mute: 'Mute',
  muteOn: 'Critical-alert sound is off',
  muteOff: 'Critical-alert sound is on',
  wrongPassword: 'wrong name or password',
  signInAgain: 'Sign in again',
  incidentRaised: 'Reported',
  navAlerts: 'Alerts',
  navSensors: 'Sensors',
  navPatrol: 'Patrol',
  navGateways: 'Gateways',
  mainNav: 'Sections',
  liveOpen: 'Live',
  liveConnecting: 'Connecting…',
  liveClosed: 'Disconnected',
  liveLabel: 'Live updates: {state}',
  loading: 'Loading…',
  retry: 'Retry',
  refresh: 'Refresh',
  errorLoading: 'Could not load: {message}',
  networkError: 'The center cannot be reached',
  dismiss: 'Dismiss',
  back: 'Back',
  none: '—',
  all: 'All',
  // alerts
  alertQueue: 'Alert queue',
  filters: 'Filters',
  office: 'Office',
  severity: 'Severity',
  state: 'State',
  type: 'Type',
  typePlaceholder: 'e.g. sensor.threshold',
  stateOpen: 'Open',
  stateAny: 'Any state',
  clearFilters: 'Clear filters',
  shownOf: '{shown} shown',
  noAlerts: 'No alerts match these filters.',
  noOpenAlerts: 'No open alerts. All quiet.',
  openCritical: 'Critical',
  criticalWaiting: '{n} critical alerts awaiting acknowledgement',
  openMajor: 'Major',
  openMinor: 'Minor',
  openUnacked: 'Awaiting acknowledgement',
  openSummary: 'Open alerts by severity',
  device: 'Device',
  enterprise: 'Enterprise',
  raisedAt: 'Raised',
  level: 'Level',
  escalations: 'Escalations',
  escalatedTimes: 'escalated ×{n}',
  ackDue: 'Acknowledge by',
  overdue: 'Overdue',
  dueIn: 'due in {time}',
  cleared: 'Condition cleared',
  clearedAt: 'Cleared',
  acknowledgedBy: 'Acknowledged by',
  assignedTo: 'Assigned to',
  actions: 'Actions',
  open: 'Details',
  openLabel: 'Open details of {what}',
  ack: 'Acknowledge',
  assign: 'Assign',
  resolve: 'Resolve',
  close: 'Close',
  cancel: 'Cancel',
  department: 'Department',
  note: 'Note',
  notePlaceholder: 'Optional',
  assignTitle: 'Assign to a department',
  resolveTitle: 'Resolve',
  confirmAssign: 'Assign',
  confirmResolve: 'Resolve',
  actionDone: '{what}: {state}',
  actionConflict: 'Not done: {message}. The item has been refreshed.',
  actionFailed: 'Not done: {message}',
  newAlert: 'New {severity} alert: {type} at {device}. {message}',
  alertUpdated: 'Alert {device} is now {state}',
  // detail
  alertDetail: 'Alert',
  notFound: 'Not found, or not visible to you.',
  message: 'Message',
  value: 'Value',
  threshold: 'Threshold',
  peak: 'Peak',
  history: 'History',
  readings: 'Readings around the alert',
  noReadings: 'No readings recorded around this alert.',
  readingsUnavailable: 'Readings cannot be shown now: the time-series store is not answering. Everything else here is current.',
  by: 'by {actor}',
  toDepartment: 'to {department}',
  atLevel: 'level {level}',
  version: 'Version',
  id: 'ID',
  // sensors
  sensors: 'Sensors',
  noDevices: 'No devices are visible to you yet.',
  noEnterprise: 'Not assigned to an enterprise',
  movedAway: 'Moved to another enterprise',
  lastSeen: 'Last seen',
  status: 'Status',
  latest: 'Current values',
  openAlerts: 'Open alerts',
  alarm: 'Alarm',
  warning: 'Warning',
  normal: 'Normal',
  alarmState: 'State',
  noValue: 'no reading',
  trend: 'Trend',
  time: 'Time',
  chooseSensor: 'Choose a sensor to see its trend.',
  quantity: 'Quantity',
  range: 'Time range',
  range1h: '1 h',
  range6h: '6 h',
  range24h: '24 h',
  range7d: '7 d',
  range30d: '30 d',
  mean: 'Mean',
  min: 'Min',
  max: 'Max',
  minMax: 'Min–max',
  warningLevel: 'Warning level',
  alarmLevel: 'Alarm level',
  noData: 'No data in this time range.',
  levelsUnknown: 'The center does not report warning and alarm levels for this sensor.',
  pointsShown: '{n} points, {window} windows',
  chartLabel: 'Trend of {quantity} at {device}',
  closeChart: 'Close trend',
  // patrol
  patrol: 'Patrol',
  day: 'Day',
  previousDay: 'Previous day',
  nextDay: 'Next day',
  today: 'Today',
  noTours: 'No tours scheduled on this day.',
  tours: 'Tours',
  assignedStaff: 'Assigned',
  walkedBy: 'Walked by',
  progress: '{scanned} of {total} checkpoints',
  checkpoint: 'Checkpoint',
  cpScanned: 'Scanned',
  cpLate: 'Late',
  cpMissed: 'Missed',
  cpPending: 'Pending',
  incidents: 'Incidents reported by patrol staff',
  noIncidents: 'No incidents.',
  category: 'Category',
  reporter: 'Reported by',
  location: 'Location',
  photo: 'Photo',
  showHistory: 'History',
  hideHistory: 'Hide history',
  // gateways
  gateways: 'Gateways',
  gateway: 'Gateway',
  link: 'Link',
  backlog: 'Backlog',
  noGateways: 'No gateways.',
  secondsAgo: '{n} s ago',
  minutesAgo: '{n} min ago',
  hoursAgo: '{n} h ago',
  daysAgo: '{n} d ago',
  never: 'never',
} as const

export type Key = keyof typeof en

const zh: Record<Key, string> = {
  appName: 'GridWatch 网格监控',
  appSubtitle: '网格化治理控制台',
  skipToContent: '跳到主要内容',
  langToggle: 'English',
  langToggleLabel: '切换为英文界面',
  signInTitle: '登录',
  signInIntro: '街道联动指挥中心',
  name: '用户名',
  password: '密码',
  signIn: '登录',
  signingIn: '正在登录…',
  signInFailed: '登录失败：{message}',
  sessionExpired: '会话已结束，请重新登录。',
  signOut: '退出登录',
  signedInAs: '{name}（{role}）',
  mute: '静音',
  muteOn: '严重告警提示音已关闭',
  muteOff: '严重告警提示音已开启',
  wrongPassword: '用户名或密码错误',
  signInAgain: '重新登录',
  incidentRaised: '新上报',
  navAlerts: '告警',
  navSensors: '传感器',
  navPatrol: '巡查',
  navGateways: '网关',
  mainNav: '栏目',
  liveOpen: '实时',
  liveConnecting: '连接中…',
  liveClosed: '已断开',
  liveLabel: '实时更新：{state}',
  loading: '加载中…',
  retry: '重试',
  refresh: '刷新',
  errorLoading: '加载失败：{message}',
  networkError: '无法连接指挥中心',
  dismiss: '关闭提示',
  back: '返回',
  none: '—',
  all: '全部',
  alertQueue: '告警队列',
  filters: '筛选',
  office: '街道',
  severity: '级别',
  state: '状态',
  type: '类型',
  typePlaceholder: '如 sensor.threshold',
  stateOpen: '未办结',
  stateAny: '全部状态',
  clearFilters: '清除筛选',
  shownOf: '显示 {shown} 条',
  noAlerts: '没有符合条件的告警。',
  noOpenAlerts: '当前没有未办结的告警。',
  openCritical: '严重',
  criticalWaiting: '{n} 条严重告警待确认',
  openMajor: '重要',
  openMinor: '一般',
  openUnacked: '待确认',
  openSummary: '未办结告警（按级别）',
  device: '设备',
  enterprise: '企业',
  raisedAt: '发生时间',
  level: '处置层级',
  escalations: '升级次数',
  escalatedTimes: '已升级 {n} 次',
  ackDue: '确认期限',
  overdue: '已超时',
  dueIn: '{time} 内确认',
  cleared: '现场已恢复',
  clearedAt: '恢复时间',
  acknowledgedBy: '确认人',
  assignedTo: '派遣至',
  actions: '操作',
  open: '详情',
  openLabel: '查看 {what} 的详情',
  ack: '确认',
  assign: '派遣',
  resolve: '办结',
  close: '关闭',
  cancel: '取消',
  department: '处置部门',
  note: '备注',
  notePlaceholder: '选填',
  assignTitle: '派遣到部门',
  resolveTitle: '办结',
  confirmAssign: '确认派遣',
  confirmResolve: '确认办结',
  actionDone: '{what}：{state}',
  actionConflict: '未完成：{message}。已刷新该条目。',
  actionFailed: '未完成：{message}',
  newAlert: '新{severity}告警：{device} {type}。{message}',
  alertUpdated: '告警 {device} 状态变为{state}',
  alertDetail: '告警',
  notFound: '不存在，或您无权查看。',
  message: '描述',
  value: '数值',
  threshold: '阈值',
  peak: '峰值',
  history: '处置记录',
  readings: '告警前后读数',
  noReadings: '告警前后没有读数记录。',
  readingsUnavailable: '时序数据库暂时无响应，读数暂不能显示；本页其他信息为最新。',
  by: '操作人 {actor}',
  toDepartment: '派往 {department}',
  atLevel: '层级 {level}',
  version: '版本',
  id: '编号',
  sensors: '传感器',
  noDevices: '暂无您可查看的设备。',
  noEnterprise: '未归属企业',
  movedAway: '已移交其他企业',
  lastSeen: '最近上报',
  status: '设备状态',
  latest: '当前读数',
  openAlerts: '未办结告警',
  alarm: '报警',
  warning: '预警',
  normal: '正常',
  alarmState: '状态',
  noValue: '无读数',
  trend: '趋势',
  time: '时间',
  chooseSensor: '选择一个传感器查看趋势。',
  quantity: '监测量',
  range: '时间范围',
  range1h: '1 小时',
  range6h: '6 小时',
  range24h: '24 小时',
  range7d: '7 天',
  range30d: '30 天',
  mean: '均值',
  min: '最小',
  max: '最大',
  minMax: '最小–最大',
  warningLevel: '预警值',
  alarmLevel: '报警值',
  noData: '该时间范围内没有数据。',
  levelsUnknown: '指挥中心未提供该传感器的预警值和报警值。',
  pointsShown: '{n} 个点，每点 {window}',
  chartLabel: '{device} 的{quantity}趋势',
  closeChart: '关闭趋势',
  patrol: '巡查',
  day: '日期',
  previousDay: '前一天',
  nextDay: '后一天',
  today: '今天',
  noTours: '当天没有排定的巡查。',
  tours: '巡查任务',
  assignedStaff: '排班人员',
  walkedBy: '实际巡查',
  progress: '已打卡 {scanned}/{total}',
  checkpoint: '打卡点',
  cpScanned: '已打卡',
  cpLate: '迟到',
  cpMissed: '漏检',
  cpPending: '待打卡',
  incidents: '巡查上报事件',
  noIncidents: '暂无事件。',
  category: '类别',
  reporter: '上报人',
  location: '位置',
  photo: '照片',
  showHistory: '处置记录',
  hideHistory: '收起记录',
  gateways: '网关',
  gateway: '网关',
  link: '连接',
  backlog: '待上传',
  noGateways: '暂无网关。',
  secondsAgo: '{n} 秒前',
  minutesAgo: '{n} 分钟前',
  hoursAgo: '{n} 小时前',
  daysAgo: '{n} 天前',
  never: '从未',
}

export type Lang = 'zh' | 'en'
const dictionaries: Record<Lang, Record<Key, string>> = { zh, en }
const LANG_KEY = 'gridwatch.console.lang'

function initialLang(): Lang {
  try {
    const saved = localStorage.getItem(LANG_KEY)
    if (saved === 'zh' || saved === 'en') return saved
  } catch {
    // storage unavailable (private mode): fall back to the default
  }
  return 'zh'
}

export const lang = createStore<Lang>(initialLang())

function applyLang(l: Lang) {
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en'
  document.title = l === 'zh' ? 'GridWatch 网格监控台' : 'GridWatch console'
}
applyLang(lang.get())
lang.subscribe((l) => {
  applyLang(l)
  try {
    localStorage.setItem(LANG_KEY, l)
  } catch {
    // not remembered; still switched
  }
})

export type Vars = Record<string, string | number>
export type T = (key: Key, vars?: Vars) => string

export function translate(l: Lang, key: Key, vars?: Vars): string {
  const text = dictionaries[l][key]
  return vars ? text.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m)) : text
}

/** The current language's translate function; re-renders the component when the language changes. */
export function useT(): T {
  const l = useStore(lang)
  return (key, vars) => translate(l, key, vars)
}

export const t: T = (key, vars) => translate(lang.get(), key, vars)

// ---- labels of the API's enumerations (unknown values are shown as they come)

type Labels = Record<string, { zh: string; en: string }>

const SEVERITY: Labels = {
  critical: { zh: '严重', en: 'Critical' },
  major: { zh: '重要', en: 'Major' },
  minor: { zh: '一般', en: 'Minor' },
}
const STATE: Labels = {
  raised: { zh: '新告警', en: 'Raised' },
  acknowledged: { zh: '已确认', en: 'Acknowledged' },
  assigned: { zh: '已派遣', en: 'Assigned' },
  resolved: { zh: '已办结', en: 'Resolved' },
  closed: { zh: '已关闭', en: 'Closed' },
}
const HISTORY_ACTION: Labels = {
  raised: { zh: '产生', en: 'Raised' },
  acknowledged: { zh: '确认', en: 'Acknowledged' },
  assigned: { zh: '派遣', en: 'Assigned' },
  resolved: { zh: '办结', en: 'Resolved' },
  closed: { zh: '关闭', en: 'Closed' },
  escalated: { zh: '超时升级', en: 'Escalated' },
  cleared: { zh: '现场恢复', en: 'Cleared' },
  severity_raised: { zh: '级别升高', en: 'Severity raised' },
}
const ACTION: Labels = {
  acknowledge: { zh: '确认', en: 'Acknowledge' },
  assign: { zh: '派遣', en: 'Assign' },
  resolve: { zh: '办结', en: 'Resolve' },
  close: { zh: '关闭', en: 'Close' },
}
const LEVEL: Labels = {
  grid: { zh: '网格', en: 'Grid' },
  community: { zh: '社区', en: 'Community' },
  street: { zh: '街道', en: 'Street' },
  district: { zh: '区', en: 'District' },
}
const ROLE: Labels = {
  admin: { zh: '管理员', en: 'admin' },
  center: { zh: '指挥中心', en: 'center staff' },
  inspector: { zh: '安全检查员', en: 'safety inspector' },
  supervisor: { zh: '巡查主管', en: 'patrol supervisor' },
}
const TOUR_STATUS: Labels = {
  scheduled: { zh: '未开始', en: 'Scheduled' },
  in_progress: { zh: '进行中', en: 'In progress' },
  completed: { zh: '已完成', en: 'Completed' },
  late: { zh: '完成（迟到）', en: 'Completed late' },
  incomplete: { zh: '未完成', en: 'Incomplete' },
  missed: { zh: '未巡查', en: 'Missed' },
}
const LINK: Labels = {
  up: { zh: '在线', en: 'Up' },
  down: { zh: '离线', en: 'Down' },
  never_seen: { zh: '从未连接', en: 'Never seen' },
}
const DEVICE_STATUS: Labels = {
  online: { zh: '在线', en: 'Online' },
  offline: { zh: '离线', en: 'Offline' },
  fault: { zh: '故障', en: 'Fault' },
}
const QUANTITY: Labels = {
  gas: { zh: '可燃气体', en: 'Combustible gas' },
  co: { zh: '一氧化碳', en: 'Carbon monoxide' },
  smoke: { zh: '烟雾', en: 'Smoke' },
  temperature: { zh: '温度', en: 'Temperature' },
  pressure: { zh: '压力', en: 'Pressure' },
  humidity: { zh: '湿度', en: 'Humidity' },
}
const TYPE: Labels = {
  'sensor.threshold': { zh: '超限报警', en: 'Threshold exceeded' },
  'sensor.rate_of_change': { zh: '变化过快', en: 'Rapid change' },
  'sensor.stuck': { zh: '读数停滞', en: 'Reading stuck' },
  'sensor.stale': { zh: '长时间无读数', en: 'No recent readings' },
  'sensor.fault': { zh: '设备故障', en: 'Device fault' },
  'camera.intrusion': { zh: '区域入侵', en: 'Intrusion' },
  'camera.smoke': { zh: '烟雾识别', en: 'Smoke detected' },
  'camera.fire': { zh: '明火识别', en: 'Fire detected' },
  'camera.crowding': { zh: '人员聚集', en: 'Crowding' },
  'camera.loitering': { zh: '人员徘徊', en: 'Loitering' },
  'patrol.sos': { zh: '紧急求助', en: 'SOS' },
  'patrol.unknown_tag': { zh: '未知标签', en: 'Unknown tag' },
  'patrol.checkpoint_missed': { zh: '漏检打卡点', en: 'Checkpoint missed' },
  'patrol.out_of_order': { zh: '巡查顺序错误', en: 'Out of order' },
  'patrol.staff_not_assigned': { zh: '非排班人员', en: 'Staff not assigned' },
  'patrol.tour_late': { zh: '巡查迟到', en: 'Tour late' },
  'patrol.tour_not_started': { zh: '巡查未开始', en: 'Tour not started' },
  'patrol.double_scan': { zh: '重复打卡', en: 'Double scan' },
}
const INCIDENT_CATEGORY: Labels = {
  dumping: { zh: '乱倒垃圾', en: 'Dumping' },
  fire: { zh: '火情', en: 'Fire' },
  road: { zh: '道路设施', en: 'Road damage' },
  water: { zh: '供排水', en: 'Water' },
  noise: { zh: '噪声', en: 'Noise' },
  parking: { zh: '违章停车', en: 'Illegal parking' },
}

function label(table: Labels, value: string): string {
  return table[value]?.[lang.get()] ?? value
}

export const severityLabel = (s: string) => label(SEVERITY, s)
export const stateLabel = (s: string, kind: 'alert' | 'incident' = 'alert') => (kind === 'incident' && s === 'raised' ? t('incidentRaised') : label(STATE, s))
export const historyActionLabel = (s: string) => label(HISTORY_ACTION, s)
export const actionLabel = (s: string) => label(ACTION, s)
export const levelLabel = (s: string) => label(LEVEL, s)
export const roleLabel = (s: string) => label(ROLE, s)
export const tourStatusLabel = (s: string) => label(TOUR_STATUS, s)
export const linkLabel = (s: string) => label(LINK, s)
export const deviceStatusLabel = (s: string) => label(DEVICE_STATUS, s)
export const quantityLabel = (s: string) => label(QUANTITY, s)

/** An alert type such as `sensor.threshold`, or an incident's `incident.<category>`. */
export function typeLabel(type: string): string {
  if (type.startsWith('incident.')) return label(INCIDENT_CATEGORY, type.slice('incident.'.length))
  return label(TYPE, type)
}
export const knownTypes = Object.keys(TYPE)

// ---- time, on the office's clock (24-hour), whatever zone the browser is in

const pad = (n: number) => String(n).padStart(2, '0')

/** The offices' UTC offset in minutes (from /v1/me); undefined: the browser's own zone. */
let officeOffsetMinutes: number | undefined

export function setOfficeZone(minutes: number | undefined): void {
  officeOffsetMinutes = minutes
}

/** The wall-clock fields of an instant on the office's clock. */
export function wall(ms: number): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
  if (officeOffsetMinutes === undefined) {
    const d = new Date(ms)
    return { year: d.getFullYear(), month: d.getMonth() + 1, day: d.getDate(), hour: d.getHours(), minute: d.getMinutes(), second: d.getSeconds() }
  }
  const d = new Date(ms + officeOffsetMinutes * 60_000)
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() }
}

export function formatDateTime(iso: string | undefined): string {
  if (!iso) return '—'
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) return iso
  const w = wall(ms)
  return `${w.year}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`
}

export function formatTime(iso: string | undefined, seconds = false): string {
  if (!iso) return '—'
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) return iso
  const w = wall(ms)
  return `${pad(w.hour)}:${pad(w.minute)}${seconds ? `:${pad(w.second)}` : ''}`
}

/** The office's date of an instant (default: now), YYYY-MM-DD. */
export function localDay(at = new Date()): string {
  const w = wall(at.getTime())
  return `${w.year}-${pad(w.month)}-${pad(w.day)}`
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return t('never')
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  return agoSeconds(s)
}

export function agoSeconds(s: number): string {
  if (s < 60) return t('secondsAgo', { n: s })
  if (s < 3600) return t('minutesAgo', { n: Math.floor(s / 60) })
  if (s < 86400) return t('hoursAgo', { n: Math.floor(s / 3600) })
  return t('daysAgo', { n: Math.floor(s / 86400) })
}

/** A duration such as "4:32" or "1:02:05". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`
}

export function formatNumber(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—'
  return Math.abs(n) >= 1000 ? n.toFixed(0) : String(Number(n.toFixed(2)))
}
