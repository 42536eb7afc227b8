/**
 * @module errors
 * One error type for everything a user can cause. A `SaflError` carries a code from a closed set so
 * callers (and the CLI's exit codes) can branch on the kind of failure, and a message that names the
 * offending value and what was expected. Internal invariants that a user cannot trigger still throw
 * plain `Error`s.
 */

/** The closed set of failure kinds. */
export enum ErrorCode {
  /** A tensor shape does not fit the operation (names the op and the shapes). */
  Shape = "shape",
  /** A dtype does not fit the operation. */
  DType = "dtype",
  /** A value is out of range or malformed (a CLI flag, a config field, an attribute). */
  InvalidArgument = "invalid_argument",
  /** A file is missing, unreadable, corrupt or truncated. */
  Io = "io",
  /** A checkpoint or adapter does not match the model or config it is loaded into. */
  Checkpoint = "checkpoint",
  /** The runtime (onnxruntime) failed to compile or run a graph. */
  Runtime = "runtime",
  /** Something the code does not support yet. */
  Unsupported = "unsupported",
}

/** Exit codes the CLI maps error codes to. */
export const exitCodeFor: Record<ErrorCode, number> = {
  [ErrorCode.Shape]: 3,
  [ErrorCode.DType]: 3,
  [ErrorCode.InvalidArgument]: 2,
  [ErrorCode.Io]: 4,
  [ErrorCode.Checkpoint]: 5,
  [ErrorCode.Runtime]: 6,
  [ErrorCode.Unsupported]: 7,
};

/**
 * The project's error. `rawMessage` is the message without the code prefix.
 *
 * @example
 * throw new SaflError(ErrorCode.Shape, `MatMul: inner dimensions differ: [2,3] x [4,5]`);
 */
export class SaflError extends Error {
  readonly code: ErrorCode;
  readonly rawMessage: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(`[${code}] ${message}`, options);
    this.name = "SaflError";
    this.code = code;
    this.rawMessage = message;
  }

  /** Normalizes anything thrown into a SaflError (unknown errors keep their message as the cause). */
  static from(reason: unknown, code: ErrorCode = ErrorCode.Runtime): SaflError {
    if (reason instanceof SaflError) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new SaflError(code, message, { cause: reason });
  }
}

/** Shorthand for an error about a shape. */
export function shapeError(message: string): SaflError {
  return new SaflError(ErrorCode.Shape, message);
}

/** Shorthand for an error about an argument or config value. */
export function argError(message: string): SaflError {
  return new SaflError(ErrorCode.InvalidArgument, message);
}
