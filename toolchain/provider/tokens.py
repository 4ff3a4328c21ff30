#!/usr/bin/env python3
"""The Pulumi token of every Terraform resource and data source the `openstack` plugin serves, as the pinned
pulumi_openstack SDK spells it. The SDK is the truth for tokens (they are irregular: `openstack_compute_flavor_v2`
is `openstack:compute/flavor:Flavor`, `openstack_identity_endpoint_v3` is `openstack:identity/endpointV3:EndpointV3`),
so tokens are never guessed: each Terraform name is matched to the SDK's tokens by a rule (same module, same
name ignoring case and underscores, the `_vN` suffix optional), and what the rule cannot decide is in IRREGULAR.

Run it when either side is bumped (`venv/bin/python toolchain/provider/tokens.py`): it lists the Terraform names
with `go run ./cmd/tf-names`, reads the installed SDK, and rewrites tokens.json, which the plugin embeds.
tests/test_openstack_plugin.py checks the built plugin's schema against the SDK.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "openstack_"
# Terraform's module word -> the SDK's module (the rest are spelled the same).
MODULES = {"db": "database", "fw": "firewall", "lb": "loadbalancer"}
# Where the rule finds none or more than one token. A second token is the deprecated alias the SDK still
# carries (an old `index/...` name): the plugin serves both for the same Terraform resource.
IRREGULAR = {
    "resources": {
        "openstack_blockstorage_quotaset_v3": ["openstack:blockstorage/quoteSetV3:QuoteSetV3"],
        "openstack_objectstorage_object_v1": ["openstack:objectstorage/containerObject:ContainerObject"],
    },
    "dataSources": {
        "openstack_dns_zone_v2": ["openstack:dns/getDnsZone:getDnsZone"],
        # The old spelling of openstack_lb_flavor_v2, which has getFlavorV2.
        # A data source whose old token the SDK still carries, without the `get`.
        "openstack_workflow_workflow_v2": ["openstack:index/getWorkflowWorkflowV2:getWorkflowWorkflowV2",
                                           "openstack:index/workflowWorkflowV2:WorkflowWorkflowV2"],
        "openstack_loadbalancer_flavor_v2": ["openstack:loadbalancer/getLbFlavorDeprecated:getLbFlavorDeprecated"],
        "openstack_sharedfilesystem_availability_zones_v2":
            ["openstack:sharedfilesystem/getAvailbilityZones:getAvailbilityZones"],
    },
}


def sdk_tokens(package_dir: str) -> dict[str, set[str]]:
    """Every resource and function token the installed pulumi_openstack defines."""
    init = open(os.path.join(package_dir, "__init__.py")).read()
    modules = json.loads(re.search(r'resource_modules="""(.*?)"""', init, re.S).group(1))
    functions: set[str] = set()
    for path in glob.glob(os.path.join(package_dir, "**", "*.py"), recursive=True):
        functions |= set(re.findall(r"invoke(?:_output)?\('(openstack:[^']+)'", open(path).read()))
    return {"resources": {t for m in modules for t in m["classes"]}, "dataSources": functions}


def _norm(s: str) -> str:
    return s.replace("_", "").lower()


def candidates(kind: str, tf_name: str, tokens: set[str]) -> list[str]:
    words = tf_name[len(PREFIX):].split("_")
    module, body = MODULES.get(words[0], words[0]), words[1:]
    names = {_norm("".join(body))}
    if body and re.fullmatch(r"v\d+", body[-1]):
        names.add(_norm("".join(body[:-1])))
    found = []
    for token in tokens:
        _, path, member = token.split(":")
        name = _norm(member)
        if kind == "dataSources":
            if not name.startswith("get"):
                continue
            name = name[3:]
        token_module = path.split("/")[0]
        if (token_module == module and name in names) or \
                (token_module == "index" and name in {_norm(words[0]) + n for n in names}):
            found.append(token)
    # The current token first, the deprecated `index/...` alias after it.
    return sorted(found, key=lambda t: (t.split(":")[1].startswith("index/"), t))


def table(tf_names: dict[str, list[str]], sdk: dict[str, set[str]]) -> dict:
    out: dict = {"resources": {}, "dataSources": {}, "sdkOnly": {}}
    for kind in ("resources", "dataSources"):
        for name in sorted(tf_names[kind]):
            found = IRREGULAR[kind].get(name) or candidates(kind, name, sdk[kind])
            if not found or len(found) > 2 or (len(found) == 2 and not found[1].split(":")[1].startswith("index/")):
                sys.exit(f"tokens.py: {kind} {name}: the rule finds {found or 'no token'}; add it to IRREGULAR")
            out[kind][name] = found
        used = [t for ts in out[kind].values() for t in ts]
        twice = sorted({t for t in used if used.count(t) > 1})
        if twice:
            sys.exit(f"tokens.py: {kind}: {', '.join(twice)} matched by more than one name; add them to IRREGULAR")
        for token in sorted(sdk[kind] - set(used)):
            out["sdkOnly"][token] = "the SDK defines it; terraform-provider-openstack at the pinned version has no such " + \
                ("resource" if kind == "resources" else "data source")
    return out


def main() -> None:
    import pulumi_openstack

    names = subprocess.run(["go", "run", "./cmd/tf-names"], cwd=HERE, check=True, capture_output=True, text=True)
    tf = json.loads(names.stdout)
    out = table(tf, sdk_tokens(os.path.dirname(pulumi_openstack.__file__)))
    with open(os.path.join(HERE, "tokens.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"tokens.json: {len(out['resources'])} resources, {len(out['dataSources'])} data sources, "
          f"{len(out['sdkOnly'])} SDK tokens without a Terraform counterpart")


if __name__ == "__main__":
    main()
