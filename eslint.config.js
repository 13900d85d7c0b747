// typescript-eslint flat config: the recommended rules, type-aware where it pays (floating promises).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const NODE_GLOBALS = Object.fromEntries(
  [
    'process', 'console', 'Buffer', 'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'AbortController', 'AbortSignal',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'queueMicrotask',
    'structuredClone', 'performance', 'fetch', 'crypto', 'EventTarget', 'Event',
  ].map((g) => [g, 'readonly']),
)

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  // The CLI and the composition roots talk to a terminal (usage, the admin token printed once).
  { files: ['cli/**', 'bench/**', 'test/**', 'proxy/main.ts', 'control-plane/main.ts'], rules: { 'no-console': 'off' } },
  // Tests handle foreign JSON (AdmissionReview, Kubernetes objects, OTLP) without a schema.
  { files: ['test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // Plain JavaScript (this file, bench helper scripts run by node directly) is outside the
  // tsconfig, so the type-aware rules cannot run on it; it still gets the syntax rules, with
  // Node's globals.
  {
    files: ['**/*.{js,mjs,cjs}'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: NODE_GLOBALS },
  },
)
