/**
 * The Poisson distribution, as much of it as sizing needs. Terms are computed in log space so that a large
 * mean (thousands of claims per ready time) neither underflows `e^-μ` nor overflows `μ^k`.
 */

/** P(X ≤ 0), P(X ≤ 1), … for X ~ Poisson(`mean`), `mean` > 0. */
function* cumulative(mean: number): Generator<number, never> {
  const logMean = Math.log(mean)
  let logTerm = -mean
  let sum = 0
  for (let n = 0; ; n++) {
    if (n > 0) logTerm += logMean - Math.log(n)
    sum += Math.exp(logTerm)
    yield sum
  }
}

/** The smallest `n ≤ cap` with P(X ≤ n) ≥ `probability` for X ~ Poisson(`mean`); `cap` when there is none. */
export const poissonQuantile = (mean: number, probability: number, cap: number): number => {
  if (mean <= 0) return 0
  let n = 0
  for (const below of cumulative(mean)) {
    if (n >= cap || below >= probability) return n
    n++
  }
  return cap
}

/** P(X ≥ k) for X ~ Poisson(`mean`). */
export const poissonUpperTail = (mean: number, k: number): number => {
  if (k <= 0) return 1
  if (mean <= 0) return 0
  let n = 0
  for (const below of cumulative(mean)) {
    if (n === k - 1) return Math.max(0, 1 - below)
    n++
  }
  return 0
}
