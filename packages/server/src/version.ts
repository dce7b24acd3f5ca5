import { createRequire } from "node:module"

/**
 * The server's version, as `/version` and `warmpool --version` say it: the package's own, so a release (which
 * bumps package.json) is what the CLI reports. `../package.json` holds from `src/` and from `dist/` alike.
 */
export const SERVER_VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version
