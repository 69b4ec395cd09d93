//! The address policy: which device addresses a worker may connect to (and, through the API,
//! which addresses a device may be given).
//!
//! A device's address is chosen by whoever may edit devices; without a policy, a person allowed
//! to edit a device could point it at the cloud metadata service or at a service on the worker's
//! own loopback interface and have the worker send it credentials. [`AddressPolicy`] is the
//! `security.allowed_networks` setting:
//!
//! - with no networks listed (the default), every address is allowed except link-local
//!   (169.254.0.0/16, fe80::/10), the cloud metadata addresses ([`METADATA_ADDRESSES`]),
//!   unspecified and multicast addresses, and loopback (127.0.0.0/8, ::1) unless loopback is
//!   allowed explicitly ([`AddressPolicy::allow_loopback`]);
//! - with networks listed, only addresses inside one of them are allowed (an address listed
//!   explicitly is allowed even if it would be refused by default: the administrator chose it).
//!
//! Host names are resolved and every address they resolve to must be allowed.

use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Cloud instance metadata and platform service addresses, refused by default: AWS, GCP, Azure,
/// OpenStack and Oracle (169.254.169.254, also covered by link-local), AWS IPv6
/// (fd00:ec2::254), Azure's wire server (168.63.129.16) and Alibaba Cloud (100.100.100.200).
pub const METADATA_ADDRESSES: &[&str] = &[
    "169.254.169.254",
    "fd00:ec2::254",
    "168.63.129.16",
    "100.100.100.200",
];

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("'{s}' is not a network in CIDR notation"));
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) reach IPv4 hosts: judge them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Which device addresses may be connected to (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
    allow_loopback: bool,
}

impl AddressPolicy {
    /// The default policy: everything but link-local, metadata, unspecified, multicast and
    /// loopback addresses.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy allowing only the listed networks (`security.allowed_networks`); an empty list
    /// is the default policy.
    pub fn with_networks<S: AsRef<str>>(networks: &[S]) -> Result<Self> {
        let allowed = networks
            .iter()
            .map(|n| n.as_ref().parse::<Cidr>())
            .collect::<Result<Vec<_>>>()?;
        Ok(AddressPolicy {
            allowed,
            allow_loopback: false,
        })
    }

    /// Allows (or not) the loopback addresses and the unspecified address (which reaches the
    /// local host): for one-shot runs by the host's owner, the demo and tests, whose simulated
    /// devices listen on 127.0.0.1.
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.allow_loopback = allow;
        self
    }

    /// Whether loopback addresses are allowed.
    pub fn loopback_allowed(&self) -> bool {
        self.allow_loopback
    }

    /// The networks listed (empty: the default policy).
    pub fn networks(&self) -> &[Cidr] {
        &self.allowed
    }

    /// Why `ip` is refused, or `None` when it is allowed.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|n| n.contains(ip)) {
            return None;
        }
        let local = ip.is_loopback() || ip.is_unspecified();
        if local && self.allow_loopback {
            return None;
        }
        if !self.allowed.is_empty() {
            return Some(format!(
                "{ip} is outside security.allowed_networks ({})",
                self.allowed
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if local {
            return Some(format!(
                "{ip} is a loopback address (allowed only with security.allow_loopback)"
            ));
        }
        if METADATA_ADDRESSES
            .iter()
            .filter_map(|m| m.parse::<IpAddr>().ok())
            .any(|m| m == ip)
        {
            return Some(format!("{ip} is a cloud metadata address"));
        }
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        if link_local {
            return Some(format!("{ip} is a link-local address"));
        }
        if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Some(format!("{ip} is a multicast or broadcast address"));
        }
        None
    }

    /// Checks one IP address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<()> {
        match self.refusal(ip) {
            Some(why) => Err(Error::new(
                ErrorKind::AddressRefused,
                format!("address refused: {why}"),
            )),
            None => Ok(()),
        }
    }

    /// Checks a device address if it is an IP literal (`[...]` brackets allowed); `None` for a
    /// host name, which only [`AddressPolicy::check_host`] can judge (by resolving it).
    pub fn check_literal(&self, host: &str) -> Option<Result<()>> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        literal.parse::<IpAddr>().ok().map(|ip| self.check_ip(ip))
    }

    /// Checks a device address: an IP literal directly, a host name by resolving it (every
    /// address it resolves to must be allowed). A name that does not resolve is a retryable
    /// `connection` error.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<()> {
        if let Some(checked) = self.check_literal(host) {
            return checked;
        }
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Connection, format!("resolving {host}")).with_source(e)
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("{host} resolved to no address"),
            ));
        }
        for a in addrs {
            self.check_ip(a.ip())
                .map_err(|e| e.context(format!("{host} resolves to {}", a.ip())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_contains() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.1.200.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(n.contains(ip("::ffff:10.1.0.9")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_refuses_link_local_metadata_and_loopback() {
        let p = AddressPolicy::default();
        for refused in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "168.63.129.16",
            "100.100.100.200",
            "127.0.0.1",
            "127.8.8.8",
            "::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            let e = p.check_ip(ip(refused)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AddressRefused, "{refused}");
        }
        for allowed in ["10.0.0.1", "192.168.1.1", "203.0.113.5", "2001:db8::1"] {
            assert!(p.check_ip(ip(allowed)).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn loopback_only_when_allowed() {
        let p = AddressPolicy::default().allow_loopback(true);
        assert!(p.check_ip(ip("127.0.0.1")).is_ok());
        assert!(p.check_ip(ip("::1")).is_ok());
        // Allowing loopback does not open link-local or metadata.
        assert!(p.check_ip(ip("169.254.169.254")).is_err());
    }

    #[test]
    fn listed_networks_are_the_only_ones_allowed() {
        let p = AddressPolicy::with_networks(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        assert!(p.check_ip(ip("10.9.9.9")).is_ok());
        assert!(p.check_ip(ip("2001:db8::5")).is_ok());
        let e = p.check_ip(ip("192.168.0.1")).unwrap_err();
        assert!(e.message().contains("outside security.allowed_networks"));
        assert!(p.check_ip(ip("127.0.0.1")).is_err());
        // An explicit listing is the administrator's choice.
        let lab = AddressPolicy::with_networks(&["127.0.0.0/8"]).unwrap();
        assert!(lab.check_ip(ip("127.0.0.1")).is_ok());
        assert!(AddressPolicy::with_networks(&["10.0.0.0/40"]).is_err());
    }

    #[tokio::test]
    async fn host_names_are_resolved_and_every_address_checked() {
        let p = AddressPolicy::default();
        let e = p.check_host("localhost", 22).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddressRefused);
        assert!(p.check_host("[::1]", 22).await.is_err());
        assert!(p.check_host("192.0.2.1", 22).await.is_ok());
        let lo = AddressPolicy::default().allow_loopback(true);
        assert!(lo.check_host("localhost", 22).await.is_ok());
    }
}
