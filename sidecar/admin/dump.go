package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

// dumpSections names the config_dump sections, in xDS order.
var dumpSections = []struct{ key, typeURL string }{
	{"listeners", xdsclient.ListenerType},
	{"route_configurations", xdsclient.RouteType},
	{"clusters", xdsclient.ClusterType},
	{"cluster_load_assignments", xdsclient.EndpointType},
}

type configDump struct {
	XDS       *xdsclient.Status            `json:"xds,omitempty"`
	AppliedAt time.Time                    `json:"applied_at"`
	Versions  map[string]string            `json:"versions"`
	Resources map[string][]json.RawMessage `json:"resources"`
}

func (s *Server) configDump(w http.ResponseWriter, _ *http.Request) {
	var st *xdsclient.Status
	if s.opts.Status != nil {
		v := s.opts.Status()
		st = &v
	}
	a := s.opts.Applied()
	if a == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "no complete configuration yet", "xds": st})
		return
	}
	out := configDump{XDS: st, AppliedAt: a.At, Versions: a.Versions, Resources: make(map[string][]json.RawMessage)}
	opts := protojson.MarshalOptions{UseProtoNames: true}
	for _, sec := range dumpSections {
		list := make([]json.RawMessage, 0, len(a.Resources[sec.typeURL]))
		for _, m := range a.Resources[sec.typeURL] {
			b, err := opts.Marshal(m)
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			list = append(list, b)
		}
		out.Resources[sec.key] = list
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
