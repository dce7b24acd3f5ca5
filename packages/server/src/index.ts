/** The Convos pool manager on warmpool, as Layers: swap any piece (e.g. the compute provider) for your own. */
export * from "./api/api.js"
export * from "./app.js"
export * from "./config.js"
export { ConvosSecrets } from "./convos/secrets.js"
export { joinUrlProblem } from "./convos/join-url.js"
export { dashboardHtml } from "./http/dashboard.js"
export { renderPrometheus } from "./http/metrics.js"
export * from "./enrich.js"
