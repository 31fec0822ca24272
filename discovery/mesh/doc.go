// Package mesh is the typed, immutable model of the mesh that discovery
// builds from Consul and that xds translates into Envoy resources.
//
// Nothing here imports Consul's or Envoy's types: the model is the contract
// between the two pipeline stages (discovery → xds). A *Snapshot is never
// mutated after it is published; whoever wants a different one builds a new
// one. Readers may share a snapshot between goroutines without locks.
//
// Field meanings follow Consul's documentation of the corresponding
// registration fields and config entries (Consul 1.14).
package mesh
