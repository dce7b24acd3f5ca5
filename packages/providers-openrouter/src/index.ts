export * from "./config.js"
export * from "./credentials.js"
