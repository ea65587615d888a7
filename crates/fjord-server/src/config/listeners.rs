//! Kafka client listeners: `listeners` (where the node binds, one
//! `NAME://HOST:PORT` per listener) and `advertised_listeners` (what clients
//! connected to each listener are told), Kafka's `listeners` and
//! `advertised.listeners`. `kafka_addr` / `advertised_kafka_addr` are the
//! shorthand for one listener named PLAINTEXT; a setting may be given in one
//! form only.
//!
//! Kafka's rules: listener names are unique (and normalised to upper case),
//! every advertised name is a listener, a listener without an advertised
//! entry advertises its bind address, which must then not be a wildcard.
//! REPLICATION is reserved for the node's gRPC address, which brokers
//! register under that name.
//!
//! `listener_security_protocol_map` (Kafka's
//! `listener.security.protocol.map`, `NAME:PROTOCOL` each) gives each
//! listener its security protocol. When it is set, every listener must be in
//! it, as in Kafka. When it is not, a listener named like a protocol
//! (`SSL://…`) uses that protocol, as with Kafka's default map, and any other
//! name is PLAINTEXT (Kafka would refuse it; Fjord's configs from before the
//! map keep working). SASL_PLAINTEXT and SASL_SSL take their settings from
//! `[sasl]`, SSL and SASL_SSL from `[ssl]`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use fjord_broker::{AdvertisedListener, DEFAULT_LISTENER, REPLICATION_LISTENER};
use fjord_gateway::{ListenerConfig, SecurityProtocol};

use super::{ConfigError, FileConfig, env_list, parse_socket_addr, split_host_port};

/// Where the one PLAINTEXT listener binds when neither `kafka_addr` nor
/// `listeners` is set.
pub const DEFAULT_KAFKA_ADDR: &str = "127.0.0.1:9092";

/// A node's client listeners, validated: where each binds and what it
/// advertises, the same names in the same (configured) order.
#[derive(Debug)]
pub(crate) struct ClientListeners {
    pub(crate) bind: Vec<ListenerConfig>,
    pub(crate) advertised: Vec<AdvertisedListener>,
}

/// One listener entry split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    host: String,
    port: u16,
}

/// The `FJORD_*` overrides of the listener settings. An environment variable
/// replaces the file's setting in whichever form the file gave it (so a
/// container can set `FJORD_LISTENERS` over a file that uses `kafka_addr`);
/// giving both forms of one setting in the environment is an error.
pub(super) fn apply_env(
    file: &mut FileConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    override_pair(
        env,
        ("FJORD_KAFKA_ADDR", &mut file.kafka_addr),
        ("FJORD_LISTENERS", &mut file.listeners),
    )?;
    override_pair(
        env,
        (
            "FJORD_ADVERTISED_KAFKA_ADDR",
            &mut file.advertised_kafka_addr,
        ),
        ("FJORD_ADVERTISED_LISTENERS", &mut file.advertised_listeners),
    )
}

/// One setting given either as a single address (`shorthand`) or as a list:
/// whichever variable is set replaces both forms of the file's setting.
fn override_pair(
    env: &impl Fn(&str) -> Option<String>,
    (shorthand_var, shorthand): (&'static str, &mut Option<String>),
    (list_var, list): (&'static str, &mut Vec<String>),
) -> Result<(), ConfigError> {
    match (env(shorthand_var), env(list_var)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::ConflictingListenerForms {
                shorthand: shorthand_var,
                list: list_var,
            });
        }
        (Some(addr), None) => {
            *shorthand = Some(addr);
            list.clear();
        }
        (None, Some(value)) => {
            *list = env_list(&value);
            *shorthand = None;
        }
        (None, None) => {}
    }
    Ok(())
}

