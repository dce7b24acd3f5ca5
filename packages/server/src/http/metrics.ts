/** Every Effect metric of the process (the reconciler's included), as Prometheus text. */
import { Metric, MetricState } from "effect"

const escape = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const labels = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, extra: ReadonlyArray<readonly [string, string]> = []) => {
  const all = [...tags.map((t) => [t.key, t.value] as const), ...extra]
  return all.length === 0 ? "" : `{${all.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`
}

export const renderPrometheus = (): string => {
  const lines: Array<string> = []
  const typed = new Set<string>()
  const header = (name: string, type: string, help: string | undefined) => {
    if (typed.has(name)) return
    typed.add(name)
    if (help !== undefined) lines.push(`# HELP ${name} ${help}`)
    lines.push(`# TYPE ${name} ${type}`)
  }
  const pairs = [...Metric.unsafeSnapshot()].sort((a, b) => a.metricKey.name.localeCompare(b.metricKey.name))
  for (const { metricKey: key, metricState: state } of pairs) {
    const help = key.description._tag === "Some" ? key.description.value : undefined
    if (MetricState.isCounterState(state)) {
      header(key.name, "counter", help)
      lines.push(`${key.name}${labels(key.tags)} ${Number(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      header(key.name, "gauge", help)
      lines.push(`${key.name}${labels(key.tags)} ${Number(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      header(key.name, "histogram", help)
      for (const [bound, count] of state.buckets) {
        lines.push(`${key.name}_bucket${labels(key.tags, [["le", Number.isFinite(bound) ? String(bound) : "+Inf"]])} ${count}`)
      }
      lines.push(`${key.name}_bucket${labels(key.tags, [["le", "+Inf"]])} ${state.count}`)
      lines.push(`${key.name}_sum${labels(key.tags)} ${state.sum}`)
      lines.push(`${key.name}_count${labels(key.tags)} ${state.count}`)
    }
  }
  return `${lines.join("\n")}\n`
}
