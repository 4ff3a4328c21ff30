"""Pulumi dynamic providers: the resource kinds this project implements itself, each with a real `read`.

A stack's state names each resource's provider by module path and class (Pulumi pickles the provider object; a
class of an importable module is pickled by reference, so the code that runs is always this checkout's). A
refresh or destroy of an existing stack imports these names: moving or renaming one strands every stack that
recorded it. `STABLE` lists them; tests/test_providers.py fails when a provider is not among them. To move one,
keep an alias at the old path (`OldName = NewName`) for as long as stacks may hold it.
"""

STABLE = (
    "components.providers.generated._PasswordProvider",
    "components.providers.generated._SshKeyProvider",
    "components.providers.guest._GuestImageProvider",
    "components.providers.lab.BaseImageProvider",
    "components.providers.lab.BridgeProvider",
    "components.providers.lab.HostPackagesProvider",
    "components.providers.lab.NodeNetworkProvider",
    "components.providers.lab.NodeProvider",
    "components.providers.lab.NodeRootfsProvider",
    "components.providers.lab.PackageCacheProvider",
    "components.providers.mariadb._DatabaseProvider",
    "components.providers.release._ReleaseProvider",
    "components.providers.remote._AccessProvider",
    "components.providers.remote._CommandProvider",
    "components.providers.remote._FileProvider",
    "components.providers.remote._PackagesProvider",
)
