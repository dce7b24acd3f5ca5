/**
 * Per-instance secrets of a Convos runtime, issued like any credential so they exist before the service:
 * the gateway token (also stored in the row and returned by a claim), a setup password and a wallet key.
 */
import { Credentials } from "@warmpool/reconciler"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"

/** The key of the row's `handles` under which the gateway token is kept (the seed's `gateway_token`). */
export const GATEWAY_TOKEN_HANDLE = "gatewayToken"

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

export const ConvosSecrets = Credentials.of({
  issue: (instance) =>
    Effect.sync(() => {
      // A retried create reuses the token the row already holds: the service and the row must agree.
      const gatewayToken = instance.handles[GATEWAY_TOKEN_HANDLE] ?? hex(32)
      return {
        env: {
          OPENCLAW_GATEWAY_TOKEN: gatewayToken,
          SETUP_PASSWORD: hex(16),
          PRIVATE_WALLET_KEY: `0x${hex(32)}`,
          OPENCLAW_STATE_DIR: "/data/openclaw"
        },
        handles: { [GATEWAY_TOKEN_HANDLE]: gatewayToken }
      }
    }),
  // Nothing to release: these secrets live only in the instance.
  release: () => Effect.void
})
