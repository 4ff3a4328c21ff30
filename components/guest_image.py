"""The lab's guest image: a small bootable raw disk made from Debian packages only (no cloud image can be
downloaded here), which boots like CirrOS does for OpenStack's tests.

The guest's own files are in templates/guest/ (init's table, the boot script, the DHCP hook, a curl on top of
wget). This module packs them, the distribution kernel's virtio modules, busybox-static, dropbear and the
libraries it needs into a gzip'd cpio initramfs, and puts that and the kernel on one FAT partition made
bootable by syslinux: with sfdisk, mkfs.fat, mtools and syslinux on a plain file, no loop device, no mount.
The packages come from this machine's apt sources by `apt-get download` and are read with `dpkg-deb`; nothing
is installed for the guest on this machine (only the build's own tools, if missing).

Reproducible: every package is pinned by apt's own record (the version and SHA256 that apt would download),
every timestamp is SOURCE_DATE_EPOCH and every identifier is fixed, so two builds are byte-identical. The image
is cached under a key of those packages, this file and the guest's files, so a second `build` is a lookup.

No Pulumi here: a dynamic provider calls `build`. `scripts/guest-image` is the command.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import json
import lzma
import os
import posixpath
import re
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

from components import here

IMAGE_VERSION = "1"  # the guest's own version, in its banner: raise it when what the guest does changes
NAME = "openstack-deploy guest"  # the banner's first words: what a test looks for in the console log
SOURCE_DATE_EPOCH = 1767225600  # 2026-01-01 00:00:00 UTC: every timestamp inside the image
# 96 MiB boots (the guest then has 20 MiB available; 128 MiB is comfortable); at 80 MiB the kernel runs out of
# memory unpacking the initramfs, and at 64 MiB syslinux cannot load it (notes/lab.md).
MIN_RAM_MIB = 96

KERNEL_PACKAGE = "linux-image-amd64"  # the metapackage: it names the kernel of the day
BUSYBOX_PACKAGE = "busybox-static"
DROPBEAR_PACKAGE = "dropbear-bin"  # with the packages its libraries come from (its Depends, recursively)
# The drivers a Nova guest needs, in load order; which ones are modules is read from the kernel package.
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
           "failover", "net_failover", "virtio_net", "virtio_blk")
# What the guest relies on and cannot load: raw sockets for DHCP, /dev, PTYs for SSH, the serial console,
# a gzip'd initramfs.
KERNEL_BUILT_IN = ("CONFIG_PACKET", "CONFIG_UNIX", "CONFIG_INET", "CONFIG_DEVTMPFS", "CONFIG_UNIX98_PTYS",
                   "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_BLK_DEV_INITRD", "CONFIG_RD_GZIP", "CONFIG_TMPFS")
ARCHITECTURES = ("amd64", "all")  # the guest's: records of this machine's other (multiarch) architectures are skipped
LIBRARY_DIR = "lib/x86_64-linux-gnu"  # in the guest; one of the dynamic loader's default directories
LIBRARY_SEARCH = (LIBRARY_DIR, "usr/lib/x86_64-linux-gnu", "lib", "usr/lib", "lib64")  # in the packages

DISK_BYTES = 16 * 1024 * 1024
SECTOR = 512
PARTITION_START = 2048  # sectors: 1 MiB, as partitioning tools align
DISK_LABEL_ID = "0x4f534447"  # the MBR's disk identifier ("OSDG")
VOLUME_ID = "4f534447"
VOLUME_LABEL = "OSDGUEST"
MBR_CODE = "/usr/lib/syslinux/mbr/mbr.bin"  # 440 bytes of boot code that starts the bootable partition
# The build's tools on this machine: command (or file) -> the Debian package that has it.
HOST_TOOLS = {"mcopy": "mtools", "mkfs.fat": "dosfstools", "syslinux": "syslinux", MBR_CODE: "syslinux-common",
              "sfdisk": "fdisk", "faketime": "faketime", "gzip": "gzip", "dpkg-deb": "dpkg"}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST_DIR = os.path.join(ROOT, "templates", "guest")
# The guest's files: (file in templates/guest/, path in the guest, mode).
GUEST_FILES = (
    ("inittab", "etc/inittab", 0o644),
    ("rcS", "etc/init.d/rcS", 0o755),
    ("udhcpc.script", "usr/share/udhcpc/default.script", 0o755),
    ("curl", "usr/bin/curl", 0o755),
    ("sudo", "usr/bin/sudo", 0o755),
    ("profile", "etc/profile", 0o644),
    ("passwd", "etc/passwd", 0o644),
    ("group", "etc/group", 0o644),
    ("shells", "etc/shells", 0o644),
    ("nsswitch.conf", "etc/nsswitch.conf", 0o644),
    ("hosts", "etc/hosts", 0o644),
)
SYSLINUX_CFG = "syslinux.cfg"  # in templates/guest/, copied to the FAT partition's root as it is


class GuestImageError(RuntimeError):
    """One line that says what failed."""


class AptUnavailable(GuestImageError):
    """apt does not offer a package (or a file of one): maybe its lists are stale."""


@dataclass(frozen=True)
class Image:
    path: str
    sha256: str
    size: int  # bytes; also the disk's virtual size
    key: str  # of every input: also in the guest's banner as its build
    kernel_release: str
    packages: Mapping[str, str]  # name -> version of every package the image is made from
    min_ram_mib: int = MIN_RAM_MIB
    built: bool = False  # False: found in the cache

    def manifest(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("path", "built")}


# ------------------------------------------------------------------------------------- apt's records (pure)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str
    sha256: str
    filename: str  # the pool file's name, which the download cache keeps it under
    depends: tuple[str, ...] = ()  # the first alternative of each Pre-Depends and Depends

    @property
    def pin(self) -> str:
        return f"{self.name}={self.version}"


def parse_records(text: str) -> list[dict[str, str]]:
    """Paragraphs of a Debian control file (as `apt-cache show` prints them); continuation lines joined."""
    records, fields, last = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                records.append(fields)
            fields, last = {}, None
        elif line[0] in " \t" and last:
            fields[last] += "\n" + line.strip()
        elif ":" in line:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    if fields:
        records.append(fields)
    return records


def first_alternatives(depends: str) -> list[str]:
    """`libc6 (>= 2.34), foo:any | bar` -> ['libc6', 'foo']: the package apt picks when none is installed."""
    names = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        if first:
            names.append(re.split(r"[\s(:\[<]", first, maxsplit=1)[0])
    return names


def package_from_record(fields: Mapping[str, str]) -> Package:
    depends = ", ".join(v for v in (fields.get("Pre-Depends"), fields.get("Depends")) if v)
    return Package(name=fields["Package"], version=fields["Version"], architecture=fields["Architecture"],
                   sha256=fields["SHA256"], filename=posixpath.basename(fields["Filename"]),
                   depends=tuple(first_alternatives(depends)))


def kernel_package_name(meta: Package) -> str:
    """The real kernel package that the metapackage depends on (linux-image-6.1.0-57-amd64, say)."""
    for name in meta.depends:
        if name.startswith("linux-image-"):
            return name
    raise GuestImageError(f"{meta.name} {meta.version} depends on no linux-image-* package")


def cache_key(packages: Iterable[Package], sources: Mapping[str, bytes]) -> str:
    """Changes with any package's version or file and with any source (this module, the guest's files)."""
    digest = hashlib.sha256()
    for p in sorted(packages, key=lambda p: p.name):
        digest.update(f"package {p.name} {p.version} {p.architecture} {p.sha256}\n".encode())
    for name in sorted(sources):
        digest.update(f"source {name} {len(sources[name])}\n".encode())
        digest.update(sources[name])
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------ ELF and modules (pure)


def _c_string(data: bytes, offset: int) -> str:
    return data[offset:data.index(b"\0", offset)].decode()


def elf_dynamic(data: bytes, name: str = "file") -> tuple[Optional[str], list[str]]:
    """(program interpreter, NEEDED sonames) of a 64-bit little-endian ELF executable or library."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise GuestImageError(f"{name}: not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic, interpreter = [], None, None
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
        elif p_type == 3:  # PT_INTERP
            interpreter = data[offset:offset + filesz].rstrip(b"\0").decode()
    if dynamic is None:
        return interpreter, []
    needed, strtab = [], None
    for offset in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, offset)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED
            needed.append(value)
        elif tag == 5:  # DT_STRTAB (an address)
            strtab = next((value - v + o for v, o, size in loads if v <= value < v + size), None)
    if needed and strtab is None:
        raise GuestImageError(f"{name}: NEEDED entries but no string table")
    return interpreter, [_c_string(data, strtab + n) for n in needed]


