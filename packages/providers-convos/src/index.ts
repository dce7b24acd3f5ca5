export * from "./claim.js"
export * from "./runtime-client.js"
