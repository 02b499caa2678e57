// A real OpenID Connect provider for Pave's SSO browser test (tests/portal/test_sso.py).
// Usage: node provider.mjs ISSUER REDIRECT_URI CLIENT_SECRET ACCOUNTS_JSON
// It listens on the issuer's host and port (a loopback address), prints "ready" when it does,
// and signs in anyone with any password (oidc-provider's development interactions); each
// account's groups come from ACCOUNTS_JSON ({"alice": ["data-scientists", "fraud-ds"]}).
import Provider from 'oidc-provider';

const [issuer, redirectUri, clientSecret, accountsJson] = process.argv.slice(2);
const accounts = JSON.parse(accountsJson);
const { hostname, port } = new URL(issuer);

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'pave',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: id,
          email: `${id}@example.com`,
          groups: accounts[id] ?? [],
        };
      },
    };
  },
  cookies: { keys: ['pave-test-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;
provider.listen(Number(port), hostname, () => {
  console.log('ready');
});
