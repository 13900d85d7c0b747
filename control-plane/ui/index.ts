// The web view of the service graph (GET /ui/): static HTML, JS and CSS from ./assets with a strict
// CSP, served without auth because they hold no data (the page's script calls /v1/traffic with the
// admin token). Imports nothing from the repo: the API calls serve() and owns authentication.
export { UI_CSP, createUi, parseJaegerUi, type Ui, type UiOptions } from './ui.js'
