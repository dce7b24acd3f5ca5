export * from "./config.js"
export * from "./credentials.js"
export * from "./keys.js"
