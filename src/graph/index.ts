/**
 * @module graph
 * The typed graph IR: values with dtype and (batch-symbolic) shape, the array-code builder, and
 * reverse-mode autodiff. Nothing here does I/O or knows about protobuf or onnxruntime.
 */
export * from "./shape.js";
export { Op, type OpAttrs, type TensorData } from "./ops.js";
export { Node, Value, apply, applyMulti, topoSort } from "./node.js";
export * from "./builder.js";
export { grad, countOps } from "./autodiff/grad.js";
export { unbroadcast, vjpRules } from "./autodiff/rules.js";
export { inferRules } from "./infer.js";
