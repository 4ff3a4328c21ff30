"""The `openstack` resource plugin the bootstrap builds, against the pinned pulumi_openstack SDK: installed at
the SDK's version, and every token and property the SDK can send served by the plugin's schema. A bump of
either side that breaks the mapping fails here (then rerun toolchain/provider/tokens.py)."""

import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess

import pulumi_openstack
import pytest

from tests.integration.conftest import ROOT

SDK_DIR = os.path.dirname(pulumi_openstack.__file__)
with open(os.path.join(SDK_DIR, "pulumi-plugin.json")) as f:
    SDK_PLUGIN_VERSION = json.load(f)["version"]
with open(os.path.join(ROOT, "toolchain", "provider", "tokens.json")) as f:
    TABLE = json.load(f)
_spec = importlib.util.spec_from_file_location("tokens", os.path.join(ROOT, "toolchain", "provider", "tokens.py"))
tokens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tokens)
# The bridge's own method on the provider resource, not a Terraform data source.
BRIDGE_FUNCTIONS = {"pulumi:providers:openstack/terraformConfig"}


@pytest.fixture(scope="module")
def schema(env):
    out = subprocess.run(["pulumi", "package", "get-schema", "openstack"], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def test_the_plugin_cache_has_openstack_at_the_sdks_version(env):
    out = subprocess.run(["pulumi", "plugin", "ls", "--json"], env=env, capture_output=True, text=True,
                         check=True).stdout
    found = [(p["name"], p["kind"], p["version"]) for p in json.loads(out) if p["name"] == "openstack"]
    assert found == [("openstack", "resource", SDK_PLUGIN_VERSION)]


def test_every_sdk_token_maps_to_exactly_one_terraform_resource_or_data_source(schema):
    sdk = tokens.sdk_tokens(SDK_DIR)
    for kind, section in (("resources", "resources"), ("dataSources", "functions")):
        mapped = [t for toks in TABLE[kind].values() for t in toks]
        assert len(mapped) == len(set(mapped)), f"{kind}: a token mapped twice"
        unmapped = sdk[kind] - set(mapped)
        assert unmapped <= set(TABLE["sdkOnly"]), f"{kind}: SDK tokens with no Terraform name: {sorted(unmapped)}"
        served = set(schema[section]) - BRIDGE_FUNCTIONS
        assert sdk[kind] - set(TABLE["sdkOnly"]) <= served, sorted(sdk[kind] - served)
        assert served <= sdk[kind], f"the plugin serves tokens the SDK does not know: {sorted(served - sdk[kind])}"
    for token, reason in TABLE["sdkOnly"].items():  # listed, with the reason, and really not served
        assert reason and token not in schema["resources"] and token not in schema["functions"], token


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_sdk_resource_sends_the_properties_the_plugin_takes(schema):
    init = open(os.path.join(SDK_DIR, "__init__.py")).read()
    modules = json.loads(re.search(r'resource_modules="""(.*?)"""', init, re.S).group(1))
    mismatched = {}
    for module in modules:
        sdk_module = importlib.import_module(module["fqn"])
        for token, class_name in module["classes"].items():
            params = set(inspect.signature(getattr(sdk_module, class_name)._internal_init).parameters)
            params = {p.rstrip("_") for p in params} - {"__self", "__props", "resource_name", "opts"}
            inputs = {_snake(p) for p in schema["resources"][token].get("inputProperties", {})}
            inputs.discard("resource_name")  # a property `resourceName` is `resource_name_` in Python
            params.discard("resource_name")
            if params != inputs:
                mismatched[token] = (sorted(params - inputs), sorted(inputs - params))
    assert mismatched == {}
