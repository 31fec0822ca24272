package decode

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestAllowListNamesRealFields catches typos: every allow-listed message
// and field must exist in the linked Envoy protos.
func TestAllowListNamesRealFields(t *testing.T) {
	for msg, fields := range allowed {
		t.Run(string(msg), func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(msg)
			if err != nil {
				t.Fatalf("message %s: %v", msg, err)
			}
			md, ok := d.(protoreflect.MessageDescriptor)
			if !ok {
				t.Fatalf("%s is a %T, not a message", msg, d)
			}
			for _, f := range fields {
				if md.Fields().ByName(f) == nil {
					t.Errorf("%s has no field %s", msg, f)
				}
			}
		})
	}
	for name := range allowedAny {
		if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
			t.Errorf("Any type %s is not linked in: %v", name, err)
		}
	}
}
