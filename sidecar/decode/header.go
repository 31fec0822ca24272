package decode

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// headersToAdd decodes request/response_headers_to_add. Envoy's default
// append_action is APPEND_IF_EXISTS_OR_ADD; the deprecated append
// BoolValue, when set, picks append (true) or overwrite (false). The two
// may not both be set.
func headersToAdd(in []*corev3.HeaderValueOption, field string) ([]config.HeaderValueOption, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]config.HeaderValueOption, 0, len(in))
	for i, h := range in {
		o := config.HeaderValueOption{Key: h.GetHeader().GetKey(), Value: h.GetHeader().GetValue(), Append: true}
		if o.Key == "" {
			return nil, fmt.Errorf("%s[%d].header.key is required", field, i)
		}
		switch act := h.GetAppendAction(); {
		case h.GetAppend() != nil && act != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			return nil, fmt.Errorf("%s[%d]: append and append_action cannot both be set", field, i)
		case h.GetAppend() != nil:
			o.Append = h.GetAppend().GetValue()
		case act == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		case act == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			o.Append = false
		default:
			return nil, fmt.Errorf("%s[%d].append_action: %s is not supported", field, i, act)
		}
		out = append(out, o)
	}
	return out, nil
}
