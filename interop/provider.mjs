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
//            orders-client and billing-client also have the token-exchange grant (below).
// Resources: resource indicators (RFC 8707) urn:interop:orders-api -> aud "orders-api",
//            urn:interop:billing-api -> aud "billing-api"; access tokens are JWTs
//            (typ at+jwt). The signing alg is RS256 unless the token request carries the
//            test-only header `x-interop-alg: RS256 | ES256 | EdDSA`.
// Keys:      one signing key per alg (RS256, ES256, EdDSA), generated at first start and
//            persisted to --state, so a restarted provider serves the same keys.
//
// Token exchange (RFC 8693), in every mode; added with oidc-provider's
// Provider#registerGrantType (oidc-provider 9 has no token-exchange grant of its own):
//   POST ISSUER/token, grant_type=urn:ietf:params:oauth:grant-type:token-exchange,
//   listed in discovery grant_types_supported.
//   Clients: orders-client and billing-client only (their grant_types are
//     client_credentials + token-exchange), authenticated as registered:
//     client_secret_basic, secret "<client_id>-secret". Any other client (with valid
//     authentication) -> 400 unauthorized_client (oidc-provider itself would say
//     invalid_request "requested grant type is not allowed for this client"; this file
//     rewrites that answer for this grant only, other grants keep it). Bad client
//     authentication -> 401 invalid_client, as for client_credentials.
//   Parameters (form body; unknown ones, e.g. `audience`, are silently dropped by
//   oidc-provider):
//     subject_token       required; subject_token_type required and must be
//                         urn:ietf:params:oauth:token-type:access_token.
//     actor_token         optional; if given, actor_token_type is required and must be
//                         the same access_token type; actor_token_type without
//                         actor_token is an error.
//     requested_token_type optional; if given it must be ...:token-type:access_token.
//     resource            required, exactly once: urn:interop:orders-api or
//                         urn:interop:billing-api (RESOURCES) -> aud of the new token.
//     scope               optional, space separated (rule below).
//   Subject and actor tokens must be JWT access tokens of THIS provider: compact JWS,
//   header typ "at+jwt" (or "application/at+jwt"), alg+kid naming a key in the JWKS
//   currently served (a rotated-out key still counts until /drop removes it; the alg
//   must be the key's alg, so no "none"), valid signature, iss = issuer, exp > now (no
//   clock tolerance), nbf (if present) <= now, string sub and client_id. aud, scope and
//   cnf of the presented tokens are not checked; the actor token need not belong to the
//   authenticated client.
//   Scope rule. For the authenticated client C, subject token S and resource R:
//     permitted = R.scope ∩ ( (S.scope ∩ C.scope) ∪ DELEGATION[C] )
//     DELEGATION = { orders-client: billing:read, billing-client: orders:read }
//     (TOKEN_EXCHANGE_DELEGATION). In words: a scope may be issued if the resource knows
//     it and either the subject token has it AND C is itself registered for it
//     (pass-through, never an escalation beyond the caller nor beyond C), or it is one
//     of C's delegation scopes (the orders service may call billing-api with
//     billing:read on behalf of any caller holding a valid token, and vice versa with
//     orders:read). `scope` given -> every listed scope must be in `permitted`, else
//     invalid_scope; absent -> all of `permitted`; an empty result -> invalid_scope.
//     E.g. orders-client exchanging reader-client's orders:read token: for billing-api
//     -> billing:read; for orders-api -> orders:read (orders:write refused).
//   Issued token: a JWT (typ at+jwt) for R's resource server, minted like the
//   client_credentials tokens (same getResourceServerInfo, same keys, RS256 unless
//   x-interop-alg says otherwise), claims:
//     iss, jti, iat, exp; aud = "orders-api" | "billing-api"; scope as computed;
//     sub = S.sub; client_id = S.client_id (for a client_credentials subject token both
//     are the subject client's id);
//     act = {"sub": A.sub, "client_id": A.client_id} with actor token A, or
//     act = {"sub": C} (the exchanging client's id, no client_id member) without one;
//     if S itself has an act, it is nested unchanged as act.act (RFC 8693 section 4.1:
//     the current actor outermost, prior actors below). No cnf (not sender-constrained).
//     Lifetime: expires_in = exp - iat = min(300 s, S.exp - now).
//   Response 200: {"access_token", "issued_token_type":
//     "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer",
//     "expires_in", "scope"}. No refresh_token.
//   Test-only switch: request header `x-interop-omit-issued-token-type: 1` -> the same
//     response without issued_token_type (to exercise a client's check for it).
//   Errors (400, JSON {"error","error_description"}):
//     invalid_request    missing subject_token / subject_token_type, a token type other
//                        than ...:token-type:access_token, actor_token without
//                        actor_token_type or vice versa, unsupported
//                        requested_token_type, a repeated parameter other than resource;
//     invalid_grant      subject or actor token not a JWT, not at+jwt, unknown key,
//                        bad signature, wrong iss, expired, not yet valid, no
//                        sub/client_id (error_description says which);
//     invalid_target     resource missing, unknown, or given more than once;
//     invalid_scope      a requested scope outside `permitted`, or nothing permitted;
//     unauthorized_client the client lacks the grant.
//     (an invalid x-interop-alg -> invalid_request, as for client_credentials).
//   Checked in this order: client authentication, grant allowed for the client,
//   repeated parameters, then this grant's parameters (including resource present and
//   single), subject token, actor token, resource known, scope.
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

