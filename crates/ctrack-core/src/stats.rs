//! The `conntrack -S` counters (kernel `struct ip_conntrack_stat`, §11.7). Each is
//! incremented exactly where the kernel increments it. Per worker, summed on read.

use core::ops::AddAssign;

/// One worker's counters (the kernel keeps them per CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// NAT found a proposed tuple already in use.
    pub found: u32,
    /// No L4 protocol, no tuple, tracker rejected.
    pub invalid: u32,
    /// Inserted by ctnetlink (never on the packet path).
    pub insert: u32,
    /// Confirm failed (dying, chain too long, unresolved clash).
    pub insert_failed: u32,
    /// Allocation failed (table full), tracker returned DROP, unresolvable clash.
    pub drop: u32,
    /// Entries evicted by early drop.
    pub early_drop: u32,
    /// ICMP error path rejected the packet (`icmp_error` in /proc).
    pub error: u32,
    /// Lookup restarted (nulls mismatch; never in a single-threaded table).
    pub search_restart: u32,
    /// Clash resolved (`clashres` in /proc).
    pub clash_resolve: u32,
    /// Hash chain too long at confirm (`chainlength` in /proc).
    pub chaintoolong: u32,
    /// Entries created from an expectation.
    pub expect_new: u32,
    /// Expectations inserted.
    pub expect_create: u32,
    /// Expectations removed.
    pub expect_delete: u32,
}

impl AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.found += o.found;
        self.invalid += o.invalid;
        self.insert += o.insert;
        self.insert_failed += o.insert_failed;
        self.drop += o.drop;
        self.early_drop += o.early_drop;
        self.error += o.error;
        self.search_restart += o.search_restart;
        self.clash_resolve += o.clash_resolve;
        self.chaintoolong += o.chaintoolong;
        self.expect_new += o.expect_new;
        self.expect_create += o.expect_create;
        self.expect_delete += o.expect_delete;
    }
}

impl Stats {
    /// (name, value) pairs in `conntrack -S` attribute order.
    pub fn fields(&self) -> [(&'static str, u32); 10] {
        [
            ("found", self.found),
            ("invalid", self.invalid),
            ("insert", self.insert),
            ("insert_failed", self.insert_failed),
            ("drop", self.drop),
            ("early_drop", self.early_drop),
            ("error", self.error),
            ("search_restart", self.search_restart),
            ("clash_resolve", self.clash_resolve),
            ("chaintoolong", self.chaintoolong),
        ]
    }
}
