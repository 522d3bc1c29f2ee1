// Development OpenID Provider for the Flask-OIDC-Refresh test suite.
//
// Wraps panva's oidc-provider with one static confidential client. Everything
// is configurable through OP_* environment variables (read below). NOT for
// production use: it accepts any login/password, uses fixed cookie keys and
// the in-memory adapter (all state is lost on restart).
//
//   node server.mjs            # listens on http://127.0.0.1:9400

import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';

import { Provider, errors } from 'oidc-provider';

// --- environment helpers ----------------------------------------------------

const env = (name, fallback) => process.env[name] ?? fallback;
const envInt = (name, fallback) => {
  const value = Number.parseInt(env(name, ''), 10);
  return Number.isNaN(value) ? fallback : value;
};
const envBool = (name, fallback) => {
  const value = env(name, undefined);
  return value === undefined || value === '' ? fallback : !['0', 'false', 'no', 'off'].includes(value.toLowerCase());
};
const envList = (name, fallback) => env(name, fallback).split(',').map((s) => s.trim()).filter(Boolean);

const HOST = '127.0.0.1';
const PORT = envInt('OP_PORT', 9400);
const ISSUER = env('OP_ISSUER', '') || `http://${HOST}:${PORT}`;

const CLIENT_ID = env('OP_CLIENT_ID', 'example-app');
const CLIENT_SECRET = env('OP_CLIENT_SECRET', 'example-secret');
const CLIENT_AUTH_METHOD = env('OP_CLIENT_AUTH_METHOD', 'client_secret_basic');
// Where the provider fetches the client's public keys (private_key_jwt).
const CLIENT_JWKS_URI = env('OP_CLIENT_JWKS_URI', '');
// The example app's URLs, on OP_APP_PORT (what `make run PORT=...` sets), unless given whole.
const APP_PORT = envInt('OP_APP_PORT', 5000);
const APP_BASES = [`http://127.0.0.1:${APP_PORT}`, `http://localhost:${APP_PORT}`];
const REDIRECT_URIS = envList(
  'OP_REDIRECT_URIS',
  APP_BASES.map((base) => `${base}/oidc/callback`).join(','),
);
const POST_LOGOUT_REDIRECT_URIS = envList(
  'OP_POST_LOGOUT_REDIRECT_URIS',
  APP_BASES.map((base) => `${base}/oidc/logout/callback`).join(','),
);
const BACKCHANNEL_LOGOUT_URI = env('OP_BACKCHANNEL_LOGOUT_URI', `${APP_BASES[0]}/oidc/backchannel-logout`);

const ACCESS_TOKEN_TTL = envInt('OP_ACCESS_TOKEN_TTL', 3600);
const ID_TOKEN_TTL = envInt('OP_ID_TOKEN_TTL', 3600);
const REFRESH_TOKEN_TTL = envInt('OP_REFRESH_TOKEN_TTL', 86400);
const SESSION_TTL = envInt('OP_SESSION_TTL', 86400);

// APIs: a resource server whose access tokens are JWTs (RFC 9068), one whose tokens are
// opaque (checked by introspection), and a service client for the client-credentials grant.
const API_RESOURCE = env('OP_API_RESOURCE', 'urn:example:api');
const OPAQUE_API_RESOURCE = env('OP_OPAQUE_API_RESOURCE', 'urn:example:opaque-api');
const API_SCOPES = 'api:read api:write';
const API_TOKEN_TTL = envInt('OP_API_TOKEN_TTL', 300);
const SERVICE_CLIENT_ID = env('OP_SERVICE_CLIENT_ID', 'example-service');
const SERVICE_CLIENT_SECRET = env('OP_SERVICE_CLIENT_SECRET', 'example-service-secret');
// Extra claims per account (JSON object: sub -> claims), read at every sign-in, renewal and
// userinfo call, so that a test can change a user's groups at the provider.
const ACCOUNTS_FILE = env('OP_ACCOUNTS_FILE', '');

