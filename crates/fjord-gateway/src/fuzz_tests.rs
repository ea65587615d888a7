//! Hostile input for frame decoding (issue 17, item 7), run by the test
//! command for a bounded time (`fjord-fuzz`).
//!
//! Seeds: a request of every api and version the gateway serves, plus
//! Produce requests carrying real record batches (`fjord_fuzz::kafka`). Each input is decoded three ways, as a
//! connection meets it: as one frame body, through the frame codec with a
//! size prefix, and as a raw byte stream. Any outcome but a panic or an
//! allocation past the limit is fine: errors close the connection.

use bytes::{BufMut, Bytes, BytesMut};
use fjord_fuzz::Fuzz;
use fjord_fuzz::kafka::{minimal_body, request_seeds};
use kafka_protocol::messages::ApiKey;
use tokio_util::codec::Decoder;

use crate::frame::{FrameCodec, decode_request};
use crate::handlers::SUPPORTED;

const MAX_FRAME_BYTES: usize = 1 << 20;

fn seeds() -> Vec<Vec<u8>> {
    request_seeds(SUPPORTED.iter().copied())
}

fn decode_all_ways(input: &[u8]) {
    let _ = std::hint::black_box(decode_request(Bytes::copy_from_slice(input)));
    for stream in [
        {
            let mut framed = BytesMut::with_capacity(input.len() + 4);
            framed.put_i32(input.len() as i32);
            framed.put_slice(input);
            framed
        },
        BytesMut::from(input),
    ] {
        let mut stream = stream;
        let mut codec = FrameCodec::new(MAX_FRAME_BYTES);
        while let Ok(Some(frame)) = codec.decode(&mut stream) {
            let _ = std::hint::black_box(decode_request(frame));
        }
    }
}

#[test]
fn every_served_api_has_a_seed() {
    let missing: Vec<(ApiKey, i16)> = SUPPORTED
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
        .filter(|&(api, version)| minimal_body(api, version).is_none())
        .collect();
    assert!(missing.is_empty(), "no seed for {missing:?}");
    for seed in &seeds() {
        assert!(
            decode_request(Bytes::copy_from_slice(seed)).is_ok(),
            "a seed must decode: {}",
            fjord_fuzz::hex(seed)
        );
    }
}

#[test]
fn fuzz_request_frames() {
    // Decoders reserve at most 1024 elements ahead of the bytes (the
    // vendored kafka-protocol's first patch): a few MiB bounds any frame.
    let report = Fuzz::from_env("request frames")
        .max_alloc_bytes(8 << 20)
        .run(&seeds(), decode_all_ways);
    assert!(report.cases > 0);
}

/// The SASL exchanges: PLAIN tokens, SCRAM client-first messages, and
/// SCRAM client-final messages after a real client-first (the literal
/// `@NONCE@` in an input stands for the nonce the server just chose, so
/// mutations reach the proof check instead of all failing the nonce
/// check). The first byte of an input picks which.
mod sasl {
    use std::collections::HashMap;
    use std::sync::Arc;

    use fjord_broker::scram_credentials::ScramCredentialStore;
    use fjord_fuzz::Fuzz;
    use fjord_scram::{ScramCredential, ScramMechanism};

    use crate::sasl::scram::test_client::Client;
    use crate::sasl::{Exchange, PlainUsers, SaslConfig, SaslMechanism, SaslServer, Step};

    const NONCE: &[u8] = b"@NONCE@";
    const SCRAM: SaslMechanism = SaslMechanism::Scram(ScramMechanism::Sha512);

    fn server() -> SaslServer {
        let store = ScramCredentialStore::default();
        let credential = ScramCredential::from_password(
            ScramMechanism::Sha512,
            b"pencil",
            b"saltsalt".to_vec(),
            4096,
        );
        store.publish(HashMap::from([(
            ("alice".to_owned(), ScramMechanism::Sha512),
            credential,
        )]));
        let config = SaslConfig {
            enabled_mechanisms: vec![SaslMechanism::Plain, SCRAM],
            plain_users: PlainUsers::new([("alice".to_owned(), "pencil".to_owned())]),
            ..SaslConfig::default()
        };
        SaslServer::new(config, Arc::new(store))
    }

