export * from "./runtime-client.js"
