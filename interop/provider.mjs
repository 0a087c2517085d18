// Launcher for a real, third-party OpenID provider (panva/oidc-provider, pinned in
// package-lock.json) used by the interop suite. Nobody in this repository wrote the
// token issuance, the JWKS or the discovery document: that is the point.
//
//   node provider.mjs [--port N] [--admin-port N] [--state FILE]
//                     [--client-jwks FILE]
//                     [--tls-cert FILE --tls-key FILE --tls-ca FILE]
//
// --port 0 (the default) lets the OS pick. Once both servers listen, one JSON line is
// printed on stdout:  {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT,"admin_port":N,...}
// (in https mode the issuer is "https://localhost:PORT" and the line also has "tls":true).
// Everything else (oidc-provider's own notices, errors) goes to stderr.
//
// Issuer:    http://127.0.0.1:PORT (plain http, loopback only), or https://localhost:PORT
//            in https mode (see below). Discovery at /.well-known/openid-configuration,
//            JWKS at /jwks, token endpoint at ISSUER/token.
// Clients:   client_credentials grant, client_secret_basic (see CLIENTS below):
//            orders-client (orders:read orders:write), reader-client (orders:read),
//            short-lived-client (orders:read orders:write, tokens live 2 s),
//            billing-client (billing:read); secret = "<client_id>-secret".
// Resources: resource indicators (RFC 8707) urn:interop:orders-api -> aud "orders-api",
//            urn:interop:billing-api -> aud "billing-api"; access tokens are JWTs
//            (typ at+jwt). The signing alg is RS256 unless the token request carries the
//            test-only header `x-interop-alg: RS256 | ES256 | EdDSA`.
// Keys:      one signing key per alg (RS256, ES256, EdDSA), generated at first start and
//            persisted to --state, so a restarted provider serves the same keys.
//
// --client-jwks FILE (RFC 7523 private_key_jwt), in either mode:
//   FILE is a JWK Set {"keys":[...]} of PUBLIC keys (RSA and/or EC P-256; "kid" optional).
//   Registers client `pkjwt-client`: grant client_credentials, token_endpoint_auth_method
//   private_key_jwt, jwks = the file's keys, scope "billing:read orders:read", no secret.
//   The client authenticates with client_assertion_type
//   urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a client_assertion JWS
//   signed with RS256, PS256, ES256 or EdDSA (no per-client alg pin), whose claims must be:
//     iss = sub = "pkjwt-client"; aud = the issuer string (exactly as in the ready line,
//     e.g. "https://localhost:PORT" in https mode) or the token endpoint URL
//     (ISSUER/token), as a string or an array containing one of them; exp required;
//     jti required and single-use (replay -> invalid_client "client assertion tokens must
//     only be used once"). The header `typ` is NOT checked by oidc-provider 9
//     ("client-authentication+jwt", "JWT" or none all pass), nor is exp - iat bounded
//     (only exp > now - 15 s clock tolerance, nbf/iat not in the future).
//
// --tls-cert FILE --tls-key FILE --tls-ca FILE (PEM; all three or none) = https mode:
//   The provider listens on 127.0.0.1:PORT with https (TLS, client certificate requested
//   on every connection but optional: requestCert true, rejectUnauthorized false). The
//   server certificate is --tls-cert/--tls-key (it must be valid for DNS name
//   "localhost"); --tls-ca is the ONLY trust anchor for client certificates. The issuer
//   becomes https://localhost:PORT (connect to localhost or 127.0.0.1, port PORT).
//   oidc-provider features.mTLS (RFC 8705) is on with tlsClientAuth and
//   certificateBoundAccessTokens. A client certificate counts only if its chain verifies
//   against --tls-ca (Node's TLSSocket.authorized, standard OpenSSL chain verification
//   for the "TLS client" purpose: CA needs basicConstraints CA:TRUE, an extendedKeyUsage
//   on the leaf, if present, must include clientAuth, validity dates are checked); an
//   unverified certificate is treated exactly like no certificate. Extra clients:
//     mtls-client        grant client_credentials, token_endpoint_auth_method
//                        tls_client_auth, tls_client_auth_subject_dn "CN=mtls-client",
//                        scope "billing:read orders:read", no secret. Subject DN rule:
//                        the certificate subject, written as RFC 4514 (last RDN first,
//                        "," separated, attribute types case-insensitive, spaces around
//                        "=" and "," ignored) must equal "CN=mtls-client"; i.e. give the
//                        client certificate a subject of exactly one attribute,
//                        CN=mtls-client. Send client_id=mtls-client in the form body and
//                        no Authorization header / client_secret.
//     mtls-bound-client  grant client_credentials, client_secret_basic, secret
//                        "mtls-bound-client-secret", scope "orders:read",
//                        tls_client_certificate_bound_access_tokens true: the token request
//                        must come over a connection with a verified client certificate
//                        (else invalid_grant "mutual TLS client certificate not provided");
//                        its JWT access token carries cnf["x5t#S256"] =
//                        base64url(SHA-256(DER of that client certificate)).
//   Discovery additionally carries token_endpoint_auth_methods_supported incl.
//   "tls_client_auth", tls_client_certificate_bound_access_tokens: true, and
//   mtls_endpoint_aliases: {"token_endpoint": "https://localhost:PORT/token"} (RFC 8705
//   section 5). The alias is the same URL as token_endpoint: every connection to this
//   server may present a client certificate. oidc-provider 9 has no built-in support for
//   mtls_endpoint_aliases; it is added through its `discovery` configuration option
//   (extra members merged into the discovery document). Note: oidc-provider builds the
//   other endpoint URLs from the request's Host, while the alias is fixed to the issuer:
//   fetch discovery through the issuer URL (https://localhost:PORT) to see them agree.
//   pkjwt-client works in this mode too (aud = "https://localhost:PORT" or .../token).
//
// Admin API (always plain http, 127.0.0.1 only, separate port):
//   GET  /keys              -> {"active":{"RS256":kid,...},"kids":[...]}
//   POST /rotate?alg=ES256  -> a new key for alg, published and from now on used to sign
//   POST /drop?kid=KID      -> the key leaves the JWKS (and signing, if it was active)
// oidc-provider reads its keys once, at construction; a rotation therefore builds a new
// Provider instance with the new key set and swaps it in behind the same listening
// socket, so the issuer URL and port never change. Each Provider instance gets its own
// in-memory store, so stored state (notably the client-assertion jti replay cache) is
// empty again after a rotate or drop.
//
// The process exits when its stdin closes, so a test harness that dies cannot leave it behind.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
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

