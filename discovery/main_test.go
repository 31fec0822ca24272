package discovery

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// watch, fetch and loop goroutine must end with Run's context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
