/** In-memory implementations of every service, with fault injection. The contract suites are in `../conformance`. */
export * from "./faults.js"
export * from "./in-memory-compute.js"
export * from "./in-memory-credentials.js"
export * from "./in-memory-health.js"
export * from "./in-memory-runtime.js"
export * from "./in-memory-store.js"
export * from "./in-memory-services.js"
export * from "./http-emulator.js"
