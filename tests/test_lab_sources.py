"""Reading the host's apt sources for the lab's package cache: Debian archives only, both file formats."""

from components.providers.lab import cache_url, debian_sources

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""
ONE_LINE = """# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://thirdparty.example/apt cloud-sdk-bookworm main
deb http://other.example/debian/ bookworm main
deb-src http://other.example/debian bookworm main
"""
DISABLED = """Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no
"""


def test_debian_archives_of_both_formats_and_no_third_party():
    found = debian_sources(
        {"/etc/apt/sources.list.d/debian.sources": DEB822, "/etc/apt/sources.list": ONE_LINE,
         "/etc/apt/sources.list.d/off.sources": DISABLED},
        "bookworm",
    )
    assert found == [
        {"uri": "http://other.example/debian", "suites": ["bookworm"], "components": ["main"]},
        {"uri": "http://mirror.example/debian", "suites": ["bookworm", "bookworm-updates"], "components": ["main"]},
        {"uri": "http://mirror.example/debian-security", "suites": ["bookworm-security"], "components": ["main"]},
    ]


def test_a_node_of_another_release_gets_the_same_archives_for_its_own_suite():
    assert debian_sources({"x.sources": DEB822}, "trixie") == [
        {"uri": "http://mirror.example/debian", "suites": ["trixie", "trixie-updates"], "components": ["main"]},
        {"uri": "http://mirror.example/debian-security", "suites": ["trixie-security"], "components": ["main"]},
    ]


def test_an_archive_listed_twice_is_one():
    twice = {"a.list": "deb http://mirror.example/debian bookworm main\ndeb http://mirror.example/debian trixie main\n"}
    assert debian_sources(twice, "trixie") == [
        {"uri": "http://mirror.example/debian", "suites": ["trixie"], "components": ["main"]}]


def test_third_party_suites_are_left_out():
    assert debian_sources({"a.list": "deb http://thirdparty.example/apt cloud-sdk-bookworm main\n"}, "trixie") == []


def test_nodes_reach_an_archive_through_the_cache():
    assert cache_url("10.66.0.1", 3143, "http://mirror.example/debian") == "http://10.66.0.1:3143/mirror.example/debian"
