//! Client quotas (Kafka's `ClientQuotaManager` and
//! `ClientRequestQuotaManager`): how much a (user, client id) may produce,
//! fetch and keep request handlers busy, and how long it is throttled
//! when it goes over.
//!
//! The quotas live in the metadata log; the metadata follower hands every
//! applied image's [`ClientQuotaImage`] to [`QuotaManager::publish`], which
//! rebuilds the resolution tables ([`QuotaSnapshot`]) only when the quotas
//! changed. A request first loads the snapshot (an `ArcSwap` load: no lock,
//! no allocation); with no quota of its kind that is all it costs. When a
//! quota applies, its rate is kept in a sensor per Kafka metric tags
//! ([`Scope`]), found in one of [`SHARDS`] maps (a read lock on that shard
//! only) and updated under the sensor's own mutex; so two clients contend
//! only when they share a rate.
//!
//! A rate is recorded after the fact (bytes appended, response bytes,
//! handling time); going over gives the throttle time Kafka's formula
//! gives ([`rate::throttle_time_ms`]), which the gateway puts in the
//! response and holds the connection's next request for.

mod rate;
mod snapshot;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use fjord_controller::ClientQuotaImage;

pub use rate::{SampledRate, throttle_time_ms};
pub use snapshot::{Applied, QuotaKind, QuotaSnapshot, Scope};

/// Sensor map shards: enough that clients on different cores rarely meet.
pub const SHARDS: usize = 16;

/// Kafka's quota sampling settings (`quota.window.num`,
/// `quota.window.size.seconds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    pub window_num: u32,
    pub window_size: Duration,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            window_num: 11,
            window_size: Duration::from_secs(1),
        }
    }
}

/// Whose rate a sensor keeps: Kafka's metric tags (an empty name where the
/// scope does not include it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct SensorKey {
    kind: QuotaKind,
    user: Box<str>,
    client_id: Box<str>,
}

type Sensor = Mutex<SampledRate>;

/// One shard's sensors, by the hash of their key.
type SensorShard = HashMap<u64, Vec<(SensorKey, Arc<Sensor>)>>;

pub struct QuotaManager {
    config: QuotaConfig,
    snapshot: ArcSwap<QuotaSnapshot>,
    /// Sensors by the hash of their key (collisions share a bucket).
    shards: [RwLock<SensorShard>; SHARDS],
    hasher: RandomState,
    /// Time zero of the sensors' millisecond clock.
    epoch: Instant,
}

