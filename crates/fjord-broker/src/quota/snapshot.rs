//! Which quota applies to a (user, client id), by Kafka's eight levels of
//! precedence (the "Quotas" section of Kafka's operations docs, and
//! `ClientQuotaManager`'s default callback), resolved per quota kind: the
//! most specific entity that sets *this* key wins.
//!
//! | level | entity                          | rate shared by        |
//! |-------|---------------------------------|-----------------------|
//! | 1     | user=U, client-id=C             | (U, C)                |
//! | 2     | user=U, client-id=default       | (U, C)                |
//! | 3     | user=U                          | U, all its clients    |
//! | 4     | user=default, client-id=C       | (U, C)                |
//! | 5     | user=default, client-id=default | (U, C)                |
//! | 6     | user=default                    | U, all its clients    |
//! | 7     | client-id=C                     | C, all its users      |
//! | 8     | client-id=default               | C, all its users      |
//!
//! The "shared by" column is Kafka's metric tags: the sensor the rate is
//! kept in. The tables are keyed by `String` and looked up with `&str`, so a
//! resolution allocates nothing.

use std::collections::HashMap;
use std::sync::Arc;

use fjord_controller::{ClientQuotaImage, QuotaEntityName, QuotaKey};

/// The quota kinds brokers enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`.
    Produce,
    /// `consumer_byte_rate`.
    Fetch,
    /// `request_percentage`.
    Request,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 3] = [QuotaKind::Produce, QuotaKind::Fetch, QuotaKind::Request];

    fn of(key: QuotaKey) -> Option<QuotaKind> {
        match key {
            QuotaKey::ProducerByteRate => Some(QuotaKind::Produce),
            QuotaKey::ConsumerByteRate => Some(QuotaKind::Fetch),
            QuotaKey::RequestPercentage => Some(QuotaKind::Request),
            QuotaKey::ControllerMutationRate => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Whose rate a quota is measured on (Kafka's metric tags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One (user, client id) pair.
    UserClient,
    /// A user, across its client ids.
    User,
    /// A client id, across users.
    Client,
}

/// The quota that applies, and on whose rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Applied {
    pub bound: f64,
    pub scope: Scope,
}

/// One user's quotas, or the default user's.
#[derive(Debug, Default)]
struct UserLevels {
    /// (user, client-id=C).
    clients: HashMap<String, f64>,
    /// (user, client-id=default).
    default_client: Option<f64>,
    /// The user alone.
    own: Option<f64>,
}

/// The eight levels for one quota kind.
#[derive(Debug, Default)]
struct Table {
    users: HashMap<String, UserLevels>,
    default_user: UserLevels,
    clients: HashMap<String, f64>,
    default_client: Option<f64>,
}

impl Table {
    fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.default_user.clients.is_empty()
            && self.default_user.default_client.is_none()
            && self.default_user.own.is_none()
            && self.clients.is_empty()
            && self.default_client.is_none()
    }

    fn resolve(&self, user: &str, client_id: &str) -> Option<Applied> {
        let applied = |bound: f64, scope| Applied { bound, scope };
        let levels = |l: &UserLevels| {
            l.clients
                .get(client_id)
                .map(|&b| applied(b, Scope::UserClient))
                .or_else(|| l.default_client.map(|b| applied(b, Scope::UserClient)))
                .or_else(|| l.own.map(|b| applied(b, Scope::User)))
        };
        self.users
            .get(user)
            .and_then(levels)
            .or_else(|| levels(&self.default_user))
            .or_else(|| {
                self.clients
                    .get(client_id)
                    .map(|&b| applied(b, Scope::Client))
            })
            .or_else(|| self.default_client.map(|b| applied(b, Scope::Client)))
    }

    fn insert(&mut self, user: Option<&QuotaEntityName>, client: Option<&QuotaEntityName>, v: f64) {
        let name = |n: &QuotaEntityName| n.as_wire().map(str::to_owned);
        match (user, client) {
            (Some(u), c) => {
                let levels = match name(u) {
                    Some(u) => self.users.entry(u).or_default(),
                    None => &mut self.default_user,
                };
                match c.map(name) {
                    None => levels.own = Some(v),
                    Some(None) => levels.default_client = Some(v),
                    Some(Some(c)) => {
                        levels.clients.insert(c, v);
                    }
                }
            }
            (None, Some(c)) => match name(c) {
                Some(c) => {
                    self.clients.insert(c, v);
                }
                None => self.default_client = Some(v),
            },
            (None, None) => {}
        }
    }
}

