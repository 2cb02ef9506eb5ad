// A real OpenID Connect provider (oidc-provider 9.13.3) on 127.0.0.1 for Ferry's federated sign-in tests.
// Usage: node provider.mjs config.json   (config format: see compat/oidc_provider.py, which writes it)
// Adds to the stock provider: a login form of its own, automatic consent, keys persisted in state_dir,
// and a loopback-only admin API under /__admin/ (key rotation, one-shot ID token tampering, request counts).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as jose from 'jose';
import Provider from 'oidc-provider';
// The provider's own keystore initializer (what its constructor calls): re-running it swaps the signing
// keys of a live provider. Internal to oidc-provider, hence the exact version pin in package.json.
import initializeKeystore from 'oidc-provider/lib/helpers/initialize_keystore.js';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { port, issuer, accounts = {} } = config;
const jwksPath = path.join(config.state_dir, 'jwks.json');

async function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: await jose.calculateJwkThumbprint(jwk), alg: 'RS256', use: 'sig' };
}

function saveJwks(jwks) {
  // write then rename: a crash never leaves a half-written key file
  fs.mkdirSync(config.state_dir, { recursive: true });
  fs.writeFileSync(`${jwksPath}.tmp`, JSON.stringify(jwks, null, 2), { mode: 0o600 });
  fs.renameSync(`${jwksPath}.tmp`, jwksPath);
}

let jwks;
if (fs.existsSync(jwksPath)) {
  jwks = JSON.parse(fs.readFileSync(jwksPath, 'utf8'));
} else {
  jwks = { keys: [await newSigningKey()] };
  saveJwks(jwks);
}
// stages in the log, so a start that stalls shows where
console.log(`keys loaded (${jwks.keys.length})`);

const accountBySub = new Map(Object.values(accounts).map((a) => [a.claims.sub, a]));

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks,
  // oidc-provider signs its cookies; fresh keys per process are enough for tests
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username',
      'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
  },
  // put the scopes' claims in the ID token too (by default they are only at userinfo when an access
  // token is issued), as the identity providers Ferry federates with do
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true }, // and 9.x accepts only S256
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accountBySub.get(sub);
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ ...account.claims }) };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = errorPage(out.error, out.error_description);
  },
  ttl: {
    AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600,
  },
});
// No TLS and no proxy in front: the issuer is plain http on loopback. Cookies get `secure` only when the
// request is https (ctx.secure), so nothing else needs changing for http.

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
  provider.on(event, (ctx, err) => {
    console.log(`${event}: ${err.name} ${err.message} ${err.error_description ?? ''}`);
  });
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body>${body}</body></html>`;
}

function errorPage(error, description) {
  return page('Error', `<h1>${esc(error)}</h1><p id="error">${esc(description ?? '')}</p>`);
}

function loginPage(uid, clientId, login = '', error = '') {
  return page('Sign in', `<h1>Sign in to continue to ${esc(clientId)}</h1>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}">