/// Validates the listener settings of `file`.
pub(super) fn client_listeners(file: &FileConfig) -> Result<ClientListeners, ConfigError> {
    let bind = bind_entries(file)?;
    let advertised = advertised_entries(file)?;
    if let Some(unknown) = advertised
        .iter()
        .find(|a| !bind.iter().any(|(b, _)| b.name == a.name))
    {
        return Err(ConfigError::UnknownAdvertisedListener {
            name: unknown.name.clone(),
            listeners: bind
                .iter()
                .map(|(b, _)| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let protocols = protocol_map(&file.listener_security_protocol_map)?;
    let mut listeners = ClientListeners {
        bind: Vec::with_capacity(bind.len()),
        advertised: Vec::with_capacity(bind.len()),
    };
    for (entry, listen) in bind {
        let advertised = match advertised.iter().find(|a| a.name == entry.name) {
            Some(a) => a.clone(),
            None if is_wildcard(&entry.host) => {
                return Err(ConfigError::UnadvertisedWildcard {
                    name: entry.name,
                    listen,
                });
            }
            // Kafka: a listener not in advertised.listeners advertises
            // itself as configured (a host name stays a host name).
            None => entry.clone(),
        };
        let security_protocol = security_protocol(&protocols, &entry.name)?;
        listeners.bind.push(ListenerConfig {
            name: entry.name.clone(),
            listen,
            security_protocol,
        });
        listeners.advertised.push(AdvertisedListener {
            name: entry.name,
            host: advertised.host,
            port: advertised.port,
        });
    }
    Ok(listeners)
}

/// `listener_security_protocol_map`, parsed: (upper-cased name, protocol).
fn protocol_map(entries: &[String]) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    let mut map: Vec<(String, SecurityProtocol)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let bad = || ConfigError::SecurityProtocolMapEntry {
            entry: entry.clone(),
        };
        let (name, protocol) = entry.trim().split_once(':').ok_or_else(bad)?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = SecurityProtocol::from_name(protocol.trim()).ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        if map.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError::DuplicateSecurityProtocolMapping { name });
        }
        map.push((name, protocol));
    }
    Ok(map)
}

/// A listener's protocol: see the module doc.
fn security_protocol(
    map: &[(String, SecurityProtocol)],
    name: &str,
) -> Result<SecurityProtocol, ConfigError> {
    let protocol = if map.is_empty() {
        SecurityProtocol::from_name(name).unwrap_or(SecurityProtocol::Plaintext)
    } else {
        map.iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| ConfigError::UnmappedListener {
                name: name.to_owned(),
            })?
    };
    Ok(protocol)
}

/// `listeners` (or the `kafka_addr` shorthand, or the default), each with
/// the socket address it binds.
fn bind_entries(file: &FileConfig) -> Result<Vec<(Entry, SocketAddr)>, ConfigError> {
    if file.listeners.is_empty() {
        let value = file.kafka_addr.as_deref().unwrap_or(DEFAULT_KAFKA_ADDR);
        let listen = parse_socket_addr("kafka_addr", value)?;
        let entry = Entry {
            name: DEFAULT_LISTENER.to_string(),
            host: listen.ip().to_string(),
            port: listen.port(),
        };
        return Ok(vec![(entry, listen)]);
    }
    if file.kafka_addr.is_some() {
        return Err(ConfigError::ConflictingListenerForms {
            shorthand: "kafka_addr",
            list: "listeners",
        });
    }
    let entries = parse_entries("listeners", &file.listeners)?;
    let mut bound: Vec<(Entry, SocketAddr)> = Vec::with_capacity(entries.len());
    for (text, entry) in file.listeners.iter().zip(entries) {
        if entry.name == REPLICATION_LISTENER {
            return Err(ConfigError::ReservedListenerName { name: entry.name });
        }
        let listen = bind_addr(text, &entry)?;
        // Kafka: each listener must have its own port (port 0 picks a free one).
        if listen.port() != 0 && bound.iter().any(|(_, l)| l.port() == listen.port()) {
            return Err(ConfigError::DuplicateListenerPort {
                port: listen.port(),
            });
        }
        bound.push((entry, listen));
    }
    Ok(bound)
}

