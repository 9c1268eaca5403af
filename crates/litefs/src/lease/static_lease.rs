//! The static lease (`lease.type: static`): the candidate is the primary
//! for as long as it runs; every other node follows the primary named by
//! `lease.hostname` / `lease.advertise-url`, which describe the primary on
//! every node, as in LiteFS.

use super::PrimaryInfo;

#[derive(Debug, Clone)]
pub struct StaticLease {
    is_primary: bool,
    primary: PrimaryInfo,
}

impl StaticLease {
    pub fn new(candidate: bool, hostname: &str, advertise_url: &str) -> StaticLease {
        StaticLease {
            is_primary: candidate,
            primary: PrimaryInfo {
                hostname: hostname.to_string(),
                advertise_url: advertise_url.to_string(),
                proxy_url: None,
            },
        }
    }

    pub fn is_primary(&self) -> bool {
        self.is_primary
    }

    /// The state this lease publishes: it never changes while the node runs.
    pub fn state(&self, epoch: u64) -> super::LeaseState {
        super::LeaseState {
            is_primary: self.is_primary,
            primary: self.primary().cloned(),
            epoch,
        }
    }

    /// The primary, when this node is not it.
    pub fn primary(&self) -> Option<&PrimaryInfo> {
        (!self.is_primary).then_some(&self.primary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_is_primary_and_others_follow_it() {
        let p = StaticLease::new(true, "a", "http://a:20202");
        assert!(p.is_primary());
        assert_eq!(p.primary(), None);
        let r = StaticLease::new(false, "a", "http://a:20202");
        assert!(!r.is_primary());
        assert_eq!(r.primary().unwrap().hostname, "a");
    }
}
