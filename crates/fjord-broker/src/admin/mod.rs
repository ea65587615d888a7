//! The admin service: topic administration (`topics`), topic and broker
//! configs (`configs`: DescribeConfigs and the alter APIs), leader elections
//! (`elect_leaders`) and partition reassignments (`reassignment`). Each call
//! is validated here, committed through the controller, and answered once
//! this broker has applied the result, so the caller can use it at once.
//!
//! It owns what it needs (the broker's settings, a controller handle, the
//! metadata cache) and nothing of the replicas: a new admin API lands here,
//! not on the `Broker`.

mod acls;
mod configs;
mod elect_leaders;
mod quotas;
mod reassignment;
mod scram;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use fjord_controller::{Controller, MetadataImage};

pub use elect_leaders::ElectionOutcome;
pub use reassignment::{OngoingReassignment, ReassignmentOutcome};

use crate::config::BrokerConfig;
use crate::metadata_cache::MetadataCache;

/// How long an admin call waits for its change to be applied locally.
pub(crate) const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AdminService {
    config: BrokerConfig,
    controller: Controller,
    cache: MetadataCache,
}

impl AdminService {
    pub(crate) fn new(config: BrokerConfig, controller: Controller, cache: MetadataCache) -> Self {
        AdminService {
            config,
            controller,
            cache,
        }
    }

    fn metadata(&self) -> Arc<MetadataImage> {
        self.cache.image()
    }

    /// `auto.create.topics.enable`, dynamic value included. Asked on every
    /// Metadata request that allows auto-creation, so it reads the one
    /// value rather than building the whole effective config.
    pub fn auto_create_topics_enable(&self) -> bool {
        let image = self.metadata();
        let layers = self.config.dynamic_layers(&image.broker_configs);
        fjord_config::dynamic_value(&layers, "auto.create.topics.enable")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(self.config.auto_create_topics_enable)
    }

    async fn wait_applied(
        &self,
        timeout: Duration,
        ready: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        self.cache.wait_for(timeout, ready).await
    }
}
