// Discovery documents (RFC 8414 authorization-server metadata, and the same members at the OpenID
// discovery path for clients that look there): only what this server really has — the RFC 8693
// token endpoint, its one grant type, the JWKS of the tokens it signs. Portcullis is not an OpenID
// Provider (no authorization endpoint, no ID tokens), so none of an OP's members are claimed.
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration` for this issuer. */
export function authorizationServerMetadata(issuer: string): Record<string, unknown> {
  return {
    issuer,
    token_endpoint: `${issuer}/oauth2/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: [TOKEN_EXCHANGE_GRANT],
    // The token endpoint authenticates the subject token (and actor token), not an OAuth client.
    token_endpoint_auth_methods_supported: ['none'],
    // No authorization endpoint: no response type is supported (RFC 8414 §2 requires the member).
    response_types_supported: [],
    // The AuthZEN decision point of the same server (docs/authzen.md).
    authzen_configuration_endpoint: `${issuer}/.well-known/authzen-configuration`,
  };
}
