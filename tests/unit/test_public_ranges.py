"""Open ingress as any set of ranges whose union covers more than a /8 of public address space
(components.contracts.public_ranges; the policy pack's message is in test_policy)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components.contracts.public_ranges import LIMIT, NOT_PUBLIC_V4, open_ranges, public_addresses


def test_two_halves_are_the_whole_internet() -> None:
    [found] = open_ranges(["0.0.0.0/1", "128.0.0.0/1"])
    assert found.version == 4 and found.ranges == ("0.0.0.0/1", "128.0.0.0/1")
    # 2**32 less private, shared, loopback, link-local, documentation, benchmark, multicast, reserved
    assert found.public == 3_702_258_432
    assert found.describe() == ("0.0.0.0/1, 128.0.0.0/1: together 3,702,258,432 public IPv4 addresses, "
                                "more than a /8 (16,777,216)")
    assert open_ranges(["0.0.0.0/0"])[0].public == found.public


def test_a_slash_eight_is_the_limit_and_one_address_more_is_over_it() -> None:
    assert open_ranges(["1.0.0.0/8"]) == []
    assert open_ranges(["1.0.0.0/9", "1.128.0.0/9"]) == []
    [over] = open_ranges(["1.0.0.0/8", "2.0.0.0/32"])
    assert over.public == LIMIT[4] + 1


def test_overlapping_ranges_count_once() -> None:
    assert open_ranges(["1.0.0.0/8", "1.0.0.0/9", "1.2.3.0/24", "1.0.0.0/8"]) == []


def test_private_and_reserved_space_is_not_public() -> None:
    assert open_ranges(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "224.0.0.0/3"]) == []
    # 0.0.0.0/4 is 268M addresses, of which 0/8 and 10/8 are not public: still far over the limit
    [wide] = open_ranges(["0.0.0.0/4"])
    assert wide.public == 2**28 - 2 * 2**24
    # a /7 that is half private (10.0.0.0/7 = 10/8 + 11/8) holds exactly a /8 of public space
    assert open_ranges(["10.0.0.0/7"]) == []


def test_the_not_public_blocks_are_disjoint_so_their_sizes_add_up() -> None:
    for a, b in itertools.combinations(NOT_PUBLIC_V4, 2):
        assert not a.overlaps(b), (a, b)


def test_public_addresses_of_ranges_straddling_special_blocks() -> None:
    # 198.18.0.0/15 is the benchmarking block (RFC 2544): half of the /14 it sits in
    assert public_addresses(ipaddress.IPv4Network("198.16.0.0/14")) == 2**17
    # 203.0.113.0/24 is TEST-NET-3: one /24 of the /22 around it
    assert public_addresses(ipaddress.IPv4Network("203.0.112.0/22")) == 3 * 256
    assert public_addresses(ipaddress.IPv4Network("8.8.8.8/32")) == 1
    assert public_addresses(ipaddress.IPv4Network("10.1.2.3/32")) == 0


def test_ipv6_counts_global_unicast_only_and_the_limit_is_a_slash_eleven() -> None:
    [everyone] = open_ranges(["::/0"])
    assert everyone.version == 6 and everyone.public == 2**125 - 2**96  # 2000::/3 less 2001:db8::/32
    assert everyone.describe() == "::/0: about a /3 of public IPv6 space, more than a /11 (1/256 of 2000::/3)"
    assert open_ranges(["fc00::/7", "fe80::/10", "ff00::/8"]) == []
    assert open_ranges(["2000::/11"]) == []
    [halves] = open_ranges(["2000::/12", "2010::/12", "2020::/12"])
    assert halves.ranges == ("2000::/12", "2010::/12", "2020::/12")


def test_each_version_is_judged_on_its_own_and_non_cidrs_are_skipped() -> None:
    found = open_ranges(["0.0.0.0/1", "128.0.0.0/1", "2000::/11", "not-a-cidr", "10.0.0.0/8"])
    assert [(f.version, f.ranges) for f in found] == [(4, ("0.0.0.0/1", "128.0.0.0/1"))]


@pytest.mark.parametrize("cidrs", [["203.0.113.0/24", "10.20.0.0/16"], ["198.51.100.7/32"], []])
def test_the_example_stacks_ranges_are_not_open(cidrs: list[str]) -> None:
    assert open_ranges(cidrs) == []
