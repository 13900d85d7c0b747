import { defineConfig } from 'vitest/config'

// Projects: `unit` needs only npm packages (npm test); `engine-node-http` runs the data-path
// integration tests once more on the fallback forwarding engine (npm test runs both: the two
// engines must pass the same suite); `system` needs Debian binaries (etcd, prometheus, nginx…)
// and runs with `npm run test:system`; `reliability` is the attacker/fault/long-day suite.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/cases/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          pool: 'forks',
        },
      },
      {
        test: {
          name: 'engine-node-http',
          include: ['test/integration/**/*.test.ts', 'test/cases/*-sidecar.test.ts'],
          // Not about forwarding: config validation, the demo, the webhook, control-plane push logic.
          exclude: ['test/integration/{config,demo,webhook,control-plane-push,control-plane-down,control-plane-rotation,kubernetes-ca-root,kubernetes-control-plane-process}.test.ts'],
          env: { REMORA_TEST_ENGINE: 'node-http' },
          testTimeout: 30_000,
          hookTimeout: 30_000,
          pool: 'forks',
        },
      },
      {
        test: {
          // npm run test:reliability: fuzzing, soak, abuse and faults (test/reliability/budget.ts
          // sizes them: bounded by default and in CI, REMORA_RELIABILITY=full for docs/reliability.md).
          name: 'reliability',
          include: ['test/reliability/**/*.test.ts'],
          testTimeout: 1_800_000,
          hookTimeout: 120_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'system',
          include: ['test/system/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
    ],
  },
})