def modinfo(data: bytes) -> dict[str, str]:
    """A kernel module's .modinfo section (name, depends, vermagic...)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise GuestImageError("not a 64-bit ELF kernel module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    names_offset = section(shstrndx)[1]
    for i in range(shnum):
        name, offset, size = section(i)
        if _c_string(data, names_offset + name) == ".modinfo":
            fields = {}
            for item in data[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    fields[key] = value
            return fields
    raise GuestImageError("kernel module without a .modinfo section")


def module_name(path: str) -> str:
    """`.../virtio-rng.ko.xz` -> `virtio_rng`, as the kernel names modules."""
    return re.sub(r"\.ko(\.(xz|gz|zst))?$", "", posixpath.basename(path)).replace("-", "_")


def module_load_order(wanted: Sequence[str], depends: Mapping[str, Sequence[str]], built_in: set[str]) -> list[str]:
    """The modules among `wanted` to load (those not built in), each after the modules it depends on; otherwise
    in `wanted`'s order. A dependency that is neither built in nor among `wanted` is an error."""
    order: list[str] = []
    loadable = [m for m in wanted if m not in built_in]

    def add(module: str, path: tuple[str, ...]) -> None:
        if module in order or module in built_in:
            return
        if module not in depends:
            raise GuestImageError(f"module {module} (needed by {path[-1]}) is neither built in nor in the guest's list")
        if module in path:
            raise GuestImageError(f"modules depend on each other in a circle: {' -> '.join(path + (module,))}")
        for dependency in depends[module]:
            add(dependency, path + (module,))
        order.append(module)

    for module in loadable:
        add(module, ("the guest",))
    return order


