/**
 * @module fl
 * Federated learning, transport-agnostic: strategies (FedAvg, FedProx, FedLoRA, FFA-LoRA,
 * FedAdaLoRA, SA-FedLoRA) built from a validated spec, with optional server optimizers (FedAvgM,
 * FedAdagrad, FedAdam, FedYogi) on the aggregate, the round driver, the bytes-only `Grid`
 * interface to clients, the client engine that answers a round, and the wire format whose byte counts
 * are the communication figures. Platform-free (safe for a browser bundle): a grid over worker
 * threads or a network plugs in from outside; the in-memory simulator is `sa-fedlora/sim`.
 */

// Strategies: one registry entry per strategy (schema, factory, run checks), the factory, and the strategy contract.
export {
  STRATEGY_ENTRIES,
  STRATEGY_NAMES,
  type RunShape,
  type StrategyContext,
  type StrategyEntry,
  type StrategyIssue,
  type StrategyName,
  type StrategySpec,
  createStrategy,
  strategyEntry,
  strategyIssues,
  strategySpecSchema,
} from "./strategies/index.js";
export { defineStrategy } from "./strategies/entry.js";
export { type AcceptedReply, type LocalTraining, type RoundInfo, type Strategy, type TrainPlan, clientSeed } from "./strategy.js";
export { FullModelStrategy, type FullModelOptions } from "./strategies/full.js";
export { LoraStrategy, type LoraStrategyOptions } from "./strategies/lora.js";
export { type Selection, SvdStrategy, type SvdStrategyOptions } from "./strategies/svd.js";
export { StagedStrategy } from "./strategies/staged.js";
export { FrozenBase } from "./strategies/base.js";

// Server optimizers on each round's aggregate (strategy.serverOptimizer): registry, schema, state.
export {
  SERVER_OPTIMIZER_ENTRIES,
  SERVER_OPTIMIZER_NAMES,
  ServerOptimizer,
  type ServerOptimizerEntry,
  type ServerOptimizerName,
  type ServerOptimizerSpec,
  type UpdateRule,
  createServerOptimizer,
  defineServerOptimizer,
  parseServerOptimizerSpec,
  serverOptimizerEntry,
  serverOptimizerSpecSchema,
} from "./server-optimizer.js";

// The round loop (server side).
export { type DriverOptions, type EvalResult, fedavgTraffic, runRounds, sampleClients } from "./driver.js";
export { type Grid, type GridReply, type GridRequest, type SendOptions, type TransportBytes, missedReason } from "./grid.js";
export { ClientFailure, FAILURE_CODES, type Failure, type FailureCode, isFailureCode } from "./failure.js";

// The client side: decode a round's message, train or evaluate, reply.
export { type ClientContext, ClientEngine, type ClientStorage, type HandleResult } from "./client.js";
export { type Instruction, TRAIN_MODES, type TrainMode, parseInstruction } from "./instruction.js";

// Aggregation of validated replies (pure functions).
export { type Aggregate, type ReplyExpectation, type ReplyVerdict, aggregateReplies, validateReply, weightedMean } from "./aggregate.js";

// Per-round records and the run summary.
export { type BudgetPhase, NO_TRAFFIC, type RoundRecord, type RoundTiming, type RunSummary, type Stage, type Traffic, addTraffic } from "./records.js";

// The wire format.
export {
  type ByteBreakdown,
  type DecodedMessage,
  type EncodeOptions,
  type MessageKind,
  type PayloadDType,
  WIRE_VERSION,
  type WireMessage,
  type WirePackedModule,
  type WireScores,
  type WireTensor,
  decodeMessage,
  encodeMessage,
  encodedBreakdown,
  messageParamCount,
} from "./wire.js";
