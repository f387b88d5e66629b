// Public surface of the access domain, for server/ and cli/ to wire.
export { AccessService, createAccessService } from './service.ts';
export { validateAccessConfig, HARD_MAX_GRANT_MS, HARD_MAX_BREAK_GLASS_MS } from './config.ts';
export type { AccessConfig, AccessRule, WebhookConfig, WebhookEndpoint } from './config.ts';
export { parseCreateRequest, parseBreakGlass } from './input.ts';
export type { BreakGlassInput } from './input.ts';
export type { CreateRequestInput } from './requests.ts';
export type { Keyset, ListFilter } from './ports.ts';
export type { ReaderView } from './visibility.ts';
export { requestStatusLine, grantStatusLine } from './status.ts';
export { WebhookDispatcher, signWebhook, verifyWebhookSignature } from './webhooks.ts';
export type { Delivery, DeliveryStatus } from './webhooks.ts';
export * from './errors.ts';
export type * from './types.ts';
