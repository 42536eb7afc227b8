/**
 * @module net/protocol
 * What both ends of the network protocol (proto/safl/v1) agree on, platform-free so a browser client
 * can share it: the protocol version, chunk and message limits, the mapping between the federated
 * core's failure codes and the protobuf enum, and how the bytes of a round's RPCs are counted.
 *
 * Counting. A round's traffic is the protobuf-encoded size of every request and response of the
 * RPCs that carried it (PullTask for the task, PullObject for the request and any base it needs,
 * PushObject for the reply, PushResult), each plus the 5-byte length prefix gRPC and gRPC-Web put in
 * front of every message. HTTP/2 frame headers, HPACK-compressed headers and TLS records are below
 * that and are not counted (they depend on the connection, not on the run). The FedAvg reference is
 * counted with the same function on FedAvg's payload sizes, so the two stay comparable.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { FailureCode as CoreFailureCode } from "../fl/failure.js";
import { WIRE_VERSION } from "../fl/wire.js";
import {
  FailureCode,
  ObjectKind,
  PullObjectRequestSchema,
  PullObjectResponseSchema,
  PullTaskRequestSchema,
  PullTaskResponseSchema,
  PushObjectRequestSchema,
  PushObjectResponseSchema,
  PushResultRequestSchema,
  PushResultResponseSchema,
  PushResultStatus,
  TaskKind,
} from "./gen/safl/v1/federation_pb.js";

/**
 * The protocol version: bumped when the RPCs, the wire format (fl/wire WIRE_VERSION) or the way both
 * sides derive a round's model and its initial adapter values change, since any of them makes a
 * mixed pair of builds train different models without an error. Join refuses a mismatch.
 */
export const PROTOCOL_VERSION = 1000 + WIRE_VERSION;

/** Largest chunk of an object in one PullObject / PushObject message. */
export const CHUNK_BYTES = 4 * 1024 * 1024;

/** Largest protobuf message either side accepts (a chunk plus its envelope). */
export const MAX_MESSAGE_BYTES = CHUNK_BYTES + 64 * 1024;

/** The gRPC / gRPC-Web length prefix in front of every message. */
export const FRAME_PREFIX_BYTES = 5;

/** Longest a PullTask may wait for work before answering Idle. */
export const MAX_PULL_WAIT_MS = 30_000;

const TO_PROTO: Record<CoreFailureCode, FailureCode> = {
  internal: FailureCode.INTERNAL,
  unavailable: FailureCode.UNAVAILABLE,
  "deadline-exceeded": FailureCode.DEADLINE_EXCEEDED,
  "missing-base": FailureCode.MISSING_BASE,
  "bad-instruction": FailureCode.BAD_INSTRUCTION,
  "bad-message": FailureCode.BAD_MESSAGE,
  diverged: FailureCode.DIVERGED,
  "no-data": FailureCode.NO_DATA,
  "version-mismatch": FailureCode.VERSION_MISMATCH,
  "out-of-memory": FailureCode.OUT_OF_MEMORY,
  // The server's own verdict; a client never sends it, and it travels as INTERNAL if one does.
  rejected: FailureCode.INTERNAL,
};

export const failureCodeToProto = (c: CoreFailureCode): FailureCode => TO_PROTO[c];

export function failureCodeFromProto(c: FailureCode): CoreFailureCode {
  for (const [k, v] of Object.entries(TO_PROTO)) if (v === c && k !== "rejected") return k as CoreFailureCode;
  return "internal";
}

const framed = (n: number) => n + FRAME_PREFIX_BYTES;
const ID = "0".repeat(64);

/** Bytes on the network of fetching an object of `size` bytes in chunks (requests up, responses down). */
export function pullObjectCost(size: number, sessionId: string): { down: number; up: number } {
  let down = 0;
  let up = 0;
  let offset = 0;
  do {
    const n = Math.min(CHUNK_BYTES, size - offset);
    up += framed(toBinary(PullObjectRequestSchema, create(PullObjectRequestSchema, { sessionId, objectId: ID, offset: BigInt(offset), maxBytes: CHUNK_BYTES })).length);
    down += framed(
      toBinary(PullObjectResponseSchema, create(PullObjectResponseSchema, { objectId: ID, offset: BigInt(offset), data: new Uint8Array(n), totalSize: BigInt(size), last: offset + n >= size })).length,
    );
    offset += n;
  } while (offset < size);
  return { down, up };
}

/** Bytes on the network of uploading a reply of `size` bytes and committing it. */
export function pushReplyCost(size: number, sessionId: string, taskId: string): { down: number; up: number } {
  let down = 0;
  let up = 0;
  let offset = 0;
  do {
    const n = Math.min(CHUNK_BYTES, size - offset);
    up += framed(
      toBinary(PushObjectRequestSchema, create(PushObjectRequestSchema, { sessionId, taskId, objectId: ID, offset: BigInt(offset), totalSize: BigInt(size), data: new Uint8Array(n) })).length,
    );
    down += framed(toBinary(PushObjectResponseSchema, create(PushObjectResponseSchema, { received: BigInt(offset + n) })).length);
    offset += n;
  } while (offset < size);
  up += framed(toBinary(PushResultRequestSchema, create(PushResultRequestSchema, { sessionId, taskId, outcome: { case: "replyObjectId", value: ID } })).length);
  down += framed(toBinary(PushResultResponseSchema, create(PushResultResponseSchema, { status: PushResultStatus.ACCEPTED })).length);
  return { down, up };
}

/** Bytes on the network of the PullTask exchange that hands out one task. */
export function pullTaskCost(sessionId: string, task: { taskId: string; round: number; attempt: number; requestSize: number; needs: readonly number[]; deadlineMs: number }): { down: number; up: number } {
  const up = framed(toBinary(PullTaskRequestSchema, create(PullTaskRequestSchema, { sessionId, waitMs: MAX_PULL_WAIT_MS })).length);
  const msg = create(PullTaskResponseSchema, {
    outcome: {
      case: "task",
      value: {
        taskId: task.taskId,
        round: task.round,
        attempt: task.attempt,
        kind: TaskKind.TRAIN,
        request: { id: ID, size: BigInt(task.requestSize), kind: ObjectKind.BROADCAST },
        needs: task.needs.map((size) => ({ id: ID, size: BigInt(size), kind: ObjectKind.BASE })),
        deadlineUnixMs: BigInt(task.deadlineMs),
      },
    },
  });
  return { down: framed(toBinary(PullTaskResponseSchema, msg).length), up };
}

/** One task's full exchange (task, request download, reply upload) for payloads of these sizes. */
export function taskTransportCost(sessionId: string, taskId: string, round: number, requestSize: number, replySize: number, deadlineMs: number): { down: number; up: number } {
  const a = pullTaskCost(sessionId, { taskId, round, attempt: 1, requestSize, needs: [], deadlineMs });
  const b = pullObjectCost(requestSize, sessionId);
  const c = pushReplyCost(replySize, sessionId, taskId);
  return { down: a.down + b.down + c.down, up: a.up + b.up + c.up };
}
