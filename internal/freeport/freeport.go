// Package freeport hands out loopback ports for tests, the demo and
// benchmarks: one registry per process, so the Consul test harness and the
// demo launcher never hand out the same port twice in one test binary.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// Take returns n distinct ports free on 127.0.0.1 (TCP and UDP) right
// now, never the same port twice in one process.
//
// They are drawn at random below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), not from it: a port from a ":0" bind is
// released before the process that gets it binds it again, and meanwhile
// any other process's ":0" bind or outgoing connection may take it (seen
// as "bind: address already in use" with several test processes at once).
// Below the ephemeral range only another process drawing the same way can
// collide. If the range starts too low to leave room, ":0" it is.
func Take(n int) ([]int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	low, high := 0, 0
	if start := ephemeralStart(); start >= 20000 {
		low, high = 10000, start-1000
	}
	var got []int
	for tries := 0; len(got) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("no %d free ports on 127.0.0.1", n)
		}
		p := 0
		if high > low {
			p = low + rand.IntN(high-low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		p = l.Addr().(*net.TCPAddr).Port
		// DNS and serf also bind UDP on the same number.
		u, uerr := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if uerr != nil {
			continue
		}
		u.Close()
		if handedOut.ports[p] {
			continue
		}
		handedOut.ports[p] = true
		got = append(got, p)
	}
	return got, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range, 0 if
// unknown.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	start, _ := strconv.Atoi(f[0])
	return start
}
