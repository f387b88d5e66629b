// Lint for Portcullis: typescript-eslint's recommended rules plus the house rules of
// docs/architecture.md — storage only in src/store/, administrative authorization only in the
// broker, named errors, dependencies pointing one way (domains never import broker/server/cli).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const domains = ['access', 'agents', 'audit', 'common', 'config', 'credentials', 'crypto', 'gateways', 'governance', 'identity', 'inventory', 'policy', 'signals'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.portcullis/**', 'examples/data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: 'module', globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', queueMicrotask: 'readonly', structuredClone: 'readonly', fetch: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', Headers: 'readonly', Request: 'readonly', Response: 'readonly', performance: 'readonly', crypto: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // Storage is async: a forgotten await (a floating promise, a promise where a boolean or a
    // callback's void was meant) loses a write or an error. Type-aware, so src/ only.
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
  {
    // Storage goes through the repository ports: no SQLite outside src/store/.
    files: ['src/**/*.ts'],
    ignores: ['src/store/**'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'node:sqlite', message: 'storage goes through the repository ports (src/<domain>/ports.ts); SQLite lives in src/store/sqlite/' }], patterns: [{ group: ['**/store/sqlite/**'], message: 'only the composition root (src/broker/open.ts) and src/store/ know the SQLite store; use the ports' }] }],
      'no-restricted-syntax': ['error',
        { selector: "CallExpression[callee.property.name='prepare']", message: 'SQL belongs in src/store/: add a method to the domain port instead' },
        { selector: "NewExpression[callee.name='PortcullisError']", message: 'throw a named error class (src/common/errors.ts or the domain errors.ts) with a stable code' },
      ],
    },
  },
  {
    // The composition root opens the SQLite store and hands its repositories to the domains;
    // internals.ts carries the transitional raw connections of that store to the broker's parts.
    files: ['src/broker/open.ts', 'src/broker/internals.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'node:sqlite', message: 'the composition root opens the store through src/store/sqlite/, never SQLite itself' }] }],
    },
  },
  {
    files: ['src/server/**/*.ts', 'src/cli/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error',
        { selector: "Identifier[name='requireAllowed']", message: 'administrative authorization belongs in the broker: call a broker method that takes the caller' },
        { selector: "CallExpression[callee.property.name='prepare']", message: 'SQL belongs in src/store/' },
        { selector: "NewExpression[callee.name='PortcullisError']", message: 'throw a named error class with a stable code' },
      ],
    },
  },
  {
    // The web console's browser modules (src/console/, served as they are: no build step).
    files: ['src/console/**/*.js'],
    languageOptions: { globals: { document: 'readonly', window: 'readonly', location: 'readonly', addEventListener: 'readonly', removeEventListener: 'readonly', URLSearchParams: 'readonly', Blob: 'readonly' } },
  },
  {
    // Dependencies point one way: domains never import the broker, the transport or the CLI.
    files: domains.map((d) => `src/${d}/**/*.ts`),
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'node:sqlite', message: 'storage goes through the repository ports' }], patterns: [{ group: ['**/broker/**', '**/server/**', '**/cli/**', '!@modelcontextprotocol/sdk/**'], message: 'domains do not import broker/, server/ or cli/ (the MCP SDK server/ is a package, not ours)' }, { group: ['**/store/sqlite/**'], message: 'domains use their ports, not the SQLite store' }] }],
    },
  },
);
