package xds

import (
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// TestExtensionKeysRegistered: every key this package reads is in the
// model's registry with the scope it is read in (discovery validates
// entries against that registry).
func TestExtensionKeysRegistered(t *testing.T) {
	keys := map[string]mesh.ExtensionScope{
		KeyRetryBackoffBase: mesh.ScopeRoute, KeyRetryBackoffMax: mesh.ScopeRoute, KeyRetryPerTryTimeout: mesh.ScopeRoute,
		KeyRetryPreviousHosts: mesh.ScopeRoute, KeyRetryHostSelectionMax: mesh.ScopeRoute,
		KeyRetryBudgetPercent: mesh.ScopeCluster, KeyRetryBudgetMinConcurrency: mesh.ScopeCluster,
		KeyConsecutiveGatewayFailure: mesh.ScopeCluster, KeyEnforcingConsecutiveGateway: mesh.ScopeCluster,
		KeySuccessRateMinimumHosts: mesh.ScopeCluster, KeySuccessRateRequestVolume: mesh.ScopeCluster,
		KeySuccessRateStdevFactor: mesh.ScopeCluster, KeyEnforcingSuccessRate: mesh.ScopeCluster,
		KeyFailurePercentageThreshold: mesh.ScopeCluster, KeyEnforcingFailurePercentage: mesh.ScopeCluster,
		KeyFailurePercentageMinimumHosts: mesh.ScopeCluster, KeyFailurePercentageRequestVol: mesh.ScopeCluster,
		KeyMaxEjectionTime: mesh.ScopeCluster, KeyHealthyPanicThreshold: mesh.ScopeCluster,
		IncludeWarningKey: mesh.ScopeEndpoints,
	}
	for key, scope := range keys {
		t.Run(key, func(t *testing.T) {
			spec, ok := mesh.LookupExtensionKey(key)
			if !ok {
				t.Fatalf("%s is not in mesh's extension key registry", key)
			}
			if spec.Scope != scope {
				t.Errorf("%s: scope %s in the registry, read as %s here", key, spec.Scope, scope)
			}
		})
	}
}
