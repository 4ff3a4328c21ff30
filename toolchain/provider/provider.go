// Package provider is the `openstack` Pulumi resource plugin's provider info: the Terraform OpenStack
// provider served through the Terraform bridge, with the token of every resource and data source taken
// from the pinned pulumi_openstack SDK (tokens.json, written by tokens.py). Both commands under cmd/ use it:
// pulumi-tfgen-openstack generates the schema, pulumi-resource-openstack is the plugin and embeds it.
package provider

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/terraform-provider-openstack/terraform-provider-openstack/v3/openstack"
)

// Version is stamped by the bootstrap (-ldflags -X): the version in the pinned SDK's pulumi-plugin.json,
// which is the version the engine asks the plugin cache for.
var Version = "0.0.0-unstamped"

//go:embed tokens.json
var tokensJSON []byte

// tokenTable maps each Terraform name to its SDK tokens: the current one, then an optional deprecated alias.
type tokenTable struct {
	Resources   map[string][]string `json:"resources"`
	DataSources map[string][]string `json:"dataSources"`
}

// Property names the SDK spells differently from the bridge's default (a Terraform `outputs` would clash
// with every resource's own outputs). tests/test_openstack_plugin.py compares every resource's properties.
var fieldNames = map[string]map[string]string{
	"openstack_orchestration_stack_v1": {"outputs": "stackOutputs"},
}

func module(token string) string { // "openstack:compute/flavor:Flavor" -> "compute"
	return strings.SplitN(strings.Split(token, ":")[1], "/", 2)[0]
}

// Provider is the bridge's view of the Terraform provider with the SDK's tokens.
func Provider() tfbridge.ProviderInfo {
	var table tokenTable
	if err := json.Unmarshal(tokensJSON, &table); err != nil {
		panic(fmt.Sprintf("tokens.json: %v", err))
	}
	info := tfbridge.ProviderInfo{
		P:                       shimv2.NewProvider(openstack.Provider()),
		Name:                    "openstack",
		Version:                 Version,
		Description:             "OpenStack cloud resources, from the Terraform OpenStack provider (openstack-deploy's build).",
		GitHubOrg:               "terraform-provider-openstack",
		TFProviderModuleVersion: "v3",
		Resources:               map[string]*tfbridge.ResourceInfo{},
		DataSources:             map[string]*tfbridge.DataSourceInfo{},
	}
	for name, toks := range table.Resources {
		info.Resources[name] = &tfbridge.ResourceInfo{Tok: tokens.Type(toks[0])}
		for field, pulumiName := range fieldNames[name] {
			if info.Resources[name].Fields == nil {
				info.Resources[name].Fields = map[string]*tfbridge.SchemaInfo{}
			}
			info.Resources[name].Fields[field] = &tfbridge.SchemaInfo{Name: pulumiName}
		}
	}
	for name, toks := range table.DataSources {
		info.DataSources[name] = &tfbridge.DataSourceInfo{Tok: tokens.ModuleMember(toks[0])}
	}
	// A deprecated alias is a second token served by a copy of the same Terraform resource.
	for name, toks := range table.Resources {
		if len(toks) == 2 {
			info.RenameResourceWithAlias(name, tokens.Type(toks[1]), tokens.Type(toks[0]), module(toks[1]),
				module(toks[0]), info.Resources[name])
		}
	}
	for name, toks := range table.DataSources {
		if len(toks) == 2 {
			info.RenameDataSource(name, tokens.ModuleMember(toks[1]), tokens.ModuleMember(toks[0]), module(toks[1]),
				module(toks[0]), info.DataSources[name])
		}
	}
	return info
}
