import { Effect } from "effect"
import { startTcpFaultProxy } from "@warmpool/reconciler/testing"

/** A TCP proxy on loopback in front of Postgres, whose `cut` kills every connection and refuses new ones. */
export const proxy = (target: URL) =>
  Effect.map(startTcpFaultProxy({ host: target.hostname, port: Number(target.port || 5432) }), (p) => ({ port: p.port, cut: p.reset }))
