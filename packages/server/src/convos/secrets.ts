/**
 * Per-instance secrets of a Convos runtime, issued like any credential so they exist before the service:
 * the gateway token (also stored in the row and returned by a claim), a setup password and a wallet key.
 */
import { Credentials } from "@warmpool/reconciler"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

export const ConvosSecrets = Credentials.of({
  issue: (instance) =>
    Effect.sync(() => {
      // A retried create reuses the token the row already holds: the service and the row must agree.
      const gatewayToken = instance.gatewayToken ?? hex(32)
      return {
        env: {
          OPENCLAW_GATEWAY_TOKEN: gatewayToken,
          SETUP_PASSWORD: hex(16),
          PRIVATE_WALLET_KEY: `0x${hex(32)}`,
          OPENCLAW_STATE_DIR: "/data/openclaw"
        },
        patch: { gatewayToken }
      }
    }),
  // Nothing to release: these secrets live only in the instance.
  release: () => Effect.void
})
