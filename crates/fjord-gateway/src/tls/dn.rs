//! A certificate's subject as Kafka sees it: the RFC 2253 string of Java's
//! `X500Principal.getName()` (`CN=Duke,OU=JavaSoft,O=Sun Microsystems,C=US`),
//! which `ssl.principal.mapping.rules` match against.
//!
//! A small DER walk rather than an X.509 crate: only the subject is needed,
//! and the certificate has already been verified by rustls when it is read.
//! Still, nothing here trusts a length: malformed input is an error.

/// The certificate's DER could not be read as X.509.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed certificate: {0}")]
pub struct MalformedCertificate(&'static str);

/// One DER element: tag and contents.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Reads one element off the front of `input`.
fn next<'a>(input: &mut &'a [u8]) -> Result<Tlv<'a>, MalformedCertificate> {
    let bad = MalformedCertificate;
    let bytes: &'a [u8] = input;
    let [tag, first, rest @ ..] = bytes else {
        return Err(bad("truncated element header"));
    };
    let (tag, first) = (*tag, *first);
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad("element longer than its input"));
    }
    let (value, after) = rest.split_at(len);
    *input = after;
    Ok(Tlv { tag, value })
}

fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Result<&'a [u8], MalformedCertificate> {
    let tlv = next(input)?;
    if tlv.tag != tag {
        return Err(MalformedCertificate("unexpected element"));
    }
    Ok(tlv.value)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject of an X.509 certificate in RFC 2253 form.
pub fn subject_dn(cert_der: &[u8]) -> Result<String, MalformedCertificate> {
    let mut input = cert_der;
    let mut cert = expect(&mut input, SEQUENCE)?;
    let mut tbs = expect(&mut cert, SEQUENCE)?;
    // version [0] EXPLICIT, optional
    if tbs.first() == Some(&0xa0) {
        next(&mut tbs)?;
    }
    next(&mut tbs)?; // serialNumber
    next(&mut tbs)?; // signature AlgorithmIdentifier
    next(&mut tbs)?; // issuer
    next(&mut tbs)?; // validity
    let subject = expect(&mut tbs, SEQUENCE)?;
    name_rfc2253(subject)
}

/// An X.501 Name (a sequence of RDNs) the way Java prints it: the last RDN
/// first, RDNs joined by `,`, the attributes of one RDN by `+`.
fn name_rfc2253(mut rdns: &[u8]) -> Result<String, MalformedCertificate> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let mut set = expect(&mut rdns, SET)?;
        let mut atvs = Vec::new();
        while !set.is_empty() {
            let mut atv = expect(&mut set, SEQUENCE)?;
            let oid = expect(&mut atv, OID)?;
            let value_start = atv;
            let value = next(&mut atv)?;
            let encoded = &value_start[..value_start.len() - atv.len()];
            atvs.push(attribute(oid, value, encoded));
        }
        parts.push(atvs.join("+"));
    }
    parts.reverse();
    Ok(parts.join(","))
}

/// `KEYWORD=value` for the keywords RFC 2253 defines (the ones Java emits),
/// else `dotted.oid=#hex` of the value's DER.
fn attribute(oid: &[u8], value: Tlv<'_>, encoded: &[u8]) -> String {
    let keyword = match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => Some("DC"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some("UID"),
        _ => None,
    };
    let text = match value.tag {
        // UTF8String, PrintableString, IA5String, TeletexString (read as Latin-1 by
        // few; as UTF-8 here), BMPString is rare in client certs and goes hex.
        0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(value.value).ok(),
        _ => None,
    };
    match (keyword, text) {
        (Some(keyword), Some(text)) => format!("{keyword}={}", escape(text)),
        _ => {
            let hex: String = encoded.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", dotted(oid))
        }
    }
}

/// RFC 2253 §2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An OID's dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if value.len() < 0x80 {
            out.push(value.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn rdn(atvs: &[(&[u8], u8, &str)]) -> Vec<u8> {
        let inner: Vec<u8> = atvs
            .iter()
            .flat_map(|(oid, tag, v)| {
                tlv(SEQUENCE, &[tlv(OID, oid), tlv(*tag, v.as_bytes())].concat())
            })
            .collect();
        tlv(SET, &inner)
    }

    fn cert(subject: &[u8]) -> Vec<u8> {
        let tbs = [
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[1]),
            tlv(SEQUENCE, &tlv(OID, &[0x2a])),
            tlv(SEQUENCE, &[]),
            tlv(SEQUENCE, &[]),
            tlv(SEQUENCE, subject),
        ]
        .concat();
        tlv(
            SEQUENCE,
            &[tlv(SEQUENCE, &tbs), tlv(SEQUENCE, &[])].concat(),
        )
    }

    const C: &[u8] = &[0x55, 4, 6];
    const O: &[u8] = &[0x55, 4, 10];
    const OU: &[u8] = &[0x55, 4, 11];
    const CN: &[u8] = &[0x55, 4, 3];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

    #[test]
    fn subject_is_printed_last_rdn_first_as_java_does() {
        let subject = [
            rdn(&[(C, 0x13, "US")]),
            rdn(&[(O, 0x0c, "Sun Microsystems")]),
            rdn(&[(OU, 0x0c, "JavaSoft")]),
            rdn(&[(CN, 0x0c, "Duke")]),
        ]
        .concat();
        assert_eq!(
            subject_dn(&cert(&subject)).as_deref(),
            Ok("CN=Duke,OU=JavaSoft,O=Sun Microsystems,C=US")
        );
    }

    #[test]
    fn special_characters_multi_valued_rdns_and_unknown_attributes() {
        let subject = [
            rdn(&[(O, 0x0c, "Acme, Inc.")]),
            rdn(&[(CN, 0x0c, "a+b"), (OU, 0x0c, " x ")]),
            rdn(&[(EMAIL, 0x16, "a@b")]),
        ]
        .concat();
        assert_eq!(
            subject_dn(&cert(&subject)).as_deref(),
            Ok("1.2.840.113549.1.9.1=#1603614062,CN=a\\+b+OU=\\ x\\ ,O=Acme\\, Inc.")
        );
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let good = cert(&rdn(&[(CN, 0x0c, "x")]));
        for len in 0..good.len() {
            let _ = subject_dn(&good[..len]);
        }
        for bad in [
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x85],
            &[0xff],
        ] {
            assert!(subject_dn(bad).is_err());
        }
    }
}
