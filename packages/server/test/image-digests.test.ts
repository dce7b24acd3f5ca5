/** Image references as a registry client reads them: which registry, which repository, which tag. */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { parseImageReference } from "../src/registry/image-digests.js"

describe("parseImageReference", () => {
  it("reads the host, repository and tag, with Docker Hub's rules for short names", () => {
    expect(parseImageReference("ghcr.io/xmtplabs/convos-runtime:v1.2")).toEqual(Option.some({ host: "ghcr.io", repository: "xmtplabs/convos-runtime", tag: "v1.2", name: "ghcr.io/xmtplabs/convos-runtime" }))
    expect(parseImageReference("https://ghcr.io/acme/agent")).toEqual(Option.some({ host: "ghcr.io", repository: "acme/agent", tag: "latest", name: "ghcr.io/acme/agent" }))
    expect(parseImageReference("node:20")).toEqual(Option.some({ host: "registry-1.docker.io", repository: "library/node", tag: "20", name: "node" }))
    expect(parseImageReference("acme/agent:dev")).toEqual(Option.some({ host: "registry-1.docker.io", repository: "acme/agent", tag: "dev", name: "acme/agent" }))
    expect(parseImageReference("docker.io/acme/agent:dev")).toMatchObject(Option.some({ host: "registry-1.docker.io", repository: "acme/agent" }))
    // A port is the host's, not a tag.
    expect(parseImageReference("localhost:5000/agent")).toEqual(Option.some({ host: "localhost:5000", repository: "agent", tag: "latest", name: "localhost:5000/agent" }))
    expect(parseImageReference("registry.local:5000/team/agent:rc")).toMatchObject(Option.some({ host: "registry.local:5000", repository: "team/agent", tag: "rc" }))
  })

  it("has nothing to resolve for a reference pinned already, or none at all", () => {
    expect(parseImageReference("ghcr.io/acme/agent@sha256:" + "a".repeat(64))).toEqual(Option.none())
    expect(parseImageReference("")).toEqual(Option.none())
    expect(parseImageReference("agent:")).toEqual(Option.none())
  })
})
