//! fjord-log