    fn server_nonce(server_first: &[u8]) -> Vec<u8> {
        server_first
            .split(|&b| b == b',')
            .find_map(|field| field.strip_prefix(b"r="))
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    fn with_nonce(input: &[u8], nonce: &[u8]) -> Vec<u8> {
        match input.windows(NONCE.len()).position(|w| w == NONCE) {
            Some(at) => [&input[..at], nonce, &input[at + NONCE.len()..]].concat(),
            None => input.to_vec(),
        }
    }

    fn seeds(server: &SaslServer) -> Vec<Vec<u8>> {
        let mut client = Client::new(ScramMechanism::Sha512, "alice", "pencil");
        let mut exchange = Exchange::new(SCRAM);
        let Ok(Step::Challenge(server_first)) = exchange.evaluate(server, &client.client_first())
        else {
            panic!("a valid client-first gets a challenge");
        };
        let nonce = server_nonce(&server_first);
        let client_final = client.client_final(&server_first);
        // The real client-final, with the server's nonce made a placeholder.
        let template = {
            let at = client_final
                .windows(nonce.len())
                .position(|w| w == nonce.as_slice())
                .expect("client-final carries the nonce");
            [
                &client_final[..at],
                NONCE,
                &client_final[at + nonce.len()..],
            ]
            .concat()
        };
        vec![
            [&[0u8][..], b"\0alice\0pencil"].concat(),
            [&[0u8][..], b"alice\0alice\0pencil"].concat(),
            [&[1u8][..], &client.client_first()].concat(),
            [&[1u8][..], b"n,a=alice,n=alice,r=abc"].concat(),
            [&[2u8][..], &template].concat(),
        ]
    }

    fn exchange_with(server: &SaslServer, input: &[u8]) {
        let Some((&mode, token)) = input.split_first() else {
            return;
        };
        match mode % 3 {
            0 => {
                let mut plain = Exchange::new(SaslMechanism::Plain);
                let _ = plain.evaluate(server, token);
                let _ = plain.evaluate(server, token);
            }
            1 => {
                let mut scram = Exchange::new(SCRAM);
                if let Ok(Step::Challenge(_)) = scram.evaluate(server, token) {
                    let _ = scram.evaluate(server, b"c=biws,r=x,p=AAAA");
                }
            }
            _ => {
                let client = Client::new(ScramMechanism::Sha512, "alice", "pencil");
                let mut scram = Exchange::new(SCRAM);
                let Ok(Step::Challenge(server_first)) =
                    scram.evaluate(server, &client.client_first())
                else {
                    panic!("a valid client-first gets a challenge");
                };
                let client_final = with_nonce(token, &server_nonce(&server_first));
                let _ = scram.evaluate(server, &client_final);
                // A token after the exchange ended is an error, not a panic.
                let _ = scram.evaluate(server, token);
            }
        }
    }

    #[test]
    fn the_seeds_authenticate_with_the_right_proof_only() {
        let server = server();
        let seeds = seeds(&server);
        let mut plain = Exchange::new(SaslMechanism::Plain);
        assert!(matches!(
            plain.evaluate(&server, &seeds[0][1..]),
            Ok(Step::Complete { .. })
        ));
        // The template's proof was for another server nonce: refused.
        let client = Client::new(ScramMechanism::Sha512, "alice", "pencil");
        let mut scram = Exchange::new(SCRAM);
        let Ok(Step::Challenge(first)) = scram.evaluate(&server, &client.client_first()) else {
            panic!("challenge");
        };
        let replayed = with_nonce(&seeds[4][1..], &server_nonce(&first));
        assert!(scram.evaluate(&server, &replayed).is_err());
    }

    #[test]
    fn fuzz_sasl_exchanges() {
        let server = server();
        let report = Fuzz::from_env("sasl exchanges")
            .max_alloc_bytes(8 << 20)
            .run(&seeds(&server), |input| exchange_with(&server, input));
        assert!(report.cases > 0);
    }
}
