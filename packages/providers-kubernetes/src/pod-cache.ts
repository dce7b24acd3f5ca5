/**
 * The pool's Pods as the API server last told: one paginated list (`limit`/`continue`) by label selector, then a
 * watch from the list's `resourceVersion`, resumed from the last version seen whenever it ends, and a relist only
 * when the server says that version is gone (410). A steady pool costs a re-watch now and then, never a list.
 * Readers get the whole set, or a failure while it is not known to be current (rule 2: never a partial list).
 */
import { type CoreV1Api, type KubeConfig, type V1Pod, type V1PodList, Watch } from "@kubernetes/client-node"
import { retryRemote, TransientError } from "@warmpool/reconciler"
import { Clock, Data, Duration, Effect, PubSub, Ref, Runtime, Schedule, type Scope } from "effect"
import { failureOf, toProviderError } from "./errors.js"

/** What happened to one Pod. */
export interface PodChange {
  readonly type: "added" | "modified" | "deleted"
  readonly pod: V1Pod
}

export interface PodCache {
  /** Every Pod the selector matches, as last seen; fails while the set is not known to be current. */
  readonly pods: Effect.Effect<ReadonlyArray<V1Pod>, TransientError>
  /** A Pod this process just wrote (its create's answer), so that a list right after shows it. */
  readonly remember: (pod: V1Pod) => Effect.Effect<void>
  /** A Pod this process just deleted: gone from the set now, whatever late event about it still arrives. */
  readonly forget: (pod: { readonly name: string; readonly uid?: string | undefined }) => Effect.Effect<void>
  /** Changes as they arrive (watch events, and what a relist found different). */
  readonly changes: PubSub.PubSub<PodChange>
}

export interface PodCacheOptions {
  readonly namespace: string
  readonly labelSelector: string
  readonly pageSize: number
  readonly timeout: Duration.Duration
}

/** A list's `continue` token outlived its snapshot (410 Expired). */
class ContinueExpired extends Data.TaggedError("ContinueExpired")<{}> {}

/** How long a read waits for the set to become current before it fails. */
const SYNC_WAIT = Duration.seconds(2)

const nameOf = (pod: V1Pod) => pod.metadata?.name ?? ""
const versionOf = (pod: V1Pod) => pod.metadata?.resourceVersion ?? ""

/**
 * Whether `candidate` is newer than `known`. Resource versions are opaque to clients; etcd's are integers, and
 * only then are two compared (otherwise the one already known stays).
 */
const isNewer = (candidate: string, known: string): boolean =>
  /^\d+$/.test(candidate) && /^\d+$/.test(known) ? BigInt(candidate) > BigInt(known) : false

/** How a watch ended. */
type WatchEnd = { readonly _tag: "Closed" } | { readonly _tag: "Gone" } | { readonly _tag: "Failed"; readonly message: string }