// RFC 8693 token exchange (see the header comment, "Token exchange").
const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
// The clients allowed to exchange tokens, each with its delegation scopes: scopes it may
// put into an exchanged token on behalf of ANY valid subject token, on top of the
// subject's own scopes that the client is itself registered for.
const TOKEN_EXCHANGE_DELEGATION = {
  'orders-client': ['billing:read'],
  'billing-client': ['orders:read'],
};

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
  grant_types: TOKEN_EXCHANGE_DELEGATION[c.client_id] !== undefined
    ? ['client_credentials', TOKEN_EXCHANGE_GRANT]
    : ['client_credentials'],
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

// ---- resource servers ---------------------------------------------------------------

// features.resourceIndicators.getResourceServerInfo, also used by the token-exchange
// grant: `client` is the client making the token request.
function getResourceServerInfo(state, ctx, resourceIndicator, client) {
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
}

// ---- token exchange (RFC 8693) ------------------------------------------------------
//
// oidc-provider 9 has no token-exchange grant; Provider#registerGrantType(name, handler,
// params, dupes) adds one: `handler(ctx)` runs after oidc-provider's token endpoint has
// parsed the body (only the listed params survive), authenticated the client and checked
// that the client's grant_types contain `name`. Built-in grants get internal helpers
// bound in; a registered handler gets only ctx, so this one builds the response itself
// and mints the token with the same model and code path as client_credentials
// (provider.ClientCredentials + a ResourceServer from getResourceServerInfo, jwt format:
// oidc-provider signs it with the provider keystore, typ at+jwt). sub, client_id and act
// are then set through the formats.customizers.jwt hook (keyed by this WeakMap).
const EXCHANGED_CLAIMS = new WeakMap();

const TOKEN_EXCHANGE_PARAMS = [
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'requested_token_type', 'resource', 'scope',
];

// An invalid_grant whose error_description says why (oidc-provider's InvalidGrant
// always answers "grant request is invalid").
function invalidGrant(description) {
  const err = new errors.InvalidGrant(description);
  err.error_description = description;
  return err;
}

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function verifyJws(alg, key, data, signature) {
  switch (alg) {
    case 'RS256': return crypto.verify('sha256', data, key, signature);
    case 'ES256': return crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    case 'EdDSA': return crypto.verify(null, data, key, signature);
    default: return false;
  }
}

