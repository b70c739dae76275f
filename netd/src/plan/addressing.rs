//! Addresses derived from a segment's CIDR and a site's number: site N owns the N-th
//! `/site_prefix` subnet of the CIDR, and its router takes the subnet's first host address.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The LAN subnet of site `number` in `cidr` (None when the number does not fit).
pub fn site_subnet(cidr: Ipv4Net, site_prefix: u8, number: u16) -> Option<Ipv4Net> {
    if site_prefix < cidr.prefix_len() || site_prefix > 30 {
        return None;
    }
    let bits = u32::from(site_prefix - cidr.prefix_len());
    if bits < 16 && u32::from(number) >= (1u32 << bits) {
        return None;
    }
    let size = 1u64 << (32 - u32::from(site_prefix));
    let base = u64::from(u32::from(cidr.network())) + u64::from(number) * size;
    Ipv4Net::new(Ipv4Addr::from(u32::try_from(base).ok()?), site_prefix).ok()
}

/// The router's own address in its site subnet (first host), with the subnet's prefix.
pub fn router_address(subnet: Ipv4Net) -> Ipv4Net {
    let first = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    Ipv4Net::new(first, subnet.prefix_len()).expect("prefix from a valid net")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn site_subnets_follow_the_number() {
        let cidr: Ipv4Net = "10.10.0.0/16".parse().unwrap();
        assert_eq!(site_subnet(cidr, 24, 5).unwrap().to_string(), "10.10.5.0/24");
        assert_eq!(router_address(site_subnet(cidr, 24, 5).unwrap()).to_string(), "10.10.5.1/24");
        assert_eq!(site_subnet(cidr, 26, 5).unwrap().to_string(), "10.10.1.64/26");
        assert!(site_subnet(cidr, 24, 256).is_none());
    }

    proptest! {
        #[test]
        fn distinct_numbers_get_disjoint_subnets_inside_the_cidr(
            a in 1u16..1024, b in 1u16..1024, prefix in 8u8..=20, extra in 2u8..=10,
        ) {
            let cidr = Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), prefix).unwrap().trunc();
            let sp = (prefix + extra).min(30);
            let sa = site_subnet(cidr, sp, a);
            let sb = site_subnet(cidr, sp, b);
            let slots = 1u32 << (sp - prefix);
            prop_assert_eq!(sa.is_some(), u32::from(a) < slots);
            if let (Some(sa), Some(sb)) = (sa, sb) {
                prop_assert!(cidr.contains(&sa) && cidr.contains(&sb));
                prop_assert!(cidr.contains(&router_address(sa).addr()));
                prop_assert!(sa.contains(&router_address(sa).addr()));
                if a != b {
                    prop_assert!(!sa.contains(&sb.network()) && !sb.contains(&sa.network()));
                }
            }
        }
    }
}