// Registered only with --client-jwks FILE (the file's public keys become its jwks).
//
// What oidc-provider 9.13.3 requires of a client assertion (lib/shared/client_auth.js,
// lib/shared/jwt_client_auth.js, lib/helpers/oidc_context.js), found by reading the
// source and confirmed by the verification scripts:
// - client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer;
//   `sub` names the client; `iss` must equal the client_id; exp and jti are mandatory.
// - header alg must be in clientAuthSigningAlgValues minus HS* (default list HS256,
//   RS256, PS256, ES256, Ed25519, EdDSA: RS256 and ES256 need no configuration).
// - aud (string, or array with at least one match) must be one of
//   ctx.oidc.clientJwtAuthExpectedAudience() = { issuer identifier, token endpoint URL,
//   URL of the endpoint being called }: both the issuer string and ISSUER/token are
//   accepted with the default configuration, so no audience setting is needed. (Only the
//   FAPI 2.0 profile, not enabled here, insists on aud === issuer.)
// - the header `typ` is not inspected at all: "client-authentication+jwt" is accepted,
//   and so are "JWT" or no typ.
// - jti is single-use: stored in ReplayDetection until exp + clockTolerance (15 s); a
//   second use -> invalid_client "client assertion tokens must only be used once".
// - there is NO upper bound on exp - iat (an assertion with exp 5 min after iat is
//   accepted); only "not expired" (exp > now - 15 s) and nbf/iat not in the future.
const PKJWT_CLIENT = {
  client_id: 'pkjwt-client',
  scope: 'billing:read orders:read',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'private_key_jwt',
};