const ISSUE_REFRESH_TOKENS = envBool('OP_ISSUE_REFRESH_TOKENS', true);
const ROTATE_REFRESH_TOKENS = envBool('OP_ROTATE_REFRESH_TOKENS', false);
const EVENT_LOG = env('OP_EVENT_LOG', '');

// --- event log (one JSON object per line) -----------------------------------

function logEvent(event, ctx, details = {}) {
  if (!EVENT_LOG) return;
  const line = {
    event,
    time: Date.now(),
    grant_type: ctx?.oidc?.params?.grant_type,
    client_id: ctx?.oidc?.client?.clientId,
    ...details,
  };
  // Sync append: the line is on disk before the HTTP response is sent.
  appendFileSync(EVENT_LOG, `${JSON.stringify(line)}\n`);
}

const errorDetails = (err) => ({
  error: err?.error ?? err?.name,
  error_description: err?.error_description ?? err?.message,
});

// --- provider configuration -------------------------------------------------

const client = {
  client_id: CLIENT_ID,
  // a public client (none) has no secret; private_key_jwt signs with the client's own key
  ...(['none', 'private_key_jwt'].includes(CLIENT_AUTH_METHOD) ? {} : { client_secret: CLIENT_SECRET }),
  ...(CLIENT_JWKS_URI ? { jwks_uri: CLIENT_JWKS_URI } : {}),
  token_endpoint_auth_method: CLIENT_AUTH_METHOD,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: REDIRECT_URIS,
  post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
  ...(BACKCHANNEL_LOGOUT_URI ? {
    backchannel_logout_uri: BACKCHANNEL_LOGOUT_URI,
    backchannel_logout_session_required: true,
  } : {}),
};

const serviceClient = {
  client_id: SERVICE_CLIENT_ID,
  client_secret: SERVICE_CLIENT_SECRET,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: API_SCOPES,
};

const resourceServers = {
  [API_RESOURCE]: { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
  [OPAQUE_API_RESOURCE]: { accessTokenFormat: 'opaque' },
};

// Every account has groups: "admin" is in "admins", everybody in "users"; the accounts file
// may replace any claim.
function accountClaims(sub) {
  const extra = ACCOUNTS_FILE && existsSync(ACCOUNTS_FILE)
    ? JSON.parse(readFileSync(ACCOUNTS_FILE, 'utf8'))[sub] ?? {}
    : {};
  return {
    sub,
    email: `${sub}@example.test`,
    email_verified: true,
    name: sub,
    preferred_username: sub,
    groups: sub === 'admin' ? ['admins', 'users'] : ['users'],
    ...extra,
  };
}

// Fresh RS256 signing key per process (avoids the built-in dev keys warning).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'dev-rs256', alg: 'RS256', use: 'sig' };

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The error page, with where this provider's allowed URLs come from when an app's are refused.
async function renderError(ctx, out) {
  const refused = /redirect_uri/.test(`${out.error} ${out.error_description}`);
  const hint = refused ? `
    <p>This development provider lets client ${escapeHtml(CLIENT_ID)} use these redirect URIs:
    ${REDIRECT_URIS.map(escapeHtml).join(', ')}; and these post-logout redirect URIs:
    ${POST_LOGOUT_REDIRECT_URIS.map(escapeHtml).join(', ')}.</p>
    <p>An app on another port: start the provider with OP_APP_PORT set to it
    (<code>make run PORT=...</code> does), or give OP_REDIRECT_URIS and
    OP_POST_LOGOUT_REDIRECT_URIS.</p>` : '';
  ctx.type = 'html';
  ctx.body = `<!doctype html><html lang="en"><meta charset="utf-8">
    <title>oops! something went wrong</title><h1>oops! something went wrong</h1>
    <pre>${escapeHtml(JSON.stringify(out, null, 2))}</pre>${hint}</html>`;
}

const configuration = {
  clients: [client, serviceClient],
  renderError,
  jwks: { keys: [signingKey] },
  cookies: { keys: ['dev-cookie-key-1-not-secret', 'dev-cookie-key-2-not-secret'] },

  scopes: ['openid', 'offline_access', 'email', 'profile', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    // groups ride along with the profile, as a group mapper adds them in Keycloak
    profile: ['name', 'preferred_username', 'groups'],
  },

  // Any login is accepted; the account id (sub) is whatever was typed.
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return accountClaims(sub);
      },
    };
  },

  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, c, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        const server = resourceServers[resource];
        if (!server) throw new errors.InvalidTarget();
        return { scope: API_SCOPES, audience: resource, accessTokenTTL: API_TOKEN_TTL, ...server };
      },
    },
  },

  pkce: { required: () => true }, // S256 is the only supported method

  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    IdToken: ID_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    Session: SESSION_TTL,
    Grant: Math.max(REFRESH_TOKEN_TTL, SESSION_TTL),
    Interaction: 3600,
    AuthorizationCode: 600,
  },

  // Issue a refresh token on every code exchange (no offline_access needed).
  issueRefreshToken: async (ctx, c) => ISSUE_REFRESH_TOKENS && c.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => ROTATE_REFRESH_TOKENS,

  // The default fetch pins an SSRF-protecting dispatcher that refuses
  // loopback/private addresses; drop it so back-channel logout can reach
  // an RP on 127.0.0.1.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
};

