import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'cdk.out/**', 'dist/**', 'coverage/**', '.certflow/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['lambdas/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@aws-sdk/*', 'aws-lambda', '@aws-lambda-powertools/*', '@middy/*'],
              message: 'core stays free of AWS.',
            },
            { group: ['node:fs', 'fs', 'node:fs/*', 'fs/*', 'node:net', 'node:http'], message: 'core does no I/O.' },
            {
              group: ['**/adapters/**', '**/handlers/**', '**/local/**', '**/lib/**'],
              message: 'core imports only core.',
            },
          ],
        },
      ],
    },
  },
);
