export * from "./server.js"

/** The file a child process runs to become a reference runtime (compiled JS next to this module, or its TS source). */
export const referenceRuntimeEntry = new URL(`./bin${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url)
