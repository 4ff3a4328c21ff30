"""The guest image builder (components/guest_image.py) and the guest's own scripts (templates/guest/).

Fast: the pure parts (apt's records, the cache key, module order, the cpio archive, ELF reading) and the guest's
shell scripts run by this machine's /bin/sh with fake `ip`/`wget` commands, as tables of inputs and the commands
they emit. Slow (about half a minute, root and apt needed): two real builds into two cache roots must give the
same bytes, and the disk must hold what boots. Booting it is left to a manual QEMU check (README of the notes).
"""

import dataclasses
import gzip
import json
import os
import shutil
import stat
import subprocess

import pytest

from components import guest_image as gi

GUEST = gi.GUEST_DIR


# ------------------------------------------------------------------------------------------ apt's records

SHOW = """\
Package: dropbear-bin
Version: 2022.83-1+deb12u3
Architecture: amd64
Depends: libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), libtomcrypt1 (>= 1.18.2) | libfoo, zlib1g:any (>= 1:1.1.4)
Description: lightweight SSH2 server
 and more text
Filename: pool/main/d/dropbear/dropbear-bin_2022.83-1+deb12u3_amd64.deb
SHA256: 44ac

Package: zlib1g
Version: 1:1.2.13.dfsg-1
Architecture: amd64
Pre-Depends: libc6 (>= 2.14)
Filename: pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb
SHA256: 99aa
"""


def test_records_give_versions_files_and_first_alternatives():
    records = gi.parse_records(SHOW)
    assert [r["Package"] for r in records] == ["dropbear-bin", "zlib1g"]
    assert records[0]["Description"] == "lightweight SSH2 server\nand more text"
    dropbear, zlib = (gi.package_from_record(r) for r in records)
    assert dropbear.depends == ("libc6", "libcrypt1", "libtomcrypt1", "zlib1g")
    assert dropbear.filename == "dropbear-bin_2022.83-1+deb12u3_amd64.deb"
    assert zlib.pin == "zlib1g=1:1.2.13.dfsg-1" and zlib.depends == ("libc6",)


def _package(name, depends=(), version="1"):
    return gi.Package(name, version, "amd64", f"sha-{name}-{version}", f"{name}_{version}_amd64.deb", tuple(depends))


def test_resolve_follows_dropbears_depends_level_by_level_and_not_the_kernels():
    repository = {p.name: p for p in [
        _package("linux-image-amd64", ["linux-image-6.1.0-57-amd64"], "6.1.192-3"),
        _package("linux-image-6.1.0-57-amd64", ["kmod", "linux-base", "initramfs-tools"], "6.1.192-3"),
        _package("busybox-static"),
        _package("dropbear-bin", ["libc6", "libtomcrypt1"]),
        _package("libtomcrypt1", ["libc6", "libgmp10"]),
        _package("libgmp10", ["libc6"]),
        _package("libc6", ["libgcc-s1"]),
        _package("libgcc-s1", ["libc6"]),
    ]}
    calls = []

    def show(names):
        calls.append(list(names))
        return {n: repository[n] for n in names}

    meta, kernel, busybox, dropbear = gi.resolve(show)
    assert meta.name == "linux-image-amd64" and kernel.name == "linux-image-6.1.0-57-amd64"
    assert busybox.name == "busybox-static"
    assert [p.name for p in dropbear] == ["dropbear-bin", "libc6", "libgcc-s1", "libgmp10", "libtomcrypt1"]
    assert calls == [["linux-image-amd64", "busybox-static", "dropbear-bin"],
                     ["libc6", "libtomcrypt1", "linux-image-6.1.0-57-amd64"], ["libgcc-s1", "libgmp10"]]


def test_a_kernel_metapackage_without_a_kernel_is_an_error():
    with pytest.raises(gi.GuestImageError, match="no linux-image"):
        gi.kernel_package_name(_package("linux-image-amd64", ["linux-base"]))


def test_the_cache_key_changes_with_any_package_version_or_file_and_any_source():
    packages = [_package("busybox-static"), _package("dropbear-bin")]
    sources = {"templates/guest/rcS": b"echo hi\n", "components/guest_image.py": b"code"}
    key = gi.cache_key(packages, sources)
    assert key == gi.cache_key(list(reversed(packages)), dict(reversed(list(sources.items()))))
    assert key != gi.cache_key([_package("busybox-static", version="2"), _package("dropbear-bin")], sources)
    assert key != gi.cache_key([dataclasses.replace(packages[0], sha256="other"), packages[1]], sources)
    assert key != gi.cache_key(packages, sources | {"templates/guest/rcS": b"echo hello\n"})
    assert key != gi.cache_key(packages, sources | {"templates/guest/new": b""})