# --------------------------------------------------------------------------------------- initramfs (pure)


@dataclass(frozen=True)
class Entry:
    path: str  # in the guest, without the leading slash
    mode: int  # with the file type bits
    data: bytes = b""  # a file's content, or a symbolic link's target
    rdev: tuple[int, int] = (0, 0)  # a device node's major and minor


def regular(path: str, data: bytes, permissions: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | permissions, data)


def directory(path: str, permissions: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | permissions)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, permissions: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | permissions, rdev=(major, minor))


def archive_order(entries: Iterable[Entry]) -> list[Entry]:
    """Every entry once (the last one given for a path wins), each missing parent directory added, sorted by
    path, which puts each directory before what it holds."""
    by_path = {e.path.strip("/"): dataclasses.replace(e, path=e.path.strip("/")) for e in entries}
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = directory(parent)
            parent = posixpath.dirname(parent)
    return [by_path[p] for p in sorted(by_path)]


def cpio_newc(entries: Iterable[Entry], mtime: int = SOURCE_DATE_EPOCH) -> bytes:
    """A `newc` cpio archive as the kernel unpacks an initramfs, owned by root, every time `mtime`, inodes
    numbered in order: the same entries give the same bytes."""
    out = bytearray()

    def member(ino: int, mode: int, nlink: int, data: bytes, rdev: tuple[int, int], name: str) -> None:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, e in enumerate(archive_order(entries), start=1):
        member(ino, e.mode, 2 if stat.S_ISDIR(e.mode) else 1, e.data, e.rdev, e.path)
    member(0, 0, 1, b"", (0, 0), "TRAILER!!!")
    return bytes(out)


