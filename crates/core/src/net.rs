//! Which network addresses the server may be asked to call on a user's behalf (webhooks, and later upstream
//! providers): only globally routable unicast ones. Everything a user could use to reach the server's own host
//! or network is refused, including the IPv6 forms that embed an IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address (not this host, not a private, shared, reserved, documentation,
/// benchmarking, multicast or translation range).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => public_v4(v),
        IpAddr::V6(v) => public_v6(v),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

/// IANA's IPv4 special-purpose registry, every range that is not globally reachable (and 6to4's relay anycast).
const V4_REFUSED: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata services live here)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

fn public_v4(ip: Ipv4Addr) -> bool {
    !V4_REFUSED.iter().any(|(net, bits)| in_v4(ip, *net, *bits))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    // An IPv4-mapped address is an IPv4 connection: judge the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    // Only global unicast (2000::/3) is routable; this alone excludes ::, ::1, IPv4-compatible ::/96,
    // NAT64 64:ff9b::/96 and 64:ff9b:1::/48, discard 100::/64, ULA fc00::/7, link-local fe80::/10, site-local
    // fec0::/10 and multicast ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let refused = [
        // IETF protocol assignments (Teredo 2001::/32 and ORCHID among them), which can tunnel to anything.
        s[0] == 0x2001 && s[1] < 0x0200,
        // documentation
        s[0] == 0x2001 && s[1] == 0x0db8,
        // 6to4: embeds an IPv4 address, private ones included
        s[0] == 0x2002,
        // documentation (RFC 9637)
        s[0] & 0xfff0 == 0x3ff0,
    ];
    !refused.iter().any(|r| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_local_private_and_translated_form() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a} must be refused");
        }
    }

    #[test]
    fn admits_public_unicast() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "193.0.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a} must be admitted");
        }
    }
}