/// `advertised_listeners` (or the `advertised_kafka_addr` shorthand); empty
/// when neither is set.
fn advertised_entries(file: &FileConfig) -> Result<Vec<Entry>, ConfigError> {
    let (key, entries) = if file.advertised_listeners.is_empty() {
        let Some(value) = &file.advertised_kafka_addr else {
            return Ok(Vec::new());
        };
        let (host, port) = split_host_port(value)
            .filter(|(host, _)| is_valid_host(host))
            .ok_or_else(|| ConfigError::Invalid {
                key: "advertised_kafka_addr",
                value: value.clone(),
                expected: "HOST:PORT",
            })?;
        let entry = Entry {
            name: DEFAULT_LISTENER.to_string(),
            host,
            port,
        };
        ("advertised_kafka_addr", vec![entry])
    } else {
        if file.advertised_kafka_addr.is_some() {
            return Err(ConfigError::ConflictingListenerForms {
                shorthand: "advertised_kafka_addr",
                list: "advertised_listeners",
            });
        }
        let key = "advertised_listeners";
        (key, parse_entries(key, &file.advertised_listeners)?)
    };
    if let Some(wildcard) = entries.iter().find(|e| is_wildcard(&e.host)) {
        return Err(ConfigError::WildcardAdvertised {
            key,
            name: wildcard.name.clone(),
            host: wildcard.host.clone(),
        });
    }
    Ok(entries)
}

/// Parses every `NAME://HOST:PORT` of `key`; names must be unique.
fn parse_entries(key: &'static str, values: &[String]) -> Result<Vec<Entry>, ConfigError> {
    let mut entries: Vec<Entry> = Vec::with_capacity(values.len());
    for value in values {
        let entry = parse_entry(value).ok_or_else(|| ConfigError::ListenerEntry {
            key,
            entry: value.clone(),
        })?;
        if entries.iter().any(|e| e.name == entry.name) {
            return Err(ConfigError::DuplicateListenerName {
                key,
                name: entry.name,
            });
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// `NAME://HOST:PORT`, HOST a name or an IP address (IPv6 in brackets). The
/// name is upper-cased, as Kafka normalises listener names.
fn parse_entry(value: &str) -> Option<Entry> {
    let (name, addr) = value.trim().split_once("://")?;
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !valid_name {
        return None;
    }
    let (host, port) = split_host_port(addr).filter(|(host, _)| is_valid_host(host))?;
    Some(Entry {
        name: name.to_ascii_uppercase(),
        host,
        port,
    })
}

/// Letters, digits and `.-_:%` (IPv6 literals and zone ids), as in Kafka's
/// endpoint syntax.
fn is_valid_host(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
}

/// The address a listener binds: an IP literal as written, a host name
/// resolved once at startup (its first address), as Kafka binds host names.
fn bind_addr(text: &str, entry: &Entry) -> Result<SocketAddr, ConfigError> {
    if let Ok(ip) = entry.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, entry.port));
    }
    let unresolved = |source| ConfigError::ListenerHost {
        entry: text.to_owned(),
        source,
    };
    (entry.host.as_str(), entry.port)
        .to_socket_addrs()
        .map_err(unresolved)?
        .next()
        .ok_or_else(|| {
            unresolved(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host name resolves to no address",
            ))
        })
}

