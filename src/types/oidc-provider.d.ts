// oidc-provider ships no type declarations; the dev server's OP (src/cli/dev-sso.ts) and the test fixtures use it untyped.
declare module 'oidc-provider';
