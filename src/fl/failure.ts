/**
 * @module fl/failure
 * Why a client's part of a round failed, as a code a server can act on (resend a missing base,
 * drop a client that diverged, retry an unavailable one) plus a message for people. Codes cross
 * the network inside failure replies (fl/wire: one byte, the index in `FAILURE_CODES`, so the list
 * only ever grows at the end) and are what round records report.
 */
import { ErrorCode, SaflError } from "../errors.js";

export const FAILURE_CODES = [
  /** Anything not covered below: a bug on the client, or a reason this build does not know. */
  "internal",
  /** The client could not be reached (offline, crashed, connection lost). */
  "unavailable",
  /** No reply by the round's deadline. */
  "deadline-exceeded",
  /** The client does not hold the frozen base version the instruction names (the server sends it again). */
  "missing-base",
  /** The round instruction is invalid or asks for something this client cannot do. */
  "bad-instruction",
  /** A message could not be decoded, or its contents do not fit the model. */
  "bad-message",
  /** Local training produced a non-finite loss. */
  "diverged",
  /** The client has no examples to train or evaluate on. */
  "no-data",
  /** The peer speaks another protocol, wire or initialization-walk version, or holds another backbone. */
  "version-mismatch",
  /** The client ran out of memory. */
  "out-of-memory",
  /** The server refused the reply (validation failed: wrong shapes, non-finite values, stale round, ...). */
  "rejected",
] as const;

export type FailureCode = (typeof FAILURE_CODES)[number];

export interface Failure {
  readonly code: FailureCode;
  readonly message: string;
}

/** An error a client raises for a condition its peer or its data caused, carrying the failure code to report. */
export class ClientFailure extends SaflError {
  constructor(
    readonly failureCode: FailureCode,
    message: string,
  ) {
    super(ErrorCode.InvalidArgument, message);
    this.name = "ClientFailure";
  }
}

export const isFailureCode = (v: unknown): v is FailureCode => typeof v === "string" && (FAILURE_CODES as readonly string[]).includes(v);
