//! fjord-controller
