//! Malformed input over raw TCP: the node answers with an error or closes that connection, and
//! keeps serving other connections (an already open one, and fresh ones).

use std::time::Duration;

use fjord_e2e::{FjordNode, KafkaConn, probe_metadata};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};
use kafka_protocol::protocol::Decodable;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the node did with a bad request on its connection.
#[derive(Debug)]
enum Reaction {
    Closed,
    Answered(bytes::Bytes),
}

/// Waits for the node to either answer or close; a silent hang is a failure.
fn reaction(conn: &mut KafkaConn, what: &str) -> Reaction {
    match conn.read_frame() {
        Ok(None) => Reaction::Closed,
        Ok(Some(frame)) => Reaction::Answered(frame),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("{what}: node neither answered nor closed the connection within {IO_TIMEOUT:?}")
        }
        Err(e) => panic!("{what}: unexpected read error {e}"),
    }
}

/// The already-open connection and a fresh one both still get answers, and the process lives.
fn assert_still_serving(node: &mut FjordNode, other: &mut KafkaConn, what: &str) {
    assert!(
        node.is_running(),
        "{what}: fjord process died\n{}",
        fjord_e2e::tail(node.log_path(), 40)
    );
    other
        .api_versions()
        .unwrap_or_else(|e| panic!("{what}: other open connection stopped working: {e:#}"));
    let md = probe_metadata(&node.bootstrap())
        .unwrap_or_else(|e| panic!("{what}: fresh connection failed: {e:#}"));
    assert!(
        !md.brokers.is_empty(),
        "{what}: fresh Metadata lists no broker"
    );
}

fn setup() -> (FjordNode, KafkaConn, KafkaConn) {
    let node = FjordNode::start();
    let mut other = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect other");
    other
        .api_versions()
        .expect("other connection works before the abuse");
    let bad = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect bad");
    (node, other, bad)
}

/// Request header v1 by hand: api key, version, correlation id, client id.
fn header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    b.extend_from_slice(&3i16.to_be_bytes());
    b.extend_from_slice(b"e2e");
    b
}

#[test]
fn garbage_frame() {
    let (mut node, mut other, mut bad) = setup();
    let garbage: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    bad.send_frame(&garbage).unwrap();
    let r = reaction(&mut bad, "garbage frame");
    eprintln!("garbage frame -> {r:?}");
    assert_still_serving(&mut node, &mut other, "garbage frame");
}

#[test]
fn oversized_length_prefix() {
    let (mut node, mut other, mut bad) = setup();
    // Claims a 2 GiB frame; the node must not try to buffer it.
    let mut bytes = 0x7fff_ffffi32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&header(18, 0, 1));
    bad.send_raw(&bytes).unwrap();
    let r = reaction(&mut bad, "length 0x7fffffff");
    assert!(
        matches!(r, Reaction::Closed),
        "length 0x7fffffff: expected the connection to be closed, got {r:?}"
    );
    assert_still_serving(&mut node, &mut other, "length 0x7fffffff");
}

#[test]
fn negative_length_prefix() {
    let (mut node, mut other, mut bad) = setup();
    bad.send_raw(&(-1i32).to_be_bytes()).unwrap();
    let r = reaction(&mut bad, "length -1");
    assert!(
        matches!(r, Reaction::Closed),
        "length -1: expected the connection to be closed, got {r:?}"
    );
    assert_still_serving(&mut node, &mut other, "length -1");
}

#[test]
fn unknown_api_key() {
    let (mut node, mut other, mut bad) = setup();
    bad.send_frame(&header(9999, 0, 42)).unwrap();
    match reaction(&mut bad, "api key 9999") {
        Reaction::Closed => {}
        Reaction::Answered(frame) => {
            assert!(
                frame.len() >= 4,
                "answer to api key 9999 is too short: {frame:?}"
            );
            let corr = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(
                corr, 42,
                "answer to api key 9999 carries its correlation id"
            );
        }
    }
    assert_still_serving(&mut node, &mut other, "api key 9999");
}

