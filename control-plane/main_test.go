package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// runMainEnv makes the test binary act as the control-plane binary (for the
// signal test), so no separate build is needed.
const runMainEnv = "CONSULATE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = []string{"control-plane"} // configuration comes from the environment
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
