// Command tf-names prints the Terraform OpenStack provider's resource and data source names as JSON,
// for tokens.py (run only when a pinned version changes; the bootstrap does not build it).
package main

import (
	"encoding/json"
	"os"

	"github.com/terraform-provider-openstack/terraform-provider-openstack/v3/openstack"
)

func main() {
	p := openstack.Provider()
	names := map[string][]string{"resources": {}, "dataSources": {}}
	for name := range p.ResourcesMap {
		names["resources"] = append(names["resources"], name)
	}
	for name := range p.DataSourcesMap {
		names["dataSources"] = append(names["dataSources"], name)
	}
	if err := json.NewEncoder(os.Stdout).Encode(names); err != nil {
		panic(err)
	}
}
