import { expect, test } from 'vitest'
import { runRemora } from '../helpers/process.js'

test('remora demo --once: allowed chain, denied call with its reason, plaintext refused; exit 0', async () => {
  const child = runRemora(['demo', '--once'])
  const code = await child.exited
  expect(child.stderr).toBe('')
  expect(code).toBe(0)
  expect(child.stdout).toContain('✔ you → frontend → orders → payments: HTTP 200')
  // JWT: a buyer token reached orders above; without the group 403, tampered 401; tokens stay in files
  expect(child.stdout).toContain('✔ you (a valid token, not in "buyers") → frontend → orders: HTTP 403')
  expect(child.stdout).toContain('✔ you (a tampered token) → frontend → orders: HTTP 401')
  expect(child.stdout).not.toMatch(/Bearer ey/)
  expect(child.stdout).toContain('payments saw caller spiffe://cluster.local/ns/shop/sa/orders')
  expect(child.stdout).toMatch(/HTTP 403[\s\S]*RBAC: access denied[\s\S]*x-remora-denied-by: deny: no ALLOW policy matched/)
  expect(child.stdout).toContain('demo: everything behaved.')
}, 60_000)
