/**
 * @module net/tls-errors
 * Recognizes TLS failures in the cause chain of an RPC error. Connect reports them as `Internal`,
 * which the client would retry forever; but an untrusted server certificate, a name the certificate
 * does not cover, a client certificate the server requires or refuses, or TLS against a plaintext
 * port do not heal by waiting. `tlsFailureMessage` says what went wrong and which flag fixes it, so
 * the client can stop at once with that message.
 */

/** Codes of Node's certificate verification (X509_V_ERR_* names, and the hostname check). */
const VERIFY = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Alerts a server sends when it requires a client certificate or does not accept the one sent. */
const CLIENT_CERT_ALERTS = new Set([
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED",
  "ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
  "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED",
  "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE",
]);

/** "80CC…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:…" → "tlsv13 alert certificate required". */
export function opensslReason(message: string): string {
  const line = message.split("\n")[0]!.trim();
  const m = /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+)/.exec(line);
  return m ? m[1]!.trim() : line;
}

/** The first TLS-related Node error code in `e`'s cause chain, with that error's message. */
export function tlsErrorCode(e: unknown): { code: string; message: string } | undefined {
  const seen = new Set<unknown>();
  for (let x: unknown = e; x instanceof Error && !seen.has(x); x = (x as { cause?: unknown }).cause) {
    seen.add(x);
    const code = (x as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (VERIFY.has(code) || CLIENT_CERT_ALERTS.has(code) || code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG") {
      return { code, message: opensslReason(x.message) };
    }
  }
  return undefined;
}

/**
 * A message for a TLS failure that retrying cannot fix, or undefined when `e` is no TLS failure.
 * `server` is the URL the client connects to (named in the message).
 */
export function tlsFailureMessage(e: unknown, server: string): string | undefined {
  const t = tlsErrorCode(e);
  if (!t) return undefined;
  const what = `${t.code}: ${t.message}`;
  if (t.code === "ERR_TLS_CERT_ALTNAME_INVALID" || t.code === "HOSTNAME_MISMATCH") {
    return `the TLS certificate of ${server} does not cover this host name (${what}); connect with a name or address listed in its subjectAltName, or reissue the certificate`;
  }
  if (t.code === "CERT_HAS_EXPIRED" || t.code === "CERT_NOT_YET_VALID") {
    return `the TLS certificate of ${server} is outside its validity period (${what}); renew it, or check this machine's clock`;
  }
  if (VERIFY.has(t.code)) {
    return `the TLS certificate of ${server} is not trusted (${what}); if it is signed by a private CA, pass --ca <ca.pem> with that CA (TLS verification is never turned off)`;
  }
  if (CLIENT_CERT_ALERTS.has(t.code)) {
    return `the server ${server} refused the TLS handshake (${what}): most likely it requires a client certificate it trusts (mutual TLS); pass --cert <client.pem> --key <client.key>, signed by the CA given to the server as --tls-client-ca`;
  }
  return `the server ${server} does not speak TLS on this port (${what}); if it is a plaintext test server (--insecure), use http:// with --insecure`;
}
