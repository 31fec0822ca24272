package launch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
)

// AccessEntry is the part of a sidecar access-log line the demo and the
// tests read (see sidecar/accesslog for the full line).
type AccessEntry struct {
	Logger          string `json:"logger"`
	Listener        string `json:"listener"`
	Status          int    `json:"status"`
	ResponseFlags   string `json:"response_flags"`
	UpstreamCluster string `json:"upstream_cluster"`
	UpstreamHost    string `json:"upstream_host"`
	Attempts        int    `json:"attempts"`
	Path            string `json:"path"`
	RequestID       string `json:"request_id"`
}

// ReadAccessLog returns the access-log lines (zap JSON, logger "access")
// of a sidecar log file, skipping every other line.
func ReadAccessLog(path string) ([]AccessEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []AccessEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"access"`)) {
			continue
		}
		var e AccessEntry
		if json.Unmarshal(line, &e) != nil || !strings.HasSuffix(e.Logger, "access") {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
