//! fjord-gateway