impl QuotaManager {
    pub fn new(config: QuotaConfig, quotas: Arc<ClientQuotaImage>) -> Self {
        QuotaManager {
            config,
            snapshot: ArcSwap::from_pointee(QuotaSnapshot::build(quotas)),
            shards: Default::default(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Take up the quotas of a newly applied image; a no-op when they are
    /// the ones already published. Sensors stay: a changed bound applies to
    /// the rate measured so far, as in Kafka.
    pub fn publish(&self, quotas: &Arc<ClientQuotaImage>) {
        if !Arc::ptr_eq(&self.snapshot.load().source, quotas) {
            self.snapshot
                .store(Arc::new(QuotaSnapshot::build(quotas.clone())));
        }
    }

    /// The current quotas: one `ArcSwap` load. A request that finds it
    /// [`QuotaSnapshot::is_empty`] is done with quotas.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<QuotaSnapshot>> {
        self.snapshot.load()
    }

    /// The quota of `kind` that applies, if any: the whole cost of a
    /// request when no quota of its kind is set.
    pub fn applied(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<Applied> {
        self.snapshot.load().resolve(kind, user, client_id)
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.config.window_size.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn sensor(
        &self,
        kind: QuotaKind,
        applied: Applied,
        user: &str,
        client_id: &str,
    ) -> Arc<Sensor> {
        let user = match applied.scope {
            Scope::UserClient | Scope::User => user,
            Scope::Client => "",
        };
        let client_id = match applied.scope {
            Scope::UserClient | Scope::Client => client_id,
            Scope::User => "",
        };
        // Hashed and compared as borrowed strings: a request whose sensor
        // exists allocates nothing; only a new sensor owns its names.
        let hash = self.hasher.hash_one((kind, user, client_id));
        let shard = &self.shards[hash as usize % SHARDS];
        let found = |bucket: &[(SensorKey, Arc<Sensor>)]| {
            bucket
                .iter()
                .find(|(k, _)| k.kind == kind && &*k.user == user && &*k.client_id == client_id)
                .map(|(_, sensor)| sensor.clone())
        };
        if let Some(sensor) = shard
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .and_then(|bucket| found(bucket))
        {
            return sensor;
        }
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        let bucket = map.entry(hash).or_default();
        if let Some(sensor) = found(bucket) {
            return sensor;
        }
        let sensor = Arc::new(Mutex::new(SampledRate::new(
            self.config.window_num as usize,
            self.window_ms(),
            self.now_ms(),
        )));
        let key = SensorKey {
            kind,
            user: user.into(),
            client_id: client_id.into(),
        };
        bucket.push((key, sensor.clone()));
        sensor
    }

    /// Record `value` against the quota `applied` (from [`Self::applied`])
    /// and answer the throttle time in ms (0 within the quota). For
    /// [`QuotaKind::Request`] the value is handling time in nanoseconds,
    /// and the throttle is bounded by one window (Kafka's request quota).
    pub fn record(
        &self,
        kind: QuotaKind,
        applied: Applied,
        user: &str,
        client_id: &str,
        value: f64,
    ) -> u32 {
        let value = match kind {
            // Kafka's `nanosToPercentagePerSecond`: 100 % is one thread busy.
            QuotaKind::Request => value * 100.0 / 1e9,
            QuotaKind::Produce | QuotaKind::Fetch => value,
        };
        let sensor = self.sensor(kind, applied, user, client_id);
        let now_ms = self.now_ms();
        let mut rate = sensor.lock().unwrap_or_else(|p| p.into_inner());
        rate.record(value, now_ms);
        let measured = rate.measure(now_ms);
        let window_ms = rate.window_size_ms(now_ms);
        drop(rate);
        let mut throttle = throttle_time_ms(measured, applied.bound, window_ms);
        if kind == QuotaKind::Request {
            throttle = throttle.min(self.window_ms());
        }
        tracing::trace!(
            ?kind,
            user,
            client_id,
            value,
            measured,
            bound = applied.bound,
            window_ms,
            throttle,
            now_ms,
            "quota recorded"
        );
        u32::try_from(throttle).unwrap_or(u32::MAX)
    }

    /// Take back a recording (a throttled fetch answered empty, as Kafka).
    pub fn unrecord(
        &self,
        kind: QuotaKind,
        applied: Applied,
        user: &str,
        client_id: &str,
        value: f64,
    ) {
        let sensor = self.sensor(kind, applied, user, client_id);
        let now_ms = self.now_ms();
        sensor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(-value, now_ms);
    }

    /// The most a byte quota lets through in one go without a throttle
    /// (Kafka's `getMaxValueInQuotaWindow`): fetches are capped to it, so
    /// one response never exceeds what the window can absorb.
    pub fn max_value_in_window(&self, applied: Applied) -> f64 {
        applied.bound
            * f64::from(self.config.window_num.saturating_sub(1))
            * self.config.window_size.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use fjord_controller::{
        ClientQuotaAlteration, ClientQuotaEntity, QuotaEntityName, QuotaKey, QuotaValue,
    };

    use super::*;

    fn manager(key: QuotaKey, bound: f64) -> QuotaManager {
        let mut image = ClientQuotaImage::default();
        image.alter(&[ClientQuotaAlteration {
            entity: ClientQuotaEntity {
                user: None,
                client_id: Some(QuotaEntityName::Default),
            },
            ops: vec![(key, Some(QuotaValue(bound)))],
        }]);
        QuotaManager::new(QuotaConfig::default(), Arc::new(image))
    }

    /// Over the byte quota: throttled by Kafka's formula; each client id
    /// under the default client quota has a rate of its own.
    #[test]
    fn produce_throttle_per_client() {
        let m = manager(QuotaKey::ProducerByteRate, 1000.0);
        let applied = m.applied(QuotaKind::Produce, "ANONYMOUS", "a").unwrap();
        assert_eq!(
            m.record(QuotaKind::Produce, applied, "ANONYMOUS", "a", 10_000.0),
            0
        );
        // 20 000 bytes over a 10 s window: 2000/s, (2000-1000)/1000 * 10 s.
        let t = m.record(QuotaKind::Produce, applied, "ANONYMOUS", "a", 10_000.0);
        assert!((9_900..=10_000).contains(&t), "{t}");
        assert_eq!(
            m.record(QuotaKind::Produce, applied, "ANONYMOUS", "b", 10_000.0),
            0
        );
        assert!(m.applied(QuotaKind::Fetch, "ANONYMOUS", "a").is_none());
        assert_eq!(m.max_value_in_window(applied), 10_000.0);
    }

    /// Request time is percent of one thread, and its throttle is bounded
    /// by one window.
    #[test]
    fn request_percentage_bounded() {
        let m = manager(QuotaKey::RequestPercentage, 1.0);
        let applied = m.applied(QuotaKind::Request, "u", "c").unwrap();
        // 0.05 s busy over a 10 s window: 0.5 % per second.
        assert_eq!(m.record(QuotaKind::Request, applied, "u", "c", 5e7), 0);
        // 5 s busy: far over, bounded by the 1 s window.
        assert_eq!(m.record(QuotaKind::Request, applied, "u", "c", 5e9), 1_000);
    }

    #[test]
    fn publish_swaps_only_on_change() {
        let m = manager(QuotaKey::ConsumerByteRate, 10.0);
        let before = m.snapshot.load_full();
        m.publish(&before.source.clone());
        assert!(Arc::ptr_eq(&before, &m.snapshot.load_full()));
        m.publish(&Arc::new(ClientQuotaImage::default()));
        assert!(m.applied(QuotaKind::Fetch, "u", "c").is_none());
    }
}
