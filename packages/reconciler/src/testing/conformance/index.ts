/** Contract test suites (vitest): run one against every implementation of a service. */
export * from "./compute-provider.js"
export * from "./credentials.js"
export * from "./instance-store.js"
export * from "./pool-events.js"
