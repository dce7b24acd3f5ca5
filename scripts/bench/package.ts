/**
 * `npm run bench -- package`: what installing the core costs a user. The core is packed and installed, with its
 * peers, into an empty project outside the repository; `package.core.install_mb` is its node_modules in MB.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { coreInstallMb, packAll } from "../packing.js"

export const run = async (): Promise<Record<string, number>> => {
  const work = mkdtempSync(join(tmpdir(), "warmpool-package-bench-"))
  chmodSync(work, 0o755)
  try {
    const tarballs = packAll(join(work, "tarballs"))
    const mb = coreInstallMb(join(work, "core-only"), tarballs["@warmpool/reconciler"]!)
    return { "package.core.install_mb": Math.round(mb * 10) / 10 }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
