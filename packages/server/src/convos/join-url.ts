/** The seed's rule: production refuses dev.convos.org links; other environments refuse popup.convos.org links. */
export const joinUrlProblem = (environment: "staging" | "dev" | "production", joinUrl: string | undefined): string | undefined => {
  if (joinUrl === undefined) return undefined
  const host = new URL(joinUrl).hostname
  if (environment === "production" && host === "dev.convos.org") return "joinUrl points at dev.convos.org, but this pool serves production"
  if (environment !== "production" && host === "popup.convos.org") return `joinUrl points at popup.convos.org (production), but this pool serves ${environment}`
  return undefined
}
