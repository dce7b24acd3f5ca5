import { Context, Effect, Either, Layer } from "effect"
import { applyPatch, type Instance } from "./domain/instance.js"
import { Credentials, type IssuedCredentials } from "./services.js"

type CredentialsService = Context.Tag.Service<Credentials>

/** No per-instance credentials. */
export const NoCredentials: Layer.Layer<Credentials> = Layer.succeed(Credentials, {
  issue: () => Effect.succeed({ env: {}, handles: {} }),
  release: () => Effect.void
})

/**
 * Several issuers as one (e.g. an API key and a mail inbox); each keeps its handles under keys of its own.
 * Issue is all-or-nothing: when one fails, those already issued are released before failing.
 * Release tries every issuer even when one fails, then fails with the first error.
 */
export const combineCredentials = (issuers: ReadonlyArray<CredentialsService>): CredentialsService => {
  const releaseAll = (instance: Instance, from: ReadonlyArray<CredentialsService>) =>
    Effect.forEach(from, (issuer) => Effect.either(issuer.release(instance)), { concurrency: "unbounded" }).pipe(
      Effect.flatMap((results) => {
        const failure = results.find(Either.isLeft)
        return failure === undefined ? Effect.void : Effect.fail(failure.left)
      })
    )
  return {
    issue: (instance) =>
      Effect.gen(function*() {
        let issued: IssuedCredentials = { env: {}, handles: {} }
        for (const [index, issuer] of issuers.entries()) {
          const next = yield* Effect.either(issuer.issue(instance))
          if (Either.isLeft(next)) {
            // Release what the earlier issuers made, with the handles they returned.
            const partial = applyPatch(instance, { handles: issued.handles })
            yield* Effect.ignore(releaseAll(partial, issuers.slice(0, index)))
            return yield* Effect.fail(next.left)
          }
          issued = { env: { ...issued.env, ...next.right.env }, handles: { ...issued.handles, ...next.right.handles } }
        }
        return issued
      }),
    release: (instance) => releaseAll(instance, issuers)
  }
}

/** A layer of `combineCredentials` over the given issuers, built in order. */
export const combinedCredentialsLayer = <E, R>(
  issuers: ReadonlyArray<Effect.Effect<CredentialsService, E, R>>
): Layer.Layer<Credentials, E, R> =>
  Layer.effect(Credentials, Effect.map(Effect.all(issuers), combineCredentials))
