export * from "./credentials.js"
