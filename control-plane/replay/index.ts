// Replay of the traffic record against a policy set (pure): the recorded edges become the facts
// evaluate()/evaluateConnection() read, for `POST /v1/preview` and `remora check --replay`. From
// proxy/ it imports only the shared leaves (policy, identity, snapshot); never the API or a store.
export { REPRESENTATIVE_ID, concretePath, edgeRequestFacts, groupEdges, previewChanges, replay, withCandidate, type ObservedEdge, type PreviewChange, type ReplayOptions, type ReplayedEdge, type Verdict } from './replay.js'
