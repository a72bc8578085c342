//! Which addresses a request may connect to. IPv4 embedded in IPv6 (mapped, compatible,
//! NAT64, 6to4, Teredo) is unwrapped first, so that `::ffff:127.0.0.1` is loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::{IpNet, Ipv6Net};

/// What an address is, for the egress policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable: any allowed host may connect to it.
    Global,
    /// Private, loopback, link-local, reserved, documentation or multicast: only hosts the
    /// operator named in `egress_internal_hosts` may connect to it.
    NonGlobal,
    /// A cloud metadata service: never, whoever asks.
    Metadata,
}

/// The cloud metadata services' addresses, blocked even for the operator's internal hosts.
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// Networks that are not globally routable (IPv4 after unwrapping).
const NON_GLOBAL: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

static NON_GLOBAL_NETS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    NON_GLOBAL
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
});

/// The class of `address`.
pub fn classify(address: IpAddr) -> AddressClass {
    let canonical = unwrap_ipv4(address);
    if METADATA.contains(&address) || METADATA.contains(&canonical) {
        return AddressClass::Metadata;
    }
    if NON_GLOBAL_NETS.iter().any(|net| net.contains(&canonical)) {
        AddressClass::NonGlobal
    } else {
        AddressClass::Global
    }
}

/// The IPv4 address an IPv6 address carries in one of its embedding forms, else itself.
pub fn unwrap_ipv4(address: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = address else {
        return address;
    };
    embedded_ipv4(v6).map_or(address, IpAddr::V4)
}

fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bytes = v6.octets();
    let segments = v6.segments();
    let tail = || Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
    let within = |net: &str| net.parse::<Ipv6Net>().is_ok_and(|net| net.contains(&v6));
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped);
    }
    // IPv4-compatible ::a.b.c.d (deprecated); :: and ::1 stay themselves.
    if segments[..6].iter().all(|s| *s == 0) && segments[6] != 0 {
        return Some(tail());
    }
    if within("64:ff9b::/96") || within("64:ff9b:1::/48") {
        return Some(tail());
    }
    if within("2002::/16") {
        return Some(Ipv4Addr::new(bytes[2], bytes[3], bytes[4], bytes[5]));
    }
    if within("2001::/32") {
        // Teredo: the client's address, inverted, in the last 32 bits.
        let client = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        return Some(Ipv4Addr::from(!client));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn the_table_parses() {
        assert_eq!(NON_GLOBAL_NETS.len(), NON_GLOBAL.len());
    }

    #[test]
    fn public_addresses_are_global() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "93.184.216.34",
        ] {
            assert_eq!(class(address), AddressClass::Global, "{address}");
        }
    }

    #[test]
    fn every_listed_range_is_non_global() {
        for address in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert_eq!(class(address), AddressClass::NonGlobal, "{address}");
        }
    }

    #[test]
    fn embedded_ipv4_is_unwrapped() {
        for address in [
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:c0a8:0101::1",
            // Teredo carrying 127.0.0.1 inverted (0x80fffffe).
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert_eq!(class(address), AddressClass::NonGlobal, "{address}");
        }
        assert_eq!(class("::ffff:8.8.8.8"), AddressClass::Global);
        assert_eq!(class("2002:0808:0808::1"), AddressClass::Global);
    }

    #[test]
    fn metadata_addresses_are_their_own_class_in_every_form() {
        for address in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert_eq!(class(address), AddressClass::Metadata, "{address}");
        }
    }
}