def read_cpio(data: bytes) -> list[Entry]:
    """The entries of a `newc` archive (for checks)."""
    entries, offset = [], 0
    while True:
        if data[offset:offset + 6] != b"070701":
            raise GuestImageError(f"not a newc cpio archive at byte {offset}")
        fields = [int(data[offset + 6 + 8 * i:offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        offset += 110
        name = data[offset:offset + namesize - 1].decode()
        offset += namesize + (-(offset + namesize) % 4)
        if name == "TRAILER!!!":
            return entries
        entries.append(Entry(name, mode, data[offset:offset + size], rdev))
        offset += size + (-(offset + size) % 4)


def guest_release(kernel_release: str, build: str, modules: Sequence[str]) -> str:
    """/etc/guest-release, which the boot script sources: what the banner says and which modules to load."""
    values = {"NAME": NAME, "VERSION": IMAGE_VERSION, "KERNEL": kernel_release, "BUILD": build,
              "MODULES": " ".join(modules)}
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


# ------------------------------------------------------------------------------------------ this machine


def _run(argv: Sequence[str], *, input: Optional[bytes] = None, cwd: Optional[str] = None,
         env: Optional[Mapping[str, str]] = None, timeout: float = 300) -> bytes:
    try:
        result = subprocess.run(list(argv), input=input, cwd=cwd, env=None if env is None else dict(env),
                                capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GuestImageError(f"{argv[0]}: no answer after {timeout:.0f} s") from None
    except OSError as e:
        raise GuestImageError(f"{argv[0]}: {e.strerror}") from None
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines() or ["(no message)"]
        raise GuestImageError(f"{' '.join(argv[:3])}: exit {result.returncode}: {lines[-1]}")
    return result.stdout


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def apt_update(progress: Callable[[str], None]) -> None:
    progress("apt-get update (a package was not found: the lists may be stale)")
    _run(["apt-get", "update", "-qq"], env=here.apt_env(), timeout=900)


def apt_show(names: Sequence[str]) -> dict[str, Package]:
    """apt's candidate of each name: what `apt-get download NAME` would fetch."""
    try:
        text = subprocess.run(["apt-cache", "show", "--no-all-versions", *names], capture_output=True,
                              env=here.apt_env(), timeout=120).stdout.decode()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GuestImageError(f"apt-cache show: {e}") from None
    found: dict[str, Package] = {}
    for fields in parse_records(text):
        if (fields.get("Package") in names and fields["Package"] not in found and "SHA256" in fields
                and fields.get("Architecture") in ARCHITECTURES):
            found[fields["Package"]] = package_from_record(fields)
    missing = [n for n in names if n not in found]
    if missing:
        raise AptUnavailable(f"apt cannot provide package {', '.join(missing)} (not in this machine's apt sources)")
    return found


Resolution = tuple[Package, Package, Package, list[Package]]  # kernel metapackage, kernel, busybox, dropbear's


def resolve(show: Callable[[Sequence[str]], dict[str, Package]] = apt_show) -> Resolution:
    """(kernel metapackage, kernel, busybox, [dropbear and the packages of its libraries]): one `apt-cache`
    call per level of dependencies (each call costs about 1.5 s on this machine, apt's cache being off)."""
    first = show([KERNEL_PACKAGE, BUSYBOX_PACKAGE, DROPBEAR_PACKAGE])
    meta, busybox, dropbear = first[KERNEL_PACKAGE], first[BUSYBOX_PACKAGE], first[DROPBEAR_PACKAGE]
    kernel_name = kernel_package_name(meta)
    closure = {DROPBEAR_PACKAGE: dropbear}
    wanted = [kernel_name] + [d for d in dropbear.depends if d not in closure]
    kernel = None
    while wanted:
        found = show(sorted(set(wanted)))
        if kernel is None:
            kernel = found.pop(kernel_name)
        closure.update(found)
        wanted = sorted({d for p in found.values() for d in p.depends if d not in closure})
    assert kernel is not None
    return meta, kernel, busybox, [closure[n] for n in sorted(closure)]


def ensure_host_tools(progress: Callable[[str], None]) -> None:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = sorted({package for tool, package in HOST_TOOLS.items()
                      if not (os.path.exists(tool) if tool.startswith("/") else shutil.which(tool, path=search))})
    if missing:
        progress(f"installing the build's tools on this machine: {' '.join(missing)}")
        try:
            here.install(missing, timeout=900)
        except here.InstallError as e:
            raise GuestImageError(str(e)) from None


def download(packages: Sequence[Package], debs_dir: str, progress: Callable[[str], None]) -> dict[str, str]:
    """Each package's .deb in `debs_dir` (fetched by `apt-get download` unless already there with apt's
    SHA256), by package name."""
    os.makedirs(debs_dir, exist_ok=True)
    paths = {p.name: os.path.join(debs_dir, p.filename) for p in packages}
    missing = [p for p in packages if not (os.path.exists(paths[p.name]) and _sha256_file(paths[p.name]) == p.sha256)]
    if not missing:
        return paths
    progress(f"downloading {' '.join(p.pin for p in missing)}")
    with tempfile.TemporaryDirectory(dir=debs_dir, prefix=".download-") as tmp:
        try:
            _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *(p.pin for p in missing)],
                 cwd=tmp, env=here.apt_env(), timeout=1800)
        except GuestImageError as e:
            raise AptUnavailable(str(e)) from None
        for p in missing:
            got = glob.glob(os.path.join(tmp, f"{glob.escape(p.name)}_*.deb"))
            if len(got) != 1 or _sha256_file(got[0]) != p.sha256:
                raise GuestImageError(f"apt-get download {p.pin}: no file with the SHA256 apt's lists give")
            os.replace(got[0], paths[p.name])
    return paths


@dataclass(frozen=True)
class DebFile:
    data: bytes = b""
    link: Optional[str] = None  # a symbolic link's target


def deb_files(deb: str, want: Callable[[str], bool]) -> dict[str, DebFile]:
    """The regular files and symbolic links of a package whose path (no leading `./`) `want` accepts, read
    in one pass of `dpkg-deb --fsys-tarfile`."""
    files: dict[str, DebFile] = {}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    path = posixpath.normpath(member.name).lstrip("/")  # ./boot/x -> boot/x
                    if path == "." or not want(path):
                        continue
                    if member.issym():
                        files[path] = DebFile(link=member.linkname)
                    elif member.isfile():
                        f = tar.extractfile(member)
                        assert f is not None
                        files[path] = DebFile(f.read())
        except tarfile.TarError as e:
            raise GuestImageError(f"{os.path.basename(deb)}: {e}") from None
        error = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    if proc.returncode != 0:
        raise GuestImageError(f"dpkg-deb --fsys-tarfile {os.path.basename(deb)}: exit {proc.returncode}: {error}")
    return files


def follow(files: Mapping[str, DebFile], path: str) -> Optional[str]:
    """Where `path` ends up through symbolic links inside `files` (absolute targets from the packages' root)."""
    for _ in range(16):
        f = files.get(path)
        if f is None or f.link is None:
            return path if f is not None else None
        target = f.link.lstrip("/") if f.link.startswith("/") else posixpath.join(posixpath.dirname(path), f.link)
        path = posixpath.normpath(target)
    raise GuestImageError(f"{path}: too many levels of symbolic links")


def shared_libraries(files: Mapping[str, DebFile], binary: str) -> tuple[str, dict[str, bytes]]:
    """(interpreter, {soname: content}) of everything `binary` loads, found in `files`."""
    interpreter, needed = elf_dynamic(files[binary].data, binary)
    if interpreter is None:
        raise GuestImageError(f"{binary} has no program interpreter")
    queue, libraries = list(needed) + [posixpath.basename(interpreter)], {}
    while queue:
        soname = queue.pop(0)
        if soname in libraries:
            continue
        found = next((p for d in LIBRARY_SEARCH if (p := follow(files, f"{d}/{soname}"))), None)
        if found is None:
            raise GuestImageError(f"{binary} needs {soname}, which no package of its Depends ships")
        libraries[soname] = files[found].data
        queue.extend(elf_dynamic(libraries[soname], found)[1])
    return interpreter, libraries


@dataclass(frozen=True)
class Kernel:
    release: str
    vmlinuz: bytes
    modules: dict[str, bytes]  # name -> .ko, in load order
    built_in: frozenset[str]


def read_kernel(deb: str) -> Kernel:
    module_file = re.compile(r"(usr/)?lib/modules/[^/]+/kernel/.+\.ko(\.xz|\.gz|\.zst)?")
    wanted = set(MODULES)
    files = deb_files(deb, lambda p: p.startswith("boot/vmlinuz-") or p.startswith("boot/config-")
                      or bool(re.fullmatch(r"(usr/)?lib/modules/[^/]+/modules\.builtin", p))
                      or (bool(module_file.fullmatch(p)) and module_name(p) in wanted))
    vmlinuz = [p for p in files if p.startswith("boot/vmlinuz-")]
    configs = [p for p in files if p.startswith("boot/config-")]
    builtins = [p for p in files if p.endswith("modules.builtin")]
    if len(vmlinuz) != 1 or len(configs) != 1 or len(builtins) != 1:
        raise GuestImageError(f"{os.path.basename(deb)}: expected one vmlinuz, config and modules.builtin")
    release = vmlinuz[0][len("boot/vmlinuz-"):]
    config = files[configs[0]].data.decode()
    absent = [option for option in KERNEL_BUILT_IN if f"\n{option}=y\n" not in f"\n{config}"]
    if absent:
        raise GuestImageError(f"kernel {release} lacks what the guest needs built in: {' '.join(absent)}")
    built_in = frozenset(module_name(line) for line in files[builtins[0]].data.decode().split())
    modules, depends = {}, {}
    for path, f in files.items():
        if module_file.fullmatch(path):
            data = f.data
            if path.endswith(".xz"):
                data = lzma.decompress(data)
            elif path.endswith((".gz", ".zst")):
                raise GuestImageError(f"{path}: only xz-compressed modules are handled")
            info = modinfo(data)
            modules[info.get("name", module_name(path))] = data
            depends[info.get("name", module_name(path))] = [d for d in info.get("depends", "").split(",") if d]
    order = module_load_order(MODULES, depends, set(built_in))
    return Kernel(release, files[vmlinuz[0]].data, {m: modules[m] for m in order}, built_in)


def guest_sources() -> dict[str, bytes]:
    """What the image is made of besides the packages: this module and every file in templates/guest/."""
    with open(__file__, "rb") as f:
        sources = {"components/guest_image.py": f.read()}
    for name in sorted(os.listdir(GUEST_DIR)):
        with open(os.path.join(GUEST_DIR, name), "rb") as f:
            sources[f"templates/guest/{name}"] = f.read()
    return sources


def initramfs_entries(kernel: Kernel, busybox: bytes, dropbear: bytes, interpreter: str,
                      libraries: Mapping[str, bytes], release_text: str,
                      guest_files: Mapping[str, bytes]) -> list[Entry]:
    entries = [
        symlink("init", "bin/busybox"),  # the kernel runs /init: busybox's init, which reads /etc/inittab
        regular("bin/busybox", busybox, 0o755),
        symlink("bin/sh", "busybox"),  # the boot script's interpreter, before it installs busybox's other links
        regular("usr/sbin/dropbear", dropbear, 0o755),
        char_device("dev/console", 5, 1),  # init's stdio, before devtmpfs is mounted
        regular("etc/guest-release", release_text.encode()),
        directory("etc/dropbear", 0o700),
        directory("root", 0o700),
        directory("root/.ssh", 0o700),
        directory("tmp", 0o1777),
    ]
    entries += [directory(d) for d in ("sbin", "usr/bin", "proc", "sys", "run")]  # mount points, busybox's links
    entries += [regular(f"{LIBRARY_DIR}/{soname}", data, 0o755) for soname, data in libraries.items()]
    interpreter_path = interpreter.lstrip("/")
    if posixpath.dirname(interpreter_path) != LIBRARY_DIR:
        entries.append(symlink(interpreter_path, f"/{LIBRARY_DIR}/{posixpath.basename(interpreter_path)}"))
    entries += [regular(f"lib/modules/{kernel.release}/{name}.ko", data) for name, data in kernel.modules.items()]
    entries += [regular(path, guest_files[name], mode) for name, path, mode in GUEST_FILES]
    return entries


def _faketime_env() -> dict[str, str]:
    # NO_FAKE_STAT: libfaketime would otherwise shift the files' own times (which mcopy -m keeps) by the offset
    # between the real and the frozen clock, a different amount on every run.
    return dict(os.environ, TZ="UTC", LC_ALL="C", SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), NO_FAKE_STAT="1")


def _frozen_clock() -> list[str]:
    """A prefix that runs a command with the clock stopped at SOURCE_DATE_EPOCH (FAT times come from it)."""
    return ["faketime", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(SOURCE_DATE_EPOCH))]