// Verifies a JWT access token minted by this provider: compact JWS, header typ at+jwt,
// alg and kid naming one of the keys this Provider instance publishes, valid signature,
// iss = issuer, exp > now (no clock tolerance), nbf (if any) <= now, string sub and
// client_id. Returns the claims; anything else -> invalid_grant.
function verifyOwnAccessToken(verifyKeys, issuer, token, label) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    throw invalidGrant(`${label} is not a JWT`);
  }
  let header;
  let claims;
  try {
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
  } catch {
    throw invalidGrant(`${label} is not a JWT`);
  }
  if (header === null || typeof header !== 'object' || claims === null || typeof claims !== 'object') {
    throw invalidGrant(`${label} is not a JWT`);
  }
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
  if (typ !== 'at+jwt' && typ !== 'application/at+jwt') {
    throw invalidGrant(`${label} is not an access token (JWT typ must be at+jwt)`);
  }
  if (header.crit !== undefined) {
    throw invalidGrant(`${label} has unsupported crit header parameters`);
  }
  const key = verifyKeys.get(header.kid);
  if (!key || key.alg !== header.alg) {
    throw invalidGrant(`${label} is not signed by a key of this provider`);
  }
  const signature = Buffer.from(parts[2], 'base64url');
  if (!verifyJws(header.alg, key.publicKey, Buffer.from(`${parts[0]}.${parts[1]}`), signature)) {
    throw invalidGrant(`${label} signature is invalid`);
  }
  if (claims.iss !== issuer) {
    throw invalidGrant(`${label} was not issued by ${issuer}`);
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || !(claims.exp > now)) {
    throw invalidGrant(`${label} is expired`);
  }
  if (claims.nbf !== undefined && !(typeof claims.nbf === 'number' && claims.nbf <= now)) {
    throw invalidGrant(`${label} is not yet valid`);
  }
  if (typeof claims.sub !== 'string' || typeof claims.client_id !== 'string') {
    throw invalidGrant(`${label} lacks sub or client_id`);
  }
  if (claims.scope !== undefined && typeof claims.scope !== 'string') {
    throw invalidGrant(`${label} has a malformed scope claim`);
  }
  return claims;
}

function checkTokenType(params, tokenName, typeName) {
  if (params[typeName] === undefined) {
    throw new errors.InvalidRequest(`missing required parameter '${typeName}'`);
  }
  if (params[typeName] !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`unsupported ${typeName}, only ${ACCESS_TOKEN_TYPE} is supported`);
  }
  if (!params[tokenName]) {
    throw new errors.InvalidRequest(`missing required parameter '${tokenName}'`);
  }
}

