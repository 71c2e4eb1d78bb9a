//! Connections counted by the address they come from, so that one sender (or one runner VM)
//! cannot take what every other needs: `serve` and the credential broker give each address at
//! most a share of their connections. IPv6 addresses count by their /64 (what one host is
//! usually given); IPv4-mapped IPv6 addresses as the IPv4 address they carry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// At most `cap` connections at once per address.
#[derive(Debug)]
pub struct PerAddress {
    cap: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of an address, given back when dropped.
#[derive(Debug)]
pub struct AddressPermit {
    limiter: Arc<PerAddress>,
    key: IpAddr,
}

/// The key an address counts under.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl PerAddress {
    pub fn new(cap: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            cap: cap.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more connection of `ip`, unless it holds `cap` already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPermit> {
        let key = key(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressPermit {
            limiter: self.clone(),
            key,
        })
    }

    /// How many connections `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut held = self.limiter.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_cap_and_gets_it_back() {
        let l = PerAddress::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let _p2 = l.try_acquire(a).unwrap();
        assert!(l.try_acquire(a).is_none());
        assert!(
            l.try_acquire(b).is_some(),
            "another address is not affected"
        );
        drop(p1);
        let _p3 = l.try_acquire(a).expect("a permit given back is free again");
        assert_eq!(l.held(a), 2);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let l = PerAddress::new(1);
        let _p = l.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(l.try_acquire("2001:db8::ffff:2".parse().unwrap()).is_none());
        assert!(l.try_acquire("2001:db8:0:1::1".parse().unwrap()).is_some());
        let _q = l.try_acquire("192.0.2.7".parse().unwrap()).unwrap();
        assert!(l.try_acquire("::ffff:192.0.2.7".parse().unwrap()).is_none());
    }
}