export const makePodCache = (
  kubeConfig: KubeConfig,
  api: CoreV1Api,
  options: PodCacheOptions
): Effect.Effect<PodCache, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pods = new Map<string, V1Pod>()
    /** Uids deleted by this process whose DELETED event has not come yet. */
    const deleted = new Set<string>()
    const state = yield* Ref.make<{ readonly synced: boolean; readonly resourceVersion: string; readonly problem: string }>({
      synced: false,
      resourceVersion: "",
      problem: "the first list has not finished"
    })
    const changes = yield* PubSub.unbounded<PodChange>()
    const runSync = Runtime.runSync(yield* Effect.runtime<never>())
    const publish = (change: PodChange) => runSync(PubSub.publish(changes, change))

    const apply = (type: string, pod: V1Pod) => {
      const name = nameOf(pod)
      const uid = pod.metadata?.uid ?? ""
      if (type === "DELETED") {
        deleted.delete(uid)
        if (pods.delete(name)) publish({ type: "deleted", pod })
        return
      }
      if (deleted.has(uid)) return
      const known = pods.get(name)
      if (known !== undefined && known.metadata?.uid === uid && isNewer(versionOf(known), versionOf(pod))) return
      pods.set(name, pod)
      publish({ type: known === undefined ? "added" : "modified", pod })
    }

    const path = `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`

    /** One page; undefined when its `continue` token expired (410: the list must start again). */
    const listPage = (cont: string | undefined) =>
      Effect.tryPromise({
        try: (): Promise<V1PodList> =>
          api.listNamespacedPod({ namespace: options.namespace, labelSelector: options.labelSelector, limit: options.pageSize, ...(cont === undefined ? {} : { _continue: cont }) }),
        catch: (cause) => (cont !== undefined && failureOf(cause).status === 410 ? new ContinueExpired() : toProviderError("kubernetes.listPods", cause))
      }).pipe(
        Effect.timeoutFail({ duration: options.timeout, onTimeout: () => new TransientError({ operation: "kubernetes.listPods", message: "the API server did not answer in time" }) }),
        Effect.catchTag("ContinueExpired", () => Effect.succeed(undefined)),
        retryRemote()
      )

    /** Every page, at one resource version; an expired `continue` token starts the list again, as the API asks. */
    const listAll = Effect.iterate({ cont: undefined as string | undefined, items: [] as ReadonlyArray<V1Pod>, resourceVersion: "", done: false }, {
      while: (s) => !s.done,
      body: (s) =>
        Effect.flatMap(listPage(s.cont), (page) =>
          page === undefined
            ? Effect.fail(new ContinueExpired())
            : Effect.succeed({
              cont: page.metadata?._continue || undefined,
              items: [...s.items, ...page.items],
              resourceVersion: page.metadata?.resourceVersion ?? s.resourceVersion,
              done: !page.metadata?._continue
            }))
    }).pipe(Effect.retry({ while: (e) => e._tag === "ContinueExpired", times: 3 }))

    const relist = Effect.gen(function*() {
      const { items, resourceVersion } = yield* listAll
      const fresh = new Map(items.map((pod) => [nameOf(pod), pod]))
      deleted.clear()
      for (const [name, pod] of pods) {
        if (!fresh.has(name)) {
          pods.delete(name)
          publish({ type: "deleted", pod })
        }
      }
      for (const pod of items) {
        const known = pods.get(nameOf(pod))
        if (known === undefined || versionOf(known) !== versionOf(pod)) apply("MODIFIED", pod)
      }
      yield* Ref.set(state, { synced: true, resourceVersion, problem: "" })
    }).pipe(Effect.withSpan("KubernetesPods.relist"))

    const watcher = new Watch(kubeConfig)

    /** One watch from `resourceVersion`, until the server ends it. */
    const watchOnce = (resourceVersion: string) =>
      Effect.async<WatchEnd>((resume) => {
        let gone = false
        let ended = false
        let abort: AbortController | undefined
        const end = (result: WatchEnd) => {
          if (ended) return
          ended = true
          resume(Effect.succeed(result))
        }
        const onEvent = (type: string, object: unknown) => {
          if (type === "ERROR") {
            // A Status in the stream: 410 means the version is compacted away (relist); others end the watch.
            const status = object as { code?: number; message?: string }
            if (status.code === 410) gone = true
            abort?.abort()
            return end(gone ? { _tag: "Gone" } : { _tag: "Failed", message: status.message ?? "watch error" })
          }
          const pod = object as V1Pod
          if (type !== "BOOKMARK") apply(type, pod)
          const version = versionOf(pod)
          if (version !== "") runSync(Ref.update(state, (s) => ({ ...s, resourceVersion: version })))
        }
        watcher.watch(path, { labelSelector: options.labelSelector, resourceVersion, allowWatchBookmarks: true }, onEvent, (error: unknown) => {
          if (error === null || error === undefined) return end(gone ? { _tag: "Gone" } : { _tag: "Closed" })
          const status = (error as { statusCode?: number }).statusCode
          if (status === 410) return end({ _tag: "Gone" })
          if (error instanceof Error && error.name === "AbortError" && gone) return end({ _tag: "Gone" })
          end({ _tag: "Failed", message: error instanceof Error ? error.message : String(error) })
        }).then((controller) => {
          abort = controller
          if (ended) controller.abort()
          // Connected: from here on the events since `resourceVersion` arrive, so what is cached is current.
          else runSync(Ref.update(state, (s) => ({ ...s, synced: true, problem: "" })))
        }, (error: unknown) => end({ _tag: "Failed", message: String(error) }))
        return Effect.sync(() => abort?.abort())
      })

    /** Watches, resuming where each watch ended, for as long as the versions last: ends when a relist is needed. */
    const watchUntilGone = Effect.flatMap(Ref.get(state), (s) => watchOnce(s.resourceVersion)).pipe(
      // Closed by the server (its request timeout): resume where it ended; the events since are replayed.
      Effect.repeat({ while: (ended) => ended._tag === "Closed" }),
      Effect.flatMap((ended) =>
        ended._tag === "Failed"
          // Until a watch runs again, what is cached may miss changes: readers are told so.
          ? Ref.update(state, (s) => ({ ...s, synced: false, problem: `the watch failed: ${ended.message}` })).pipe(
            Effect.zipRight(Effect.logWarning(`kubernetes: the Pod watch failed (${ended.message}); resuming`)),
            Effect.zipRight(Effect.fail(ended))
          )
          : Effect.void)
    )

    const failures = Schedule.exponential(Duration.millis(250)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(30))), Schedule.jittered)

    const loop = relist.pipe(
      Effect.tapError((error) =>
        Ref.update(state, (s) => ({ ...s, synced: false, problem: `listing Pods failed: ${describe(error)}` })).pipe(
          Effect.zipRight(Effect.logWarning(`kubernetes: listing Pods failed (${describe(error)}); trying again`))
        )),
      Effect.retry(failures),
      // A failed watch resumes from the last version seen; only 410 Gone needs the relist this loop goes back to.
      Effect.zipRight(Effect.retry(watchUntilGone, failures)),
      Effect.zipRight(Effect.logInfo("kubernetes: the Pod watch's version is gone (410 Gone); listing again")),
      Effect.forever
    )
    yield* Effect.forkScoped(loop)

    return {
      // Right after start (or a failed watch) the set may be moments from current: wait a little before failing.
      pods: Ref.get(state).pipe(
        Effect.filterOrFail((s) => s.synced, (s) => new TransientError({ operation: "kubernetes.listPods", message: `the Pods are not known yet: ${s.problem}` })),
        Effect.retry(Schedule.spaced(Duration.millis(20)).pipe(Schedule.upTo(SYNC_WAIT))),
        Effect.map(() => [...pods.values()]),
        // The cache fills in real time, whatever clock the caller runs on.
        Effect.withClock(Clock.make())
      ),
      remember: (pod) => Effect.sync(() => apply("ADDED", pod)),
      forget: ({ name, uid }) =>
        Effect.sync(() => {
          const known = pods.get(name)
          if (known === undefined || (uid !== undefined && known.metadata?.uid !== uid)) return
          if (known.metadata?.uid !== undefined) deleted.add(known.metadata.uid)
          pods.delete(name)
          publish({ type: "deleted", pod: known })
        }),
      changes
    }
  })

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)
