package discovery

import (
	"fmt"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// checkExtensions refuses an entry whose Meta (proxy-defaults: Config)
// holds a "consulate_" extension key that is unknown, not meant for this
// kind of entry, or malformed (mesh.CheckExtensionKeys), like any other
// field that does not decode: the entry's last good version stays and the
// error names the key. Without this, a typo in a key would silently do
// nothing.
func checkExtensions(d *decodedEntry, ee *entryErrors) {
	var kind mesh.EntryKind
	var values map[string]string
	field := "Meta"
	switch {
	case d.proxyDefaults != nil:
		kind, values, field = mesh.KindProxyDefaults, d.proxyDefaults.Config, "Config"
	case d.serviceDefaults != nil:
		kind, values = mesh.KindServiceDefaults, d.serviceDefaults.Meta
	case d.router != nil:
		kind, values = mesh.KindServiceRouter, d.router.Meta
	case d.splitter != nil:
		kind, values = mesh.KindServiceSplitter, d.splitter.Meta
	case d.resolver != nil:
		kind, values = mesh.KindServiceResolver, d.resolver.Meta
	default:
		return
	}
	if key, err := mesh.CheckExtensionKeys(kind, values); err != nil {
		ee.add(fmt.Sprintf("%s[%s]", field, key), err)
	}
}