/// Binding every interface: fine to listen on, useless to advertise.
fn is_wildcard(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).expect("toml")
    }

    /// (name, bind address, advertised host, advertised port) per listener.
    fn listeners(file: &FileConfig) -> Vec<(String, String, String, u16)> {
        let l = client_listeners(file).expect("valid listeners");
        l.bind
            .iter()
            .zip(&l.advertised)
            .map(|(b, a)| {
                assert_eq!(b.name, a.name);
                (b.name.clone(), b.listen.to_string(), a.host.clone(), a.port)
            })
            .collect()
    }

    fn row(name: &str, listen: &str, host: &str, port: u16) -> (String, String, String, u16) {
        (name.into(), listen.into(), host.into(), port)
    }

    #[test]
    fn internal_and_external_as_in_docker_compose() {
        let f = file(
            r#"
            listeners = ["INTERNAL://0.0.0.0:9092", "EXTERNAL://0.0.0.0:9094"]
            advertised_listeners = ["INTERNAL://fjord-1:9092", "EXTERNAL://localhost:29091"]
            "#,
        );
        assert_eq!(
            listeners(&f),
            vec![
                row("INTERNAL", "0.0.0.0:9092", "fjord-1", 9092),
                row("EXTERNAL", "0.0.0.0:9094", "localhost", 29091),
            ]
        );
    }

    #[test]
    fn kafka_addr_is_the_shorthand_for_one_plaintext_listener() {
        assert_eq!(
            listeners(&FileConfig::default()),
            vec![row("PLAINTEXT", "127.0.0.1:9092", "127.0.0.1", 9092)]
        );
        let f = file("kafka_addr = \"0.0.0.0:9192\"\nadvertised_kafka_addr = \"fjord-2:9192\"");
        assert_eq!(
            listeners(&f),
            vec![row("PLAINTEXT", "0.0.0.0:9192", "fjord-2", 9192)]
        );
        // The same settings in the list form.
        let f = file(
            r#"
            listeners = ["PLAINTEXT://0.0.0.0:9192"]
            advertised_listeners = ["PLAINTEXT://fjord-2:9192"]
            "#,
        );
        assert_eq!(
            listeners(&f),
            vec![row("PLAINTEXT", "0.0.0.0:9192", "fjord-2", 9192)]
        );
    }

    #[test]
    fn unadvertised_listeners_advertise_their_bind_address() {
        let f = file(
            r#"
            listeners = ["internal://127.0.0.1:0", "External://localhost:9094", "V6://[::1]:9095"]
            "#,
        );
        let rows = listeners(&f);
        // Names are upper-cased, as Kafka normalises them.
        assert_eq!(rows[0], row("INTERNAL", "127.0.0.1:0", "127.0.0.1", 0));
        // A host name is resolved to bind but advertised as written.
        assert_eq!(
            (rows[1].0.as_str(), rows[1].2.as_str()),
            ("EXTERNAL", "localhost")
        );
        assert_eq!(rows[2], row("V6", "[::1]:9095", "::1", 9095));
    }

    #[test]
    fn an_advertised_listener_may_cover_some_listeners_only() {
        let f = file(
            r#"
            listeners = ["INTERNAL://127.0.0.1:9092", "EXTERNAL://0.0.0.0:9094"]
            advertised_listeners = ["EXTERNAL://broker.example.com:29094"]
            "#,
        );
        assert_eq!(
            listeners(&f),
            vec![
                row("INTERNAL", "127.0.0.1:9092", "127.0.0.1", 9092),
                row("EXTERNAL", "0.0.0.0:9094", "broker.example.com", 29094),
            ]
        );
    }

    #[test]
    fn bad_listener_settings_are_refused() {
        let err = |text: &str| client_listeners(&file(text)).expect_err(text);
        for bad in [
            "nope",
            "INTERNAL:9092",
            "://127.0.0.1:9092",
            "IN TERNAL://127.0.0.1:9092",
            "INTERNAL://127.0.0.1",
            "INTERNAL://:9092",
            "INTERNAL://127.0.0.1:99999",
            "INTERNAL://bad host:9092",
        ] {
            assert!(
                matches!(
                    err(&format!("listeners = [{bad:?}]")),
                    ConfigError::ListenerEntry {
                        key: "listeners",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1", "a://127.0.0.1:2"]"#),
            ConfigError::DuplicateListenerName { key: "listeners", name } if name == "A"
        ));
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1", "B://127.0.0.2:1"]"#),
            ConfigError::DuplicateListenerPort { port: 1 }
        ));
        assert!(matches!(
            err(r#"listeners = ["REPLICATION://127.0.0.1:1"]"#),
            ConfigError::ReservedListenerName { .. }
        ));
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1"]
                advertised_listeners = ["B://h:1"]"#),
            ConfigError::UnknownAdvertisedListener { name, listeners } if name == "B" && listeners == "A"
        ));
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1"]
                advertised_listeners = ["A://h:1", "A://h:2"]"#),
            ConfigError::DuplicateListenerName {
                key: "advertised_listeners",
                ..
            }
        ));
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1"]
                advertised_listeners = ["A://0.0.0.0:1"]"#),
            ConfigError::WildcardAdvertised {
                key: "advertised_listeners",
                ..
            }
        ));
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1", "B://[::]:2"]"#),
            ConfigError::UnadvertisedWildcard { name, .. } if name == "B"
        ));
        assert!(matches!(
            err("kafka_addr = \"0.0.0.0:9092\""),
            ConfigError::UnadvertisedWildcard { .. }
        ));
        assert!(matches!(
            err("advertised_kafka_addr = \"[::]:9092\""),
            ConfigError::WildcardAdvertised {
                key: "advertised_kafka_addr",
                ..
            }
        ));
        // advertised_kafka_addr names PLAINTEXT, which these listeners lack.
        assert!(matches!(
            err(r#"advertised_kafka_addr = "h:1"
                listeners = ["A://127.0.0.1:1"]"#),
            ConfigError::UnknownAdvertisedListener { name, .. } if name == "PLAINTEXT"
        ));
        assert!(matches!(
            err(r#"listeners = ["A://no-such-host.invalid:1"]"#),
            ConfigError::ListenerHost { .. }
        ));
    }

    fn protocols(file: &FileConfig) -> Vec<(String, &'static str)> {
        client_listeners(file)
            .expect("valid listeners")
            .bind
            .iter()
            .map(|b| (b.name.clone(), b.security_protocol.name()))
            .collect()
    }

    #[test]
    fn security_protocols_from_the_map_or_the_name() {
        // No map: named like a protocol uses it, other names are PLAINTEXT.
        let f = file(
            r#"listeners = ["PLAINTEXT://127.0.0.1:1", "ssl://127.0.0.1:2", "INTERNAL://127.0.0.1:3"]"#,
        );
        assert_eq!(
            protocols(&f),
            vec![
                ("PLAINTEXT".into(), "PLAINTEXT"),
                ("SSL".into(), "SSL"),
                ("INTERNAL".into(), "PLAINTEXT")
            ]
        );
        assert_eq!(
            protocols(&FileConfig::default()),
            vec![("PLAINTEXT".into(), "PLAINTEXT")]
        );
        // A map, as in Kafka (names and protocols case-insensitive).
        let f = file(
            r#"
            listeners = ["INTERNAL://127.0.0.1:1", "EXTERNAL://127.0.0.1:2"]
            listener_security_protocol_map = ["internal:PLAINTEXT", "EXTERNAL:ssl"]
            "#,
        );
        assert_eq!(
            protocols(&f),
            vec![("INTERNAL".into(), "PLAINTEXT"), ("EXTERNAL".into(), "SSL")]
        );
        // The SASL protocols, by map or by name.
        let f = file(
            r#"
            listeners = ["A://127.0.0.1:1", "SASL_PLAINTEXT://127.0.0.1:2"]
            listener_security_protocol_map = ["A:SASL_SSL", "SASL_PLAINTEXT:SASL_PLAINTEXT"]
            "#,
        );
        assert_eq!(
            protocols(&f),
            vec![
                ("A".into(), "SASL_SSL"),
                ("SASL_PLAINTEXT".into(), "SASL_PLAINTEXT")
            ]
        );
        // The environment replaces the file's map.
        let mut f = file(r#"listeners = ["A://127.0.0.1:1"]"#);
        f.apply_env(|k| (k == "FJORD_LISTENER_SECURITY_PROTOCOL_MAP").then(|| "A:SSL".into()))
            .expect("env");
        assert_eq!(protocols(&f), vec![("A".into(), "SSL")]);
    }

    #[test]
    fn bad_security_protocol_maps_are_refused() {
        let err = |text: &str| client_listeners(&file(text)).expect_err(text);
        for entry in ["A", "A:TLS", ":SSL", "A:"] {
            assert!(
                matches!(
                    err(&format!(
                        "listeners = [\"A://127.0.0.1:1\"]\nlistener_security_protocol_map = [{entry:?}]"
                    )),
                    ConfigError::SecurityProtocolMapEntry { .. }
                ),
                "{entry}"
            );
        }
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1"]
                listener_security_protocol_map = ["A:SSL", "a:PLAINTEXT"]"#),
            ConfigError::DuplicateSecurityProtocolMapping { name } if name == "A"
        ));
        assert!(matches!(
            err(r#"listeners = ["A://127.0.0.1:1", "B://127.0.0.1:2"]
                listener_security_protocol_map = ["A:SSL"]"#),
            ConfigError::UnmappedListener { name } if name == "B"
        ));
    }

    #[test]
    fn each_setting_in_one_form_only() {
        let err = |text: &str| client_listeners(&file(text)).expect_err(text);
        assert!(matches!(
            err(r#"kafka_addr = "127.0.0.1:9092"
                listeners = ["A://127.0.0.1:1"]"#),
            ConfigError::ConflictingListenerForms {
                shorthand: "kafka_addr",
                list: "listeners"
            }
        ));
        assert!(matches!(
            err(r#"advertised_kafka_addr = "h:1"
                advertised_listeners = ["PLAINTEXT://h:1"]"#),
            ConfigError::ConflictingListenerForms {
                shorthand: "advertised_kafka_addr",
                ..
            }
        ));
        let mut f = FileConfig::default();
        assert!(matches!(
            apply_env(&mut f, &|k: &str| matches!(
                k,
                "FJORD_KAFKA_ADDR" | "FJORD_LISTENERS"
            )
            .then(|| "PLAINTEXT://127.0.0.1:1".to_string())),
            Err(ConfigError::ConflictingListenerForms {
                shorthand: "FJORD_KAFKA_ADDR",
                ..
            })
        ));
    }

    #[test]
    fn env_replaces_the_file_setting_in_either_form() {
        // A file with the shorthand, a container overriding it with lists.
        let mut f = file("kafka_addr = \"0.0.0.0:9092\"\nadvertised_kafka_addr = \"h:9092\"");
        apply_env(&mut f, &|k: &str| match k {
            "FJORD_LISTENERS" => Some("INTERNAL://0.0.0.0:9092, EXTERNAL://0.0.0.0:9094".into()),
            "FJORD_ADVERTISED_LISTENERS" => {
                Some("INTERNAL://fjord-1:9092,EXTERNAL://localhost:29091".into())
            }
            _ => None,
        })
        .expect("env");
        assert_eq!(
            listeners(&f),
            vec![
                row("INTERNAL", "0.0.0.0:9092", "fjord-1", 9092),
                row("EXTERNAL", "0.0.0.0:9094", "localhost", 29091),
            ]
        );
        // Only the advertised side from the environment: the file's bind stays.
        let mut f = file("kafka_addr = \"0.0.0.0:9092\"");
        apply_env(&mut f, &|k: &str| {
            (k == "FJORD_ADVERTISED_LISTENERS").then(|| "PLAINTEXT://fjord-1:9092".into())
        })
        .expect("env");
        assert_eq!(
            listeners(&f),
            vec![row("PLAINTEXT", "0.0.0.0:9092", "fjord-1", 9092)]
        );
        // And the shorthand over a file with lists.
        let mut f = file(r#"listeners = ["A://127.0.0.1:1", "B://127.0.0.1:2"]"#);
        apply_env(&mut f, &|k: &str| {
            (k == "FJORD_KAFKA_ADDR").then(|| "127.0.0.1:7".into())
        })
        .expect("env");
        assert_eq!(
            listeners(&f),
            vec![row("PLAINTEXT", "127.0.0.1:7", "127.0.0.1", 7)]
        );
    }
}
