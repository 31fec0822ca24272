package procstat

import (
	"os"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	before, err := TreeCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Burn at least 50 ms of CPU, bounded by a deadline.
	deadline := time.Now().Add(2 * time.Second)
	for {
		after, err := TreeCPU(pid)
		if err != nil {
			t.Fatal(err)
		}
		if after-before >= 50*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU moved %v in 2 s of busy loop", after-before)
		}
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
	}
	rss, err := TreeRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || rss > 4<<30 {
		t.Errorf("RSS = %d bytes, want between 1 MiB and 4 GiB", rss)
	}
	m, err := TreeMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Anon and file-backed add up to the RSS (plus shared memory, none
	// here), each non-zero: a test binary has a heap and mapped text.
	if m.Anon <= 0 || m.File <= 0 || m.Anon+m.File > m.RSS || m.Anon+m.File < m.RSS-(1<<20) {
		t.Errorf("Memory = %+v, want anon + file = RSS, both > 0", m)
	}
	if got := Tree(pid); len(got) == 0 || got[0] != pid {
		t.Errorf("Tree(%d) = %v, want it to start with the pid", pid, got)
	}
}
