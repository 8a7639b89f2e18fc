// A real OpenID Provider (oidc-provider 9) on loopback for portcullis integration tests.
//
//   PORT=0 REDIRECT_URI=http://127.0.0.1:8080/oauth2/callback node provider.js
//
// Env: PORT (or argv[2]; 0 or unset picks a free port), REDIRECT_URI, CLIENT_ID (default
// portcullis), CLIENT_SECRET, ACCESS_TOKEN_TTL (seconds, default 30). Prints
// `oidc-provider listening on <issuer> kid=<kid>` once it serves.
//
// Users (password = "<name>-password"): alice (verified, groups admins+analysts), bob
// (verified, contractors domain, no groups), carol (unverified email).
// Test-only admin endpoints on loopback:
//   POST /__admin/groups?user=alice&groups=a,b   replace a user's groups
//   POST /__admin/rotate                          a new provider (fresh signing key and kid, all
//                                                 sessions, grants and tokens gone) on the same
//                                                 port, so no other process can take it meanwhile
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || process.argv[2] || 0);
const clientId = process.env.CLIENT_ID || 'portcullis';
const clientSecret = process.env.CLIENT_SECRET || 'portcullis-test-secret';
const redirectUri = process.env.REDIRECT_URI || 'http://127.0.0.1:8080/oauth2/callback';
const accessTokenTtl = Number(process.env.ACCESS_TOKEN_TTL || 30);

const users = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', groups: ['admins', 'analysts'] },
  bob: { email: 'bob@contractors.example.com', email_verified: true, name: 'Bob Builder', groups: [] },
  carol: { email: 'carol@example.com', email_verified: false, name: 'Carol Unverified', groups: ['analysts'] },
};

function buildProvider(issuer) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

  const configuration = {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      // Exactly what the gateway sends by default: its public root (PUBLIC_URL/).
      post_logout_redirect_uris: [new URL('/', redirectUri).href],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomUUID()] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: accessTokenTtl,
      IdToken: 3600,
      RefreshToken: 86400,
      Grant: 86400,
      Interaction: 600,
      Session: 86400,
    },
    // Refresh tokens without prompt=consent, always rotated (replaying an old one revokes the grant).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    async findAccount(_ctx, id) {
      const user = users[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, preferred_username: id, ...user };
        },
      };
    },
  };

  const provider = new Provider(issuer, configuration);
    provider.kid = signingKey.kid;
  provider.on('server_error', (_ctx, err) => console.error('provider server_error:', err.message));

  async function readForm(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  // The login page and its password check; consent is granted together with the login.
  provider.use(async (ctx, next) => {
    const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (match && ctx.method === 'GET' && !match[2]) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      ctx.type = 'html';
      ctx.body = `<form method="post" action="/interaction/${details.uid}/login">
        <input name="login"><input name="password" type="password"><button>Sign in</button></form>`;
      return;
    }
    if (match && ctx.method === 'POST' && match[2]) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      const form = await readForm(ctx.req);
      const login = form.get('login');
      if (!users[login] || form.get('password') !== `${login}-password`) {
        ctx.status = 401;
        ctx.body = 'wrong username or password';
        return;
      }
      const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(ctx.req, ctx.res, {
        login: { accountId: login },
        consent: { grantId },
      }, { mergeWithLastSubmission: false });
      return;
    }
    if (ctx.path === '/__admin/groups' && ctx.method === 'POST') {
      const user = users[ctx.query.user];
      if (!user) {
        ctx.status = 404;
        return;
      }
      user.groups = String(ctx.query.groups || '').split(',').filter(Boolean);
      ctx.status = 204;
      return;
    }
    await next();
  });
  return provider;
}

let current;
let handle;

const server = createServer((req, res) => {
  if (req.url === '/__admin/rotate' && req.method === 'POST') {
    current = buildProvider(current.issuer);
    handle = current.callback();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`kid=${current.kid}\n`);
    return;
  }
  handle(req, res);
});

server.listen(port, '127.0.0.1', () => {
  current = buildProvider(`http://127.0.0.1:${server.address().port}`);
  handle = current.callback();
  console.log(`oidc-provider listening on ${current.issuer} kid=${current.kid}`);
});
