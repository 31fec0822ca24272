package launch

import (
	"fmt"

	"github.com/seed-a778acb4/consulate/internal/freeport"
)

// FreePorts returns n distinct ports free on 127.0.0.1 (TCP and UDP) right
// now, never the same port twice in one process (see internal/freeport).
func FreePorts(n int) ([]int, error) { return freeport.Take(n) }

// Addr is 127.0.0.1:port.
func Addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