function registerTokenExchange(provider, issuer, state) {
  // The public keys this Provider instance publishes (a rotate/drop builds a new instance).
  const verifyKeys = new Map(state.keys.map((jwk) => [jwk.kid, {
    alg: jwk.alg,
    publicKey: crypto.createPublicKey({ key: jwk, format: 'jwk' }),
  }]));

  async function tokenExchangeHandler(ctx) {
    const { params, client } = ctx.oidc;

    // 1. Parameters.
    checkTokenType(params, 'subject_token', 'subject_token_type');
    if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
      if (params.actor_token === undefined) {
        throw new errors.InvalidRequest("actor_token_type given without 'actor_token'");
      }
      checkTokenType(params, 'actor_token', 'actor_token_type');
    }
    if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest(`unsupported requested_token_type, only ${ACCESS_TOKEN_TYPE} is supported`);
    }
    const resources = params.resource === undefined ? []
      : [].concat(params.resource).filter((r) => r !== '');
    if (resources.length === 0) {
      throw new errors.InvalidTarget("missing required parameter 'resource'");
    }
    if (resources.length !== 1) {
      throw new errors.InvalidTarget('only a single resource indicator value is supported for this grant type');
    }
    const [resource] = resources;

    // 2. The tokens.
    const subject = verifyOwnAccessToken(verifyKeys, issuer, params.subject_token, 'subject_token');
    const actor = params.actor_token === undefined ? undefined
      : verifyOwnAccessToken(verifyKeys, issuer, params.actor_token, 'actor_token');

    // 3. Resource (invalid_target if unknown) and scope.
    const resourceServer = new provider.ResourceServer(
      resource,
      getResourceServerInfo(state, ctx, resource, client),
    );
    const resourceScopes = resourceServer.scope.split(' ');
    const subjectScopes = new Set((subject.scope ?? '').split(' ').filter(Boolean));
    const clientScopes = new Set((client.scope ?? '').split(' ').filter(Boolean));
    const delegation = new Set(TOKEN_EXCHANGE_DELEGATION[client.clientId] ?? []);
    const permitted = resourceScopes.filter((s) => delegation.has(s)
      || (subjectScopes.has(s) && clientScopes.has(s)));
    let scopes;
    if (params.scope) {
      scopes = [...new Set(params.scope.split(' ').filter(Boolean))];
      const refused = scopes.filter((s) => !permitted.includes(s));
      if (refused.length) {
        throw new errors.InvalidScope(
          `scope not permitted for this exchange: ${refused.join(' ')} (permitted for ${resource}: ${permitted.join(' ') || 'none'})`,
          refused.join(' '),
        );
      }
    } else {
      scopes = permitted;
    }
    if (scopes.length === 0) {
      throw new errors.InvalidScope(`no scope is permitted for this exchange at ${resource}`);
    }

    // 4. act (RFC 8693 section 4.1): the current actor, prior actors nested below it.
    const act = actor
      ? { sub: actor.sub, client_id: actor.client_id }
      : { sub: client.clientId };
    if (subject.act !== undefined) act.act = subject.act;

    // 5. Lifetime: never beyond the subject token.
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = Math.min(resourceServer.accessTokenTTL || DEFAULT_TTL, subject.exp - now);

    const token = new provider.ClientCredentials({
      client,
      scope: scopes.join(' '),
      expiresIn,
    });
    token.resourceServer = resourceServer;
    EXCHANGED_CLAIMS.set(token, { sub: subject.sub, client_id: subject.client_id, act });

    ctx.oidc.entity('ClientCredentials', token);
    const accessToken = await token.save();

    const omitIssuedTokenType = ctx.get('x-interop-omit-issued-token-type') === '1';
    ctx.body = {
      access_token: accessToken,
      ...(omitIssuedTokenType ? {} : { issued_token_type: ACCESS_TOKEN_TYPE }),
      token_type: token.tokenType,
      expires_in: token.expiration,
      scope: token.scope,
    };
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, tokenExchangeHandler, TOKEN_EXCHANGE_PARAMS, ['resource']);

  // oidc-provider answers a client whose grant_types lack the grant with invalid_request
  // ("requested grant type is not allowed for this client"); RFC 6749 section 5.2 says
  // unauthorized_client. Rewritten for the token-exchange grant only (client_credentials
  // keeps oidc-provider's answer).
  provider.use(async (ctx, next) => {
    await next();
    if (
      ctx.status === 400
      && ctx.body?.error === 'invalid_request'
      && ctx.body.error_description === 'requested grant type is not allowed for this client'
      && ctx.oidc?.params?.grant_type === TOKEN_EXCHANGE_GRANT
    ) {
      ctx.body = {
        error: 'unauthorized_client',
        error_description: 'the client is not allowed to use the token-exchange grant type',
      };
    }
  });
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
        getResourceServerInfo: getResourceServerInfo.bind(undefined, state),
      },
    },
    formats: {
      // Only touches tokens minted by the token-exchange grant (see tokenExchangeHandler).
      customizers: {
        jwt(ctx, token, jwt) {
          const claims = EXCHANGED_CLAIMS.get(token);
          if (claims) Object.assign(jwt.payload, claims);
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
  registerTokenExchange(provider, issuer, state);
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
