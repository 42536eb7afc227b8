/**
 * @module sa-fedlora/web
 * The browser entry point of the package, built into one ES module (`dist/web/sa-fedlora-web.js`,
 * `npm run build`; see docs/browser.md) with onnxruntime-web's files beside it in `dist/web/ort/`:
 * the onnxruntime-web runtime and the browser client, plus the platform-free API both entry points
 * share (src/universal.ts: graph, nn, peft, fl, the safetensors codec, dataset operations). Imports
 * no node:* module (a test checks this).
 */

// The browser runtime (onnxruntime-web: WebAssembly with threads when cross-origin isolated, optional WebGPU).
export { type OrtBuild, type WebExecutionProvider, WebRuntime, type WebRuntimeInfo, type WebRuntimeOptions, isCrossOriginIsolated } from "./runtime.js";

// The federated client in a page (the loop of `safl client` on connect-web, OPFS / IndexedDB, onnxruntime-web).
export { type BrowserClientExit, type BrowserClientOptions, type OwnImages, runBrowserClient, type WantedImages } from "./client.js";
export { CLIENT_EXIT_CODES, type ClientEvent, type ClientExit, type ClientExitReason, summaryLine } from "../net/client-core.js";
export { BrowserBaseStore, BrowserObjectStore, type FileStore, MemoryStore, openFileStore } from "./storage.js";

// Everything platform-free (errors, graph, nn, peft, fl, the safetensors codec, dataset operations),
// the same list as the Node entry's.
export * from "../universal.js";
