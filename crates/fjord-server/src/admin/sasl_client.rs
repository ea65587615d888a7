//! The client side of the SASL mechanisms the CLI speaks, as pure message
//! arithmetic (the exchange over SaslAuthenticate is in `client`):
//! PLAIN (RFC 4616) and SCRAM (RFC 5802, no channel binding, as Kafka).

use anyhow::{Result, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fjord_scram::ScramMechanism;

/// PLAIN's single message: `authzid NUL authcid NUL password`, with an
/// empty authzid (act as oneself).
pub fn plain_message(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// One SCRAM exchange in progress.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
}

/// After the client-final message: what the server's final message must prove.
pub struct ScramPending {
    expected_signature: Vec<u8>,
}

impl ScramClient {
    /// Starts an exchange with a fresh random nonce.
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> Self {
        let nonce = B64.encode(fjord_scram::random_bytes(24));
        Self::with_nonce(mechanism, username, password, nonce)
    }

    fn with_nonce(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
        nonce: String,
    ) -> Self {
        // RFC 5802 saslname: ',' and '=' are escaped.
        let name = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            password: password.to_owned(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
        }
    }

    /// `client-first-message`: the GS2 header `n,,` (no channel binding,
    /// no authzid) and the bare part.
    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers the server-first message with the client-final message
    /// (carrying the proof); the returned state checks the server's final.
    pub fn final_message(self, server_first: &[u8]) -> Result<(Vec<u8>, ScramPending)> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| anyhow!("SCRAM server-first message is not UTF-8"))?;
        let attr = |name: char| attribute(server_first, name);
        let nonce = attr('r').ok_or_else(|| anyhow!("SCRAM server-first message has no nonce"))?;
        // The server extends our nonce; anything else is a replay or a
        // server that is not talking to us.
        ensure!(
            nonce.len() > self.nonce.len() && nonce.starts_with(&self.nonce),
            "SCRAM server nonce does not extend the client nonce"
        );
        let salt = attr('s')
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| anyhow!("SCRAM server-first message has no valid salt"))?;
        let iterations: u32 = attr('i')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| anyhow!("SCRAM server-first message has no valid iteration count"))?;
        // A hostile server could ask for billions of PBKDF2 rounds; Kafka's
        // own bounds keep the client's work reasonable.
        ensure!(
            (self.mechanism.min_iterations()..=self.mechanism.max_iterations())
                .contains(&iterations),
            "SCRAM iteration count {iterations} outside {}..={}",
            self.mechanism.min_iterations(),
            self.mechanism.max_iterations()
        );
        let salted = self
            .mechanism
            .salted_password(self.password.as_bytes(), &salt, iterations);
        // c=biws is base64("n,,"): the GS2 header again.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let proof = self
            .mechanism
            .client_proof(&salted, auth_message.as_bytes());
        let server_key = self.mechanism.hmac(&salted, b"Server Key");
        let expected_signature = self
            .mechanism
            .server_signature(&server_key, auth_message.as_bytes());
        let message = format!("{without_proof},p={}", B64.encode(proof)).into_bytes();
        Ok((message, ScramPending { expected_signature }))
    }
}

impl ScramPending {
    /// Checks the server-final message: `v=` must carry the signature only
    /// a server holding our credential can compute; `e=` is its refusal.
    pub fn verify_server_final(self, server_final: &[u8]) -> Result<()> {
        let server_final = std::str::from_utf8(server_final)
            .map_err(|_| anyhow!("SCRAM server-final message is not UTF-8"))?;
        if let Some(error) = attribute(server_final, 'e') {
            bail!("SCRAM authentication refused by the server: {error}");
        }
        let signature = attribute(server_final, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| anyhow!("SCRAM server-final message has no valid signature"))?;
        ensure!(
            signature == self.expected_signature,
            "SCRAM server signature does not match: the broker does not know this user's credential (not the broker you meant?)"
        );
        Ok(())
    }
}

/// The value of `name=` in a SCRAM message (comma-separated attributes).
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

#[cfg(test)]
mod tests {
    use fjord_scram::ScramCredential;

    use super::*;

    /// A full exchange against the server arithmetic of `fjord_scram`.
    fn exchange(mechanism: ScramMechanism, password: &str, tamper_signature: bool) -> Result<()> {
        let credential =
            ScramCredential::from_password(mechanism, b"secret", b"salty".to_vec(), 4096);
        let client = ScramClient::with_nonce(mechanism, "a,b=c", password, "cnonce".into());
        assert_eq!(client.first_message(), b"n,,n=a=2Cb=3Dc,r=cnonce");
        let server_first = format!("r=cnonceSNONCE,s={},i=4096", B64.encode(b"salty"));
        let (client_final, pending) = client.final_message(server_first.as_bytes())?;
        let client_final = String::from_utf8(client_final).expect("utf8");
        let (without_proof, proof) = client_final.rsplit_once(",p=").expect("proof");
        assert_eq!(without_proof, "c=biws,r=cnonceSNONCE");
        let auth = format!("n=a=2Cb=3Dc,r=cnonce,{server_first},{without_proof}");
        let server_final = match credential.verify_client_proof(
            mechanism,
            auth.as_bytes(),
            &B64.decode(proof).expect("b64"),
        ) {
            Ok(mut sig) => {
                if tamper_signature {
                    sig[0] ^= 1;
                }
                format!("v={}", B64.encode(sig))
            }
            Err(_) => "e=invalid-proof".to_owned(),
        };
        pending.verify_server_final(server_final.as_bytes())
    }

    #[test]
    fn scram_exchange_with_the_server_arithmetic() {
        for m in ScramMechanism::ALL {
            exchange(m, "secret", false).expect("right password");
            let wrong = exchange(m, "wrong", false).expect_err("wrong password");
            assert!(wrong.to_string().contains("invalid-proof"), "{wrong}");
            let forged = exchange(m, "secret", true).expect_err("bad server signature");
            assert!(forged.to_string().contains("signature"), "{forged}");
        }
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        let m = ScramMechanism::Sha512;
        let salt = B64.encode(b"s");
        for bad in [
            format!("r=othernonce,s={salt},i=4096"),
            format!("r=cnonce,s={salt},i=4096"),
            "r=cnonceX,s=!!,i=4096".to_owned(),
            format!("r=cnonceX,s={salt},i=4000000000"),
            format!("r=cnonceX,s={salt},i=1"),
            format!("r=cnonceX,s={salt}"),
            "\u{0}".to_owned(),
        ] {
            let client = ScramClient::with_nonce(m, "u", "p", "cnonce".into());
            assert!(client.final_message(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_message_layout() {
        assert_eq!(plain_message("u", "p"), b"\0u\0p");
    }
}