def make_disk(path: str, work: str, files: Mapping[str, bytes]) -> None:
    """A raw disk at `path`: an MBR with syslinux's boot code, one bootable FAT16 partition from 1 MiB to the
    end holding `files` (name -> content) and syslinux. No loop device, no mount: all on the plain file."""
    env = _faketime_env()
    with open(path, "wb") as f:
        f.truncate(DISK_BYTES)
    table = f"label: dos\nlabel-id: {DISK_LABEL_ID}\nunit: sectors\n\nstart={PARTITION_START}, type=6, bootable\n"
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", path], input=table.encode(), env=env)
    partition_kib = (DISK_BYTES // SECTOR - PARTITION_START) * SECTOR // 1024
    _run([*_frozen_clock(), "mkfs.fat", "--invariant", "-F", "16", "-n", VOLUME_LABEL, "-i", VOLUME_ID,
          "-h", str(PARTITION_START), f"--offset={PARTITION_START}", path, str(partition_kib)], env=env)
    staged = []
    for name in sorted(files):
        staged.append(os.path.join(work, name))
        with open(staged[-1], "wb") as f:
            f.write(files[name])
        os.utime(staged[-1], (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
    offset = PARTITION_START * SECTOR
    _run([*_frozen_clock(), "mcopy", "-m", "-i", f"{path}@@{offset}", *staged, "::"], env=env)
    _run([*_frozen_clock(), "syslinux", "--install", "--offset", str(offset), path], env=env)
    with open(MBR_CODE, "rb") as f:
        code = f.read(440)
    with open(path, "r+b") as f:
        f.write(code)  # the boot code only: the disk identifier and partition table after it stay


# ------------------------------------------------------------------------------------------ the build


def _cached(path: str, manifest_path: str) -> Optional[Image]:
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not os.path.exists(path) or _sha256_file(path) != manifest.get("sha256"):
        return None
    try:
        return Image(path=path, built=False, **manifest)
    except TypeError:  # a manifest of another shape: build again
        return None


def _resolution(debs_dir: str) -> Resolution:
    """`resolve`, remembered beside the downloads for as long as apt's lists, configuration and the installed
    packages stay as they are (apt-cache costs seconds here; the lookup of a cached image should not)."""
    state = hashlib.sha256()
    for pattern in ("/var/lib/apt/lists/*", "/etc/apt/**/*", "/var/lib/dpkg/status"):
        for p in sorted(glob.glob(pattern, recursive=True)):
            try:
                s = os.stat(p)
            except OSError:
                continue
            state.update(f"{p} {s.st_size} {s.st_mtime_ns}\n".encode())
    memo = os.path.join(debs_dir, f"apt-{state.hexdigest()[:16]}.json")
    try:
        with open(memo) as f:
            saved = json.load(f)
        meta, kernel, busybox, *rest = [Package(**{**p, "depends": tuple(p["depends"])}) for p in saved]
        return meta, kernel, busybox, rest
    except (OSError, ValueError, TypeError):
        pass
    meta, kernel, busybox, dropbear = resolve()
    for old in glob.glob(os.path.join(debs_dir, "apt-*.json")):
        os.remove(old)
    _write_atomically(memo, json.dumps([dataclasses.asdict(p) for p in (meta, kernel, busybox, *dropbear)]).encode())
    return meta, kernel, busybox, dropbear


def _write_atomically(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def build(cache_root: str, progress: Callable[[str], None] = print, *, debs_dir: Optional[str] = None,
          force: bool = False) -> Image:
    """The guest image: `<cache_root>/images/guest-<key>.raw`, built unless already there. `debs_dir` (default
    `<cache_root>/images/debs`) keeps the downloaded packages. `force`: build again even if cached, and fail if
    the new image is not byte-identical to the cached one."""
    images_dir = os.path.join(cache_root, "images")
    debs_dir = debs_dir or os.path.join(images_dir, "debs")
    os.makedirs(debs_dir, exist_ok=True)
    os.makedirs(images_dir, exist_ok=True)
    for attempt in (1, 2):
        try:
            return _build(images_dir, debs_dir, progress, force)
        except AptUnavailable:
            if attempt == 2:
                raise
            apt_update(progress)
            for memo in glob.glob(os.path.join(debs_dir, "apt-*.json")):
                os.remove(memo)
    raise AssertionError("unreachable")


def _build(images_dir: str, debs_dir: str, progress: Callable[[str], None], force: bool) -> Image:
    meta, kernel_pkg, busybox_pkg, dropbear_pkgs = _resolution(debs_dir)
    packages = [meta, kernel_pkg, busybox_pkg, *dropbear_pkgs]
    sources = guest_sources()
    key = cache_key(packages, sources)
    path = os.path.join(images_dir, f"guest-{key}.raw")
    manifest_path = os.path.join(images_dir, f"guest-{key}.json")
    cached = _cached(path, manifest_path)
    if cached and not force:
        return cached

    started = time.monotonic()
    progress(f"building {os.path.basename(path)}: {kernel_pkg.pin} {busybox_pkg.pin} "
             f"{' '.join(p.pin for p in dropbear_pkgs)}")
    ensure_host_tools(progress)
    debs = download([kernel_pkg, busybox_pkg, *dropbear_pkgs], debs_dir, progress)
    work = tempfile.mkdtemp(dir=images_dir, prefix=".build-")
    try:
        progress(f"reading {kernel_pkg.filename}")
        kernel = read_kernel(debs[kernel_pkg.name])
        progress(f"kernel {kernel.release}: modules {' '.join(kernel.modules)}; built in: "
                 f"{' '.join(m for m in MODULES if m in kernel.built_in) or 'none of them'}")
        busybox = deb_files(debs[busybox_pkg.name], lambda p: p == "bin/busybox").get("bin/busybox")
        if busybox is None:
            raise GuestImageError(f"{busybox_pkg.filename} has no bin/busybox")
        library_files: dict[str, DebFile] = {}
        for p in dropbear_pkgs:
            library_files.update(deb_files(debs[p.name], lambda path: path == "usr/sbin/dropbear"
                                           or posixpath.dirname(path) in LIBRARY_SEARCH))
        if "usr/sbin/dropbear" not in library_files:
            raise GuestImageError(f"{DROPBEAR_PACKAGE} has no usr/sbin/dropbear")
        interpreter, libraries = shared_libraries(library_files, "usr/sbin/dropbear")
        guest_files = {name: sources[f"templates/guest/{name}"] for name, _, _ in GUEST_FILES}
        entries = initramfs_entries(kernel, busybox.data, library_files["usr/sbin/dropbear"].data, interpreter,
                                    libraries, guest_release(kernel.release, key, list(kernel.modules)), guest_files)
        initrd = _run(["gzip", "-n", "-9", "-c"], input=cpio_newc(entries))
        progress(f"initramfs: {len(entries)} entries, {len(initrd) / 1e6:.1f} MB gzip'd "
                 f"(dropbear with {' '.join(sorted(libraries))})")
        raw = os.path.join(work, "disk.raw")
        make_disk(raw, work, {"vmlinuz": kernel.vmlinuz, "initrd.gz": initrd,
                              "syslinux.cfg": sources[f"templates/guest/{SYSLINUX_CFG}"]})
        image = Image(path=path, sha256=_sha256_file(raw), size=os.path.getsize(raw), key=key,
                      kernel_release=kernel.release, built=True,
                      packages={p.name: p.version for p in sorted(packages, key=lambda p: p.name)})
        if cached and cached.sha256 != image.sha256:
            raise GuestImageError(f"the rebuilt image (sha256 {image.sha256}) differs from the cached one "
                                  f"(sha256 {cached.sha256}): the build is not reproducible")
        _write_atomically(manifest_path, json.dumps(image.manifest(), indent=1, sort_keys=True).encode())
        os.replace(raw, path)  # last: the image's presence means the build is complete
        progress(f"built in {time.monotonic() - started:.1f} s" + (", identical to the cached image" if cached else ""))
        return image
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/guest-image",
        description="Build the lab's guest image (a raw disk made from Debian packages), or find it in the cache.")
    parser.add_argument("--force", action="store_true",
                        help="build again even if cached, and fail unless the result is byte-identical")
    parser.add_argument("--cache-root", help="default: $OSD_CACHE or ~/.cache/openstack-deploy")
    args = parser.parse_args(argv)
    from .lab import cache_root  # (here, not at the top: the builder itself takes its cache root as an argument)

    try:
        image = build(args.cache_root or cache_root(), lambda line: print(f"guest-image: {line}", flush=True),
                      force=args.force)
    except GuestImageError as e:
        print(f"guest-image: {e}", file=sys.stderr)
        return 1
    print(image.path)
    print(f"sha256 {image.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
