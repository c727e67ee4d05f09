//! Connection slots of one control (or services') socket: who may hold how many connections.
//!
//! A connection is classified when it is accepted, from the peer's credentials (the kernel
//! knows them then): the supervisor's owners (root and the uid that started it) have a reserve
//! of slots nobody else can take, and may also use the shared ones; every other uid shares the
//! rest with at most `per_uid` connections at once. So no other user, however many
//! connections it opens, keeps the owner from being served, and no single uid keeps the other
//! uids out of the shared slots.
//!
//! Pure bookkeeping: the server asks `admit` at accept and calls `release` when the
//! connection ends.

use std::collections::HashMap;

/// How a peer is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// root or the supervisor's owner.
    Owner,
    /// Any other uid.
    Other,
}

/// The limits of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Slots only owners may use.
    pub owner_reserve: usize,
    /// Slots shared by everyone (owners use them once their reserve is full).
    pub shared: usize,
    /// Connections one non-owner uid may hold at once.
    pub per_uid: usize,
}

/// The limits every socket of the supervisor applies (docs/security.md).
pub const LIMITS: Limits = Limits {
    owner_reserve: 32,
    shared: 96,
    per_uid: 16,
};

/// Where an admitted connection sits; give it back to `release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    uid: u32,
    pool: Pool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Reserve,
    Shared,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This uid already holds its share.
    PerUid { uid: u32, limit: usize },
    /// Every slot this peer may use is taken.
    Pool { limit: usize },
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::PerUid { uid, limit } => write!(
                f,
                "too many connections from uid {uid} (at most {limit} at once); try again later"
            ),
            Full::Pool { limit } => write!(
                f,
                "the supervisor is serving {limit} connections already; try again later"
            ),
        }
    }
}

/// The slots in use.
#[derive(Debug)]
pub struct Table {
    limits: Limits,
    reserve_used: usize,
    shared_used: usize,
    /// Shared slots held per non-owner uid.
    by_uid: HashMap<u32, usize>,
}

impl Table {
    pub fn new(limits: Limits) -> Table {
        Table {
            limits,
            reserve_used: 0,
            shared_used: 0,
            by_uid: HashMap::new(),
        }
    }

    /// Take a slot for a connection of `uid`, or say why there is none.
    pub fn admit(&mut self, uid: u32, class: Class) -> Result<Ticket, Full> {
        match class {
            Class::Owner if self.reserve_used < self.limits.owner_reserve => {
                self.reserve_used += 1;
                Ok(Ticket {
                    uid,
                    pool: Pool::Reserve,
                })
            }
            Class::Owner if self.shared_used < self.limits.shared => {
                self.shared_used += 1;
                Ok(Ticket {
                    uid,
                    pool: Pool::Shared,
                })
            }
            Class::Owner => Err(Full::Pool {
                limit: self.limits.owner_reserve + self.limits.shared,
            }),
            Class::Other => {
                let held = self.by_uid.get(&uid).copied().unwrap_or(0);
                if held >= self.limits.per_uid {
                    return Err(Full::PerUid {
                        uid,
                        limit: self.limits.per_uid,
                    });
                }
                if self.shared_used >= self.limits.shared {
                    return Err(Full::Pool {
                        limit: self.limits.shared,
                    });
                }
                self.shared_used += 1;
                *self.by_uid.entry(uid).or_insert(0) += 1;
                Ok(Ticket {
                    uid,
                    pool: Pool::Shared,
                })
            }
        }
    }

    /// Give back the slot of an ended connection.
    pub fn release(&mut self, ticket: Ticket) {
        match ticket.pool {
            Pool::Reserve => self.reserve_used = self.reserve_used.saturating_sub(1),
            Pool::Shared => {
                self.shared_used = self.shared_used.saturating_sub(1);
                if let Some(n) = self.by_uid.get_mut(&ticket.uid) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.by_uid.remove(&ticket.uid);
                    }
                }
            }
        }
    }

    /// Connections held now.
    pub fn in_use(&self) -> usize {
        self.reserve_used + self.shared_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        owner_reserve: 2,
        shared: 4,
        per_uid: 2,
    };

    #[test]
    fn one_uid_cannot_take_more_than_its_share() {
        let mut t = Table::new(SMALL);
        let a = t.admit(1000, Class::Other).unwrap();
        t.admit(1000, Class::Other).unwrap();
        assert_eq!(
            t.admit(1000, Class::Other),
            Err(Full::PerUid {
                uid: 1000,
                limit: 2
            })
        );
        // Another uid still gets in; the first gets a slot back when one of its ends.
        t.admit(1001, Class::Other).unwrap();
        t.release(a);
        t.admit(1000, Class::Other).unwrap();
    }

    #[test]
    fn others_never_take_the_owners_reserve() {
        let mut t = Table::new(SMALL);
        for uid in [1000, 1000, 1001, 1001] {
            t.admit(uid, Class::Other).unwrap();
        }
        assert_eq!(
            t.admit(1002, Class::Other),
            Err(Full::Pool { limit: 4 }),
            "the shared slots are full"
        );
        // The owners are still served, from their reserve.
        t.admit(0, Class::Owner).unwrap();
        t.admit(1000, Class::Owner).unwrap();
        assert_eq!(t.admit(0, Class::Owner), Err(Full::Pool { limit: 6 }));
        assert_eq!(t.in_use(), 6);
    }

    #[test]
    fn owners_overflow_into_the_shared_slots_and_give_them_back() {
        let mut t = Table::new(SMALL);
        let tickets: Vec<Ticket> = (0..6).map(|_| t.admit(0, Class::Owner).unwrap()).collect();
        assert!(t.admit(0, Class::Owner).is_err());
        assert!(t.admit(1000, Class::Other).is_err());
        for ticket in tickets {
            t.release(ticket);
        }
        assert_eq!(t.in_use(), 0);
        // Owners are not held to the per-uid share.
        for _ in 0..3 {
            t.admit(0, Class::Owner).unwrap();
        }
        t.admit(1000, Class::Other).unwrap();
    }

    #[test]
    fn release_forgets_uids_with_nothing_left() {
        let mut t = Table::new(SMALL);
        let a = t.admit(7, Class::Other).unwrap();
        t.release(a);
        assert!(t.by_uid.is_empty());
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn refusals_name_the_uid_and_the_limit() {
        let m = Full::PerUid {
            uid: 65534,
            limit: 16,
        }
        .to_string();
        assert!(m.contains("uid 65534") && m.contains("at most 16"), "{m}");
    }
}
