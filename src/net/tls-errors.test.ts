import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { opensslReason, tlsErrorCode, tlsFailureMessage } from "./tls-errors.js";

const nodeError = (code: string, message: string) => Object.assign(new Error(message), { code });
const wrapped = (cause: Error) => Object.assign(new ConnectError(cause.message, Code.Internal), { cause });

test("TLS failures are found in the cause chain and named with the flag that fixes them", () => {
  const untrusted = wrapped(nodeError("SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain"));
  assert.deepEqual(tlsErrorCode(untrusted), { code: "SELF_SIGNED_CERT_IN_CHAIN", message: "self-signed certificate in certificate chain" });
  assert.match(tlsFailureMessage(untrusted, "https://h:1")!, /^the TLS certificate of https:\/\/h:1 is not trusted .*--ca <ca\.pem>/);
  const required = wrapped(nodeError("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "80CC:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../ssl/rec_layer_s3.c:1601:SSL alert number 116\n"));
  assert.equal(tlsErrorCode(required)?.message, "tlsv13 alert certificate required");
  assert.match(tlsFailureMessage(required, "https://h:1")!, /client certificate.*--cert <client\.pem> --key <client\.key>/);
  assert.match(tlsFailureMessage(wrapped(nodeError("ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match")), "https://h:1")!, /does not cover this host name/);
  assert.match(tlsFailureMessage(wrapped(nodeError("CERT_HAS_EXPIRED", "certificate has expired")), "https://h:1")!, /validity period/);
  assert.match(tlsFailureMessage(wrapped(nodeError("ERR_SSL_WRONG_VERSION_NUMBER", "wrong version number")), "https://h:1")!, /does not speak TLS.*http:\/\/ with --insecure/);
});

test("network errors and server answers are no TLS failures (they are retried or handled as before)", () => {
  assert.equal(tlsFailureMessage(wrapped(nodeError("ECONNREFUSED", "connect ECONNREFUSED")), "https://h:1"), undefined);
  assert.equal(tlsFailureMessage(wrapped(nodeError("ECONNRESET", "socket hang up")), "https://h:1"), undefined);
  assert.equal(tlsFailureMessage(new ConnectError("missing bearer token", Code.Unauthenticated), "https://h:1"), undefined);
  assert.equal(tlsFailureMessage("not an error", "https://h:1"), undefined);
  assert.equal(opensslReason("error:05800074:x509 certificate routines::key values mismatch"), "key values mismatch");
  assert.equal(opensslReason("plain message"), "plain message");
});