def test_the_key_covers_every_guest_file_and_this_builder():
    sources = gi.guest_sources()
    assert "components/guest_image.py" in sources
    assert {f"templates/guest/{name}" for name in os.listdir(GUEST)} <= set(sources)


# ------------------------------------------------------------------------------------------ modules

DEPENDS = {"virtio_ring": [], "virtio": [], "virtio_pci_modern_dev": [], "virtio_pci_legacy_dev": [],
           "virtio_pci": ["virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci_legacy_dev"],
           "failover": [], "net_failover": ["failover"], "virtio_net": ["net_failover", "virtio_ring", "virtio"],
           "virtio_blk": ["virtio_ring", "virtio"]}


@pytest.mark.parametrize("wanted,built_in,expected", [
    (gi.MODULES, set(), list(gi.MODULES)),
    # a list in another order still loads each module after what it needs
    (("virtio_blk", "virtio_net", "virtio_pci", "virtio", "virtio_ring", "failover", "net_failover",
      "virtio_pci_modern_dev", "virtio_pci_legacy_dev"), set(),
     ["virtio_ring", "virtio", "virtio_blk", "failover", "net_failover", "virtio_net", "virtio_pci_modern_dev",
      "virtio_pci_legacy_dev", "virtio_pci"]),
    # a kernel with the virtio core built in loads only the rest
    (gi.MODULES, {"virtio", "virtio_ring"},
     ["virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover", "virtio_net",
      "virtio_blk"]),
])
def test_module_load_order(wanted, built_in, expected):
    order = gi.module_load_order(wanted, {m: d for m, d in DEPENDS.items() if m not in built_in}, built_in)
    assert order == expected
    for i, module in enumerate(order):
        assert not set(DEPENDS[module]) - set(order[:i]) - built_in


def test_a_module_dependency_outside_the_list_is_an_error():
    with pytest.raises(gi.GuestImageError, match="module failover .needed by net_failover. is neither built in"):
        gi.module_load_order(["net_failover"], {"net_failover": ["failover"]}, set())


def test_module_names_as_the_kernel_writes_them():
    assert gi.module_name("lib/modules/6.1.0-57-amd64/kernel/drivers/char/hw_random/virtio-rng.ko") == "virtio_rng"
    assert gi.module_name("usr/lib/modules/6.12.1/kernel/net/core/failover.ko.xz") == "failover"


# ------------------------------------------------------------------------------------------ the initramfs


def test_the_archive_lists_parents_first_sorted_once_each():
    entries = [gi.regular("usr/sbin/dropbear", b"x", 0o755), gi.symlink("init", "bin/busybox"),
               gi.regular("bin/busybox", b"old"), gi.regular("bin/busybox", b"new", 0o755),
               gi.directory("tmp", 0o1777), gi.regular("bin-extra", b"")]
    ordered = gi.archive_order(entries)
    assert [e.path for e in ordered] == ["bin", "bin-extra", "bin/busybox", "init", "tmp", "usr", "usr/sbin",
                                         "usr/sbin/dropbear"]
    assert ordered[2].data == b"new"
    assert all(stat.S_ISDIR(e.mode) and stat.S_IMODE(e.mode) == 0o755 for e in ordered if e.path in ("bin", "usr"))


def test_the_cpio_archive_is_the_same_bytes_each_time_and_reads_back():
    entries = [gi.regular("etc/inittab", b"::sysinit:/etc/init.d/rcS\n"), gi.symlink("init", "bin/busybox"),
               gi.char_device("dev/console", 5, 1), gi.directory("tmp", 0o1777)]
    archive = gi.cpio_newc(entries)
    assert archive == gi.cpio_newc(list(reversed(entries)))
    back = {e.path: e for e in gi.read_cpio(archive)}
    assert list(back) == ["dev", "dev/console", "etc", "etc/inittab", "init", "tmp"]
    assert back["etc/inittab"].data == b"::sysinit:/etc/init.d/rcS\n"
    assert back["dev/console"].rdev == (5, 1) and stat.S_ISCHR(back["dev/console"].mode)
    assert back["init"].data == b"bin/busybox" and stat.S_ISLNK(back["init"].mode)
    assert stat.S_IMODE(back["tmp"].mode) == 0o1777


