//! `[sasl]`: the SASL settings of the SASL_PLAINTEXT and SASL_SSL listeners,
//! Kafka's names with underscores:
//!
//! - `enabled_mechanisms` (`sasl.enabled.mechanisms`): PLAIN, SCRAM-SHA-256,
//!   SCRAM-SHA-512. Kafka's default is GSSAPI, which Fjord does not have;
//!   Fjord's is SCRAM-SHA-256 and SCRAM-SHA-512.
//! - `plain_users_file` (Fjord's; Kafka takes PLAIN users from the JAAS
//!   `user_<name>="<password>"` options): a TOML file of
//!   `name = "password"` lines, read at startup. Required when PLAIN is
//!   enabled and a listener uses SASL.
//! - `connections_max_reauth_ms` (`connections.max.reauth.ms`, 0 = off).
//! - `connection_failed_authentication_delay_ms`
//!   (`connection.failed.authentication.delay.ms`, 100).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use fjord_gateway::{PlainUsers, SaslConfig, SaslMechanism};
use serde::{Deserialize, Serialize};

use super::{ConfigError, env_list, env_parse};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SaslSection {
    pub enabled_mechanisms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_users_file: Option<PathBuf>,
    pub connections_max_reauth_ms: u64,
    pub connection_failed_authentication_delay_ms: u64,
}

impl Default for SaslSection {
    fn default() -> Self {
        let defaults = SaslConfig::default();
        SaslSection {
            enabled_mechanisms: defaults
                .enabled_mechanisms
                .iter()
                .map(|m| m.name().to_owned())
                .collect(),
            plain_users_file: None,
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: defaults
                .failed_authentication_delay
                .as_millis() as u64,
        }
    }
}

impl SaslSection {
    /// `FJORD_SASL_ENABLED_MECHANISMS` (comma-separated),
    /// `FJORD_SASL_PLAIN_USERS_FILE`, `FJORD_CONNECTIONS_MAX_REAUTH_MS`,
    /// `FJORD_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS`.
    pub(super) fn apply_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = env("FJORD_SASL_ENABLED_MECHANISMS") {
            self.enabled_mechanisms = env_list(&v);
        }
        if let Some(v) = env("FJORD_SASL_PLAIN_USERS_FILE") {
            self.plain_users_file = Some(v.into());
        }
        if let Some(v) = env_parse(env, "FJORD_CONNECTIONS_MAX_REAUTH_MS", "milliseconds")? {
            self.connections_max_reauth_ms = v;
        }
        if let Some(v) = env_parse(
            env,
            "FJORD_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS",
            "milliseconds",
        )? {
            self.connection_failed_authentication_delay_ms = v;
        }
        Ok(())
    }

    /// The gateway's SASL settings; `any_sasl_listener` decides whether
    /// PLAIN's users file must be there (it is read now, at startup).
    pub(super) fn sasl_config(&self, any_sasl_listener: bool) -> Result<SaslConfig, ConfigError> {
        let mut enabled_mechanisms = Vec::with_capacity(self.enabled_mechanisms.len());
        for name in &self.enabled_mechanisms {
            let mechanism =
                SaslMechanism::from_name(name.trim()).ok_or_else(|| ConfigError::Invalid {
                    key: "sasl.enabled_mechanisms",
                    value: name.clone(),
                    expected: "mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                })?;
            if !enabled_mechanisms.contains(&mechanism) {
                enabled_mechanisms.push(mechanism);
            }
        }
        if any_sasl_listener && enabled_mechanisms.is_empty() {
            return Err(ConfigError::Invalid {
                key: "sasl.enabled_mechanisms",
                value: String::new(),
                expected: "at least one mechanism when a listener uses SASL",
            });
        }
        let plain_users = match &self.plain_users_file {
            Some(path) => read_plain_users(path)?,
            None if any_sasl_listener && enabled_mechanisms.contains(&SaslMechanism::Plain) => {
                return Err(ConfigError::SaslPlainWithoutUsers);
            }
            None => PlainUsers::default(),
        };
        Ok(SaslConfig {
            enabled_mechanisms,
            plain_users,
            connections_max_reauth: (self.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(self.connections_max_reauth_ms)),
            failed_authentication_delay: Duration::from_millis(
                self.connection_failed_authentication_delay_ms,
            ),
        })
    }
}

/// PLAIN's users: a TOML table of `name = "password"`.
fn read_plain_users(path: &std::path::Path) -> Result<PlainUsers, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let users: BTreeMap<String, String> =
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(PlainUsers::new(users))
}
