/** Sign-in by name and password. */
import { useState } from 'preact/hooks'
import { ApiError, signIn, signInNotice } from './api.ts'
import { lang, useT } from './i18n.ts'
import { unlockAudio } from './sound.ts'
import { useStore } from './store.ts'
import { Icon } from './ui.tsx'

export function SignIn() {
  const t = useT()
  const l = useStore(lang)
  const notice = useStore(signInNotice)
  const [error, setError] = useState<string | undefined>()
  const [busy, setBusy] = useState(false)
  const submit = (e: Event) => {
    e.preventDefault()
    // The sign-in click is the user gesture that lets the alarm sound later.
    unlockAudio()
    const form = e.currentTarget as HTMLFormElement
    const name = (form.elements.namedItem('name') as HTMLInputElement).value.trim()
    const password = (form.elements.namedItem('password') as HTMLInputElement).value
    setBusy(true)
    setError(undefined)
    signIn(name, password).then(
      () => {
        if (!/^#\/(alerts|sensors|patrol|gateways)/.test(location.hash)) location.hash = '#/alerts'
      },
      (err: unknown) => {
        setBusy(false)
        const message = err instanceof ApiError && err.status === 401 ? t('wrongPassword') : (err as Error).message
        setError(t('signInFailed', { message }))
        form.querySelector<HTMLInputElement>('input[name="password"]')?.select()
      },
    )
  }
  return (
    <div class="signin-page">
      <header class="signin-brand">
        <span class="logo" aria-hidden="true">
          <Icon name="shield" />
        </span>
        <span>{t('appName')}</span>
        <button type="button" class="button ghost on-dark small lang" data-testid="lang-toggle" title={t('langToggleLabel')} lang={l === 'zh' ? 'en' : 'zh-CN'} onClick={() => lang.set(l === 'zh' ? 'en' : 'zh')}>
          <Icon name="globe" />
          {t('langToggle')}
        </button>
      </header>
      <main id="main" class="signin-main">
        <form class="signin-card" data-testid="sign-in" onSubmit={submit} aria-labelledby="signin-title" noValidate={false}>
          <h1 id="signin-title">{t('signInTitle')}</h1>
          <p class="muted">{t('signInIntro')}</p>
          {notice ? (
            <p class="info-box" role="status">
              {notice}
            </p>
          ) : null}
          <div class="field">
            <label for="signin-name">{t('name')}</label>
            <input id="signin-name" name="name" autocomplete="username" required autoFocus autocapitalize="none" spellcheck={false} />
          </div>
          <div class="field">
            <label for="signin-password">{t('password')}</label>
            <input id="signin-password" name="password" type="password" autocomplete="current-password" required />
          </div>
          <div class="signin-error" data-testid="sign-in-error" role="alert">
            {error ?? ''}
          </div>
          <button type="submit" class="button primary block" data-testid="sign-in-submit" disabled={busy}>
            {busy ? t('signingIn') : t('signIn')}
          </button>
        </form>
      </main>
    </div>
  )
}
