/** A real SSE client (the `eventsource` package, WhatWG EventSource) POSTing a claim to the stream route. */
import { Effect } from "effect"
import { EventSource } from "eventsource"
import { base, KEY } from "./http-world.js"

export interface ReceivedEvent {
  readonly event: string
  readonly data: any
}

export interface OpenStream {
  /** Events received so far, in order. */
  readonly events: () => ReadonlyArray<ReceivedEvent>
  /** Settles with every event once `done` or `error` arrived (the client then closes), or a connection failure. */
  readonly finished: Promise<ReadonlyArray<ReceivedEvent>>
  /** Closes the connection now, as a client that goes away. */
  readonly close: () => void
}

const names = ["queued", "claimed", "provisioning", "done", "error"] as const

/** Opens `POST /api/pool/claim/stream` with `body`. */
export const openClaimStream = (body: object, key = KEY) =>
  Effect.map(base, (url): OpenStream => {
    const received: Array<ReceivedEvent> = []
    const source = new EventSource(`${url}/api/pool/claim/stream`, {
      fetch: (input, init) =>
        fetch(input, {
          ...init,
          method: "POST",
          headers: { ...init.headers, authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify(body)
        })
    })
    const finished = new Promise<ReadonlyArray<ReceivedEvent>>((resolve, reject) => {
      for (const name of names) {
        source.addEventListener(name, (event) => {
          // `error` is also EventSource's own name for a failed connection: that one carries no data.
          if (!("data" in event) || typeof event.data !== "string") {
            source.close()
            return reject(new Error(`connection failed: ${"message" in event ? String(event.message) : "no detail"}`))
          }
          received.push({ event: name, data: JSON.parse(event.data) })
          // Done: close before the client's automatic reconnect would claim a second time.
          if (name === "done" || name === "error") {
            source.close()
            resolve([...received])
          }
        })
      }
    })
    return { events: () => [...received], finished, close: () => source.close() }
  })
