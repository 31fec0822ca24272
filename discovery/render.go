package discovery

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// renderConfig renders an opaque Consul Config map (proxy, upstream,
// proxy-defaults) as strings, the model's form: strings as they are,
// numbers in decimal without exponent, bools as true/false, null as "",
// nested values as compact JSON.
func renderConfig(m map[string]any) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = renderValue(v)
	}
	return out
}

func renderValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case json.Number:
		return v.String()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}
