/**
 * `/docs`: Scalar's viewer over the API's description, its script from jsDelivr. @effect/platform's
 * `HttpApiScalar` inlines Scalar's 6.5 MB bundle, which the server would hold in memory all its life (about
 * 20 MB of heap with the module's source) for a page rarely opened; `/openapi.json` is the description itself.
 */
import type * as OpenApi from "@effect/platform/OpenApi"

/** The bundle the platform inlines, pinned: jsDelivr serves every published file, minified on request. */
export const SCALAR_SCRIPT = "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.39.3/dist/browser/standalone.min.js"

const escapeText = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** JSON inside a script element: nothing in it may close the element or end a line for the parser. */
const scriptJson = (value: unknown) =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029")

export const docsPage = (spec: OpenApi.OpenAPISpec) => `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeText(spec.info.title)}</title>
  </head>
  <body>
    <script id="api-reference" type="application/json">${scriptJson(spec)}</script>
    <script src="${SCALAR_SCRIPT}" crossorigin></script>
  </body>
</html>`