#[test]
fn unsupported_api_versions_version() {
    let (mut node, mut other, mut bad) = setup();
    // Kafka answers an ApiVersions request of an unknown version with a v0 response carrying
    // UNSUPPORTED_VERSION (35) and its supported range, so clients can downgrade.
    let mut frame = header(18, 99, 7);
    frame.push(0); // a flexible body would start with tagged fields; v99 is unknown anyway
    bad.send_frame(&frame).unwrap();
    match reaction(&mut bad, "ApiVersions v99") {
        Reaction::Closed => panic!(
            "ApiVersions v99: connection closed; Kafka clients expect an UNSUPPORTED_VERSION answer"
        ),
        Reaction::Answered(mut frame) => {
            let corr = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(corr, 7);
            bytes::Buf::advance(&mut frame, 4);
            let resp =
                ApiVersionsResponse::decode(&mut frame, 0).expect("v0 ApiVersions response body");
            assert_eq!(resp.error_code, 35, "ApiVersions v99 error code");
            assert!(
                resp.api_keys.iter().any(|k| k.api_key == 18),
                "response lists ApiVersions itself"
            );
        }
    }
    assert_still_serving(&mut node, &mut other, "ApiVersions v99");
}

#[test]
fn unsupported_metadata_version() {
    let (mut node, mut other, mut bad) = setup();
    let (_, frame) = bad.encode_request(12, &MetadataRequest::default()).unwrap();
    let mut frame = frame.to_vec();
    frame[2..4].copy_from_slice(&999i16.to_be_bytes());
    bad.send_frame(&frame).unwrap();
    let r = reaction(&mut bad, "Metadata v999");
    eprintln!("Metadata v999 -> {r:?}");
    assert_still_serving(&mut node, &mut other, "Metadata v999");
}

#[test]
fn truncated_frame_then_other_clients() {
    let (mut node, mut other, mut bad) = setup();
    // Promise 100 bytes, send 10, keep the connection open: only this connection waits.
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 10]);
    bad.send_raw(&bytes).unwrap();
    assert_still_serving(&mut node, &mut other, "truncated frame (open)");
    drop(bad);
    assert_still_serving(&mut node, &mut other, "truncated frame (closed)");
}

#[test]
fn many_bad_connections_then_real_client() {
    let (mut node, mut other, bad) = setup();
    drop(bad);
    for i in 0..50 {
        let mut c = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
        match i % 3 {
            0 => c.send_raw(&0x7fff_ffffi32.to_be_bytes()).unwrap(),
            1 => c.send_frame(&[0xff; 7]).unwrap(),
            _ => c.send_raw(&[1, 2]).unwrap(),
        }
    }
    // A well-formed request on a new connection after the storm.
    let mut c = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
    let v = c
        .best_version::<ApiVersionsRequest>()
        .expect("ApiVersions after bad connections");
    assert!(v >= 0);
    assert_still_serving(&mut node, &mut other, "50 bad connections");
}

/// Array counts far beyond the frame: kafka-protocol 0.18 as released pre-allocated them and
/// aborted the node; the vendored copy bounds them by the bytes remaining.
#[test]
fn huge_declared_array_count() {
    let (mut node, mut other, mut bad) = setup();
    // Metadata v0 declaring 2^31-1 topics: 14 bytes of request.
    bad.send_frame(b"\x00\x03\x00\x00\x00\x00\x00\x01\xff\xff\x7f\xff\xff\xff")
        .unwrap();
    let r = reaction(&mut bad, "Metadata v0 with 2^31-1 topics");
    eprintln!("huge array (classic) -> {r:?}");
    assert_still_serving(&mut node, &mut other, "Metadata v0 with 2^31-1 topics");
    // The same through a compact (flexible) array: Metadata v9, count 2^32-2.
    let mut bad = KafkaConn::connect(&node.bootstrap(), IO_TIMEOUT).expect("connect");
    bad.send_frame(b"\x00\x03\x00\x09\x00\x00\x00\x01\xff\xff\x00\xff\xff\xff\xff\x0f")
        .unwrap();
    let r = reaction(&mut bad, "Metadata v9 with 2^32-2 topics");
    eprintln!("huge array (compact) -> {r:?}");
    assert_still_serving(&mut node, &mut other, "Metadata v9 with 2^32-2 topics");
}
