// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.muster/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: true } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'import-x/no-cycle': 'error',
      // Fastify handlers and interface implementations are async without awaiting; that is fine.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The UI's build config imports only build tools (which the legacy node resolver cannot
    // load); there is nothing of ours to find a cycle in.
    files: ['web/vite.config.ts'],
    rules: { 'import-x/no-cycle': 'off' },
  },
  {
    // The agent and the coordinator never import each other; the protocol imports neither.
    files: ['src/agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['**/coordinator/**', '**/cli/**', '**/host/**'] },
      ],
    },
  },
  {
    files: ['src/coordinator/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/agent/**', '**/cli/**'] }] },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            '**/agent/**',
            '**/coordinator/**',
            '**/cli/**',
            '**/host/**',
            '**/extensions/**',
          ],
        },
      ],
    },
  },
  {
    // The host runtime and built-in extensions are shipped to agents as plain files: they may import
    // only Node built-ins and their own folder (type-only imports are erased).
    files: ['src/host/**/*.ts', 'src/extensions/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '../protocol/*',
                '../../protocol/*',
                '../agent/*',
                '../coordinator/*',
                'zod',
                'pino',
                'commander',
              ],
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
