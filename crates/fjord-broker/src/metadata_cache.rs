//! The metadata image whose partitions are open on this broker (Kafka's
//! `MetadataCache`): what Metadata answers from, so a client is never told
//! of a partition whose log is not open yet, and what admin calls wait on to
//! answer once their change is usable here. Cheap to clone; every clone
//! sees the same images.

use std::sync::Arc;
use std::time::Duration;

use fjord_controller::MetadataImage;
use tokio::sync::watch;

#[derive(Clone)]
pub struct MetadataCache {
    applied: watch::Receiver<Arc<MetadataImage>>,
}

impl MetadataCache {
    pub(crate) fn new(applied: watch::Receiver<Arc<MetadataImage>>) -> Self {
        MetadataCache { applied }
    }

    /// The image applied last.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().clone()
    }

    /// Wait until the applied image satisfies `ready`, or `timeout`.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A receiver of every image applied from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.applied.clone()
    }
}
