/**
 * Comparing secrets (the API key, gateway tokens, the webhook secret) in constant time: their fixed-length digests
 * are compared, never the strings, so neither a common prefix nor the length shows in the timing.
 */
import { createHash, timingSafeEqual } from "node:crypto"

export const digest = (secret: string): Buffer => createHash("sha256").update(secret).digest()

/** Whether `given` is the secret whose digest is `expected`. */
export const matchesDigest = (given: string, expected: Buffer): boolean => timingSafeEqual(digest(given), expected)
