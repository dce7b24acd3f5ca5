import { createHash } from "node:crypto"
import type { Instance } from "./instance.js"
import type { InstanceTemplate } from "./pool-spec.js"

/**
 * The hash of what a pool's instances are created from: image and environment template, keys in a fixed
 * order. Per-instance secrets are issued at create and are not part of the template, so they never change
 * it. A digest, so the row shows which template an instance has without showing the template's values.
 */
export const templateHash = (template: InstanceTemplate): string => {
  const env = Object.keys(template.env).sort().map((key) => [key, template.env[key]])
  return createHash("sha256").update(JSON.stringify({ image: template.image, env })).digest("hex").slice(0, 16)
}

/**
 * Whether a row was made from another template than `current`. Rows written before hashes were recorded
 * (seed rows, adopted services) carry none: for them the image is the evidence, and no image is no evidence.
 */
export const isOutdated = (row: Instance, current: { readonly hash: string; readonly image: string }): boolean =>
  row.templateHash !== null ? row.templateHash !== current.hash : row.runtimeImage !== null && row.runtimeImage !== current.image
