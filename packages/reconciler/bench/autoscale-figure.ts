/** The autoscale bench's figure: per trace, miss rate against idle instance-hours, one point per policy. */

export type Policy = { readonly kind: "autoscale"; readonly label: string } | {
  readonly kind: "fixed"
  readonly label: string
  readonly minIdle: number
}

export const policies: ReadonlyArray<Policy> = [
  { kind: "autoscale", label: "autoscale" },
  ...[1, 3, 10, 30].map((minIdle): Policy => ({ kind: "fixed", label: `fixed ${minIdle}`, minIdle }))
]

export interface Point {
  readonly policy: Policy
  readonly missRate: number
  readonly idleHours: number
}

const PANEL = { width: 380, height: 250, left: 56, right: 16, top: 34, bottom: 44 }

/** Miss rates span three decades: a log axis from FLOOR to 1, a zero drawn on the floor. */
const FLOOR = 0.001
const DECADES = [0.001, 0.01, 0.1, 1]

/** About five round ticks from 0 to `max`. */
const ticks = (max: number): ReadonlyArray<number> => {
  const raw = max / 5
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!
  return Array.from({ length: Math.floor(max / step) + 1 }, (_, i) => Number((i * step).toPrecision(6)))
}

const panel = (trace: string, points: ReadonlyArray<Point>, x0: number, y0: number): string => {
  const plotWidth = PANEL.width - PANEL.left - PANEL.right
  const plotHeight = PANEL.height - PANEL.top - PANEL.bottom
  const maxX = Math.max(...points.map((p) => p.idleHours)) * 1.08 || 1
  const sx = (v: number) => x0 + PANEL.left + (v / maxX) * plotWidth
  const sy = (v: number) => y0 + PANEL.top + plotHeight * (Math.log10(Math.max(v, FLOOR)) / Math.log10(FLOOR))
  const parts: Array<string> = [
    `<text x="${x0 + PANEL.left}" y="${y0 + 20}" class="title">${trace.replace(/_/g, " ")}</text>`,
    `<rect x="${x0 + PANEL.left}" y="${y0 + PANEL.top}" width="${plotWidth}" height="${plotHeight}" class="frame"/>`
  ]
  for (const t of ticks(maxX).filter((t) => t <= maxX)) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${y0 + PANEL.top}" y2="${y0 + PANEL.top + plotHeight}" class="grid"/>`)
    parts.push(`<text x="${sx(t)}" y="${y0 + PANEL.top + plotHeight + 15}" class="tick" text-anchor="middle">${t}</text>`)
  }
  for (const t of DECADES) {
    parts.push(`<line x1="${x0 + PANEL.left}" x2="${x0 + PANEL.left + plotWidth}" y1="${sy(t)}" y2="${sy(t)}" class="grid"/>`)
    parts.push(`<text x="${x0 + PANEL.left - 6}" y="${sy(t) + 4}" class="tick" text-anchor="end">${t}</text>`)
  }
  parts.push(`<text x="${x0 + PANEL.left + plotWidth / 2}" y="${y0 + PANEL.height - 8}" class="axis" text-anchor="middle">idle instance-hours</text>`)
  parts.push(`<text transform="translate(${x0 + 14} ${y0 + PANEL.top + plotHeight / 2}) rotate(-90)" class="axis" text-anchor="middle">miss rate</text>`)
  const fixed = points.filter((p) => p.policy.kind === "fixed").sort((a, b) => a.idleHours - b.idleHours)
  parts.push(`<polyline points="${fixed.map((p) => `${sx(p.idleHours)},${sy(p.missRate)}`).join(" ")}" class="frontier"/>`)
  for (const p of points) {
    const auto = p.policy.kind === "autoscale"
    parts.push(`<circle cx="${sx(p.idleHours)}" cy="${sy(p.missRate)}" r="${auto ? 6 : 4}" class="${auto ? "auto" : "fixed"}"/>`)
    // Labels near the right edge go to the left of their point.
    const left = sx(p.idleHours) > x0 + PANEL.width - 90
    parts.push(
      `<text x="${sx(p.idleHours) + (left ? -8 : 8)}" y="${sy(p.missRate) - 6}" text-anchor="${left ? "end" : "start"}" class="${auto ? "auto-label" : "label"}">${p.policy.label}</text>`
    )
  }
  return parts.join("\n")
}

/** Panels side by side, two to a row. */
export const frontierSvg = (panels: ReadonlyArray<{ readonly trace: string; readonly points: ReadonlyArray<Point> }>): string => {
  const columns = 2
  const rows = Math.ceil(panels.length / columns)
  const width = PANEL.width * columns
  const height = PANEL.height * rows + 28
  const body = panels.map((p, i) => panel(p.trace, p.points, (i % columns) * PANEL.width, 28 + Math.floor(i / columns) * PANEL.height))
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">
<style>
.title { font-size: 14px; font-weight: 600; fill: #222 }
.frame { fill: #fff; stroke: #bbb }
.grid { stroke: #eee }
.tick, .label { font-size: 10px; fill: #555 }
.axis { font-size: 11px; fill: #333 }
.frontier { fill: none; stroke: #999; stroke-dasharray: 4 3 }
.fixed { fill: #888 }
.auto { fill: #e8590c }
.auto-label { font-size: 11px; font-weight: 600; fill: #e8590c }
</style>
<rect width="${width}" height="${height}" fill="#fafafa"/>
<text x="12" y="19" class="title">Miss rate (log; 0 on the floor) against idle instance-hours: autoscaling and fixed pools</text>
${body.join("\n")}
</svg>
`
}