@pytest.mark.skipif(not shutil.which("cpio"), reason="GNU cpio not installed")
def test_gnu_cpio_reads_the_archive_with_its_owners_and_times():
    archive = gi.cpio_newc([gi.regular("bin/busybox", b"\x7fELF", 0o755), gi.symlink("bin/sh", "busybox")])
    listing = subprocess.run(["cpio", "-tv", "--quiet"], input=archive, capture_output=True, check=True,
                             env=dict(os.environ, TZ="UTC", LC_ALL="C")).stdout.decode().splitlines()
    assert [line.split(" Jan  1  2026 ")[1] for line in listing] == ["bin", "bin/busybox", "bin/sh -> busybox"]
    assert all(" root " in line and " Jan  1  2026 " in line for line in listing)
    assert listing[1].startswith("-rwxr-xr-x") and listing[2].startswith("lrwxrwxrwx")


def test_guest_release_is_read_back_by_a_shell(tmp_path):
    path = tmp_path / "guest-release"
    path.write_text(gi.guest_release("6.1.0-57-amd64", "0123abcd", ["virtio_ring", "virtio"]))
    out = subprocess.run(["sh", "-c", '. "$0"; printf "%s|%s|%s|%s" "$NAME" "$VERSION" "$BUILD" "$MODULES"', str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert out == f"openstack-deploy guest|{gi.IMAGE_VERSION}|0123abcd|virtio_ring virtio"


def test_every_guest_file_is_packed_and_the_scripts_are_executable():
    packed = {name for name, _, _ in gi.GUEST_FILES} | {gi.SYSLINUX_CFG}
    assert packed == set(os.listdir(GUEST))
    for name, path, mode in gi.GUEST_FILES:
        with open(os.path.join(GUEST, name), "rb") as f:
            first = f.readline()
        assert (mode & 0o111 != 0) == first.startswith(b"#!/bin/sh"), name
        if first.startswith(b"#!/bin/sh"):
            subprocess.run(["sh", "-n", os.path.join(GUEST, name)], check=True)


def test_the_kernel_command_line_ends_on_the_serial_console():
    with open(os.path.join(GUEST, gi.SYSLINUX_CFG)) as f:
        append = [line.split(None, 1)[1] for line in f if line.strip().startswith("APPEND ")]
    assert len(append) == 1
    consoles = [arg for arg in append[0].split() if arg.startswith("console=")]
    assert consoles == ["console=tty0", "console=ttyS0,115200"]


# ------------------------------------------------------------------------------------------ ELF


def _host_elf(path):
    real = os.path.realpath(path)
    with open(real, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1 or os.uname().machine != "x86_64":
        pytest.skip(f"{real} is not an x86-64 ELF file")
    return data


def test_elf_dynamic_reads_a_host_binarys_interpreter_and_libraries():
    interpreter, needed = gi.elf_dynamic(_host_elf("/bin/true"))
    assert interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert needed == ["libc.so.6"]


def test_shared_libraries_follow_links_across_package_directories():
    libc = _host_elf("/lib/x86_64-linux-gnu/libc.so.6")
    loader = _host_elf("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    files = {
        "usr/sbin/tool": gi.DebFile(_host_elf("/bin/true")),
        "lib64/ld-linux-x86-64.so.2": gi.DebFile(link="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": gi.DebFile(loader),
        "usr/lib/x86_64-linux-gnu/libc.so.6": gi.DebFile(link="libc.so.6.real"),
        "usr/lib/x86_64-linux-gnu/libc.so.6.real": gi.DebFile(libc),
    }
    interpreter, libraries = gi.shared_libraries(files, "usr/sbin/tool")
    assert interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert libraries == {"libc.so.6": libc, "ld-linux-x86-64.so.2": loader}
    del files["usr/lib/x86_64-linux-gnu/libc.so.6.real"]
    with pytest.raises(gi.GuestImageError, match="needs libc.so.6"):
        gi.shared_libraries(files, "usr/sbin/tool")


# ------------------------------------------------------------------------------------------ the guest's scripts


def _fake_commands(tmp_path, **scripts):
    """A directory of commands that log their arguments to `calls` (one line each) before running `scripts`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in scripts.items():
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls"\n{body}\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


DHCP_CASES = {
    "a router": (
        dict(ip="10.0.0.5", mask="24", router="10.0.0.1", dns="10.0.0.2 10.0.0.3", domain="openstacklocal"),
        ["ip -4 addr flush dev eth0", "ip -4 addr replace 10.0.0.5/24 broadcast + dev eth0",
         "ip -4 route replace default via 10.0.0.1 dev eth0"],
        "search openstacklocal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"),
    # Neutron with a router: option 121 carries the default route too, and wins over option 3 (RFC 3442)
    "static routes and a router": (
        dict(ip="10.0.0.5", mask="24", router="10.0.0.1", mtu="1450", dns="10.0.0.2",
             staticroutes="169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1"),
        ["ip link set dev eth0 mtu 1450", "ip -4 addr flush dev eth0",
         "ip -4 addr replace 10.0.0.5/24 broadcast + dev eth0",
         "ip -4 route replace 169.254.169.254/32 via 10.0.0.2 dev eth0 onlink",
         "ip -4 route replace 0.0.0.0/0 via 10.0.0.1 dev eth0 onlink"],
        "nameserver 10.0.0.2\n"),
    # a network without a router: the metadata route and the on-link subnet only
    "no router": (
        dict(ip="192.168.5.7", mask="26", staticroutes="169.254.169.254/32 192.168.5.2 192.168.5.0/26 0.0.0.0"),
        ["ip -4 addr flush dev eth0", "ip -4 addr replace 192.168.5.7/26 broadcast + dev eth0",
         "ip -4 route replace 169.254.169.254/32 via 192.168.5.2 dev eth0 onlink",
         "ip -4 route replace 192.168.5.0/26 dev eth0"],
        None),
}


@pytest.mark.parametrize("case", sorted(DHCP_CASES))
def test_the_dhcp_hook_sets_what_the_lease_says(tmp_path, case):
    lease, expected, resolv = DHCP_CASES[case]
    bin_dir = _fake_commands(tmp_path, ip="")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "interface": "eth0", "CONSOLE": str(tmp_path / "console"),
           "RESOLV_CONF": str(tmp_path / "resolv.conf"), **lease}
    subprocess.run(["sh", os.path.join(GUEST, "udhcpc.script"), "bound"], env=env, check=True, timeout=10)
    assert (tmp_path / "calls").read_text().splitlines() == expected
    assert (tmp_path / "resolv.conf").read_text() == resolv if resolv else not (tmp_path / "resolv.conf").exists()
    console = (tmp_path / "console").read_text()
    assert console.startswith(f"udhcpc: eth0 bound {lease['ip']}/{lease['mask']} ")


def test_the_dhcp_hook_says_when_there_is_no_lease(tmp_path):
    bin_dir = _fake_commands(tmp_path, ip="")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "interface": "eth0", "CONSOLE": str(tmp_path / "console")}
    subprocess.run(["sh", os.path.join(GUEST, "udhcpc.script"), "leasefail"], env=env, check=True, timeout=10)
    assert (tmp_path / "console").read_text() == "udhcpc: eth0 no lease yet (leasefail)\n"
    assert not (tmp_path / "calls").exists()


CURL_CASES = [
    (["-s", "http://169.254.169.254/latest/meta-data/instance-id"],
     ["wget -q -O - http://169.254.169.254/latest/meta-data/instance-id"]),
    (["-sSfL", "-m", "5", "-o", "/tmp/out", "-H", "X-Auth: a b", "http://x/"],
     ["timeout 5 wget -q -O /tmp/out --header X-Auth: a b http://x/",
      "wget -q -O /tmp/out --header X-Auth: a b http://x/"]),
    (["--insecure", "--max-time", "2.5", "-d", "k=v", "https://x/"],
     ["timeout 2 wget -q -O - --no-check-certificate --post-data k=v https://x/",
      "wget -q -O - --no-check-certificate --post-data k=v https://x/"]),
]


@pytest.mark.parametrize("args,expected", CURL_CASES)
def test_curl_runs_wget_with_the_same_meaning(tmp_path, args, expected):
    bin_dir = _fake_commands(tmp_path, wget="echo body", timeout='shift; exec "$@"')
    result = subprocess.run(["sh", os.path.join(GUEST, "curl"), *args], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == expected
    assert result.stdout == "body\n"


@pytest.mark.parametrize("args,message", [
    (["-w", "%{http_code}", "http://x/"], "option -w is not supported"),
    (["-sI", "http://x/"], "option -I is not supported (in -sI)"),
    (["-m", "soon", "http://x/"], "-m soon: not a number of seconds"),
    (["http://x/", "http://y/"], "one URL only"),
    (["-s"], "no URL"),
])
def test_curl_refuses_what_it_cannot_do(tmp_path, args, message):
    bin_dir = _fake_commands(tmp_path, wget="", timeout="")
    result = subprocess.run(["sh", os.path.join(GUEST, "curl"), *args], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2 and result.stderr == f"curl: {message}\n"
    assert not (tmp_path / "calls").exists()


# ------------------------------------------------------------------------------------------ the cache


def test_a_cached_image_is_used_only_if_its_bytes_match_its_manifest(tmp_path):
    image, manifest = tmp_path / "guest-k.raw", tmp_path / "guest-k.json"
    image.write_bytes(b"disk")
    record = gi.Image(path=str(image), sha256=gi.hashlib.sha256(b"disk").hexdigest(), size=4, key="k",
                      kernel_release="6.1.0-57-amd64", packages={"busybox-static": "1"})
    manifest.write_text(json.dumps(record.manifest()))
    assert gi._cached(str(image), str(manifest)) == record
    image.write_bytes(b"disc")
    assert gi._cached(str(image), str(manifest)) is None
    manifest.unlink()
    assert gi._cached(str(image), str(manifest)) is None


# ------------------------------------------------------------------------------------------ two real builds


def _mtools(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root and apt")
def test_two_builds_are_byte_identical_and_the_disk_holds_what_boots(tmp_path):
    from components.lab import cache_root

    debs = os.path.join(cache_root(), "images", "debs")  # shared: the second build (and the next run) downloads nothing
    lines = {"first": [], "second": []}
    first = gi.build(str(tmp_path / "first"), lines["first"].append, debs_dir=debs)
    second = gi.build(str(tmp_path / "second"), lines["second"].append, debs_dir=debs)
    assert first.built and second.built
    assert first.sha256 == second.sha256 and first.key == second.key
    assert not [line for line in lines["second"] if line.startswith("downloading")]
    assert first.size == gi.DISK_BYTES < 32 * 1024 * 1024
    assert first.min_ram_mib == 96 and f"linux-image-{first.kernel_release}" in first.packages

    again = gi.build(str(tmp_path / "first"), lambda line: pytest.fail(f"built again: {line}"), debs_dir=debs)
    assert not again.built and again.sha256 == first.sha256

    with open(first.path, "rb") as f:
        mbr = f.read(512)
    assert mbr[510:] == b"\x55\xaa" and mbr[446] == 0x80  # bootable first partition
    assert int.from_bytes(mbr[454:458], "little") == gi.PARTITION_START
    image = f"{first.path}@@{gi.PARTITION_START * gi.SECTOR}"
    listing = _mtools("mdir", "-a", "-b", "-i", image, "::").split()  # -a: ldlinux.* are hidden
    assert set(listing) >= {"::/vmlinuz", "::/initrd.gz", "::/syslinux.cfg", "::/ldlinux.sys", "::/ldlinux.c32"}
    with open(os.path.join(GUEST, gi.SYSLINUX_CFG)) as f:
        assert _mtools("mtype", "-i", image, "::syslinux.cfg") == f.read()

    initrd = subprocess.run(["mtype", "-i", image, "::initrd.gz"], capture_output=True, check=True, timeout=60).stdout
    entries = {e.path: e for e in gi.read_cpio(gzip.decompress(initrd))}
    modules = f"lib/modules/{first.kernel_release}"
    for path in ("init", "bin/busybox", "usr/sbin/dropbear", "etc/inittab", "etc/init.d/rcS", "usr/bin/curl",
                 "usr/share/udhcpc/default.script", "lib64/ld-linux-x86-64.so.2", "dev/console",
                 f"{modules}/virtio_net.ko", f"{modules}/virtio_blk.ko", f"{modules}/virtio_pci.ko"):
        assert path in entries, path
    assert entries["init"].data == b"bin/busybox"
    release = entries["etc/guest-release"].data.decode()
    assert f"BUILD={first.key}\n" in release
    loaded = release.split("MODULES=", 1)[1].strip().strip("'").split()
    assert sorted(loaded) == sorted(path[len(modules) + 1:-3] for path in entries if path.startswith(modules + "/"))
    assert {"virtio_net", "virtio_blk", "virtio_pci"} <= set(loaded)
