/** HTTP helpers for provider authors (kept out of the core entry, which imports no HTTP library). */
export * from "./json-api.js"
