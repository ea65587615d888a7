//! The SCRAM-SHA-256/512 server exchange (RFC 5802, RFC 7677), as Kafka's
//! `ScramSaslServer` runs it:
//!
//! ```text
//! client-first  n,[a=authzid],n=user,r=cnonce            gs2 "n" only: no channel binding
//! server-first  r=cnonce+snonce,s=base64(salt),i=iterations
//! client-final  c=base64(gs2 header),r=cnonce+snonce,p=base64(proof)
//! server-final  v=base64(server signature)
//! ```
//!
//! An unknown user is not told apart from a wrong password: it gets a
//! stand-in credential (a salt stable per name, keys that match no proof)
//! and fails at the proof, like everyone else.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fjord_scram::{ScramCredential, ScramMechanism};

use super::{SaslError, SaslServer, Step};

/// Iterations the stand-in credential of an unknown user announces: the
/// usual (and Kafka's minimum).
const UNKNOWN_USER_ITERATIONS: u32 = 4096;

/// Random bytes in the server's half of the nonce.
const SERVER_NONCE_BYTES: usize = 18;

pub(crate) struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    ClientFirst,
    ClientFinal(Box<AwaitingFinal>),
    Over,
}

/// What the client-final message is checked against.
struct AwaitingFinal {
    user: String,
    credential: ScramCredential,
    /// The gs2 header the channel binding (`c=`) must repeat.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce.
    nonce: String,
}

fn malformed(message: &'static str, reason: &'static str) -> SaslError {
    SaslError::ScramMalformed { message, reason }
}