const provider = new Provider(ISSUER, configuration);

// --- events ---------------------------------------------------------------

provider.on('grant.success', (ctx) => logEvent('grant.success', ctx, {
  refresh_token_issued: Boolean(ctx.body?.refresh_token),
}));
provider.on('grant.error', (ctx, err) => logEvent('grant.error', ctx, errorDetails(err)));
provider.on('grant.revoked', (ctx, grantId) => logEvent('grant.revoked', ctx, { grant_id: grantId }));
provider.on('refresh_token.saved', (token) => logEvent('refresh_token.saved', Provider.ctx, { client_id: token.clientId }));
provider.on('refresh_token.consumed', (token) => logEvent('refresh_token.consumed', Provider.ctx, { client_id: token.clientId }));
provider.on('backchannel.success', (ctx, c, accountId, sid) => logEvent('backchannel.success', ctx, {
  client_id: c.clientId, sub: accountId, sid,
}));
provider.on('backchannel.error', (ctx, err, c, accountId, sid) => logEvent('backchannel.error', ctx, {
  client_id: c.clientId, sub: accountId, sid, ...errorDetails(err),
  cause: err?.cause?.message,
}));
provider.on('end_session.success', (ctx) => logEvent('end_session.success', ctx));
provider.on('authorization.success', (ctx) => logEvent('authorization.success', ctx, {
  prompt: ctx.oidc.params?.prompt,
}));
provider.on('authorization.error', (ctx, err) => logEvent('authorization.error', ctx, errorDetails(err)));
provider.on('revocation.error', (ctx, err) => logEvent('revocation.error', ctx, errorDetails(err)));
provider.on('userinfo.error', (ctx, err) => logEvent('userinfo.error', ctx, errorDetails(err)));
provider.on('end_session.error', (ctx, err) => logEvent('end_session.error', ctx, errorDetails(err)));
provider.on('end_session_confirm.error', (ctx, err) => logEvent('end_session_confirm.error', ctx, errorDetails(err)));
provider.on('server_error', (ctx, err) => {
  logEvent('server_error', ctx, errorDetails(err));
  console.error(err);
});

// --- start / stop -----------------------------------------------------------

const server = provider.listen(PORT, HOST, () => {
  console.log(`oidc-provider listening on ${ISSUER}`);
  console.log(`  client ${CLIENT_ID}: redirect URIs ${REDIRECT_URIS.join(' ')}`);
  console.log('  (an app on another port: set OP_APP_PORT, or OP_REDIRECT_URIS and friends)');
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
