package xds

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// proxyless test runs a real ADS server and grpc-go xDS client).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