<label>Login <input type="text" name="login" value="${esc(login)}" autofocus></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button>
</form>`);
}

async function readBody(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
}

function redirect(ctx, to) {
  ctx.status = 303; // set first: koa's redirect() keeps a redirect status that is already there
  ctx.redirect(to);
}

// The interaction pages. GET shows the login form, or grants consent at once (no consent page);
// POST checks the password.
async function interaction(ctx, uid) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'this interaction is not the one of this browser session');
  const { prompt, params, session } = details;
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const result = { consent: { grantId: await grant.save() } };
    return redirect(ctx, await provider.interactionResult(ctx.req, ctx.res, result));
  }
  if (prompt.name !== 'login') ctx.throw(501, `prompt ${prompt.name} is not implemented`);
  ctx.type = 'html';
  if (ctx.method === 'GET') {
    ctx.body = loginPage(uid, params.client_id);
    return undefined;
  }
  const form = new URLSearchParams(await readBody(ctx.req));
  const login = form.get('login') ?? '';
  const account = Object.hasOwn(accounts, login) ? accounts[login] : undefined;
  if (!account || account.password !== form.get('password')) {
    ctx.body = loginPage(uid, params.client_id, login, 'Invalid login or password.');
    return undefined;
  }
  const result = { login: { accountId: account.claims.sub } };
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  return redirect(ctx, to);
}

// One-shot changes to the next ID token the token endpoint returns (see tamper()).
let pendingTamper = null;

async function tamper(idToken, overrides) {
  const { sign_with: signWith, exp_offset: expOffset, ...claims } = overrides;
  const payload = jose.decodeJwt(idToken);
  for (const [name, value] of Object.entries(claims)) {
    if (value === null) delete payload[name];
    else payload[name] = value;
  }
  if (expOffset !== undefined) {
    const lifetime = payload.exp - payload.iat;
    payload.exp = Math.floor(Date.now() / 1000) + expOffset;
    payload.iat = payload.exp - lifetime;
  }
  const current = jwks.keys[0];
  let key;
  if (signWith === 'foreign') {
    key = (await jose.generateKeyPair('RS256')).privateKey;
  } else {
    key = await jose.importJWK(current, 'RS256');
  }
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: current.kid }).sign(key);
}

const requestsSeen = {};

async function admin(ctx, what) {
  ctx.type = 'json';
  if (what === 'rotate' && ctx.method === 'POST') {
    // rotation as a real provider does it: the new key signs from now on, the old ones stay
    // published so tokens they signed still verify
    jwks = { keys: [await newSigningKey(), ...jwks.keys] };
    saveJwks(jwks);
    initializeKeystore.call(provider, jwks); // in effect at once, no restart
    ctx.body = { kid: jwks.keys[0].kid, kids: jwks.keys.map((k) => k.kid) };
  } else if (what === 'tamper' && ctx.method === 'POST') {
    let overrides;
    try {
      overrides = JSON.parse(await readBody(ctx.req) || '{}');
    } catch {
      ctx.throw(400, 'the body must be a JSON object of overrides');
    }
    if (![undefined, 'current', 'foreign'].includes(overrides.sign_with)) {
      ctx.throw(400, 'sign_with: "current" or "foreign"');
    }
    if (!['undefined', 'number'].includes(typeof overrides.exp_offset)) ctx.throw(400, 'exp_offset: seconds');
    pendingTamper = overrides;
    ctx.body = { pending: pendingTamper };
  } else if (what === 'requests' && ctx.method === 'GET') {
    ctx.body = requestsSeen;
  } else {
    ctx.throw(404, 'unknown admin call');
  }
}

provider.use(async (ctx, next) => {
  const started = Date.now();
  const isAdmin = ctx.path.startsWith('/__admin/');
  // admin calls are the test talking to the harness, not traffic an RP sent: not counted
  if (!isAdmin) requestsSeen[ctx.path] = (requestsSeen[ctx.path] ?? 0) + 1;
  try {
    const interactionUid = ctx.path.match(/^\/interaction\/([^/]+)$/)?.[1];
    if (isAdmin) {
      await admin(ctx, ctx.path.slice('/__admin/'.length));
    } else if (interactionUid && ['GET', 'POST'].includes(ctx.method)) {
      try {
        await interaction(ctx, interactionUid);
      } catch (err) {
        ctx.status = err.statusCode ?? err.status ?? 500;
        ctx.type = 'html';
        ctx.body = errorPage(err.error ?? err.name, err.error_description ?? err.message);
        console.log(`interaction error: ${err.name} ${err.message}`);
      }
    } else {
      await next();
      if (ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token && pendingTamper) {
        const overrides = pendingTamper;
        pendingTamper = null;
        ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token, overrides) };
        console.log(`tampered ID token: ${JSON.stringify(overrides)}`);
      }
    }
    console.log(`${ctx.method} ${ctx.url} -> ${ctx.status} ${Date.now() - started}ms`);
  } catch (err) {
    // koa's error handler answers it after us
    console.log(`${ctx.method} ${ctx.url} -> ${err.status ?? 500} ${Date.now() - started}ms: ${err.message}`);
    throw err;
  }
});

// The test process holds our stdin open: when it goes away (even killed), so does the provider.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

console.log(`listening on 127.0.0.1:${port}`);
const server = provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
server.on('error', (err) => {
  console.log(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
