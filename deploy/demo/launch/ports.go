package launch

import (
	"fmt"
	"net"
	"sync"
)

var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now,
// never the same port twice in one process. (Another process can still
// take one before it is bound; callers that start a listener report the
// bind error.)
func FreePorts(n int) ([]int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	var got []int
	for tries := 0; len(got) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("no %d free ports on 127.0.0.1", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		// DNS and serf also bind UDP on the same number.
		u, uerr := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if uerr != nil || handedOut.ports[p] {
			if u != nil {
				u.Close()
			}
			continue
		}
		u.Close()
		handedOut.ports[p] = true
		got = append(got, p)
	}
	return got, nil
}

// Addr is 127.0.0.1:port.
func Addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
