// ESLint flat config: typescript-eslint's recommended rules (syntax-only, no type information, so
// `npm run lint` stays a few seconds on the whole tree) over every TypeScript and .mjs file.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

// The Node globals the plain .mjs scripts use (TypeScript files get theirs from the compiler, and
// typescript-eslint turns `no-undef` off for them).
const nodeGlobals = Object.fromEntries(
  [
    'process',
    'console',
    'Buffer',
    'URL',
    'URLSearchParams',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'queueMicrotask',
    'fetch',
    'AbortController',
    'TextEncoder',
    'TextDecoder',
    'structuredClone',
    'performance',
  ].map((name) => [name, 'readonly']),
)

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.data/', '.cache/', 'coverage/', 'test/go/', 'public/burrow-sw.js', '.*.mts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: nodeGlobals },
  },
  {
    rules: {
      // `let [a, b] = …` where only `a` is reassigned later (the WireGuard handshake's chaining key
      // and key) stays one destructuring; splitting it would not make it clearer.
      'prefer-const': ['error', { destructuring: 'all' }],
      // `_`-prefixed names are deliberately unused (destructuring out a field, a callback's unused parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
)
