export * from "./local-compute.js"
