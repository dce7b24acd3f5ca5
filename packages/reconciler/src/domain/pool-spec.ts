import { Either, ParseResult, Schema } from "effect"

const Count = (field: string) =>
  Schema.Int.pipe(
    Schema.nonNegative({ message: () => `${field} must be a whole number ≥ 0` })
  )

const Positive = (field: string) =>
  Schema.Int.pipe(
    Schema.positive({ message: () => `${field} must be a whole number ≥ 1` })
  )

const Millis = (field: string) =>
  Schema.Int.pipe(
    Schema.positive({ message: () => `${field} must be a positive number of milliseconds` })
  )

/** What every instance of a pool is created from. */
export const InstanceTemplate = Schema.Struct({
  image: Schema.String.pipe(Schema.nonEmptyString({ message: () => "template.image must not be empty" })),
  env: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
    default: () => ({})
  })
})
export type InstanceTemplate = typeof InstanceTemplate.Type

/** Adaptive sizing (DESIGN rule 11): the warm target follows demand, `minIdle` stays the floor. */
export const Autoscale = Schema.Struct({
  /** Claims that may find no idle instance, as a fraction (0.01: one in a hundred). */
  targetMissRate: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.greaterThan(0, { message: () => "autoscale.targetMissRate must be a number between 0 and 1 (exclusive)" }),
      Schema.lessThan(1, { message: () => "autoscale.targetMissRate must be a number between 0 and 1 (exclusive)" })
    ),
    { default: () => 0.01, exact: true }
  ),
  /** Ceiling of the warm target; absent: `maxTotal`. */
  maxIdle: Schema.optionalWith(Count("autoscale.maxIdle"), { exact: true }),
  /** A lower target takes effect only after demand has been lower this long. */
  scaleDownAfterMs: Schema.optionalWith(Millis("autoscale.scaleDownAfterMs"), { default: () => 600_000, exact: true })
})
export type Autoscale = typeof Autoscale.Type

const PoolSpecFields = Schema.Struct({
  /** Pool name: rows carry it, so several pools can share one database. */
  name: Schema.String.pipe(
    Schema.pattern(/^[a-z0-9][a-z0-9-]{0,62}$/, {
      message: () => "name must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
    })
  ),
  /** Minimum warm instances (idle + starting + creating) to keep. */
  minIdle: Count("minIdle"),
  /** Hard ceiling on instances of this pool, every status counted. */
  maxTotal: Positive("maxTotal"),
  /** An unclaimed instance not healthy this long after creation is deleted. */
  stuckTimeoutMs: Schema.optionalWith(Millis("stuckTimeoutMs"), { default: () => 900_000 }),
  /** A `claiming` row older than this (the server died mid-claim) becomes `crashed`. */
  claimTimeoutMs: Schema.optionalWith(Millis("claimTimeoutMs"), { default: () => 120_000 }),
  /** A `creating` row older than this was abandoned by a dead process and is finished or removed. */
  createTimeoutMs: Schema.optionalWith(Millis("createTimeoutMs"), { default: () => 300_000 }),
  /**
   * How long the platform may take to show a new service, or to forget a deleted one: younger services
   * without a row are not adopted, younger rows without a service are not orphans.
   */
  listingGraceMs: Schema.optionalWith(Millis("listingGraceMs"), { default: () => 60_000 }),
  /** At most this many creates per pass. */
  createBatch: Schema.optionalWith(Positive("createBatch"), { default: () => 5 }),
  /** At most this many deletes per pass. */
  deleteBatch: Schema.optionalWith(Positive("deleteBatch"), { default: () => 10 }),
  /** During a rollout, at most this many new instances beyond the warm target at once (rule 10). */
  maxSurge: Schema.optionalWith(Positive("maxSurge"), { default: () => 1 }),
  /** Service names are `${namePrefix}${id}`; services with the prefix belong to the pool. */
  namePrefix: Schema.optionalWith(
    Schema.String.pipe(
      Schema.pattern(/^[a-z][a-z0-9-]{0,40}$/, {
        message: () => "namePrefix must be 1-41 characters of a-z, 0-9 and '-', starting with a letter"
      })
    ),
    { default: () => "warmpool-" }
  ),
  template: InstanceTemplate,
  /** Absent: a fixed pool of `minIdle` warm instances. */
  autoscale: Schema.optionalWith(Autoscale, { exact: true })
})

/** A declared pool. Decoding rejects nonsense with messages that name the field. */
export class PoolSpec extends Schema.Class<PoolSpec>("PoolSpec")(
  PoolSpecFields.pipe(
    Schema.filter((spec) => {
      const issues: Array<Schema.FilterIssue> = []
      if (spec.maxTotal < spec.minIdle) {
        issues.push({ path: ["maxTotal"], message: `maxTotal (${spec.maxTotal}) must be ≥ minIdle (${spec.minIdle})` })
      }
      const maxIdle = spec.autoscale?.maxIdle
      if (maxIdle !== undefined && maxIdle < spec.minIdle) {
        issues.push({ path: ["autoscale", "maxIdle"], message: `autoscale.maxIdle (${maxIdle}) must be ≥ minIdle (${spec.minIdle})` })
      }
      if (maxIdle !== undefined && maxIdle > spec.maxTotal) {
        issues.push({ path: ["autoscale", "maxIdle"], message: `autoscale.maxIdle (${maxIdle}) must be ≤ maxTotal (${spec.maxTotal})` })
      }
      return issues
    })
  )
) {}

export type PoolSpecInput = typeof PoolSpec.Encoded

/** Decodes a spec, or returns every problem as one line each (for start-up errors and API answers). */
export const decodePoolSpec = (input: unknown): Either.Either<PoolSpec, ReadonlyArray<string>> =>
  Schema.decodeUnknownEither(PoolSpec)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Either.mapLeft((error) =>
      ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
        issue.path.length > 0 && !issue.message.startsWith(String(issue.path[issue.path.length - 1])) &&
          !issue.message.startsWith(issue.path.join("."))
          ? `${issue.path.join(".")}: ${issue.message}`
          : issue.message
      )
    )
  )