// Registered only in https mode (--tls-cert/--tls-key/--tls-ca).
// tls_client_auth_subject_dn rather than tls_client_auth_san_dns: a subject of one CN is
// the simplest certificate to make and needs no SAN extension on a client certificate.
const MTLS_CLIENTS = [
  {
    client_id: 'mtls-client',
    scope: 'billing:read orders:read',
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: 'CN=mtls-client',
  },
  {
    client_id: 'mtls-bound-client',
    client_secret: 'mtls-bound-client-secret',
    scope: 'orders:read',
    token_endpoint_auth_method: 'client_secret_basic',
    tls_client_certificate_bound_access_tokens: true,
  },
].map((c) => ({
  ...c,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
}));

const RESOURCES = {
  'urn:interop:orders-api': { audience: 'orders-api', scope: 'orders:read orders:write' },
  'urn:interop:billing-api': { audience: 'billing-api', scope: 'billing:read' },
};

const SHORT_TTL = 2;
const DEFAULT_TTL = 300;

function parseArgs(argv) {
  const args = {
    port: 0,
    adminPort: 0,
    state: undefined,
    clientJwks: undefined,
    tlsCert: undefined,
    tlsKey: undefined,
    tlsCa: undefined,
  };
  const fileValue = (flag, value) => {
    if (value === undefined || value === '') throw new Error(`${flag} needs a file argument`);
    return value;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, value] = [argv[i], argv[i + 1]];
    switch (flag) {
      case '--port': args.port = Number(value); i += 1; break;
      case '--admin-port': args.adminPort = Number(value); i += 1; break;
      case '--state': args.state = value; i += 1; break;
      case '--client-jwks': args.clientJwks = fileValue(flag, value); i += 1; break;
      case '--tls-cert': args.tlsCert = fileValue(flag, value); i += 1; break;
      case '--tls-key': args.tlsKey = fileValue(flag, value); i += 1; break;
      case '--tls-ca': args.tlsCa = fileValue(flag, value); i += 1; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const p of [args.port, args.adminPort]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`invalid port ${p}`);
  }
  const tls = [args.tlsCert, args.tlsKey, args.tlsCa].filter((v) => v !== undefined).length;
  if (tls !== 0 && tls !== 3) {
    throw new Error('--tls-cert, --tls-key and --tls-ca must be given together');
  }
  args.tls = tls === 3;
  return args;
}

function loadClientJwks(file) {
  const jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    throw new Error(`${file}: expected a JWK Set {"keys":[...]} with at least one key`);
  }
  for (const key of jwks.keys) {
    if (key.d !== undefined || key.k !== undefined) {
      throw new Error(`${file}: the client JWK Set must hold public keys only`);
    }
  }
  return { keys: jwks.keys };
}

// ---- mutual TLS (RFC 8705) --------------------------------------------------------

// The TLS socket under a request; undefined on plain http.
function tlsSocket(ctx) {
  const socket = ctx.req?.socket;
  return typeof socket?.getPeerX509Certificate === 'function' ? socket : undefined;
}

// The client certificate, only when its chain verified against --tls-ca
// (https.createServer({ ca, requestCert: true, rejectUnauthorized: false }) sets
// socket.authorized accordingly). An unverified certificate counts as no certificate.
function peerCertificate(ctx) {
  const socket = tlsSocket(ctx);
  if (!socket || !socket.authorized) return undefined;
  return socket.getPeerX509Certificate();
}

// RFC 4514 form of a DN that node:crypto's X509Certificate#subject renders one RDN per
// line, most significant first ("C=DE\nO=Org\nCN=name"): reversed, "," separated.
function rfc4514(subjectLines) {
  return subjectLines.split('\n').filter(Boolean).reverse().join(',');
}