/// Every quota of an image, indexed for resolution.
#[derive(Debug)]
pub struct QuotaSnapshot {
    /// The image this was built from (a publish of the same `Arc` is a no-op).
    pub(crate) source: Arc<ClientQuotaImage>,
    tables: [Table; 3],
    /// Per kind: whether any quota of the kind exists (the fast path).
    active: [bool; 3],
}

impl QuotaSnapshot {
    pub fn build(source: Arc<ClientQuotaImage>) -> Self {
        let mut tables: [Table; 3] = Default::default();
        for (entity, values) in &source.entities {
            for (key, value) in values {
                if let Some(kind) = QuotaKind::of(*key) {
                    tables[kind.index()].insert(
                        entity.user.as_ref(),
                        entity.client_id.as_ref(),
                        value.0,
                    );
                }
            }
        }
        let active = [0, 1, 2].map(|i| !tables[i].is_empty());
        QuotaSnapshot {
            source,
            tables,
            active,
        }
    }

    /// Whether no quota brokers enforce is set at all.
    pub fn is_empty(&self) -> bool {
        self.active == [false; 3]
    }

    /// Whether any quota of `kind` is set.
    pub fn active(&self, kind: QuotaKind) -> bool {
        self.active[kind.index()]
    }

    /// The quota of `kind` for `user` (the principal's name) using
    /// `client_id`, if one applies.
    pub fn resolve(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<Applied> {
        if !self.active(kind) {
            return None;
        }
        self.tables[kind.index()].resolve(user, client_id)
    }
}

#[cfg(test)]
mod tests {
    use fjord_controller::{ClientQuotaAlteration, ClientQuotaEntity, QuotaValue};

    use super::*;

    fn name(n: &str) -> Option<QuotaEntityName> {
        Some(if n == "<default>" {
            QuotaEntityName::Default
        } else {
            QuotaEntityName::Name(n.into())
        })
    }

    /// Build an image with producer_byte_rate = `value` on each entity.
    fn snapshot(entities: &[(Option<&str>, Option<&str>, f64)]) -> QuotaSnapshot {
        let mut image = ClientQuotaImage::default();
        let alterations: Vec<_> = entities
            .iter()
            .map(|&(u, c, v)| ClientQuotaAlteration {
                entity: ClientQuotaEntity {
                    user: u.and_then(name),
                    client_id: c.and_then(name),
                },
                ops: vec![(QuotaKey::ProducerByteRate, Some(QuotaValue(v)))],
            })
            .collect();
        image.alter(&alterations);
        QuotaSnapshot::build(Arc::new(image))
    }

    /// Kafka's precedence: remove the most specific level one at a time
    /// and the next one applies, with the scope Kafka's metric tags give.
    #[test]
    fn eight_levels_in_order() {
        let levels: [(Option<&str>, Option<&str>, f64, Scope); 8] = [
            (Some("alice"), Some("app"), 1.0, Scope::UserClient),
            (Some("alice"), Some("<default>"), 2.0, Scope::UserClient),
            (Some("alice"), None, 3.0, Scope::User),
            (Some("<default>"), Some("app"), 4.0, Scope::UserClient),
            (Some("<default>"), Some("<default>"), 5.0, Scope::UserClient),
            (Some("<default>"), None, 6.0, Scope::User),
            (None, Some("app"), 7.0, Scope::Client),
            (None, Some("<default>"), 8.0, Scope::Client),
        ];
        for first in 0..levels.len() {
            let entities: Vec<_> = levels[first..]
                .iter()
                .map(|&(u, c, v, _)| (u, c, v))
                .collect();
            let snap = snapshot(&entities);
            let (_, _, bound, scope) = levels[first];
            assert_eq!(
                snap.resolve(QuotaKind::Produce, "alice", "app"),
                Some(Applied { bound, scope }),
                "from level {}",
                first + 1
            );
        }
        assert_eq!(
            snapshot(&[]).resolve(QuotaKind::Produce, "alice", "app"),
            None
        );
    }

    /// Another user or client falls through to the defaults, not to
    /// alice's or app's own quotas; other kinds are not affected.
    #[test]
    fn names_do_not_leak_and_kinds_are_separate() {
        let snap = snapshot(&[
            (Some("alice"), Some("app"), 1.0),
            (Some("alice"), None, 3.0),
            (None, Some("app"), 7.0),
            (None, Some("<default>"), 8.0),
        ]);
        let at = |u, c| snap.resolve(QuotaKind::Produce, u, c).map(|a| a.bound);
        assert_eq!(at("alice", "other"), Some(3.0));
        assert_eq!(at("bob", "app"), Some(7.0));
        assert_eq!(at("bob", "other"), Some(8.0));
        assert!(!snap.active(QuotaKind::Fetch));
        assert_eq!(snap.resolve(QuotaKind::Fetch, "alice", "app"), None);
    }
}
