// Launcher for a real, third-party OpenID provider (panva/oidc-provider, pinned in
// package-lock.json) used by the interop suite. Nobody in this repository wrote the
// token issuance, the JWKS or the discovery document: that is the point.
//
//   node provider.mjs [--port N] [--admin-port N] [--state FILE]
//
// --port 0 (the default) lets the OS pick. Once both servers listen, one JSON line is
// printed on stdout:  {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT,"admin_port":N,...}
// Everything else (oidc-provider's own notices, errors) goes to stderr.
//
// Issuer:    http://127.0.0.1:PORT (plain http, loopback only).
// Clients:   client_credentials grant, client_secret_basic (see CLIENTS below).
// Resources: resource indicators (RFC 8707) urn:interop:orders-api -> aud "orders-api",
//            urn:interop:billing-api -> aud "billing-api"; access tokens are JWTs
//            (typ at+jwt). The signing alg is RS256 unless the token request carries the
//            test-only header `x-interop-alg: RS256 | ES256 | EdDSA`.
// Keys:      one signing key per alg (RS256, ES256, EdDSA), generated at first start and
//            persisted to --state, so a restarted provider serves the same keys.
// Admin API (127.0.0.1 only, separate port):
//   GET  /keys              -> {"active":{"RS256":kid,...},"kids":[...]}
//   POST /rotate?alg=ES256  -> a new key for alg, published and from now on used to sign
//   POST /drop?kid=KID      -> the key leaves the JWKS (and signing, if it was active)
// oidc-provider reads its keys once, at construction; a rotation therefore builds a new
// Provider instance with the new key set and swaps it in behind the same listening
// socket, so the issuer URL and port never change.
//
// The process exits when its stdin closes, so a test harness that dies cannot leave it behind.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

import Provider, { errors } from 'oidc-provider';

const ALGS = ['RS256', 'ES256', 'EdDSA'];

const CLIENTS = [
  {
    client_id: 'orders-client',
    client_secret: 'orders-client-secret',
    scope: 'orders:read orders:write',
  },
  {
    client_id: 'reader-client',
    client_secret: 'reader-client-secret',
    scope: 'orders:read',
  },
  {
    // Its access tokens live SHORT_TTL seconds: for expiry tests.
    client_id: 'short-lived-client',
    client_secret: 'short-lived-client-secret',
    scope: 'orders:read orders:write',
  },
  {
    client_id: 'billing-client',
    client_secret: 'billing-client-secret',
    scope: 'billing:read',
  },
].map((c) => ({
  ...c,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
}));

const RESOURCES = {
  'urn:interop:orders-api': { audience: 'orders-api', scope: 'orders:read orders:write' },
  'urn:interop:billing-api': { audience: 'billing-api', scope: 'billing:read' },
};

const SHORT_TTL = 2;
const DEFAULT_TTL = 300;

function parseArgs(argv) {
  const args = { port: 0, adminPort: 0, state: undefined };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, value] = [argv[i], argv[i + 1]];
    switch (flag) {
      case '--port': args.port = Number(value); i += 1; break;
      case '--admin-port': args.adminPort = Number(value); i += 1; break;
      case '--state': args.state = value; i += 1; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const p of [args.port, args.adminPort]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`invalid port ${p}`);
  }
  return args;
}

// ---- keys -------------------------------------------------------------------------

function generateKey(alg, generation) {
  let pair;
  switch (alg) {
    case 'RS256': pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }); break;
    case 'ES256': pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }); break;
    case 'EdDSA': pair = crypto.generateKeyPairSync('ed25519'); break;
    default: throw new Error(`unsupported alg ${alg}`);
  }
  const jwk = pair.privateKey.export({ format: 'jwk' });
  const kid = `${alg.toLowerCase()}-${generation}-${crypto.randomBytes(4).toString('hex')}`;
  return { ...jwk, kid, alg, use: 'sig' };
}

