// Command pulumi-tfgen-openstack writes the plugin's Pulumi schema (`schema --out DIR`); the bootstrap runs it
// before building pulumi-resource-openstack, which embeds the result.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"openstack-deploy/toolchain/provider"
)

func main() {
	tfgen.Main("openstack", provider.Version, provider.Provider())
}
