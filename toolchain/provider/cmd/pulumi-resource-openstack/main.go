// Command pulumi-resource-openstack is the `openstack` resource plugin, serving the schema that
// pulumi-tfgen-openstack generated from the same provider info (schema.json, written here at build time).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"openstack-deploy/toolchain/provider"
)

//go:embed schema.json
var schema []byte

func main() {
	tfbridge.Main("openstack", provider.Version, provider.Provider(), schema)
}