function loadState(file) {
  if (file && fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  const state = { generation: 1, keys: [], active: {} };
  for (const alg of ALGS) {
    const key = generateKey(alg, state.generation);
    state.keys.push(key);
    state.active[alg] = key.kid;
  }
  saveState(file, state);
  return state;
}

function saveState(file, state) {
  if (!file) return;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

// ---- the provider -----------------------------------------------------------------

function buildProvider(issuer, state) {
  const configuration = {
    clients: CLIENTS,
    jwks: { keys: state.keys },
    scopes: ['openid', 'offline_access', 'orders:read', 'orders:write', 'billing:read'],
    cookies: { keys: ['interop-cookie-key-not-secret'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(ctx, resourceIndicator, client) {
          const resource = RESOURCES[resourceIndicator];
          if (!resource) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          const alg = ctx.get('x-interop-alg') || 'RS256';
          if (!ALGS.includes(alg)) {
            throw new errors.InvalidRequest(`x-interop-alg must be one of ${ALGS.join(', ')}`);
          }
          const kid = state.active[alg];
          if (!kid) {
            throw new errors.InvalidRequest(`no signing key for ${alg}`);
          }
          return {
            ...resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: client?.clientId === 'short-lived-client' ? SHORT_TTL : DEFAULT_TTL,
            jwt: { sign: { alg, kid } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || DEFAULT_TTL,
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || DEFAULT_TTL,
    },
  };
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));
  return provider;
}

// ---- admin ------------------------------------------------------------------------

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function keysView(state) {
  return { active: state.active, kids: state.keys.map((k) => k.kid) };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const state = loadState(args.state);

  let handler = () => { throw new Error('not ready'); };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(args.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const install = () => {
    handler = buildProvider(issuer, state).callback();
  };
  install();

  const admin = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    try {
      if (req.method === 'GET' && url.pathname === '/keys') {
        return json(res, 200, keysView(state));
      }
      if (req.method === 'POST' && url.pathname === '/rotate') {
        const alg = url.searchParams.get('alg');
        if (!ALGS.includes(alg)) return json(res, 400, { error: `alg must be one of ${ALGS.join(', ')}` });
        state.generation += 1;
        const key = generateKey(alg, state.generation);
        const previous = state.active[alg];
        // Newest key first in the JWKS, like most providers publish a rotated key.
        state.keys.unshift(key);
        state.active[alg] = key.kid;
        saveState(args.state, state);
        install();
        console.error(`interop provider: rotated ${alg}: ${previous} -> ${key.kid}`);
        return json(res, 200, { kid: key.kid, previous, ...keysView(state) });
      }
      if (req.method === 'POST' && url.pathname === '/drop') {
        const kid = url.searchParams.get('kid');
        const index = state.keys.findIndex((k) => k.kid === kid);
        if (index < 0) return json(res, 404, { error: `no key ${kid}` });
        const [dropped] = state.keys.splice(index, 1);
        if (state.active[dropped.alg] === kid) {
          const next = state.keys.find((k) => k.alg === dropped.alg);
          if (next) state.active[dropped.alg] = next.kid;
          else delete state.active[dropped.alg];
        }
        saveState(args.state, state);
        install();
        console.error(`interop provider: dropped ${kid}`);
        return json(res, 200, keysView(state));
      }
      return json(res, 404, { error: 'not found' });
    } catch (err) {
      console.error('interop provider admin error:', err);
      return json(res, 500, { error: String(err?.message ?? err) });
    }
  });
  await new Promise((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(args.adminPort, '127.0.0.1', resolve);
  });

  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));

  const { version } = JSON.parse(fs.readFileSync(
    new URL('./node_modules/oidc-provider/package.json', import.meta.url),
    'utf8',
  ));
  process.stdout.write(`${JSON.stringify({
    ready: true,
    issuer,
    port,
    admin_port: admin.address().port,
    oidc_provider_version: version,
    node_version: process.version,
    keys: keysView(state),
  })}\n`);
}

main().catch((err) => {
  console.error('interop provider failed to start:', err);
  process.exit(1);
});
