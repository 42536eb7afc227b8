/**
 * @module net/token-format
 * The shape of a bearer token (`safl_<client id>_<43-character secret>`) and the helpers every
 * platform needs around it: splitting one, reading it from an `authorization` header, and removing
 * tokens from text before it is logged or shown. Platform-free (the browser client uses it); making,
 * storing and verifying tokens is net/tokens (Node).
 */

export const TOKEN_PREFIX = "safl_";
/** 32 random bytes in unpadded base64url. */
export const SECRET_CHARS = 43;
export const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** The longest well-formed token; anything longer is rejected before it is hashed. */
export const MAX_TOKEN_LENGTH = TOKEN_PREFIX.length + 64 + 1 + SECRET_CHARS;

/**
 * Splits a token into its client id and secret, or undefined when it is not shaped like one. The
 * secret has a fixed length, so the id is everything between the prefix and the last 44 chars
 * (ids may themselves contain "_"). A secret must be the canonical encoding of 32 bytes, so only
 * strings `createToken` could have produced are well-formed.
 */
export function parseToken(token: string): { readonly id: string; readonly secret: string } | undefined {
  if (token.length > MAX_TOKEN_LENGTH || !token.startsWith(TOKEN_PREFIX)) return undefined;
  const cut = token.length - SECRET_CHARS - 1;
  if (cut <= TOKEN_PREFIX.length || token[cut] !== "_") return undefined;
  const id = token.slice(TOKEN_PREFIX.length, cut);
  const secret = token.slice(cut + 1);
  if (!ID_RE.test(id) || !SECRET_RE.test(secret)) return undefined;
  // 43 base64url characters carry 258 bits; the canonical encoding of 32 bytes leaves the last 2 zero.
  if ((BASE64URL.indexOf(secret[SECRET_CHARS - 1]!) & 0b11) !== 0) return undefined;
  return { id, secret };
}

/** The token in an `Authorization: Bearer <token>` header value, or undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1] : undefined;
}

/** A whole token (lazy id so ids with "_" work; a secret of exactly 43 chars not followed by more). */
const TOKEN_IN_TEXT = /safl_([A-Za-z0-9._-]{1,64}?)_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g;
/**
 * Something near a token: a mistyped or truncated token still carries most of a real secret, so
 * "safl_<id>_" followed by 8 or more secret characters is redacted too. Shorter tails are left
 * alone so names such as "safl_tokens_v1" survive.
 */
const TOKEN_LIKE_IN_TEXT = /safl_([A-Za-z0-9.-]{1,64})_[A-Za-z0-9_-]{8,}/g;

/**
 * Replaces every token (and anything close to one) in `text` with `safl_<id>_***`, so log lines and
 * error messages that quote a request never carry a usable secret.
 */
export function redact(text: string): string {
  return text.replace(TOKEN_IN_TEXT, "safl_$1_***").replace(TOKEN_LIKE_IN_TEXT, "safl_$1_***");
}