impl ScramServer {
    pub(crate) fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            state: State::ClientFirst,
        }
    }

    pub(crate) fn evaluate(
        &mut self,
        server: &SaslServer,
        token: &[u8],
    ) -> Result<Step, SaslError> {
        // Any failure ends the exchange: the connection closes after it.
        match std::mem::replace(&mut self.state, State::Over) {
            State::ClientFirst => {
                let (awaiting, server_first) = self.client_first(server, token)?;
                self.state = State::ClientFinal(awaiting);
                Ok(Step::Challenge(server_first.into_bytes()))
            }
            State::ClientFinal(awaiting) => self.client_final(&awaiting, token),
            State::Over => Err(SaslError::ExchangeOver),
        }
    }

    fn client_first(
        &self,
        server: &SaslServer,
        token: &[u8],
    ) -> Result<(Box<AwaitingFinal>, String), SaslError> {
        const M: &str = "client-first";
        let message = std::str::from_utf8(token).map_err(|_| malformed(M, "not UTF-8"))?;
        let (flag, rest) = message
            .split_once(',')
            .ok_or_else(|| malformed(M, "no gs2 header"))?;
        match flag {
            "n" => {}
            "y" => return Err(SaslError::ScramChannelBinding),
            f if f.starts_with("p=") => return Err(SaslError::ScramChannelBinding),
            _ => return Err(malformed(M, "gs2 channel binding flag is not n, y or p")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed(M, "no gs2 header"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(unescape_name(
                a.strip_prefix("a=")
                    .ok_or_else(|| malformed(M, "authzid is not a=…"))?,
            )?),
        };
        let gs2_header = &message[..message.len() - bare.len()];
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or_else(|| malformed(M, "no n= username"))?;
        let user = unescape_name(user)?;
        if user.is_empty() {
            return Err(malformed(M, "empty username"));
        }
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed(M, "no r= nonce"))?;
        check_nonce(client_nonce, M)?;
        if fields.next().is_some() {
            // Kafka knows one extension, tokenauth, for delegation tokens,
            // which Fjord does not have.
            return Err(SaslError::ScramExtensions);
        }
        if authzid.as_ref().is_some_and(|a| *a != user) {
            return Err(SaslError::AuthorizationIdMismatch);
        }
        let credential = server
            .scram_credentials
            .lookup(&user, self.mechanism)
            .unwrap_or_else(|| unknown_user_credential(server, self.mechanism, &user));
        let nonce = format!(
            "{client_nonce}{}",
            BASE64.encode(fjord_scram::random_bytes(SERVER_NONCE_BYTES))
        );
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let awaiting = AwaitingFinal {
            user,
            credential,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((Box::new(awaiting), server_first))
    }

    fn client_final(&self, awaiting: &AwaitingFinal, token: &[u8]) -> Result<Step, SaslError> {
        const M: &str = "client-final";
        let message = std::str::from_utf8(token).map_err(|_| malformed(M, "not UTF-8"))?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| malformed(M, "no p= proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| malformed(M, "no c= channel binding"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed(M, "no r= nonce"))?;
        if fields.next().is_some() {
            return Err(SaslError::ScramExtensions);
        }
        let binding = BASE64
            .decode(binding)
            .map_err(|_| malformed(M, "channel binding is not base64"))?;
        if binding != awaiting.gs2_header.as_bytes() {
            return Err(SaslError::ScramChannelBindingMismatch);
        }
        // Kafka's ScramSaslServer checks `endsWith`, not equality, and older
        // librdkafka (2.0.2, Debian's kcat) relies on it: its client-final
        // repeats its own nonce before the combined one
        // (`r=cnonce+cnonce+snonce`). The proof still covers the message as
        // sent, so the server's nonce is still bound.
        if !nonce.ends_with(awaiting.nonce.as_str()) {
            return Err(SaslError::ScramNonce);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| malformed(M, "proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            awaiting.client_first_bare, awaiting.server_first
        );
        let signature = awaiting
            .credential
            .verify_client_proof(self.mechanism, auth_message.as_bytes(), &proof)
            .map_err(|_| SaslError::ScramProof)?;
        Ok(Step::Complete {
            user: awaiting.user.clone(),
            final_token: format!("v={}", BASE64.encode(signature)).into_bytes(),
        })
    }
}

/// RFC 5802 `saslname`: `,` and `=` travel as `=2C` and `=3D`; any other
/// `=` is malformed.
fn unescape_name(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("client-first", "bad = escape in a name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 `printable`: ASCII 0x21..=0x7E except `,`, at least one.
fn check_nonce(nonce: &str, message: &'static str) -> Result<(), SaslError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(malformed(message, "nonce is not printable"));
    }
    Ok(())
}

/// The stand-in credential of an unknown user: its salt is a keyed hash
/// of the name (stable, so asking twice does not reveal the user is
/// unknown), its keys random (no proof matches).
fn unknown_user_credential(
    server: &SaslServer,
    mechanism: ScramMechanism,
    user: &str,
) -> ScramCredential {
    let mut salt = mechanism.hmac(&server.unknown_user_secret, user.as_bytes());
    salt.truncate(16);
    ScramCredential {
        salt,
        stored_key: fjord_scram::random_bytes(mechanism.output_len()),
        server_key: fjord_scram::random_bytes(mechanism.output_len()),
        iterations: UNKNOWN_USER_ITERATIONS,
    }
}

/// A SCRAM client for tests and the handshake bench: the RFC's client side
/// over `fjord_scram`.
#[cfg(test)]
pub(crate) mod test_client {
    use super::*;

    pub(crate) struct Client {
        pub(crate) mechanism: ScramMechanism,
        pub(crate) password: String,
        pub(crate) nonce: String,
        /// Sent before the combined nonce in client-final (librdkafka sends its own nonce).
        pub(crate) final_nonce_prefix: String,
        pub(crate) client_first_bare: String,
        pub(crate) expected_server_signature: Vec<u8>,
    }

    impl Client {
        pub(crate) fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Client {
            let user_escaped = user.replace('=', "=3D").replace(',', "=2C");
            let nonce = "fyko+d2lbbFgONRv9qkxdawL".to_owned();
            Client {
                mechanism,
                password: password.to_owned(),
                client_first_bare: format!("n={user_escaped},r={nonce}"),
                nonce,
                final_nonce_prefix: String::new(),
                expected_server_signature: Vec::new(),
            }
        }

        pub(crate) fn client_first(&self) -> Vec<u8> {
            format!("n,,{}", self.client_first_bare).into_bytes()
        }

        /// The client-final message for a server-first message.
        pub(crate) fn client_final(&mut self, server_first: &[u8]) -> Vec<u8> {
            let server_first = std::str::from_utf8(server_first).expect("utf8");
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iterations = 0;
            for field in server_first.split(',') {
                if let Some(r) = field.strip_prefix("r=") {
                    nonce = r;
                } else if let Some(s) = field.strip_prefix("s=") {
                    salt = BASE64.decode(s).expect("salt");
                } else if let Some(i) = field.strip_prefix("i=") {
                    iterations = i.parse().expect("iterations");
                }
            }
            assert!(nonce.starts_with(&self.nonce), "server nonce extends ours");
            let without_proof = format!("c=biws,r={}{nonce}", self.final_nonce_prefix);
            let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
            let salted =
                self.mechanism
                    .salted_password(self.password.as_bytes(), &salt, iterations);
            let proof = self
                .mechanism
                .client_proof(&salted, auth_message.as_bytes());
            let server_key = self.mechanism.hmac(&salted, b"Server Key");
            self.expected_server_signature = self
                .mechanism
                .server_signature(&server_key, auth_message.as_bytes());
            format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes()
        }

        pub(crate) fn check_server_final(&self, server_final: &[u8]) -> bool {
            server_final
                == format!("v={}", BASE64.encode(&self.expected_server_signature)).as_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use fjord_broker::scram_credentials::ScramCredentialStore;

    use super::test_client::Client;
    use super::*;
    use crate::sasl::SaslConfig;

    fn server_with(user: &str, password: &str, mechanism: ScramMechanism) -> SaslServer {
        let store = ScramCredentialStore::default();
        let credential = ScramCredential::from_password(
            mechanism,
            password.as_bytes(),
            b"saltsalt".to_vec(),
            4096,
        );
        store.publish(HashMap::from([((user.to_owned(), mechanism), credential)]));
        SaslServer::new(SaslConfig::default(), Arc::new(store))
    }

    fn challenge(step: Result<Step, SaslError>) -> Vec<u8> {
        match step {
            Ok(Step::Challenge(c)) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    #[test]
    fn a_full_exchange_authenticates_and_proves_the_server() {
        for mechanism in ScramMechanism::ALL {
            for user in ["alice", "a,b=c"] {
                let server = server_with(user, "pencil", mechanism);
                let mut scram = ScramServer::new(mechanism);
                let mut client = Client::new(mechanism, user, "pencil");
                let server_first = challenge(scram.evaluate(&server, &client.client_first()));
                let client_final = client.client_final(&server_first);
                match scram.evaluate(&server, &client_final) {
                    Ok(Step::Complete {
                        user: who,
                        final_token,
                    }) => {
                        assert_eq!(who, user);
                        assert!(client.check_server_final(&final_token));
                    }
                    other => panic!("{mechanism}: {other:?}"),
                }
                assert_eq!(
                    scram.evaluate(&server, b"more"),
                    Err(SaslError::ExchangeOver)
                );
            }
        }
    }

    #[test]
    fn a_client_final_nonce_ending_with_the_servers_is_accepted_as_kafka_does() {
        let mechanism = ScramMechanism::Sha512;
        let server = server_with("carol", "pencil", mechanism);
        let exchange = |prefix: &str| {
            let mut scram = ScramServer::new(mechanism);
            let mut client = Client::new(mechanism, "carol", "pencil");
            client.final_nonce_prefix = prefix.to_owned();
            let server_first = challenge(scram.evaluate(&server, &client.client_first()));
            scram.evaluate(&server, &client.client_final(&server_first))
        };
        // librdkafka's client-final: its nonce, then the combined one.
        assert!(matches!(
            exchange("fyko+d2lbbFgONRv9qkxdawL"),
            Ok(Step::Complete { .. })
        ));
        assert!(matches!(exchange(""), Ok(Step::Complete { .. })));
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike_at_the_proof() {
        let mechanism = ScramMechanism::Sha512;
        let server = server_with("alice", "pencil", mechanism);
        for (user, password) in [("alice", "pen"), ("mallory", "pencil")] {
            let mut scram = ScramServer::new(mechanism);
            let mut client = Client::new(mechanism, user, password);
            let server_first = challenge(scram.evaluate(&server, &client.client_first()));
            let client_final = client.client_final(&server_first);
            assert_eq!(
                scram.evaluate(&server, &client_final),
                Err(SaslError::ScramProof)
            );
        }
        // An unknown user's salt is the same every time.
        let salt = |server: &SaslServer| {
            let mut scram = ScramServer::new(mechanism);
            let first = challenge(scram.evaluate(server, b"n,,n=mallory,r=abc"));
            String::from_utf8(first)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .to_owned()
        };
        assert_eq!(salt(&server), salt(&server));
    }

    #[test]
    fn malformed_client_first_messages_fail() {
        let server = server_with("alice", "pencil", ScramMechanism::Sha256);
        let cases: &[&[u8]] = &[
            b"",
            b"\xff\xfe",
            b"n",
            b"n,",
            b"x,,n=alice,r=abc",
            b"y,,n=alice,r=abc",
            b"p=tls-unique,,n=alice,r=abc",
            b"n,b=alice,n=alice,r=abc",
            b"n,a=bob,n=alice,r=abc",
            b"n,,m=ext,n=alice,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=al=ice,r=abc",
            b"n,,n=alice=2",
            b"n,,n=alice",
            b"n,,n=alice,r=",
            b"n,,n=alice,r=a\x01b",
            b"n,,n=alice,x=abc",
            b"n,,n=alice,r=abc,tokenauth=true",
        ];
        for case in cases {
            let mut scram = ScramServer::new(ScramMechanism::Sha256);
            assert!(scram.evaluate(&server, case).is_err(), "{case:?}");
            assert_eq!(scram.evaluate(&server, case), Err(SaslError::ExchangeOver));
        }
        // An authzid equal to the user is fine.
        let mut scram = ScramServer::new(ScramMechanism::Sha256);
        challenge(scram.evaluate(&server, b"n,a=alice,n=alice,r=abc"));
    }

    #[test]
    fn malformed_client_final_messages_fail() {
        let mechanism = ScramMechanism::Sha256;
        let server = server_with("alice", "pencil", mechanism);
        let good = |tamper: &dyn Fn(&str, &str) -> Vec<u8>| {
            let mut scram = ScramServer::new(mechanism);
            let mut client = Client::new(mechanism, "alice", "pencil");
            let server_first = challenge(scram.evaluate(&server, &client.client_first()));
            let final_msg = String::from_utf8(client.client_final(&server_first)).unwrap();
            let nonce = String::from_utf8(server_first).unwrap()[2..]
                .split(',')
                .next()
                .unwrap()
                .to_owned();
            scram.evaluate(&server, &tamper(&final_msg, &nonce))
        };
        assert!(matches!(
            good(&|m, _| m.as_bytes().to_vec()),
            Ok(Step::Complete { .. })
        ));
        let proof = |m: &str| m.rsplit_once(",p=").unwrap().1.to_owned();
        type Tamper = Box<dyn Fn(&str, &str) -> Vec<u8>>;
        let cases: Vec<(&str, Tamper)> = vec![
            ("empty", Box::new(|_, _| Vec::new())),
            ("not utf8", Box::new(|_, _| b"\xff".to_vec())),
            (
                "no proof",
                Box::new(|_, n| format!("c=biws,r={n}").into_bytes()),
            ),
            (
                "no binding",
                Box::new(move |m, n| format!("r={n},p={}", proof(m)).into_bytes()),
            ),
            (
                "binding y",
                Box::new(move |m, n| format!("c=eSws,r={n},p={}", proof(m)).into_bytes()),
            ),
            (
                "binding not b64",
                Box::new(move |m, n| format!("c=b!ws,r={n},p={}", proof(m)).into_bytes()),
            ),
            (
                "wrong nonce",
                Box::new(move |m, n| format!("c=biws,r={n}x,p={}", proof(m)).into_bytes()),
            ),
            (
                "client nonce only",
                Box::new(move |m, _| {
                    format!("c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p={}", proof(m)).into_bytes()
                }),
            ),
            (
                "extension",
                Box::new(move |m, n| format!("c=biws,r={n},e=1,p={}", proof(m)).into_bytes()),
            ),
            (
                "proof not b64",
                Box::new(|_, n| format!("c=biws,r={n},p=!!").into_bytes()),
            ),
            (
                "short proof",
                Box::new(|_, n| format!("c=biws,r={n},p=AAAA").into_bytes()),
            ),
            (
                "flipped proof",
                Box::new(move |m, n| {
                    let mut p = BASE64.decode(proof(m)).unwrap();
                    p[0] ^= 1;
                    format!("c=biws,r={n},p={}", BASE64.encode(p)).into_bytes()
                }),
            ),
        ];
        for (name, tamper) in cases {
            assert!(good(&*tamper).is_err(), "{name}");
        }
    }

    /// The server's share of a SCRAM-SHA-512 exchange (the client's PBKDF2
    /// excluded): `cargo test -p fjord-gateway --release -- --ignored
    /// server_exchanges_per_second --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn server_exchanges_per_second() {
        let mechanism = ScramMechanism::Sha512;
        let server = server_with("alice", "pencil", mechanism);
        let mut client = Client::new(mechanism, "alice", "pencil");
        let rounds = 2000;
        let mut server_time = std::time::Duration::ZERO;
        for _ in 0..rounds {
            let mut scram = ScramServer::new(mechanism);
            let started = std::time::Instant::now();
            let first = challenge(scram.evaluate(&server, &client.client_first()));
            server_time += started.elapsed();
            let client_final = client.client_final(&first);
            let started = std::time::Instant::now();
            assert!(matches!(
                scram.evaluate(&server, &client_final),
                Ok(Step::Complete { .. })
            ));
            server_time += started.elapsed();
        }
        println!(
            "SCRAM-SHA-512 server side: {:.1} µs per exchange, {:.0} exchanges/s per core",
            server_time.as_secs_f64() * 1e6 / rounds as f64,
            rounds as f64 / server_time.as_secs_f64()
        );
    }

    #[test]
    fn names_unescape() {
        assert_eq!(unescape_name("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape_name("a=2").is_err());
        assert!(unescape_name("a=41").is_err());
    }
}