function normalizeDn(dn) {
  // Split on unescaped "," / "+"; compare attribute types case-insensitively, values
  // exactly; whitespace around separators is not significant.
  const out = [];
  let current = '';
  for (let i = 0; i < dn.length; i += 1) {
    const c = dn[i];
    if (c === '\\' && i + 1 < dn.length) { current += c + dn[i + 1]; i += 1; continue; }
    if (c === ',' || c === '+') { out.push(current, c); current = ''; continue; }
    current += c;
  }
  out.push(current);
  return out.map((part) => {
    if (part === ',' || part === '+') return part;
    const eq = part.indexOf('=');
    if (eq < 0) return part.trim();
    return `${part.slice(0, eq).trim().toUpperCase()}=${part.slice(eq + 1).trim()}`;
  }).join('');
}

// X509Certificate#subjectAltName: "DNS:a, IP Address:127.0.0.1, email:x@y, URI:z".
function subjectAltNames(cert, prefix) {
  return (cert.subjectAltName ?? '').split(', ')
    .filter((entry) => entry.startsWith(prefix))
    .map((entry) => entry.slice(prefix.length));
}

const MTLS = {
  enabled: true,
  tlsClientAuth: true,
  certificateBoundAccessTokens: true,
  selfSignedTlsClientAuth: false,
  // oidc-provider wants the PEM text (it hashes the DER for x5t#S256).
  getCertificate(ctx) {
    return peerCertificate(ctx)?.toString();
  },
  certificateAuthorized(ctx) {
    return peerCertificate(ctx) !== undefined;
  },
  certificateSubjectMatches(ctx, property, expected) {
    const cert = peerCertificate(ctx);
    if (!cert) return false;
    switch (property) {
      case 'tls_client_auth_subject_dn':
        return normalizeDn(rfc4514(cert.subject)) === normalizeDn(expected);
      case 'tls_client_auth_san_dns':
        return subjectAltNames(cert, 'DNS:').some((v) => v.toLowerCase() === expected.toLowerCase());
      case 'tls_client_auth_san_ip':
        return subjectAltNames(cert, 'IP Address:').includes(expected);
      case 'tls_client_auth_san_email':
        return subjectAltNames(cert, 'email:').includes(expected);
      case 'tls_client_auth_san_uri':
        return subjectAltNames(cert, 'URI:').includes(expected);
      default:
        return false;
    }
  },
};

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

function buildProvider(issuer, state, options = {}) {
  const { clientJwks, tls } = options;
  const clients = [...CLIENTS];
  if (clientJwks) clients.push({ ...PKJWT_CLIENT, jwks: clientJwks });
  if (tls) clients.push(...MTLS_CLIENTS);
  const configuration = {
    clients,
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
  if (tls) {
    configuration.features.mTLS = MTLS;
    // The default list plus tls_client_auth (a client may only use a listed method).
    configuration.clientAuthMethods = [
      'client_secret_basic',
      'client_secret_jwt',
      'client_secret_post',
      'private_key_jwt',
      'none',
      'tls_client_auth',
    ];
    // RFC 8705 section 5. oidc-provider 9 never emits mtls_endpoint_aliases itself; its
    // `discovery` option adds members to the discovery document. The alias equals the
    // regular token endpoint: this one https server requests (optionally) a client
    // certificate on every connection.
    configuration.discovery = {
      mtls_endpoint_aliases: { token_endpoint: `${issuer}/token` },
    };
  }
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
  const options = {
    clientJwks: args.clientJwks ? loadClientJwks(args.clientJwks) : undefined,
    tls: args.tls,
  };

  let handler = () => { throw new Error('not ready'); };
  const server = args.tls
    ? https.createServer({
      cert: fs.readFileSync(args.tlsCert),
      key: fs.readFileSync(args.tlsKey),
      ca: fs.readFileSync(args.tlsCa),
      requestCert: true,
      rejectUnauthorized: false,
    }, (req, res) => handler(req, res))
    : http.createServer((req, res) => handler(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(args.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = args.tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;

  const install = () => {
    handler = buildProvider(issuer, state, options).callback();
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
    ...(args.tls ? { tls: true } : {}),
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
