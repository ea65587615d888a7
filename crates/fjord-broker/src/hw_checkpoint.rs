//! The high watermark persisted per partition (Kafka keeps the same number
//! in `replication-offset-checkpoint`), in `<partition dir>/high-watermark-checkpoint`
//! with the offset-checkpoint text format (`0\n<offset>\n`).
//!
//! A restarted replica of a multi-replica partition starts from it instead of
//! trusting its own log end, which may hold records the ISR never had.
//! Written every `replica.high.watermark.checkpoint.interval.ms` and on
//! shutdown, so it may lag: a lower high watermark is always safe (it only
//! hides committed records until followers report again).

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::path::Path;

use fjord_types::Offset;

const FILE: &str = "high-watermark-checkpoint";
const TMP: &str = "high-watermark-checkpoint.tmp";

/// The checkpointed high watermark; `None` if there is none or it is
/// malformed. An I/O error is the caller's (a log directory failure).
pub fn read(dir: &Path) -> io::Result<Option<Offset>> {
    let text = match fs::read_to_string(dir.join(FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut lines = text.lines().map(str::trim);
    let parsed = match (lines.next(), lines.next().map(str::parse::<Offset>)) {
        (Some("0"), Some(Ok(offset))) if offset >= 0 => Some(offset),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring malformed high watermark checkpoint");
    }
    Ok(parsed)
}

/// Replace the checkpoint atomically (write, fsync, rename).
pub fn write(dir: &Path, hw: Offset) -> io::Result<()> {
    let tmp = dir.join(TMP);
    let mut f = fs::File::create(&tmp)?;
    f.write_all(format!("0\n{hw}\n").as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(FILE))?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        write(dir.path(), 42).expect("write");
        write(dir.path(), 43).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(43));
        fs::write(dir.path().join(FILE), "0\n-3\n").expect("write");
        assert_eq!(read(dir.path()).expect("read"), None);
        fs::write(dir.path().join(FILE), "7\n3\n").expect("write");
        assert_eq!(read(dir.path()).expect("read"), None);
    }
}
