import type { SqlClient } from "@effect/sql"
import { FiberRef, Option } from "effect"

/** A lease as its holder knows it: the epoch is the fencing token of its writes. */
export interface Fence {
  readonly name: string
  readonly holder: string
  readonly epoch: number
}

/** The fence of the current fiber: set by `PgLeadership.whileLeader`, honoured by `PgInstanceStore`'s writes. */
export const CurrentFence = FiberRef.unsafeMake<Option.Option<Fence>>(Option.none())

/** True while this holder's lease, at this epoch, is unexpired — checked by the database, inside the write. */
export const fenceHolds = (sql: SqlClient.SqlClient, fence: Fence) =>
  sql`EXISTS (SELECT 1 FROM warmpool_leases WHERE name = ${fence.name} AND holder = ${fence.holder} AND epoch = ${fence.epoch} AND expires_at > now())`
