/** The buttons that work a case (acknowledge, assign, resolve, close) and the assign and resolve dialogs. */
import { useState } from 'preact/hooks'
import { act, allowed, busy, pending, type PendingAction } from './actions.ts'
import { me } from './api.ts'
import { typeLabel, useT } from './i18n.ts'
import type { CaseKind } from './live.ts'
import { useStore } from './store.ts'
import type { Case, Role } from './types.ts'
import { Dialog, Icon } from './ui.tsx'

export function CaseActions(props: { kind: CaseKind; item: Case; role: Role | undefined; mayAct?: boolean; onDone?: (c: Case) => void }) {
  const t = useT()
  const inFlight = useStore(busy).has(props.item.id)
  const { item, kind, role } = props
  const may = (a: 'acknowledge' | 'assign' | 'resolve' | 'close') => allowed(role, item, a, props.mayAct ?? true)
  if (!may('acknowledge') && !may('assign') && !may('resolve') && !may('close')) return null
  const what = `${typeLabel(item.type)} ${item.device}`
  const done = (c: Case | 'conflict' | undefined) => {
    if (c && c !== 'conflict') props.onDone?.(c)
  }
  const open = (action: 'assign' | 'resolve', e: MouseEvent) => {
    pending.set({ kind, item, action, opener: e.currentTarget as HTMLElement, ...(props.onDone ? { done: props.onDone } : {}) })
  }
  return (
    <div class="case-actions" role="group" aria-label={t('actions')}>
      {may('acknowledge') ? (
        <button type="button" class="button primary" data-testid="ack" disabled={inFlight} aria-label={`${t('ack')}: ${what}`} onClick={() => void act(kind, item, 'acknowledge').then(done)}>
          <Icon name="check" />
          {t('ack')}
        </button>
      ) : null}
      {may('assign') ? (
        <button type="button" class="button" data-testid="assign" disabled={inFlight} aria-label={`${t('assign')}: ${what}`} aria-haspopup="dialog" onClick={(e) => open('assign', e)}>
          <Icon name="send" />
          {t('assign')}
        </button>
      ) : null}
      {may('resolve') ? (
        <button type="button" class="button" data-testid="resolve" disabled={inFlight} aria-label={`${t('resolve')}: ${what}`} aria-haspopup="dialog" onClick={(e) => open('resolve', e)}>
          <Icon name="flag" />
          {t('resolve')}
        </button>
      ) : null}
      {may('close') ? (
        <button type="button" class="button" data-testid="close" disabled={inFlight} aria-label={`${t('close')}: ${what}`} onClick={() => void act(kind, item, 'close').then(done)}>
          <Icon name="x" />
          {t('close')}
        </button>
      ) : null}
    </div>
  )
}

function restoreFocus(p: PendingAction) {
  // After the dialog is gone: back to the button that opened it, or (when that row has left the
  // list) to the page's heading.
  setTimeout(() => {
    if (p.opener?.isConnected && !(p.opener as HTMLButtonElement).disabled) p.opener.focus()
    else document.querySelector<HTMLElement>('main h1')?.focus()
  }, 0)
}

/** The open assign or resolve dialog, if any. */
export function ActionDialog() {
  const p = useStore(pending)
  if (!p) return null
  return <ActionForm key={`${p.item.id}:${p.action}`} p={p} />
}

function ActionForm({ p }: { p: PendingAction }) {
  const t = useT()
  const departments = useStore(me)?.departments ?? []
  const [department, setDepartment] = useState(p.item.assignedTo ?? departments[0]?.id ?? '')
  const [note, setNote] = useState('')
  const inFlight = useStore(busy).has(p.item.id)
  const close = () => {
    pending.set(undefined)
    restoreFocus(p)
  }
  const submit = (e: Event) => {
    e.preventDefault()
    if (inFlight) return
    void act(p.kind, p.item, p.action, p.action === 'assign' ? { department, note } : { note }).then((c) => {
      // Done, or refused with a conflict (the message is shown and the case refreshed): either
      // way this dialog's version is spent. Other failures keep it open to try again.
      if (c) close()
      if (c && c !== 'conflict') p.done?.(c)
    })
  }
  const testid = p.action === 'assign' ? 'assign-dialog' : 'resolve-dialog'
  return (
    <Dialog testid={testid} title={`${p.action === 'assign' ? t('assignTitle') : t('resolveTitle')}: ${typeLabel(p.item.type)} · ${p.item.device}`} onClose={close}>
      <form class="dialog-form" onSubmit={submit}>
        {p.item.detail.message || p.item.detail.description ? <p class="dialog-context">{String(p.item.detail.message ?? p.item.detail.description)}</p> : null}
        {p.action === 'assign' ? (
          <div class="field">
            <label for="action-department">{t('department')}</label>
            <select id="action-department" name="department" required value={department} onChange={(e) => setDepartment(e.currentTarget.value)}>
              {departments.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div class="field">
          <label for="action-note">{t('note')}</label>
          <textarea id="action-note" name="note" rows={3} maxLength={2000} placeholder={t('notePlaceholder')} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
        </div>
        <div class="dialog-buttons">
          <button type="button" class="button" data-testid="dialog-cancel" onClick={close}>
            {t('cancel')}
          </button>
          <button type="submit" class="button primary" data-testid={p.action === 'assign' ? 'assign-confirm' : 'resolve-confirm'} disabled={inFlight}>
            {p.action === 'assign' ? t('confirmAssign') : t('confirmResolve')}
          </button>
        </div>
      </form>
    </Dialog>
  )
}
